"""Maintain usage_rollups (5-minute aggregates) from batches of usage records.

Called by the usage writer in the same transaction as the raw insert, so raw rows and
aggregates never disagree. One upsert per (dimension, bucket, value, endpoint) per
batch: INSERT ... ON CONFLICT DO UPDATE adding the increments (SQLite >= 3.24 and PostgreSQL).
"""
from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable

from app.extensions import db
from app.models import UsageRollup
from app.models.rollup import HIST, LATENCY_BOUNDS_MS, TTFB_HIST

BUCKET_SECONDS = 300
SUMS = ("requests", "errors", "cache_hits", "streams", "prompt_tokens", "completion_tokens",
        "cost_usd", "latency_ms_sum", "ttfb_ms_sum", "ttfb_count", *HIST, *TTFB_HIST)


COARSE = "@1h"  # suffix of the hourly families, read by charts whose step is an hour or more


def bucket_of(at: datetime) -> datetime:
    """The 5-minute bucket of a naive-UTC timestamp (no local-time conversion anywhere)."""
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def hist_index(ms: float) -> int:
    return bisect_left(LATENCY_BOUNDS_MS, ms)


def dimension_values(r: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return (("model", r.get("model_name") or ""), ("provider", str(r.get("provider_id") or "")),
            ("key", str(r.get("key_id") or "")), ("owner", r.get("owner") or ""))


def increments(rows: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """{(dim, bucket, value, endpoint): increments}; each row counts once in each family."""
    per_row: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        at, endpoint = r["created_at"], r.get("endpoint") or "chat"
        bucket, hour = bucket_of(at), hour_of(at)
        for dim, value in dimension_values(r):
            _add(per_row, (dim, bucket, value, endpoint), r)
            _add(per_row, (dim + COARSE, hour, value, endpoint), r)
    return per_row


def _add(out: dict[tuple, dict[str, Any]], dims: tuple, r: dict[str, Any]) -> None:
    inc = out.get(dims)
    if inc is None:
        inc = out[dims] = {name: 0 for name in SUMS}
        inc["cost_usd"] = Decimal(0)
        inc["latency_ms_sum"] = inc["ttfb_ms_sum"] = 0.0
    inc["requests"] += 1
    if (r.get("status_code") or 200) >= 400:
        inc["errors"] += 1
    if r.get("cache_hit"):
        inc["cache_hits"] += 1
    if r.get("stream"):
        inc["streams"] += 1
    inc["prompt_tokens"] += r.get("prompt_tokens") or 0
    inc["completion_tokens"] += r.get("completion_tokens") or 0
    inc["cost_usd"] += Decimal(r.get("cost_usd") or 0)
    latency = r.get("latency_ms")
    if latency is not None:
        inc["latency_ms_sum"] += latency
        inc[HIST[hist_index(latency)]] += 1
    ttfb = r.get("ttfb_ms")
    if ttfb is not None:
        inc["ttfb_ms_sum"] += ttfb
        inc["ttfb_count"] += 1
        inc[TTFB_HIST[hist_index(ttfb)]] += 1


def apply(rows: list[dict[str, Any]]) -> int:
    """Add a batch's increments to usage_rollups (within the caller's transaction)."""
    incs = increments(rows)
    if not incs:
        return 0
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = UsageRollup.__table__
    values = [{"dim": d[0], "bucket": d[1], "value": d[2], "endpoint": d[3], **inc}
              for d, inc in incs.items()]
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["dim", "bucket", "value", "endpoint"],
        set_={name: table.c[name] + stmt.excluded[name] for name in SUMS})
    db.session.execute(stmt, values)
    return len(values)
