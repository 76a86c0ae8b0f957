from flask import g, jsonify, request

from app.admin import access
from app.api import body, bp
from app.services import models


@bp.get("/models")
@access.ops
def list_models():
    rows = models.search(q=request.args.get("q"),
                         provider_id=_bounded(request.args.get("provider_id", type=int)),
                         kind=request.args.get("kind"))
    return jsonify({"object": "list", "data": [models.to_dict(m) for m in rows]})


@bp.post("/models")
@access.ops
def create_model():
    return jsonify(models.to_dict(models.create(body(), g.actor))), 201


@bp.get("/models/<int:model_pk>")
@access.ops
def get_model(model_pk: int):
    return jsonify(models.to_dict(models.get(model_pk)))


@bp.patch("/models/<int:model_pk>")
@access.ops
def update_model(model_pk: int):
    return jsonify(models.to_dict(models.update(models.get(model_pk), body(), g.actor)))


@bp.delete("/models/<int:model_pk>")
@access.ops
def delete_model(model_pk: int):
    models.delete(models.get(model_pk), g.actor)
    return jsonify({"id": model_pk, "deleted": True})


def _bounded(value):
    from app.services.validation import clamp_id
    return clamp_id(value)
