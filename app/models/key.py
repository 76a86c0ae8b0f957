from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow

SCOPES = ("chat", "embeddings", "models", "admin", "admin:operator", "admin:read")
# admin: the whole /api/admin API; admin:operator and admin:read: that role's share of it


class GatewayKey(db.Model):
    __tablename__ = "gateway_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    owner: Mapped[str | None] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    # sha256 of the full key: keys carry 256 bits of entropy, so a fast hash is safe and
    # lets the proxy look a key up by hash in O(1).
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    allowed_models: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    budget: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed_ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # sensitivity policy override: {"action": "allow"|"route"|"block"|"redact", "threshold": 0.5}
    sensitivity: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # keep (redacted) request/response bodies of this one's calls; off by default
    log_bodies: Mapped[bool | None] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(120))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if not self.enabled:
            return "disabled"
        if self.is_expired():
            return "expired"
        return "active"
