from flask import g, jsonify

from app.admin import access
from app.api import body, bp
from app.services import settings


@bp.get("/settings")
@access.admin_area
def get_settings():
    return jsonify(settings.current())


@bp.patch("/settings")
@access.admin_area
def patch_settings():
    return jsonify(settings.update(body(), g.actor))
