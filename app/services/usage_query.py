"""Usage analytics for the dashboard and the admin API: time series, totals, breakdowns from
the 5-minute rollups; the request log, export and retention on the raw records."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterator

from sqlalchemy import Integer, and_, case, cast, func, literal_column

from app.extensions import db
from app.models import GatewayKey, Provider, UsageRecord, UsageRollup, utcnow
from app.models.rollup import HIST, LATENCY_BOUNDS_MS, TTFB_HIST
from app.services import validation as v
from app.services.rollups import COARSE
from app.services.errors import ValidationFailed

RANGES = {"1h": (timedelta(hours=1), 300), "24h": (timedelta(hours=24), 3600),
          "7d": (timedelta(days=7), 6 * 3600), "30d": (timedelta(days=30), 86400)}
GROUPS = ("model", "provider", "key", "owner")
SUMMED = ("requests", "errors", "cache_hits", "streams", "prompt_tokens", "completion_tokens",
          "cost_usd", "latency_ms_sum", "ttfb_ms_sum", "ttfb_count", *HIST, *TTFB_HIST)


@dataclass
class Window:
    start: datetime
    end: datetime
    step: int  # seconds per chart bucket

    @property
    def previous(self) -> "Window":
        span = self.end - self.start
        return Window(self.start - span, self.start, self.step)


def window(range_: str | None = "24h", start: str | None = None, end: str | None = None,
           now: datetime | None = None) -> Window:
    """A named range (1h, 24h, 7d, 30d) ending now, or a custom start/end (ISO 8601)."""
    now = now or utcnow()
    if start or end:
        s = v.timestamp({"start": start}, "start")
        e = v.timestamp({"end": end}, "end") or now
        if s is None or s >= e:
            raise ValidationFailed("start must be before end", field="start")
        if s < datetime(1970, 1, 2) or e > datetime(2200, 1, 1):
            raise ValidationFailed("start and end must lie between 1970 and 2200", field="start")
        if e - s > timedelta(days=400):
            raise ValidationFailed("a custom range may span at most 400 days", field="end")
        span = (e - s).total_seconds()
        step = 300 if span <= 6 * 3600 else 3600 if span <= 3 * 86400 else 6 * 3600 if span <= 14 * 86400 else 86400
        return Window(s, e, step)
    if range_ not in RANGES:
        raise ValidationFailed(f"range must be one of {', '.join(RANGES)} or start/end", field="range")
    span, step = RANGES[range_]
    return Window(now - span, now, step)


def _epoch(col):
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", col), Integer)
    return cast(func.strftime("%s", col), Integer)


RAW_DIMS = {"model": UsageRecord.model_name, "provider": UsageRecord.provider_id,
            "key": UsageRecord.key_id, "owner": UsageRecord.owner}
FILTER_DIMS = {"model": "model", "provider_id": "provider", "key_id": "key", "owner": "owner"}


@dataclass
class Source:
    """Where an aggregate is read: one rollup family, or the raw records for combined filters."""

    rollup: bool
    dim: str | None  # rollup family, or the raw column to group by
    filters: dict[str, Any]

    @property
    def bucket_col(self):
        return UsageRollup.bucket if self.rollup else UsageRecord.created_at

    def group_col(self, group_by: str):
        return UsageRollup.value if self.rollup else RAW_DIMS[group_by]

    def columns(self):
        if self.rollup:
            return [func.coalesce(func.sum(getattr(UsageRollup, n)), 0).label(n) for n in SUMMED]
        r = UsageRecord
        lat, ttfb = r.latency_ms, r.ttfb_ms
        cols = [func.count(r.id).label("requests"),
                func.coalesce(func.sum(case((r.status_code >= 400, 1), else_=0)), 0).label("errors"),
                func.coalesce(func.sum(case((r.cache_hit.is_(True), 1), else_=0)), 0).label("cache_hits"),
                func.coalesce(func.sum(case((r.stream.is_(True), 1), else_=0)), 0).label("streams"),
                func.coalesce(func.sum(r.prompt_tokens), 0).label("prompt_tokens"),
                func.coalesce(func.sum(r.completion_tokens), 0).label("completion_tokens"),
                func.coalesce(func.sum(r.cost_usd), 0).label("cost_usd"),
                func.coalesce(func.sum(lat), 0).label("latency_ms_sum"),
                func.coalesce(func.sum(ttfb), 0).label("ttfb_ms_sum"),
                func.count(ttfb).label("ttfb_count")]
        for col, names in ((lat, HIST), (ttfb, TTFB_HIST)):
            lo = None
            for i, name in enumerate(names):
                hi = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else None
                conds = [col.is_not(None)] + ([col > lo] if lo is not None else []) + \
                    ([col <= hi] if hi is not None else [])
                cols.append(func.coalesce(func.sum(case((and_(*conds), 1), else_=0)), 0).label(name))
                lo = hi
        return cols

    def where(self, stmt, w: Window):
        if self.rollup:
            # hourly families for hour-or-coarser charts: 12x fewer rows than 5-minute ones
            hourly = w.step >= 3600
            stmt = stmt.where(UsageRollup.dim == self.dim + (COARSE if hourly else ""),
                              UsageRollup.bucket >= w.start - timedelta(seconds=3599 if hourly else 299),
                              UsageRollup.bucket < w.end)
            for name, value in self.filters.items():
                stmt = stmt.where(UsageRollup.value == str(value))
            return stmt
        stmt = stmt.where(UsageRecord.created_at >= w.start, UsageRecord.created_at < w.end)
        for name, value in self.filters.items():
            col = RAW_DIMS[FILTER_DIMS[name]]
            if name in ("provider_id", "key_id"):
                value = v.integer({name: value}, name, lo=0, hi=v.ID_MAX)
            stmt = stmt.where(col == value)
        return stmt


def source(group_by: str | None, filters: dict[str, Any]) -> Source:
    filters = {k: v_ for k, v_ in filters.items() if k in FILTER_DIMS and v_ not in (None, "")}
    dims = {FILTER_DIMS[k] for k in filters}
    if not filters:
        return Source(True, group_by or "model", {})
    if len(filters) == 1 and (group_by is None or group_by in dims):
        return Source(True, dims.pop(), filters)
    return Source(False, group_by, filters)


def percentile(hist: list[int], p: float) -> float | None:
    """Estimate a percentile (ms) from the fixed latency histogram, interpolating in a bucket."""
    total = sum(hist)
    if not total:
        return None
    target, seen = p * total, 0
    for i, count in enumerate(hist):
        if count and seen + count >= target:
            lo = LATENCY_BOUNDS_MS[i - 1] if i > 0 else 0
            hi = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else LATENCY_BOUNDS_MS[-1] * 2
            return round(lo + (hi - lo) * (target - seen) / count, 1)
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    req = row["requests"] or 0
    return {
        "requests": req, "errors": row["errors"] or 0,
        "error_rate": round((row["errors"] or 0) / req, 4) if req else 0.0,
        "prompt_tokens": row["prompt_tokens"] or 0, "completion_tokens": row["completion_tokens"] or 0,
        "cost_usd": float(Decimal(str(row["cost_usd"] or 0))),
        "cache_hit_rate": round((row["cache_hits"] or 0) / req, 4) if req else 0.0,
        "latency_avg_ms": round(row["latency_ms_sum"] / req, 1) if req and row["latency_ms_sum"] else None,
        "latency_p50_ms": percentile([row[h] or 0 for h in HIST], 0.5),
        "latency_p95_ms": percentile([row[h] or 0 for h in HIST], 0.95),
        "ttfb_p50_ms": percentile([row[h] or 0 for h in TTFB_HIST], 0.5),
        "ttfb_p95_ms": percentile([row[h] or 0 for h in TTFB_HIST], 0.95),
    }


def labels(group_by: str | None, ids: set) -> dict:
    """Display names for provider/key ids (rollup values are strings, raw ones ints)."""
    ints = {int(x) for x in ids if str(x).isdigit()}
    if group_by == "provider":
        names = {pid: name for pid, name in db.session.execute(
            db.select(Provider.id, Provider.name).where(Provider.id.in_(ints)))}
    elif group_by == "key":
        names = {kid: f"{name} ({prefix}…)" for kid, name, prefix in db.session.execute(
            db.select(GatewayKey.id, GatewayKey.name, GatewayKey.prefix).where(GatewayKey.id.in_(ints)))}
    else:
        return {}
    return {x: names.get(int(x), f"#{x}") if str(x).isdigit() else "(none)" for x in ids}


def totals(w: Window, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The range's totals and the change against the previous period of the same length."""
    src = source(None, filters or {})
    current = db.session.execute(src.where(db.select(*src.columns()), w)).mappings().one()
    prev = db.session.execute(src.where(db.select(*src.columns()), w.previous)).mappings().one()
    now, before = _metrics(dict(current)), _metrics(dict(prev))
    change = {}
    for k in ("requests", "prompt_tokens", "completion_tokens", "cost_usd", "error_rate", "latency_p50_ms"):
        a, b = now[k], before[k]
        change[k] = None if not b or a is None else round((a - b) / b, 4)
    return {"current": now, "previous": before, "change": change}


