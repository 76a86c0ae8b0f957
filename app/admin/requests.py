"""Request log: filter, sort and page through the raw usage records; a detail page that explains
one call in plain words; the filtered set streamed out as CSV or JSON Lines."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, render_template, request, stream_with_context
from markupsafe import Markup

from app.admin import access
from app.admin.htmx import render
from app.extensions import db
from app.models import GatewayKey, Provider, UsageRecord, utcnow
from app.services import keys as key_service
from app.services import models as model_service
from app.services import providers as provider_service
from app.services import usage_query as uq

bp = Blueprint("requests", __name__, url_prefix="/requests")

RANGES = (("", "Any time"), ("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"),
          ("30d", "Last 30 days"), ("custom", "Custom…"))
SPANS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
         "30d": timedelta(days=30)}
FILTERS = ("key_id", "provider_id", "status", "model", "error_class", "outcome", "cache", "stream")
SORTS = ("time", "latency", "cost", "tokens")
PER_PAGE = 50
ERROR_CLASSES = ("upstream_error", "upstream_auth", "timeout", "connect_error", "rate_limited",
                 "budget_exceeded", "bad_request", "not_found", "no_route", "content_policy",
                 "stream_truncated", "forbidden", "config_error")
CACHE_TEXT = {
    "HIT": "Served from the response cache: no upstream was called and the call cost nothing.",
    "MISS": "Looked up in the response cache and not found, so an upstream was called.",
    "BYPASS": "The response cache was skipped for this request (not cacheable, or the cache "
              "is off for this key or request).",
}


@bp.get("")
@access.ops
def index():
    q = parse(request.args)
    page = uq.requests_page(q.service_filters(), q.sort, q.desc, q.page, PER_PAGE)
    return render("admin/requests/index.html", "admin/requests/_log.html", q=q, page=page,
                  **lookups())


@bp.get("/export.<any(csv, jsonl):fmt>")
@access.ops
def export(fmt: str):
    """The filtered set, oldest first, streamed in 1,000-row batches (no page limit)."""
    lines = uq.export(parse(request.args).service_filters(), fmt)
    first = next(lines, "")  # runs the query now: a bad filter is a 422 page, not a broken file

    def body():
        try:
            yield first
            yield from lines
        finally:
            lines.close()
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(body()),
                    mimetype="text/csv" if fmt == "csv" else "application/x-ndjson",
                    headers={"Content-Disposition": f"attachment; filename=requests-{stamp}.{fmt}"})


@bp.get("/<int:record_id>")
@access.ops
def detail(record_id: int):
    record = db.get_or_404(UsageRecord, record_id, description=f"There is no request #{record_id} in the log "
                                                                "(it may have been pruned).")
    return render_template("admin/requests/detail.html", r=record, x=explain(record),
                           key=db.session.get(GatewayKey, record.key_id) if record.key_id else None,
                           provider=db.session.get(Provider, record.provider_id) if record.provider_id else None)


# ----------------------------------------------------------------------------- query
@dataclass
class LogQuery:
    range: str
    start: str
    end: str
    filters: dict[str, str]
    sort: str
    desc: bool
    page: int

    @property
    def args(self) -> dict[str, str]:
        """Query-string arguments reproducing this view (without the page)."""
        out = {**self.filters, "sort": self.sort, "order": "desc" if self.desc else "asc"}
        if self.range:
            out["range"] = self.range
        if self.range == "custom":
            out.update(start=self.start, end=self.end)
        return {k: v for k, v in out.items() if v}

    def service_filters(self) -> dict[str, str]:
        f = dict(self.filters)
        if self.range in SPANS:
            f["start"] = (utcnow() - SPANS[self.range]).isoformat()
        elif self.range == "custom":
            f.update({k: v for k, v in (("start", self.start), ("end", self.end)) if v})
        return f

    def sort_args(self, column: str) -> dict[str, str]:
        """Clicking the active column flips its order; another column starts descending."""
        desc = not self.desc if column == self.sort else True
        return {**self.args, "sort": column, "order": "desc" if desc else "asc"}


def parse(args) -> LogQuery:
    range_ = args.get("range", "") if args.get("range", "") in dict(RANGES) else ""
    return LogQuery(range_, (args.get("start") or "").strip(), (args.get("end") or "").strip(),
                    {k: args[k].strip() for k in FILTERS if (args.get(k) or "").strip()},
                    args.get("sort") if args.get("sort") in SORTS else "time",
                    args.get("order") != "asc", max(1, args.get("page", 1, type=int) or 1))


def lookups() -> dict[str, Any]:
    """Names for ids in the table, and the choices for the filter form."""
    keys = key_service.list_all()
    providers = provider_service.list_all()
    return {"keys": {k.id: k for k in keys}, "providers": {p.id: p for p in providers},
            "model_names": sorted({m.name for m in model_service.search()}),
            "error_classes": ERROR_CLASSES, "ranges": RANGES}


# ----------------------------------------------------------------------------- explanation
def _attempts_from_text(text: str | None) -> list[dict[str, Any]]:
    """Old rows kept only "deployment=status;…": enough for the chain, without errors or times."""
    out = []
    for part in (text or "").split(";"):
        deployment, _, status = part.rpartition("=")
        if deployment:
            code = int(status) if status.isdigit() else None
            out.append({"deployment": deployment, "status": code,
                        "outcome": "ok" if code is not None and code < 400 else "error"})
    return out


def _is_ok(attempt: dict[str, Any]) -> bool:
    return attempt.get("outcome") == "ok" or (attempt.get("status") or 999) < 400


def _cost_lines(r: UsageRecord, prices: dict[str, Any] | None) -> list[tuple[str, Decimal]]:
    """tokens × price per 1M, as runtime.Route.cost computes it (cached input at its own price)."""
    if not prices:
        return []
    mtok = Decimal(1_000_000)
    price_in = Decimal(prices.get("input_per_mtok") or 0)
    price_out = Decimal(prices.get("output_per_mtok") or 0)
    price_cached = prices.get("cached_input_per_mtok")
    cached = min(r.cached_tokens or 0, r.prompt_tokens or 0) if price_cached is not None else 0
    lines = [(f"{(r.prompt_tokens or 0) - cached:,} input tokens × ${price_in.normalize():f} / 1M",
              ((r.prompt_tokens or 0) - cached) * price_in / mtok)]
    if cached:
        lines.append((f"{cached:,} cached input tokens × ${Decimal(price_cached).normalize():f} / 1M",
                      cached * Decimal(price_cached) / mtok))
    lines.append((f"{r.completion_tokens or 0:,} output tokens × ${price_out.normalize():f} / 1M",
                  (r.completion_tokens or 0) * price_out / mtok))
    return lines


def _summary(r: UsageRecord, attempts: list[dict], served: dict | None, failed: list[dict]) -> Markup:
    """One sentence on the outcome (names escaped: they come from provider configuration)."""
    if r.cache_hit:
        return Markup("Served from the <b>response cache</b>: no upstream call, no cost.")
    if served and failed:
        first = failed[0]
        why = f"{first.get('status') or 'no status'}" + (f", {first['outcome']}" if first.get("outcome") else "")
        return Markup("Served by <b>{}</b> after {} failed attempt{} (<b>{}</b> answered {}).").format(
            served["deployment"], len(failed), "s" if len(failed) > 1 else "", first["deployment"], why)
    if served:
        return Markup("Served by <b>{}</b> on the first attempt.").format(served["deployment"])
    if attempts:
        which = f"all {len(attempts)} attempts" if len(attempts) > 1 else "the only attempt"
        return Markup("Failed: {} failed, so the client got <b>HTTP {}</b>.").format(which, r.status_code)
    if r.status_code >= 400:
        reason = f" ({r.error_class.replace('_', ' ')})" if r.error_class else ""
        return Markup("Refused by the gateway with <b>HTTP {}</b>{} before any upstream was called.").format(
            r.status_code, reason)
    return Markup("Served; this record has no routing details.")


def explain(r: UsageRecord) -> dict[str, Any]:
    """What happened on this call, from the record and its `details` JSON, ready to print."""
    d = r.details or {}
    attempts = [{"status": None, "outcome": None, "error": None, "ms": None, **a}
                for a in (d.get("attempts") or _attempts_from_text(r.attempts))]
    served = next((a for a in reversed(attempts) if _is_ok(a)), None)
    failed = [a for a in attempts if not _is_ok(a)]
    for i, a in enumerate(attempts):
        a["ok"] = _is_ok(a)
        a["then"] = ("served the response" if a["ok"] else
                     "failed, fell back to the next deployment" if i < len(attempts) - 1 else
                     "failed; no deployment left to try" if len(attempts) > 1 else "failed")
    summary = _summary(r, attempts, served, failed)
    tried = {a["deployment"]: a for a in attempts}
    routing = d.get("routing") or None
    order = [{"deployment": dep, "attempt": tried.get(dep)} for dep in (routing or {}).get("order") or []]
    cost = d.get("cost") or {}
    source = cost.get("tokens") or ("estimated" if r.tokens_estimated else "provider" if d else None)
    detectors = d.get("detectors") or [x for x in (r.detectors or "").split(",") if x]
    checks = [tuple(c.split(": ", 1)) if ": " in c else (c, "") for c in d.get("checks") or []]
    return {"has_details": bool(d), "summary": summary, "attempts": attempts, "served": served,
            "failed": failed, "routing": routing, "order": order, "checks": checks,
            "cache": d.get("cache") or ("HIT" if r.cache_hit else None),
            "cache_text": CACHE_TEXT.get(d.get("cache") or ("HIT" if r.cache_hit else ""), ""),
            "detectors": detectors, "redacted": d.get("redacted"), "cost_source": source,
            "prices": cost.get("prices"), "cost_lines": _cost_lines(r, cost.get("prices"))}
