from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow

TRUST_LEVELS = ("local", "private", "public")
HEALTH_STATUSES = ("healthy", "unhealthy", "unknown")


class Provider(db.Model):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    api_base: Mapped[str] = mapped_column(String(500))
    api_version: Mapped[str | None] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # MultiFernet token prefixed with the id of the key that made it: "<key id>$<token>"
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    default_temperature: Mapped[Decimal | None] = mapped_column(db.Numeric(4, 2))
    default_max_tokens: Mapped[int | None]
    connect_timeout: Mapped[float] = mapped_column(default=5.0)
    read_timeout: Mapped[float] = mapped_column(default=60.0)
    enabled: Mapped[bool] = mapped_column(default=True)
    trust_level: Mapped[str] = mapped_column(String(16), default="public")
    # global limits protecting an upstream quota: {"rpm", "rph", "rpd", "tpm", "tpd", "concurrency"}
    limits: Mapped[dict | None] = mapped_column(JSON)
    health_status: Mapped[str] = mapped_column(String(16), default="unknown")
    health_latency_ms: Mapped[float | None]
    health_error: Mapped[str | None] = mapped_column(Text)
    health_checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(120))
    updated_by: Mapped[str | None] = mapped_column(String(120))

    models: Mapped[list["Model"]] = relationship(  # noqa: F821
        back_populates="provider", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def has_api_key(self) -> bool:
        return bool(self.secrets_encrypted)
