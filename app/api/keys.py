from flask import g, jsonify

from app.admin import access
from app.api import body, bp
from app.services import keys


@bp.get("/keys")
@access.keys
def list_keys():
    return jsonify({"object": "list", "data": [keys.to_dict(k) for k in keys.list_all()]})


@bp.post("/keys")
@access.keys
def create_key():
    data = body()
    access.check_grant(g.api_role, data)
    k, raw = keys.create(data, g.actor)
    return jsonify({**keys.to_dict(k), "key": raw}), 201


@bp.get("/keys/<int:key_id>")
@access.keys
def get_key(key_id: int):
    return jsonify(keys.to_dict(keys.get(key_id)))


@bp.patch("/keys/<int:key_id>")
@access.keys
def update_key(key_id: int):
    key, data = keys.get(key_id), body()
    access.check_grant(g.api_role, data, key)
    return jsonify(keys.to_dict(keys.update(key, data, g.actor)))


@bp.delete("/keys/<int:key_id>")
@access.keys
def revoke_key(key_id: int):
    return jsonify(keys.to_dict(keys.revoke(keys.get(key_id), g.actor)))
