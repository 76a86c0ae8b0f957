"""Provider CRUD, secrets and conversion to the plain ProviderConfig adapters use."""
from __future__ import annotations

import re
from typing import Any

from app.extensions import db
from app.models import Provider
from app.models.provider import TRUST_LEVELS
from app.providers.base import ProviderConfig
from app.providers.registry import ADAPTERS, PRESETS
from app.services import audit, changes, state
from app.services import validation as v
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.keys import limits_from
from app.services.secrets import get_box

DEFAULT_BASES = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://127.0.0.1:11434",
    "xai": "https://api.x.ai/v1",
}
DEFAULT_API_VERSIONS = {"azure-openai": "2024-10-21"}
SECRET_FIELDS = ("api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token")
AUDITED = ("name", "type", "api_base", "api_version", "config", "default_temperature",
           "default_max_tokens", "connect_timeout", "read_timeout", "enabled", "trust_level",
           "limits")


def type_choices() -> list[str]:
    return sorted(set(ADAPTERS) | set(PRESETS))


def adapter_class(type_: str):
    return ADAPTERS[type_]


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "provider"


def get(provider_id: int) -> Provider:
    provider = db.session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"provider {provider_id} not found", code="provider_not_found")
    return provider


def list_all() -> list[Provider]:
    return list(db.session.scalars(db.select(Provider).order_by(Provider.name)))


def snapshot(p: Provider) -> dict[str, Any]:
    data = {f: getattr(p, f) for f in AUDITED}
    data["api_key"] = p.secrets_encrypted  # masked by audit.diff; shows "changed"
    return data


def to_dict(p: Provider) -> dict[str, Any]:
    """API representation; never the secret."""
    return {
        "id": p.id, "name": p.name, "slug": p.slug, "type": p.type, "api_base": p.api_base,
        "api_version": p.api_version, "config": p.config or {}, "has_api_key": p.has_api_key,
        "default_temperature": float(p.default_temperature) if p.default_temperature is not None else None,
        "default_max_tokens": p.default_max_tokens, "connect_timeout": p.connect_timeout,
        "read_timeout": p.read_timeout, "enabled": p.enabled, "trust_level": p.trust_level,
        "limits": p.limits or None,
        "health": {"status": p.health_status, "latency_ms": p.health_latency_ms,
                   "error": p.health_error,
                   "checked_at": p.health_checked_at.isoformat() + "Z" if p.health_checked_at else None},
        "model_count": len(p.models),
        "created_at": p.created_at.isoformat() + "Z", "updated_at": p.updated_at.isoformat() + "Z",
        "created_by": p.created_by, "updated_by": p.updated_by,
    }


def _clean_config(type_: str, config: dict) -> dict:
    cleaned = {}
    for key, value in config.items():
        if not isinstance(key, str) or len(key) > 64:
            raise ValidationFailed("config keys must be short strings", field="config")
        if value is None or value == "":
            continue
        if not isinstance(value, (str, int, float, bool)):
            raise ValidationFailed(f"config.{key} must be a string, number or boolean", field="config")
        if isinstance(value, str) and len(value) > 500:
            raise ValidationFailed(f"config.{key} is too long", field="config")
        if key in SECRET_FIELDS:
            raise ValidationFailed(f"config.{key} is a secret: send it as a top-level field",
                                   field="config")
        cleaned[key] = value
    if type_ == "bedrock" and not cleaned.get("region"):
        raise ValidationFailed("config.region is required for Bedrock (e.g. us-east-1)",
                               field="region")
    if type_ == "bedrock" and not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", str(cleaned["region"])):
        raise ValidationFailed("config.region must look like us-east-1", field="region")
    return cleaned


def _secrets_from(data: dict) -> dict[str, str]:
    out = {}
    for f in SECRET_FIELDS:
        value = data.get(f)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > 4096:
            raise ValidationFailed(f"{f} must be a string", field=f)
        out[f] = value.strip()
    return out


