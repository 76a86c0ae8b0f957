from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow


class UsageRecord(db.Model):
    """One row per proxied call. No foreign keys: rows outlive deleted keys/models."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_key_time", "key_id", "created_at"),
        Index("ix_usage_model_time", "model_name", "created_at"),
        Index("ix_usage_provider_time", "provider_id", "created_at"),
        Index("ix_usage_status_time", "status_code", "created_at"),
        Index("ix_usage_cost", "cost_usd"),  # request log sorted by cost / latency over 10M rows
        Index("ix_usage_latency", "latency_ms"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(32), default="chat")
    key_id: Mapped[int | None]
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_id: Mapped[int | None]
    provider_id: Mapped[int | None]
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cached_tokens: Mapped[int] = mapped_column(default=0)
    tokens_estimated: Mapped[bool] = mapped_column(default=False)
    cost_usd: Mapped[Decimal] = mapped_column(db.Numeric(18, 8), default=Decimal(0))
    latency_ms: Mapped[float | None]
    ttfb_ms: Mapped[float | None]
    status_code: Mapped[int] = mapped_column(default=200)
    error_class: Mapped[str | None] = mapped_column(String(40))
    cache_hit: Mapped[bool] = mapped_column(default=False)
    stream: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[str | None] = mapped_column(String(500))
    owner: Mapped[str | None] = mapped_column(String(120))
    # sensitivity detectors that fired (names only, never the matched text)
    detectors: Mapped[str | None] = mapped_column(String(300))
    # how the call went: checks, routing choice, attempts with timings, cache, price source
    details: Mapped[dict | None] = mapped_column(db.JSON)
    reserved_usd: Mapped[Decimal | None] = mapped_column(db.Numeric(18, 8))
