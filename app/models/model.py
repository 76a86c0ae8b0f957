from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow

KINDS = ("chat", "embedding")
PRICE = db.Numeric(14, 6)


class Model(db.Model):
    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("provider_id", "model_id", name="uq_models_provider_model"),
        Index("ix_models_name", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="chat")
    supports_streaming: Mapped[bool] = mapped_column(default=True)
    supports_tools: Mapped[bool] = mapped_column(default=False)
    supports_vision: Mapped[bool] = mapped_column(default=False)
    supports_json: Mapped[bool] = mapped_column(default=False)
    context_window: Mapped[int | None]
    max_output_tokens: Mapped[int | None]
    input_price_per_mtok: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    output_price_per_mtok: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    cached_input_price_per_mtok: Mapped[Decimal | None] = mapped_column(PRICE)
    priority: Mapped[int] = mapped_column(default=0)
    weight: Mapped[int] = mapped_column(default=1)
    # keep (redacted) request/response bodies of this one's calls; off by default
    log_bodies: Mapped[bool | None] = mapped_column(default=False)
    # global limits protecting an upstream quota: {"rpm", "rph", "rpd", "tpm", "tpd", "concurrency"}
    limits: Mapped[dict | None] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    deprecated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    provider: Mapped["Provider"] = relationship(back_populates="models")  # noqa: F821
