from flask import g, jsonify

from app.admin import access
from app.api import body, bp
from app.services import health, providers


@bp.get("/providers")
@access.ops
def list_providers():
    return jsonify({"object": "list", "data": [providers.to_dict(p) for p in providers.list_all()]})


@bp.post("/providers")
@access.ops
def create_provider():
    p = providers.create(body(), g.actor)
    return jsonify(providers.to_dict(p)), 201


@bp.get("/providers/<int:provider_id>")
@access.ops
def get_provider(provider_id: int):
    return jsonify(providers.to_dict(providers.get(provider_id)))


@bp.patch("/providers/<int:provider_id>")
@access.ops
def update_provider(provider_id: int):
    p = providers.update(providers.get(provider_id), body(), g.actor)
    return jsonify(providers.to_dict(p))


@bp.delete("/providers/<int:provider_id>")
@access.ops
def delete_provider(provider_id: int):
    providers.delete(providers.get(provider_id), g.actor)
    return jsonify({"id": provider_id, "deleted": True})


@bp.post("/providers/<int:provider_id>/health")
@access.ops
def check_provider(provider_id: int):
    return jsonify(health.check(providers.get(provider_id)))


@bp.get("/providers/<int:provider_id>/health")
@access.ops
def provider_health_history(provider_id: int):
    p = providers.get(provider_id)
    rows = health.history(p.id, limit=100)
    return jsonify({"object": "list", "data": [
        {"checked_at": r.checked_at.isoformat() + "Z", "status": r.status,
         "latency_ms": r.latency_ms, "error": r.error, "trigger": r.trigger} for r in rows]})


@bp.get("/providers/<int:provider_id>/upstream-models")
@access.ops
def upstream_models(provider_id: int):
    return jsonify({"object": "list", "data": health.upstream_models(providers.get(provider_id))})
