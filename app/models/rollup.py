from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

# latency histogram upper bounds (ms); the last bucket is open-ended
LATENCY_BOUNDS_MS = (50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200)
HIST = [f"lat_h{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1)]
TTFB_HIST = [f"ttfb_h{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1)]


class UsageRollup(db.Model):
    """5-minute aggregates of usage_records, maintained by the usage writer.

    Dashboards read these instead of scanning raw rows, so a 30-day chart reads at most a few
    hundred thousand rows however many calls there were. Dimensions use 0 / "" instead of NULL
    so the unique key works as an upsert target on SQLite and PostgreSQL alike.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = (
        UniqueConstraint("bucket", "key_id", "model_name", "provider_id", "owner", "endpoint",
                         name="uq_usage_rollups_dims"),
        Index("ix_rollups_bucket", "bucket"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[datetime]
    key_id: Mapped[int] = mapped_column(default=0)
    model_name: Mapped[str] = mapped_column(String(200), default="")
    provider_id: Mapped[int] = mapped_column(default=0)
    owner: Mapped[str] = mapped_column(String(120), default="")
    endpoint: Mapped[str] = mapped_column(String(32), default="chat")
    requests: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    cache_hits: Mapped[int] = mapped_column(default=0)
    streams: Mapped[int] = mapped_column(default=0)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(db.Numeric(18, 8), default=Decimal(0))
    latency_ms_sum: Mapped[float] = mapped_column(default=0.0)
    ttfb_ms_sum: Mapped[float] = mapped_column(default=0.0)
    ttfb_count: Mapped[int] = mapped_column(default=0)
    lat_h0: Mapped[int] = mapped_column(default=0)
    lat_h1: Mapped[int] = mapped_column(default=0)
    lat_h2: Mapped[int] = mapped_column(default=0)
    lat_h3: Mapped[int] = mapped_column(default=0)
    lat_h4: Mapped[int] = mapped_column(default=0)
    lat_h5: Mapped[int] = mapped_column(default=0)
    lat_h6: Mapped[int] = mapped_column(default=0)
    lat_h7: Mapped[int] = mapped_column(default=0)
    lat_h8: Mapped[int] = mapped_column(default=0)
    lat_h9: Mapped[int] = mapped_column(default=0)
    lat_h10: Mapped[int] = mapped_column(default=0)
    lat_h11: Mapped[int] = mapped_column(default=0)
    ttfb_h0: Mapped[int] = mapped_column(default=0)
    ttfb_h1: Mapped[int] = mapped_column(default=0)
    ttfb_h2: Mapped[int] = mapped_column(default=0)
    ttfb_h3: Mapped[int] = mapped_column(default=0)
    ttfb_h4: Mapped[int] = mapped_column(default=0)
    ttfb_h5: Mapped[int] = mapped_column(default=0)
    ttfb_h6: Mapped[int] = mapped_column(default=0)
    ttfb_h7: Mapped[int] = mapped_column(default=0)
    ttfb_h8: Mapped[int] = mapped_column(default=0)
    ttfb_h9: Mapped[int] = mapped_column(default=0)
    ttfb_h10: Mapped[int] = mapped_column(default=0)
    ttfb_h11: Mapped[int] = mapped_column(default=0)
