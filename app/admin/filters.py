"""Jinja filters for the console: times, money, audit diffs, spend meters."""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlsplit

from app.models import utcnow
from app.providers.registry import PRESETS, PROVIDER_TYPES


def dt(value: datetime | None) -> str:
    """Naive-UTC timestamp as "2025-01-31 14:05 UTC"."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def ago(value: datetime | None) -> str:
    """"3 min ago", "2 h ago", "in 5 days"; timestamps are naive UTC by convention."""
    if value is None:
        return "never"
    seconds = (utcnow() - value).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        if seconds < 5:
            return "just now"
        text = f"{int(seconds)} s"
    return f"in {text}" if future else f"{text} ago"


def money(value: Decimal | float | str | None) -> str:
    """Prices per 1M tokens: $0.15, $2.50, $0.075."""
    if value in (None, ""):
        return "—"
    amount = Decimal(str(value))
    text = format(amount.normalize(), "f")
    if len(text.partition(".")[2]) < 2:
        text = f"{amount:.2f}"
    return f"${text}"


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def thousands(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def usd(value: Decimal | float | str | None) -> str:
    """Spend: "$1,234.56", "$0.50", "$0.0287", "$0.00075" (under $1: three significant digits)."""
    if value in (None, ""):
        return "—"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    if abs(amount) < Decimal("0.000001"):
        return "<$0.000001"
    # three significant digits, at least cents: $0.50, $0.0287, $0.00075
    digits = max(2, 2 - amount.adjusted())
    text = format(amount.quantize(Decimal(1).scaleb(-digits)).normalize(), "f")
    if len(text.partition(".")[2]) < 2:
        text = f"{Decimal(text):.2f}"
    return f"${text}"


def duration(seconds: float | None) -> str:
    """"45 s", "12 min", "3 h 5 min", "6 d 4 h": how long until a counter resets."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    return f"{secs} s"


LIMIT_UNITS = (("rpm", "rpm"), ("rph", "rph"), ("rpd", "rpd"), ("tpm", "tpm"), ("tpd", "tpd"),
               ("concurrency", "concurrent"))
LIMIT_NAMES = {"rpm": "Requests / minute", "rph": "Requests / hour", "rpd": "Requests / day",
               "tpm": "Tokens / minute", "tpd": "Tokens / day", "concurrency": "Concurrent requests"}


def limits_text(limits: dict | None) -> str:
    """{"rpm": 60, "concurrency": 4} -> "60 rpm · 4 concurrent" ("" when none are set)."""
    limits = limits or {}
    return " · ".join(f"{limits[name]:,} {unit}" for name, unit in LIMIT_UNITS
                      if limits.get(name) is not None)


def _pct(part: Decimal | int, whole: Decimal | int) -> float:
    if not whole:
        return 100.0 if part else 0.0
    return max(0.0, min(100.0, float(Decimal(part) * 100 / Decimal(whole))))


def budget_meter(b: dict) -> dict:
    """Bar geometry for a budget from the counter store: spent and reserved widths (%), the
    soft marker, and a level: "ok", "warn" (at/past the soft threshold) or "over" (used up)."""
    amount, spent, reserved = b["amount_usd"], b["spent_usd"], b["reserved_usd"]
    committed = spent + reserved
    spent_pct = _pct(spent, amount)
    level = "over" if committed >= amount else \
        "warn" if committed * 100 >= amount * b["soft_pct"] else "ok"
    return {"spent_pct": round(spent_pct, 2),
            "reserved_pct": round(min(100.0 - spent_pct, _pct(reserved, amount)), 2),
            "soft_pct": b["soft_pct"], "used_pct": b.get("used_pct", int(_pct(committed, amount))),
            "level": level}


def limit_meter(limit: dict) -> dict:
    """Bar geometry for one rate limit ({"limit", "used", "remaining", ...})."""
    pct = _pct(limit["used"], limit["limit"])
    level = "over" if limit["remaining"] <= 0 else "warn" if pct >= 80 else "ok"
    return {"pct": round(pct, 2), "level": level}


def _show(value) -> str:
    if value is None or value == "":
        return "∅"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else "∅"
    return str(value)


def diff_items(diff: dict | None) -> list[tuple[str, str | None, str]]:
    """An audit diff as (field, old, new) rows; non-[old, new] values come back with old None."""
    rows = []
    for field, change in (diff or {}).items():
        if isinstance(change, list) and len(change) == 2:
            rows.append((field, _show(change[0]), _show(change[1])))
        else:
            rows.append((field, None, _show(change)))
    return rows


def issuer_host(issuer: str | None) -> str:
    """https://login.example.com/realms/x -> login.example.com (a user's sign-in column)."""
    if not issuer:
        return ""
    try:
        return urlsplit(issuer).hostname or issuer
    except ValueError:
        return issuer


def type_label(provider) -> str:
    """"Groq" for a preset, "Azure OpenAI" for a type: what an operator recognises."""
    preset = (provider.config or {}).get("preset")
    if preset in PRESETS:
        return PRESETS[preset].get("label", preset)
    return dict(PROVIDER_TYPES).get(provider.type, provider.type)


def register(bp) -> None:
    for name, func in (("dt", dt), ("ago", ago), ("money", money), ("ms", ms),
                       ("thousands", thousands), ("diff_items", diff_items),
                       ("type_label", type_label), ("usd", usd), ("duration", duration),
                       ("limits_text", limits_text), ("budget_meter", budget_meter),
                       ("issuer_host", issuer_host),
                       ("limit_meter", limit_meter)):
        bp.add_app_template_filter(func, name)
