"""Console users over JSON: list, create (a generated password is returned once), change, delete.
Admin keys only (app/admin/access.py `users`)."""
from __future__ import annotations

from flask import g, jsonify

from app.admin import access
from app.api import body, bp
from app.services import users


def _with_password(user, generated: str | None) -> dict:
    out = users.to_dict(user)
    if generated is not None:  # the only response that ever carries a password
        out["password"] = generated
    return out


@bp.get("/users")
@access.users
def list_users():
    return jsonify({"object": "list", "data": [users.to_dict(u) for u in users.list_all()]})


@bp.post("/users")
@access.users
def create_user():
    user, generated = users.add(body(), g.actor)
    return jsonify(_with_password(user, generated)), 201, {"Cache-Control": "no-store"}


@bp.get("/users/<int:user_id>")
@access.users
def get_user(user_id: int):
    return jsonify(users.to_dict(users.get(user_id)))


@bp.patch("/users/<int:user_id>")
@access.users
def update_user(user_id: int):
    user, data = users.get(user_id), body()
    user, generated = users.update(user, data, g.actor)
    return jsonify(_with_password(user, generated)), 200, {"Cache-Control": "no-store"}


@bp.delete("/users/<int:user_id>")
@access.users
def delete_user(user_id: int):
    users.delete(users.get(user_id), g.actor)
    return jsonify({"id": user_id, "deleted": True})
