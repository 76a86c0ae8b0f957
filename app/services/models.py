"""Model (deployment) CRUD: what clients may name as `model`, and at which price."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import or_

from app.extensions import db
from app.models import Model, ModelGroup, Provider
from app.models.model import KINDS
from app.services import audit, changes, prices, state
from app.services import validation as v
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.keys import limits_from

FIELDS = ("provider_id", "model_id", "name", "kind", "supports_streaming", "supports_tools",
          "supports_vision", "supports_json", "context_window", "max_output_tokens",
          "input_price_per_mtok", "output_price_per_mtok", "cached_input_price_per_mtok",
          "priority", "weight", "enabled", "deprecated", "limits", "log_bodies")


def get(model_pk: int) -> Model:
    model = db.session.get(Model, model_pk)
    if model is None:
        raise NotFound(f"model {model_pk} not found", code="model_not_found")
    return model


def search(q: str | None = None, provider_id: int | None = None, kind: str | None = None,
           enabled: bool | None = None) -> list[Model]:
    stmt = db.select(Model).join(Provider).order_by(Model.name, Provider.name)
    if q:
        # % and _ typed in the search box are literal characters, not LIKE wildcards
        text = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{text}%"
        stmt = stmt.where(or_(Model.name.ilike(like, escape="\\"), Model.model_id.ilike(like, escape="\\"),
                              Provider.name.ilike(like, escape="\\")))
    if provider_id:
        stmt = stmt.where(Model.provider_id == provider_id)
    if kind in KINDS:
        stmt = stmt.where(Model.kind == kind)
    if enabled is not None:
        stmt = stmt.where(Model.enabled == enabled)
    return list(db.session.scalars(stmt))


def _price(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def to_dict(m: Model) -> dict[str, Any]:
    return {
        "id": m.id, "provider_id": m.provider_id, "provider": m.provider.name,
        "model_id": m.model_id, "name": m.name, "kind": m.kind,
        "capabilities": {"streaming": m.supports_streaming, "tools": m.supports_tools,
                         "vision": m.supports_vision, "json_mode": m.supports_json},
        "context_window": m.context_window, "max_output_tokens": m.max_output_tokens,
        "input_price_per_mtok": _price(m.input_price_per_mtok),
        "output_price_per_mtok": _price(m.output_price_per_mtok),
        "cached_input_price_per_mtok": _price(m.cached_input_price_per_mtok),
        "priority": m.priority, "weight": m.weight, "limits": m.limits or None,
        "log_bodies": bool(m.log_bodies),
        "enabled": m.enabled, "deprecated": m.deprecated,
        "created_at": m.created_at.isoformat() + "Z", "updated_at": m.updated_at.isoformat() + "Z",
    }


def snapshot(m: Model) -> dict[str, Any]:
    return {f: getattr(m, f) for f in FIELDS}


def _apply(m: Model, data: dict, creating: bool) -> None:
    caps = data.get("capabilities")
    if isinstance(caps, dict):  # accept the API's nested shape too
        data = {**{f"supports_{'json' if k == 'json_mode' else k}": val for k, val in caps.items()},
                **data}
    if creating or "provider_id" in data:
        pid = v.integer(data, "provider_id", lo=1, hi=v.ID_MAX)
        if pid is None:
            raise ValidationFailed("provider_id is required", field="provider_id")
        if db.session.get(Provider, pid) is None:
            raise ValidationFailed(f"provider {pid} does not exist", field="provider_id")
        m.provider_id = pid
    if creating or "model_id" in data:
        m.model_id = v.text(data, "model_id", required=True, max_len=200)
    if creating or "name" in data:
        m.name = v.text(data, "name", max_len=200) or m.model_id
    if creating or "kind" in data:
        m.kind = v.choice(data, "kind", KINDS, default=m.kind or "chat")
    for flag, default in (("supports_streaming", True), ("supports_tools", False),
                          ("supports_vision", False), ("supports_json", False),
                          ("enabled", True), ("deprecated", False)):
        if creating or flag in data:
            setattr(m, flag, v.boolean(data, flag, default))
    if creating or "context_window" in data:
        m.context_window = v.integer(data, "context_window", lo=1, hi=100_000_000)
    if creating or "max_output_tokens" in data:
        m.max_output_tokens = v.integer(data, "max_output_tokens", lo=1, hi=100_000_000)
    for price in ("input_price_per_mtok", "output_price_per_mtok"):
        if creating or price in data:
            setattr(m, price, v.decimal(data, price, hi=Decimal(100000), default=Decimal(0)))
    if creating or "cached_input_price_per_mtok" in data:
        m.cached_input_price_per_mtok = v.decimal(data, "cached_input_price_per_mtok",
                                                  hi=Decimal(100000))
    if creating or "limits" in data:
        m.limits = limits_from(data) or None
    if creating or "log_bodies" in data:
        m.log_bodies = v.boolean(data, "log_bodies", False)
    if creating or "priority" in data:
        m.priority = v.integer(data, "priority", lo=-1000, hi=1000, default=0)
    if creating or "weight" in data:
        m.weight = v.integer(data, "weight", lo=0, hi=1000, default=1)


def _check_unique(m: Model) -> None:
    with db.session.no_autoflush:  # check before the pending change reaches the DB's constraint
        _check_unique_now(m)


def _check_unique_now(m: Model) -> None:
    same_upstream = db.session.scalar(db.select(Model.id).where(
        Model.provider_id == m.provider_id, Model.model_id == m.model_id, Model.id != m.id))
    if same_upstream is not None:
        raise Conflict(f"model '{m.model_id}' is already registered for this provider",
                       field="model_id", code="model_exists")
    if m.enabled:
        clash = db.session.scalar(db.select(Model.id).where(
            Model.name == m.name, Model.enabled.is_(True), Model.id != m.id))
        grouped = db.session.scalar(db.select(ModelGroup.id).where(ModelGroup.name == m.name))
        if clash is not None and grouped is None:
            raise Conflict(f"an enabled model named '{m.name}' already exists; choose another "
                           "name, disable the other one, or make the name a routing group "
                           f"(PUT /api/admin/groups/{m.name}) to serve it from several deployments",
                           field="name", code="model_exists")


def with_builtin_prices(data: dict) -> dict:
    """Fill prices from the built-in table when the admin gave none (their values always win)."""
    price_fields = ("input_price_per_mtok", "output_price_per_mtok", "cached_input_price_per_mtok")
    if any(data.get(f) not in (None, "") for f in price_fields):
        return data
    known = prices.lookup(str(data.get("model_id") or ""))
    if known is None:
        return data
    return {**data, **{f: known[f] for f in price_fields if known[f] is not None}}


def create(data: dict, actor: str) -> Model:
    m = Model()
    _apply(m, with_builtin_prices(dict(data)), creating=True)
    _check_unique(m)
    changes.created(m, "model", m.name, snapshot(m), actor)
    return m


def update(m: Model, data: dict, actor: str) -> Model:
    before = snapshot(m)
    _apply(m, dict(data), creating=False)
    _check_unique(m)
    changes.updated(m, "model", m.name, before, snapshot(m), actor)
    return m


def delete(m: Model, actor: str) -> None:
    changes.deleted(m, "model", m.name, actor, {"model_id": [m.model_id, None]})


def import_models(provider: Provider, entries: list[dict], actor: str) -> list[Model]:
    """Add several upstream models at once (the console's "Import models"); skips existing."""
    existing = {m.model_id for m in provider.models}
    created = []
    for entry in entries:
        if entry["id"] in existing:
            continue
        data = {"provider_id": provider.id, "model_id": entry["id"],
                "kind": entry.get("kind", "chat")}
        taken = db.session.scalar(db.select(Model.id).where(Model.name == entry["id"],
                                                            Model.enabled.is_(True)))
        if taken is not None:  # keep the import going: make the alias unique by provider slug
            data["name"] = f"{provider.slug}/{entry['id']}"
        m = Model()
        _apply(m, with_builtin_prices(data), creating=True)
        db.session.add(m)
        db.session.flush()
        audit.record(actor, "import", "model", m.id, m.name, audit.diff({}, snapshot(m)))
        created.append(m)
    if created:
        state.bump()
    db.session.commit()
    return created
