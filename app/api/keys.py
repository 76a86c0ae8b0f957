from flask import g, jsonify

from app.api import body, bp
from app.services import keys


@bp.get("/keys")
def list_keys():
    return jsonify({"object": "list", "data": [keys.to_dict(k) for k in keys.list_all()]})


@bp.post("/keys")
def create_key():
    k, raw = keys.create(body(), g.actor)
    return jsonify({**keys.to_dict(k), "key": raw}), 201


@bp.get("/keys/<int:key_id>")
def get_key(key_id: int):
    return jsonify(keys.to_dict(keys.get(key_id)))


@bp.patch("/keys/<int:key_id>")
def update_key(key_id: int):
    return jsonify(keys.to_dict(keys.update(keys.get(key_id), body(), g.actor)))


@bp.delete("/keys/<int:key_id>")
def revoke_key(key_id: int):
    return jsonify(keys.to_dict(keys.revoke(keys.get(key_id), g.actor)))
