from flask import g, jsonify

from app.api import body, bp
from app.services import settings


@bp.get("/settings")
def get_settings():
    return jsonify(settings.current())


@bp.patch("/settings")
def patch_settings():
    return jsonify(settings.update(body(), g.actor))