def timeseries(w: Window, group_by: str | None = None, filters: dict[str, Any] | None = None,
               top: int = 8) -> dict[str, Any]:
    """Per chart bucket (and per group, the `top` largest by requests, rest as "other")."""
    if group_by is not None and group_by not in GROUPS:
        raise ValidationFailed(f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
    src = source(group_by, filters or {})
    start_epoch = int((w.start - datetime(1970, 1, 1)).total_seconds())
    b = cast(func.floor((_epoch(src.bucket_col) - start_epoch) * 1.0 / w.step), Integer).label("b")
    g = src.group_col(group_by).label("g") if group_by else literal_column("''").label("g")
    stmt = src.where(db.select(b, g, *src.columns()), w).group_by("b", "g").order_by("b")
    rows = [dict(r) for r in db.session.execute(stmt).mappings()]
    n = max(1, int((w.end - w.start).total_seconds() // w.step) + 1)
    buckets = [(w.start + timedelta(seconds=i * w.step)).isoformat() + "Z" for i in range(n)]
    by_group: dict[Any, int] = {}
    for r in rows:
        by_group[r["g"]] = by_group.get(r["g"], 0) + r["requests"]
    keep = set(sorted(by_group, key=lambda x: -by_group[x])[:top])
    names = labels(group_by, set(by_group))
    acc: dict[tuple[str, int], dict] = {}
    for r in rows:
        idx = max(0, min(n - 1, int(r["b"])))
        name = str(names.get(r["g"], r["g"]) or "(none)") if r["g"] in keep else "other"
        slot = acc.setdefault((name, idx), {k: 0 for k in SUMMED})
        for k in SUMMED:
            slot[k] += r[k] or 0
    series: dict[str, list] = {}
    for (name, idx), slot in acc.items():
        series.setdefault(name, [None] * n)[idx] = _metrics(slot)
    empty = _metrics({k: 0 for k in SUMMED})
    return {"buckets": buckets, "step_s": w.step, "group_by": group_by,
            "source": "rollup" if src.rollup else "raw",
            "series": {name: [x or empty for x in values] for name, values in sorted(series.items())}}


def breakdown(w: Window, by: str, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    if by not in GROUPS:
        raise ValidationFailed(f"by must be one of {', '.join(GROUPS)}", field="by")
    src = source(by, filters or {})
    stmt = src.where(db.select(src.group_col(by).label("g"), *src.columns()), w).group_by("g")
    rows = [dict(r) for r in db.session.execute(stmt).mappings()]
    names = labels(by, {r["g"] for r in rows})
    out = [{"name": str(names.get(r["g"], r["g"]) or "(none)"), "id": r["g"], **_metrics(r)} for r in rows]
    return sorted(out, key=lambda x: -x["requests"])


# ----------------------------------------------------------------------------- request log
LOG_SORTS = {"time": UsageRecord.id, "latency": UsageRecord.latency_ms, "cost": UsageRecord.cost_usd,
             "tokens": UsageRecord.completion_tokens}


def _log_filters(stmt, f: dict[str, Any]):
    if f.get("start"):
        stmt = stmt.where(UsageRecord.created_at >= v.timestamp(f, "start"))
    if f.get("end"):
        stmt = stmt.where(UsageRecord.created_at < v.timestamp(f, "end"))
    for name, col in (("key_id", UsageRecord.key_id), ("provider_id", UsageRecord.provider_id),
                      ("status", UsageRecord.status_code)):
        if f.get(name) not in (None, ""):
            stmt = stmt.where(col == v.integer(f, name, lo=0, hi=v.ID_MAX))
    if f.get("model"):
        stmt = stmt.where(UsageRecord.model_name == f["model"])
    if f.get("error_class"):
        stmt = stmt.where(UsageRecord.error_class == f["error_class"])
    if f.get("outcome") == "error":
        stmt = stmt.where(UsageRecord.status_code >= 400)
    elif f.get("outcome") == "ok":
        stmt = stmt.where(UsageRecord.status_code < 400)
    for name, col in (("cache", UsageRecord.cache_hit), ("stream", UsageRecord.stream)):
        if f.get(name) not in (None, ""):
            stmt = stmt.where(col.is_(v.boolean(f, name, False)))
    return stmt


def requests_page(f: dict[str, Any], sort: str = "time", desc: bool = True, page: int = 1,
                  per_page: int = 50) -> dict[str, Any]:
    if sort not in LOG_SORTS:
        raise ValidationFailed(f"sort must be one of {', '.join(LOG_SORTS)}", field="sort")
    per_page = max(1, min(per_page, 500))
    page = max(1, min(page, 10_000))
    col = LOG_SORTS[sort]
    stmt = _log_filters(db.select(UsageRecord), f)
    stmt = stmt.order_by(col.desc() if desc else col.asc(), UsageRecord.id.desc())
    rows = list(db.session.scalars(stmt.offset((page - 1) * per_page).limit(per_page + 1)))
    return {"rows": rows[:per_page], "page": page, "per_page": per_page, "has_more": len(rows) > per_page}


def record_dict(r: UsageRecord) -> dict[str, Any]:
    return {"id": r.id, "request_id": r.request_id, "created_at": r.created_at.isoformat() + "Z",
            "endpoint": r.endpoint, "key_id": r.key_id, "owner": r.owner, "model": r.model_name,
            "model_id": r.model_id, "provider_id": r.provider_id, "status": r.status_code,
            "error_class": r.error_class, "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens, "cached_tokens": r.cached_tokens,
            "tokens_estimated": r.tokens_estimated, "cost_usd": format(Decimal(r.cost_usd or 0), "f"),
            "latency_ms": r.latency_ms, "ttfb_ms": r.ttfb_ms, "cache_hit": r.cache_hit,
            "stream": r.stream, "attempts": r.attempts, "detectors": r.detectors,
            "details": r.details}


EXPORT_FIELDS = ("id", "request_id", "created_at", "endpoint", "key_id", "owner", "model", "provider_id",
                 "status", "error_class", "prompt_tokens", "completion_tokens", "cached_tokens",
                 "tokens_estimated", "cost_usd", "latency_ms", "ttfb_ms", "cache_hit", "stream",
                 "attempts", "detectors")


def export(f: dict[str, Any], fmt: str, page: int = 1000) -> Iterator[str]:
    """Stream the filtered records as CSV or JSON Lines.

    Keyset pages of `page` rows (id > last id), each a short query of its own: memory stays
    bounded, and no cursor or ORM object outlives a page (a streamed response may resume in
    another app context, with another DB session).
    """
    if fmt not in ("csv", "jsonl"):
        raise ValidationFailed("format must be csv or jsonl", field="format")
    base = _log_filters(db.select(UsageRecord), f)  # validates the filters before streaming
    if fmt == "csv":
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, extrasaction="ignore").writeheader()
        yield buf.getvalue()
    last = 0
    while True:
        rows = [record_dict(r) for r in db.session.scalars(
            base.where(UsageRecord.id > last).order_by(UsageRecord.id).limit(page))]
        db.session.expunge_all()
        if not rows:
            return
        last = rows[-1]["id"]
        buf = io.StringIO()
        if fmt == "jsonl":
            for row in rows:
                row.pop("details", None)
                buf.write(json.dumps(row) + "\n")
        else:
            writer = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
            writer.writerows(rows)
        yield buf.getvalue()


def prune_bodies(older_than_days: int, batch: int = 2000) -> int:
    """Delete logged bodies past their own (shorter) retention, in bounded batches."""
    from app.models import UsageBody
    cutoff = utcnow() - timedelta(days=older_than_days)
    deleted = 0
    while True:
        ids = list(db.session.scalars(db.select(UsageBody.id).where(UsageBody.created_at < cutoff)
                                      .order_by(UsageBody.id).limit(batch)))
        if not ids:
            return deleted
        db.session.execute(db.delete(UsageBody).where(UsageBody.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)


def prune(older_than_days: int, batch: int = 5000, max_batches: int | None = None) -> int:
    """Delete raw records older than the cutoff in bounded batches (rollups keep the history).

    Each batch is one short transaction on an id range, so the writer is never locked out for
    long and no single DELETE touches millions of rows.
    """
    cutoff = utcnow() - timedelta(days=older_than_days)
    deleted, rounds = 0, 0
    while max_batches is None or rounds < max_batches:
        ids = list(db.session.scalars(db.select(UsageRecord.id).where(UsageRecord.created_at < cutoff)
                                      .order_by(UsageRecord.id).limit(batch)))
        if not ids:
            break
        db.session.execute(db.delete(UsageRecord).where(UsageRecord.id >= ids[0], UsageRecord.id <= ids[-1],
                                                        UsageRecord.created_at < cutoff))
        db.session.commit()
        deleted += len(ids)
        rounds += 1
    return deleted
