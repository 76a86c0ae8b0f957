from flask import g, jsonify, request

from app.admin import access
from app.api import body, bp
from app.services import prices, teams


@bp.get("/teams")
@access.admin_area
def list_teams():
    return jsonify({"object": "list", "data": [teams.to_dict(t) for t in teams.list_all()]})


@bp.post("/teams")
@access.admin_area
def create_team():
    return jsonify(teams.to_dict(teams.create(body(), g.actor))), 201


@bp.get("/teams/<int:team_id>")
@access.admin_area
def get_team(team_id: int):
    return jsonify(teams.to_dict(teams.get(team_id)))


@bp.patch("/teams/<int:team_id>")
@access.admin_area
def update_team(team_id: int):
    return jsonify(teams.to_dict(teams.update(teams.get(team_id), body(), g.actor)))


@bp.delete("/teams/<int:team_id>")
@access.admin_area
def delete_team(team_id: int):
    teams.delete(teams.get(team_id), g.actor)
    return jsonify({"id": team_id, "deleted": True})


@bp.get("/prices")
@access.ops
def builtin_price():
    """Built-in list price for a model id (what the console pre-fills)."""
    model_id = request.args.get("model_id", "")
    found = prices.lookup(model_id)
    if found is None:
        return jsonify({"model_id": model_id, "known": False})
    return jsonify({"model_id": model_id, "known": True, "matched": found["matched"],
                    **{k: (float(v) if v is not None else None) for k, v in found.items()
                       if k != "matched"}})
