from flask import g, jsonify

from app.admin import access
from app.api import body, bp
from app.services import groups


def _live() -> dict:
    from app.services.routing_state import live_states
    return live_states()


@bp.get("/groups")
@access.ops
def list_groups():
    live = _live()
    return jsonify({"object": "list", "data": [groups.to_dict(x, live) for x in groups.list_all()]})


@bp.get("/groups/<path:name>")
@access.ops
def get_group(name: str):
    return jsonify(groups.to_dict(groups.get(name), _live()))


@bp.put("/groups/<path:name>")
@access.ops
def put_group(name: str):
    group, created = groups.put(name, body(), g.actor)
    return jsonify(groups.to_dict(group, _live())), 201 if created else 200


@bp.delete("/groups/<path:name>")
@access.ops
def delete_group(name: str):
    groups.delete(groups.get(name), g.actor)
    return jsonify({"name": name, "deleted": True})


@bp.post("/deployments/<int:model_pk>/breaker/reset")
@access.ops
def reset_breaker(model_pk: int):
    """Close a deployment's breaker (also ends `disabled` after a bad provider key was fixed)."""
    from app.services import models
    m = models.get(model_pk)
    groups.reset_breaker(m, g.actor)
    return jsonify({"id": m.id, "breaker": _live().get(m.id, {}).get("breaker")})
