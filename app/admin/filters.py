"""Jinja filters for the console: times, money, audit diffs."""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

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


def type_label(provider) -> str:
    """"Groq" for a preset, "Azure OpenAI" for a type: what an operator recognises."""
    preset = (provider.config or {}).get("preset")
    if preset in PRESETS:
        return PRESETS[preset].get("label", preset)
    return dict(PROVIDER_TYPES).get(provider.type, provider.type)


def register(bp) -> None:
    for name, func in (("dt", dt), ("ago", ago), ("money", money), ("ms", ms),
                       ("thousands", thousands), ("diff_items", diff_items),
                       ("type_label", type_label)):
        bp.add_app_template_filter(func, name)
