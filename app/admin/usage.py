"""Usage dashboard: totals against the previous period, charts and a breakdown table.

Every chart is built once as a plain spec (labels + datasets); the canvas (via a JSON block that
static/js/charts.js reads), the "Table" toggle and the CSV download all render that same spec,
so the three always show the same numbers.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, request
from flask_login import current_user

from app.admin import access
from app.admin.filters import ms, thousands, usd
from app.admin.htmx import render
from app.services import keys as key_service
from app.services import models as model_service
from app.services import providers as provider_service
from app.services import usage_query as uq
from app.services.errors import ValidationFailed

bp = Blueprint("usage", __name__, url_prefix="/usage")

RANGES = (("1h", "1h"), ("24h", "24h"), ("7d", "7d"), ("30d", "30d"), ("custom", "Custom"))
GROUPS = (("model", "Model"), ("provider", "Provider"), ("key", "Key"), ("owner", "Owner"))
FILTERS = ("model", "provider_id", "key_id", "owner")
GROUP_PARAM = {"model": "model", "provider": "provider_id", "key": "key_id", "owner": "owner"}
PALETTE = ("#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ec4899", "#8b5cf6", "#14b8a6", "#f97316")
OTHER_COLOR = "#98a2b3"
INPUT_FORMAT = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">, read as UTC
STEPS = {300: "5 min", 3600: "hour", 6 * 3600: "6 h", 86400: "day"}
UNIT_SUFFIX = {"usd": " (USD)", "pct": " (%)", "ms": " (ms)"}

# metric, label, format, the direction that is good news (None: neither)
CARDS = (("requests", "Requests", "count", "up"), ("prompt_tokens", "Tokens in", "tokens", None),
         ("completion_tokens", "Tokens out", "tokens", None), ("cost_usd", "Cost", "usd", "down"),
         ("error_rate", "Error rate", "rate", "down"), ("latency_p50_ms", "p50 latency", "ms", "down"))


@bp.get("")
@access.usage
def index():
    """The dashboard; htmx requests from its filter form get only the dashboard fragment."""
    q = team_scope(parse(request.args))
    return render("admin/usage/index.html", "admin/usage/_dashboard.html",
                  status=422 if q.error else 200, **dashboard(q))


@bp.get("/charts/<chart_id>.csv")
@access.usage
def chart_csv(chart_id: str):
    """One chart's numbers (same range, filters and breakdown as the page) as CSV."""
    q = team_scope(parse(request.args))
    if q.error:
        raise ValidationFailed(q.error)
    chart = next((c for c in build_charts(q) if c["id"] == chart_id), None)
    if chart is None:
        abort(404, f"There is no usage chart called “{chart_id}”.")
    name = f"usage-{chart_id}-{q.range}.csv"
    return Response(chart_csv_text(chart), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.context_processor
def helpers() -> dict[str, Any]:
    return {"fmt": format_value, "chart_total": chart_total}


# ----------------------------------------------------------------------------- query
@dataclass
class Query:
    """The dashboard's state as the filter form shows it (also the query string to rebuild it)."""

    range: str
    group: str
    filters: dict[str, str]
    start: str = ""
    end: str = ""
    window: uq.Window | None = None
    error: str | None = None

    @property
    def args(self) -> dict[str, str]:
        out = {"range": self.range, "group": self.group, **self.filters}
        if self.range == "custom":
            out.update(start=self.start, end=self.end)
        return out

    @property
    def step_label(self) -> str:
        step = self.window.step if self.window else 3600
        return STEPS.get(step, f"{step // 60} min")


def parse(args) -> Query:
    """Read the form; a preset range also fills the custom inputs, so "Custom" starts from it."""
    range_ = args.get("range") if args.get("range") in dict(RANGES) else "24h"
    group = args.get("group") if args.get("group") in dict(GROUPS) else "model"
    filters = {k: args[k].strip() for k in FILTERS if (args.get(k) or "").strip()}
    q = Query(range_, group, filters, (args.get("start") or "").strip(), (args.get("end") or "").strip())
    try:
        for name in ("provider_id", "key_id"):
            if name in filters and not filters[name].isdigit():
                raise ValidationFailed(f"{name} must be a number", field=name)
        if range_ == "custom":
            q.window = uq.window(None, q.start or uq.window("24h").start.isoformat(), q.end or None)
        else:
            q.window = uq.window(range_)
    except ValidationFailed as exc:
        q.error = exc.message
        return q
    if range_ != "custom" or not q.start:
        q.start = q.window.start.strftime(INPUT_FORMAT)
    if range_ != "custom" or not q.end:
        q.end = q.window.end.strftime(INPUT_FORMAT)
    return q


def team_scope(q: Query) -> Query:
    """Team admins see their own team's usage only: the owner filter is forced to one of their
    teams (the first by default); asking for another team's is refused."""
    if current_user.role != "team_admin":
        return q
    teams = current_user.team_names
    if not teams:
        abort(403, "Your account manages no team, so there is no usage to show.")
    owner = q.filters.get("owner")
    if owner and owner not in teams:
        abort(403, f"You may only see the usage of your team(s): {', '.join(teams)}.")
    q.filters["owner"] = owner or teams[0]
    return q


def filter_options(q: Query) -> dict[str, list[tuple[str, str]]]:
    """Choices for the filter selects: what is configured plus what appears in the data."""
    seen = {"model": set(), "owner": set()}
    if q.window is not None:
        for by in seen:
            seen[by] = {str(r["id"]) for r in uq.breakdown(q.window, by) if r["id"]}
    keys = key_service.list_all()
    models = sorted({m.name for m in model_service.search()} | seen["model"])
    owners = sorted({k.owner for k in keys if k.owner} | seen["owner"])
    options = {"model": [(m, m) for m in models], "owner": [(o, o) for o in owners],
               "provider_id": [(str(p.id), p.name) for p in provider_service.list_all()],
               "key_id": [(str(k.id), f"{k.name} ({k.prefix}…)") for k in keys]}
    if current_user.role == "team_admin":  # no names of other teams or their keys
        mine = set(current_user.team_names)
        options["owner"] = [(t, t) for t in sorted(mine)]
        options["key_id"] = [(str(k.id), f"{k.name} ({k.prefix}…)") for k in keys if k.owner in mine]
    for name, value in q.filters.items():  # keep a chosen value selectable even if unknown
        if value not in {v for v, _ in options[name]}:
            options[name].append((value, f"#{value}" if name.endswith("_id") else value))
    return options


# ----------------------------------------------------------------------------- dashboard
def dashboard(q: Query) -> dict[str, Any]:
    context: dict[str, Any] = {"q": q, "ranges": RANGES, "groups": GROUPS,
                               "group_label": dict(GROUPS)[q.group].lower(),
                               "options": filter_options(q), "charts": [], "cards": [],
                               "breakdown": [], "empty": True}
    if q.error:
        return context
    totals = uq.totals(q.window, q.filters)
    charts = build_charts(q)
    context.update(totals=totals, cards=cards(totals), charts=charts,
                   empty=not totals["current"]["requests"],
                   breakdown=breakdown_rows(q, totals["current"]["requests"], charts[0]))
    return context


def cards(totals: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline numbers with ▲/▼ against the previous period, coloured by good or bad."""
    cur, prev = totals["current"], totals["previous"]
    out = []
    for metric, label, fmt, good in CARDS:
        if metric == "error_rate":  # a rate moves in percentage points, not percent of itself
            delta = (cur[metric] - prev[metric]) * 100 if prev["requests"] else None
            change = None if delta is None else f"{abs(delta):.1f} pp"
        else:
            delta = totals["change"].get(metric)
            change = None if delta is None else \
                f"{abs(delta) * 100:,.0f}%" if abs(delta) >= 1 else f"{abs(delta) * 100:.1f}%"
        direction = None if delta is None else "up" if delta > 0 else "down" if delta < 0 else "flat"
        tone = "neutral" if good is None or direction in (None, "flat") else \
            "good" if direction == good else "bad"
        out.append({"metric": metric, "label": label, "value": format_value(cur[metric], fmt),
                    "previous": format_value(prev[metric], fmt), "change": change,
                    "direction": direction, "tone": tone})
    return out


def breakdown_rows(q: Query, total_requests: int, requests_chart: dict) -> list[dict[str, Any]]:
    """The breakdown table: one row per model/provider/key/owner, with its share and a link that
    filters the dashboard to it."""
    colors = {d["label"]: d["color"] for d in requests_chart["datasets"]}
    rows = []
    for r in uq.breakdown(q.window, q.group, q.filters):
        label = display_name(str(r["name"]), q.group, r["id"])
        rows.append({**r, "label": label, "color": colors.get(label),
                     "share": 100 * r["requests"] / total_requests if total_requests else 0,
                     "filter": {**q.args, GROUP_PARAM[q.group]: str(r["id"])} if r["id"] else None})
    return rows


# ----------------------------------------------------------------------------- charts
def display_name(name: str, group: str | None, ident: Any = None) -> str:
    """Series names for people: no blank owner/model, deleted keys and providers by number."""
    if name in ("", "None") or ident in (0, ""):
        return "(none)"
    if group in ("key", "provider") and name.isdigit():
        return f"{group} #{name}"
    return name


def _bucket_labels(buckets: list[str], step: int) -> tuple[list[str], list[str]]:
    """Axis labels (short) and table/tooltip labels (full, UTC) for the bucket starts."""
    times = [datetime.fromisoformat(b.rstrip("Z")) for b in buckets]
    short = "%b %d" if step >= 86400 else "%b %d %H:%M" if step > 3600 else "%H:%M"
    return [t.strftime(short) for t in times], [t.strftime("%Y-%m-%d %H:%M UTC") for t in times]


def _series_order(series: dict[str, list[dict]]) -> list[str]:
    """Largest first (so the biggest stack gets the first colour), "other" last."""
    size = {name: sum(x["requests"] for x in values) for name, values in series.items()}
    return sorted(series, key=lambda n: (n == "other", -size[n], n))


def _value(x: dict | None, metric: str, scale: float = 1, digits: int = 1):
    """One bucket's metric; rates and latencies of a bucket without requests are gaps, not 0."""
    if x is None:
        return None if metric not in ("requests", "prompt_tokens", "completion_tokens", "cost_usd") else 0
    value = x.get(metric)
    if value is None or (not x["requests"] and metric.endswith(("_rate", "_ms"))):
        return None
    return round(value * scale, digits) if digits else int(value)


def build_charts(q: Query) -> list[dict[str, Any]]:
    """The six chart specs for the query: requests and cost stacked by the chosen breakdown;
    tokens, error rate, latency and cache hit rate over all traffic."""
    w, group = q.window, q.group
    grouped = uq.timeseries(w, group, q.filters)
    overall = uq.timeseries(w, None, q.filters)
    labels, titles = _bucket_labels(overall["buckets"], overall["step_s"])
    flat = next(iter(overall["series"].values()), [None] * len(labels))
    order = _series_order(grouped["series"])
    color = {name: OTHER_COLOR if name == "other" else PALETTE[i % len(PALETTE)]
             for i, name in enumerate(order)}

    def by_group(metric: str, digits: int) -> list[dict]:
        return [{"label": display_name(name, group), "color": color[name],
                 "data": [_value(x, metric, 1, digits) for x in grouped["series"][name]]}
                for name in order]

    def line(label: str, metric: str, color_: str, scale: float = 1, digits: int = 1, **style) -> dict:
        return {"label": label, "color": color_, "data": [_value(x, metric, scale, digits) for x in flat],
                **style}

    def chart(id_: str, title: str, kind: str, unit: str, datasets: list[dict], subtitle: str,
              stacked: bool = False) -> dict:
        return {"id": id_, "title": title, "kind": kind, "unit": unit, "stacked": stacked,
                "subtitle": subtitle, "labels": labels, "titles": titles, "buckets": overall["buckets"],
                "datasets": datasets}

    per = f"per {q.step_label}"
    by = f"{per}, stacked by {dict(GROUPS)[group].lower()}"
    return [
        chart("requests", "Requests", "bar", "count", by_group("requests", 0), by, stacked=True),
        chart("tokens", "Tokens in / out", "bar", "count",
              [line("Tokens in", "prompt_tokens", "#4f46e5", digits=0),
               line("Tokens out", "completion_tokens", "#a5b4fc", digits=0)], f"{per}, stacked", stacked=True),
        chart("cost", "Cost", "bar", "usd", by_group("cost_usd", 6), by, stacked=True),
        chart("errors", "Error rate", "line", "pct",
              [line("Error rate", "error_rate", "#f04438", 100, 2, fill=True)], f"{per}, share of requests"),
        chart("latency", "Latency", "line", "ms",
              [line("Latency p50", "latency_p50_ms", "#4f46e5"),
               line("Latency p95", "latency_p95_ms", "#a5b4fc", dash=True),
               line("TTFB p50", "ttfb_p50_ms", "#0ea5e9"),
               line("TTFB p95", "ttfb_p95_ms", "#7dd3fc", dash=True)], f"{per}, total and time to first byte"),
        chart("cache", "Cache hit rate", "line", "pct",
              [line("Cache hit rate", "cache_hit_rate", "#10b981", 100, 2, fill=True)],
              f"{per}, share served from the response cache"),
    ]


def chart_total(chart: dict, i: int):
    """A stacked chart's bucket total (what the stack adds up to)."""
    values = [d["data"][i] for d in chart["datasets"] if d["data"][i] is not None]
    return round(sum(values), 6) if values else None


def chart_csv_text(chart: dict) -> str:
    suffix = UNIT_SUFFIX.get(chart["unit"], "")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["bucket_start_utc", *(d["label"] + suffix for d in chart["datasets"]),
                     *(["Total" + suffix] if chart["stacked"] else [])])
    for i, bucket in enumerate(chart["buckets"]):
        row = ["" if d["data"][i] is None else d["data"][i] for d in chart["datasets"]]
        if chart["stacked"]:
            row.append(chart_total(chart, i))
        writer.writerow([bucket, *row])
    return buf.getvalue()


# ----------------------------------------------------------------------------- formatting
def compact(value: float | int | None) -> str:
    """1234 -> "1.2k", 2_500_000 -> "2.5M": token counts on cards."""
    if value is None:
        return "—"
    for size, unit, digits in ((1e9, "B", 2), (1e6, "M", 2), (1e3, "k", 1)):
        if abs(value) >= size:
            text = f"{value / size:.{digits}f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return f"{value:,.0f}"


def format_value(value, unit: str) -> str:
    """A number as the chart's unit shows it (tables, cards)."""
    if value is None:
        return "—"
    if unit == "usd":
        return usd(value)
    if unit == "rate":  # a fraction: 0.0321 -> "3.21%"
        unit, value = "pct", value * 100
    if unit == "pct":
        return f"{value:.2f}%" if value < 10 else f"{value:.1f}%"
    if unit == "ms":
        return ms(value) if value < 1000 else f"{value / 1000:.2f} s" if value < 10_000 else f"{value / 1000:.1f} s"
    if unit == "tokens":
        return compact(value)
    return thousands(int(value))
