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


DIMENSIONS = ("model", "provider", "key", "owner")


class UsageRollup(db.Model):
    """5-minute aggregates of usage_records, one family per dimension, kept by the usage writer.

    Each call adds to four rows of its bucket: (model, its name), (provider, its id), (key, its
    id), (owner, its name). A dashboard reads one family (totals read the "model" family), so a
    30-day chart reads buckets x distinct values of one dimension, however many calls there
    were; combining filters on two dimensions falls back to the raw table. Values are strings
    ("" for none) so the unique key is an upsert target on SQLite and PostgreSQL alike.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = (
        UniqueConstraint("dim", "bucket", "value", "endpoint", name="uq_usage_rollups_dims"),
        Index("ix_rollups_dim_value_bucket", "dim", "value", "bucket"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dim: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[datetime]
    value: Mapped[str] = mapped_column(String(200), default="")
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
