"""Gateway-wide settings (one JSON document on the shared state row), edited in the console/API."""
from __future__ import annotations

import copy
from typing import Any

from app.extensions import db
from app.models import GatewayState
from app.services import changes
from app.services import validation as v
from app.services.errors import ValidationFailed

SENSITIVITY_ACTIONS = ("allow", "route", "block", "redact")
TRUST_LEVELS = ("local", "private", "public")
DEFAULTS: dict[str, Any] = {
    "sensitivity": {
        "action": "allow",        # allow | route (only to trusted providers) | block | redact
        "threshold": 0.5,
        "trusted_levels": ["local", "private"],
        "keywords": [],
        "patterns": [],
    },
    # ttl_overrides: {"<public model name>" or "key:<id>": seconds}; a key's wins over a model's
    "cache": {"enabled": True, "default_ttl": 3600, "max_mb": 256, "ttl_overrides": {}},
}


def _row() -> GatewayState:
    row = db.session.get(GatewayState, 1)
    if row is None:
        row = GatewayState(id=1, config_version=0)
        db.session.add(row)
        db.session.flush()
    return row


def merged(stored: dict | None) -> dict[str, Any]:
    out = copy.deepcopy(DEFAULTS)
    for section, values in (stored or {}).items():
        if section in out and isinstance(values, dict):
            out[section].update(values)
    return out


def current() -> dict[str, Any]:
    row = db.session.get(GatewayState, 1)
    return merged(row.settings if row else None)


def validate_sensitivity(data: dict, partial: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "action" in data or not partial:
        out["action"] = v.choice(data, "action", SENSITIVITY_ACTIONS, default="allow")
    if "threshold" in data:
        if data["threshold"] is None:
            raise ValidationFailed("threshold must be a number between 0.01 and 1", field="threshold")
        out["threshold"] = v.number(data, "threshold", lo=0.01, hi=1)
    if "trusted_levels" in data:
        out["trusted_levels"] = v.string_list(data, "trusted_levels", allowed=TRUST_LEVELS)
    if "keywords" in data:
        out["keywords"] = v.string_list(data, "keywords", max_items=200)
        if any(len(k) > 200 for k in out["keywords"]):
            raise ValidationFailed("keywords must be at most 200 characters each", field="keywords")
    if "patterns" in data:
        raw = data.get("patterns")
        if isinstance(raw, str):  # one per line: commas are regex syntax ({3,4})
            data = {**data, "patterns": [p for p in raw.splitlines() if p.strip()]}
        patterns = v.string_list(data, "patterns", max_items=100)
        from app.inspect import Inspector
        try:
            Inspector(patterns=patterns)
        except ValueError as exc:
            raise ValidationFailed(f"patterns: {exc}", field="patterns") from None
        out["patterns"] = patterns
    return out


def update(data: dict, actor: str) -> dict[str, Any]:
    row = _row()
    before = merged(row.settings)
    stored = copy.deepcopy(row.settings or {})
    if "sensitivity" in data:
        stored.setdefault("sensitivity", {}).update(
            validate_sensitivity(v.mapping(data, "sensitivity")))
    if "cache" in data:
        raw = v.mapping(data, "cache")
        section = {}
        if "enabled" in raw:
            section["enabled"] = v.boolean(raw, "enabled", True)
        if "default_ttl" in raw:
            section["default_ttl"] = v.integer(raw, "default_ttl", lo=1, hi=30 * 86400)
        if "max_mb" in raw:
            section["max_mb"] = v.integer(raw, "max_mb", lo=1, hi=100_000)
        if "ttl_overrides" in raw:
            overrides = v.mapping(raw, "ttl_overrides")
            section["ttl_overrides"] = {
                str(k)[:200]: v.integer({"ttl": val}, "ttl", lo=1, hi=30 * 86400)
                for k, val in overrides.items()}
        stored.setdefault("cache", {}).update(section)
    unknown = set(data) - {"sensitivity", "cache"}
    if unknown:
        raise ValidationFailed(f"unknown setting(s): {', '.join(sorted(unknown))}")
    row.settings = stored
    after = merged(stored)
    changes.updated(row, "settings", "gateway", {"settings": before}, {"settings": after}, actor)
    return after
