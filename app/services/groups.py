"""Model groups: one public name served by several deployments, with a routing strategy."""
from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models import Model, ModelGroup, Provider
from app.services import changes
from app.services import validation as v
from app.services.errors import NotFound

STRATEGIES = ("priority", "weighted", "least-latency", "least-busy", "cost")
FIELDS = ("strategy", "fallbacks", "retries", "timeout_s")


def get(name: str) -> ModelGroup:
    group = db.session.scalar(db.select(ModelGroup).where(ModelGroup.name == name))
    if group is None:
        raise NotFound(f"group '{name}' not found", code="group_not_found")
    return group


def find(name: str) -> ModelGroup | None:
    return db.session.scalar(db.select(ModelGroup).where(ModelGroup.name == name))


def list_all() -> list[ModelGroup]:
    return list(db.session.scalars(db.select(ModelGroup).order_by(ModelGroup.name)))


def deployments(name: str) -> list[Model]:
    return list(db.session.scalars(db.select(Model).join(Provider).where(Model.name == name)
                                   .order_by(Model.priority, Model.id)))


def snapshot(g: ModelGroup) -> dict[str, Any]:
    return {f: getattr(g, f) for f in FIELDS}


def to_dict(g: ModelGroup, live: dict[int, dict] | None = None) -> dict[str, Any]:
    live = live or {}
    return {
        "name": g.name, "strategy": g.strategy, "fallbacks": g.fallbacks or [],
        "retries": g.retries, "timeout_s": g.timeout_s,
        "deployments": [{"id": m.id, "provider_id": m.provider_id, "provider": m.provider.name,
                         "model_id": m.model_id, "priority": m.priority, "weight": m.weight,
                         "enabled": m.enabled and m.provider.enabled, **live.get(m.id, {})}
                        for m in deployments(g.name)],
        "updated_at": g.updated_at.isoformat() + "Z",
    }


def _apply(g: ModelGroup, data: dict, creating: bool) -> None:
    if creating or "strategy" in data:
        g.strategy = v.choice(data, "strategy", STRATEGIES, default=g.strategy or "priority")
    if creating or "fallbacks" in data:
        fallbacks = v.string_list(data, "fallbacks", max_items=10)
        if g.name in fallbacks:
            from app.services.errors import ValidationFailed
            raise ValidationFailed("a group cannot fall back to itself", field="fallbacks")
        g.fallbacks = fallbacks
    if creating or "retries" in data:
        g.retries = v.integer(data, "retries", lo=0, hi=10, default=2)
    if creating or "timeout_s" in data:
        g.timeout_s = v.number(data, "timeout_s", lo=0.1, hi=3600)


def put(name: str, data: dict, actor: str) -> tuple[ModelGroup, bool]:
    """Create or update the group called `name`; returns (group, created)."""
    name = v.text({"name": name}, "name", required=True, max_len=200)
    group = find(name)
    if group is None:
        group = ModelGroup(name=name)
        _apply(group, dict(data), creating=True)
        changes.created(group, "group", name, snapshot(group), actor)
        return group, True
    before = snapshot(group)
    _apply(group, dict(data), creating=False)
    changes.updated(group, "group", name, before, snapshot(group), actor)
    return group, False


def reset_breaker(model: Model, actor: str) -> None:
    """Close a deployment's breaker (also ends `disabled` once a bad key is fixed); audited."""
    from app.services import audit
    from app.services.router import router
    router().breaker.reset(model.id)
    audit.record(actor, "reset_breaker", "model", model.id, model.name,
                 {"provider": model.provider.name, "model_id": model.model_id})
    db.session.commit()


def delete(group: ModelGroup, actor: str) -> None:
    changes.deleted(group, "group", group.name, actor)
