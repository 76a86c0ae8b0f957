"""Gateway API keys: created once (the only time the secret is shown), stored as a hash."""
from __future__ import annotations

import hashlib
from decimal import Decimal
import hmac
import ipaddress
import secrets
from typing import Any

from app.extensions import db
from app.models import GatewayKey, utcnow
from app.models.key import SCOPES
from app.services import changes
from app.services import validation as v
from app.services.errors import NotFound, ValidationFailed

KEY_PREFIX = "gw-"
DEFAULT_SCOPES = ["chat", "embeddings", "models"]
LIMIT_FIELDS = ("rpm", "rph", "rpd", "tpm", "tpd", "concurrency")
PERIODS = ("day", "week", "month", "total")
FIELDS = ("name", "owner", "scopes", "allowed_models", "expires_at", "enabled", "limits",
          "budget", "allowed_ips", "tags", "sensitivity", "log_bodies")


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def get(key_id: int) -> GatewayKey:
    key = db.session.get(GatewayKey, key_id)
    if key is None:
        raise NotFound(f"key {key_id} not found", code="key_not_found")
    return key


def list_all(include_revoked: bool = True) -> list[GatewayKey]:
    stmt = db.select(GatewayKey).order_by(GatewayKey.created_at.desc(), GatewayKey.id.desc())
    if not include_revoked:
        stmt = stmt.where(GatewayKey.revoked_at.is_(None))
    return list(db.session.scalars(stmt))


def find_by_secret(raw: str) -> GatewayKey | None:
    if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    digest = hash_key(raw)
    key = db.session.scalar(db.select(GatewayKey).where(GatewayKey.key_hash == digest))
    # the lookup is by hash; the compare below is constant-time for defence in depth
    if key is not None and hmac.compare_digest(key.key_hash, digest):
        return key
    return None


def to_dict(k: GatewayKey) -> dict[str, Any]:
    return {
        "id": k.id, "name": k.name, "owner": k.owner, "prefix": k.prefix, "scopes": k.scopes,
        "allowed_models": k.allowed_models,
        "expires_at": k.expires_at.isoformat() + "Z" if k.expires_at else None,
        "enabled": k.enabled, "status": k.status,
        "limits": {f: (k.limits or {}).get(f) for f in LIMIT_FIELDS},
        "budget": k.budget or None, "allowed_ips": k.allowed_ips or [], "tags": k.tags or {},
        "sensitivity": k.sensitivity or None, "log_bodies": bool(k.log_bodies),
        "created_at": k.created_at.isoformat() + "Z", "created_by": k.created_by,
        "last_used_at": k.last_used_at.isoformat() + "Z" if k.last_used_at else None,
        "revoked_at": k.revoked_at.isoformat() + "Z" if k.revoked_at else None,
    }


def snapshot(k: GatewayKey) -> dict[str, Any]:
    return {f: getattr(k, f) for f in FIELDS}


def limits_from(data: dict) -> dict:
    raw = v.mapping(data, "limits")
    unknown = set(raw) - set(LIMIT_FIELDS)
    if unknown:
        raise ValidationFailed(f"limits: unknown field(s) {', '.join(sorted(unknown))}",
                               field="limits")
    return {f: v.integer(raw, f, lo=1, hi=10**12) for f in LIMIT_FIELDS if raw.get(f) is not None}


def budget_from(data: dict) -> dict:
    raw = data.get("budget")
    if raw in (None, {}):
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailed("budget must be an object", field="budget")
    amount = v.decimal(raw, "amount_usd", hi=Decimal(10**12))
    if amount is None:
        raise ValidationFailed("budget.amount_usd is required", field="budget")
    return {"amount_usd": str(amount),
            "period": v.choice(raw, "period", PERIODS, default="month"),
            "soft_pct": v.integer(raw, "soft_pct", lo=1, hi=100, default=80)}


def _ips(data: dict) -> list[str]:
    cidrs = v.string_list(data, "allowed_ips")
    out = []
    for c in cidrs:
        try:
            out.append(str(ipaddress.ip_network(c, strict=False)))
        except ValueError:
            raise ValidationFailed(f"allowed_ips: '{c}' is not an IP address or CIDR",
                                   field="allowed_ips") from None
    return out


def _tags(data: dict) -> dict:
    tags = v.mapping(data, "tags")
    for k, val in tags.items():
        if not isinstance(val, (str, int, float, bool)) or len(str(k)) > 64 or len(str(val)) > 200:
            raise ValidationFailed("tags must map short names to short values", field="tags")
    return tags


def _apply(k: GatewayKey, data: dict, creating: bool) -> None:
    if creating or "name" in data:
        k.name = v.text(data, "name", required=True, max_len=120)
    if creating or "owner" in data:
        k.owner = v.text(data, "owner", max_len=120)
    if creating or "scopes" in data:
        k.scopes = v.string_list(data, "scopes", allowed=SCOPES,
                                 default=DEFAULT_SCOPES if creating else None)
        if not k.scopes:
            raise ValidationFailed("a key needs at least one scope", field="scopes")
    if creating or "allowed_models" in data:
        k.allowed_models = v.string_list(data, "allowed_models")
    if creating or "expires_at" in data:
        k.expires_at = v.timestamp(data, "expires_at")
    if creating or "enabled" in data:
        k.enabled = v.boolean(data, "enabled", True)
    if creating or "limits" in data:
        k.limits = limits_from(data)
    if creating or "budget" in data:
        k.budget = budget_from(data)
    if creating or "allowed_ips" in data:
        k.allowed_ips = _ips(data)
    if creating or "tags" in data:
        k.tags = _tags(data)
    if creating or "log_bodies" in data:
        k.log_bodies = v.boolean(data, "log_bodies", False)
    if creating or "sensitivity" in data:
        raw = data.get("sensitivity")
        if raw in (None, {}):
            k.sensitivity = None
        else:
            if not isinstance(raw, dict):
                raise ValidationFailed("sensitivity must be an object", field="sensitivity")
            from app.services.settings import validate_sensitivity
            k.sensitivity = validate_sensitivity(raw) or None


def create(data: dict, actor: str) -> tuple[GatewayKey, str]:
    """Returns the row and the plaintext key; the plaintext is never stored or shown again."""
    raw = generate()
    k = GatewayKey(key_hash=hash_key(raw), prefix=raw[:11], created_by=actor)
    _apply(k, dict(data), creating=True)
    changes.created(k, "key", k.name, {**snapshot(k), "prefix": k.prefix}, actor)
    return k, raw


def update(k: GatewayKey, data: dict, actor: str) -> GatewayKey:
    before = snapshot(k)
    _apply(k, dict(data), creating=False)
    changes.updated(k, "key", k.name, before, snapshot(k), actor)
    return k


def revoke(k: GatewayKey, actor: str) -> GatewayKey:
    """Revoked keys stay as rows so usage history keeps its owner; they never authenticate."""
    if k.revoked_at is None:
        before = {"status": k.status}
        k.revoked_at = utcnow()
        k.enabled = False
        changes.updated(k, "key", k.name, before, {"status": k.status}, actor, action="revoke")
    return k


def is_usable(k: GatewayKey) -> bool:
    return k.revoked_at is None and k.enabled and not k.is_expired()