def _apply(p: Provider, data: dict, creating: bool) -> None:
    preset_name = (p.config or {}).get("preset")
    if creating or "type" in data:
        requested = v.choice(data, "type", type_choices(), default=p.type)
        preset = PRESETS.get(requested) if requested not in ADAPTERS else None
        p.type = preset["type"] if preset else requested
        preset_name = requested if preset else None  # an explicit plain type drops the preset
        if preset and not data.get("api_base"):
            data = {**data, "api_base": preset["api_base"]}
    if creating or "name" in data:
        p.name = v.text(data, "name", required=True, max_len=120)
    if creating or "api_base" in data:
        if creating and not data.get("api_base"):
            default = DEFAULT_BASES.get(p.type)
            if default is None and p.type == "bedrock":
                cfg = data.get("config")
                region = (cfg.get("region") if isinstance(cfg, dict) else None) or "us-east-1"
                default = f"https://bedrock-runtime.{region}.amazonaws.com"
            data = {**data, "api_base": default}
        p.api_base = v.url(data, "api_base", required=True)
    if creating or "api_version" in data:
        p.api_version = v.text(data, "api_version", max_len=40) or DEFAULT_API_VERSIONS.get(p.type)
    if creating or "config" in data or "type" in data:
        raw = v.mapping(data, "config") if "config" in data else dict(p.config or {})
        config = _clean_config(p.type, {k: val for k, val in raw.items() if k != "preset"})
        if preset_name:
            config["preset"] = preset_name
        p.config = config
    if creating or "default_temperature" in data:
        t = v.number(data, "default_temperature", lo=0, hi=2)
        p.default_temperature = None if t is None else round(t, 2)
    if creating or "default_max_tokens" in data:
        p.default_max_tokens = v.integer(data, "default_max_tokens", lo=1, hi=10_000_000)
    if creating or "connect_timeout" in data:
        p.connect_timeout = v.number(data, "connect_timeout", lo=0.1, hi=600, default=5.0)
    if creating or "read_timeout" in data:
        p.read_timeout = v.number(data, "read_timeout", lo=0.1, hi=3600, default=60.0)
    if creating or "enabled" in data:
        p.enabled = v.boolean(data, "enabled", True)
    if creating or "limits" in data:
        p.limits = limits_from(data) or None
    if creating or "trust_level" in data:
        p.trust_level = v.choice(data, "trust_level", TRUST_LEVELS, default=p.trust_level or "public")
    secrets = _secrets_from(data)
    if secrets:
        # Bedrock keeps the parts the admin did not re-enter ("leave blank to keep").
        merged = {**(decrypt_secrets(p) if p.secrets_encrypted else {}), **secrets}
        p.secrets_encrypted = get_box().encrypt(merged)
    elif data.get("clear_secret") in (True, "true", "on", "1"):
        p.secrets_encrypted = None


def _check_unique(p: Provider) -> None:
    with db.session.no_autoflush:  # check before the pending change reaches the DB's constraint
        clash = db.session.scalar(db.select(Provider).where(Provider.name == p.name, Provider.id != p.id))
    if clash is not None:
        raise Conflict(f"a provider named '{p.name}' already exists", field="name",
                       code="provider_exists")


def _unique_slug(name: str, own_id: int | None) -> str:
    base = slugify(name)
    slug, n = base, 2
    while db.session.scalar(db.select(Provider.id).where(Provider.slug == slug,
                                                         Provider.id != own_id)) is not None:
        slug, n = f"{base}-{n}", n + 1
    return slug


def create(data: dict, actor: str) -> Provider:
    p = Provider(config={}, enabled=True, trust_level="public")
    _apply(p, dict(data), creating=True)
    _check_unique(p)
    p.slug = _unique_slug(p.name, None)
    p.created_by = p.updated_by = actor
    changes.created(p, "provider", p.name, snapshot(p), actor)
    return p


def update(p: Provider, data: dict, actor: str) -> Provider:
    before = snapshot(p)
    _apply(p, dict(data), creating=False)
    _check_unique(p)
    if "name" in data:
        p.slug = _unique_slug(p.name, p.id)
    p.updated_by = actor
    changes.updated(p, "provider", p.name, before, snapshot(p), actor)
    return p


def delete(p: Provider, actor: str) -> None:
    changes.deleted(p, "provider", p.name, actor, {"models_deleted": [m.name for m in p.models]})


def decrypt_secrets(p: Provider) -> dict[str, str]:
    if not p.secrets_encrypted:
        return {}
    return get_box().decrypt(p.secrets_encrypted, owner=p.name)


def provider_config(p: Provider) -> ProviderConfig:
    """Plain values for adapters. Raises SecretError naming the provider if undecryptable."""
    return ProviderConfig(
        id=p.id, name=p.name, type=p.type, api_base=p.api_base, api_version=p.api_version,
        config=dict(p.config or {}), secrets=decrypt_secrets(p),
        connect_timeout=p.connect_timeout, read_timeout=p.read_timeout,
        default_temperature=float(p.default_temperature) if p.default_temperature is not None else None,
        default_max_tokens=p.default_max_tokens)


def rotate_all(actor: str = "cli") -> tuple[int, list[str]]:
    """Re-encrypt every provider secret with the newest key; returns (rotated, errors)."""
    box = get_box()
    rotated, errors = 0, []
    for p in list_all():
        if not p.secrets_encrypted or not box.needs_rotation(p.secrets_encrypted):
            continue
        try:
            p.secrets_encrypted = box.rotate(p.secrets_encrypted, owner=p.name)
            rotated += 1
        except Exception as exc:  # SecretError: report and keep going, never lose the value
            errors.append(str(exc))
    if rotated:
        audit.record(actor, "rotate_keys", "provider", None, None,
                     {"rotated": rotated, "key_id": box.current_id})
        state.bump()
    db.session.commit()
    return rotated, errors
