"""/api/admin: JSON automation over the same services as the console."""
from __future__ import annotations

import hmac
from functools import wraps

from flask import Blueprint, current_app, g, request

from app.admin import access
from app.errors import json_error
from app.services import keys as key_service

bp = Blueprint("api", __name__, url_prefix="/api/admin")

# the admin-API role a key's scopes give it (the strongest wins); each route declares its roles
# (app/admin/access.py), as console routes do
SCOPE_ROLES = (("admin", "admin"), ("admin:operator", "operator"), ("admin:read", "viewer"))


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


@bp.before_request
def authenticate():
    raw = _bearer()
    if not raw:
        return json_error(401, "Missing API key: send 'Authorization: Bearer <key>'",
                          "missing_api_key")
    master = current_app.config.get("GATEWAY_MASTER_KEY")
    if master and hmac.compare_digest(raw.encode(), master.encode()):
        g.actor, g.api_role = "master-key", "admin"
    else:
        key = key_service.find_by_secret(raw)
        if key is None or not key_service.is_usable(key):
            return json_error(401, "Invalid, disabled or expired API key", "invalid_api_key")
        role = next((r for scope, r in SCOPE_ROLES if scope in (key.scopes or [])), None)
        if role is None:
            return json_error(403, "This key lacks the 'admin' scope", "insufficient_scope")
        g.actor, g.api_role = f"key:{key.prefix}", role
    rule = access.declaration(current_app.view_functions.get(request.endpoint or ""))
    if rule is None:  # default deny: an undeclared route is refused for every key
        return json_error(403, "This route has no role declaration", "insufficient_scope")
    if not rule.allows(g.api_role, request.method):
        return json_error(403, f"This key's role ({g.api_role}) may not "
                               f"{'read' if request.method in access.SAFE_METHODS else 'change'} "
                               "this resource", "insufficient_scope")
    return None


def body() -> dict:
    """The JSON object body, or a 400 in the API's error format."""
    from app.providers.common import loads
    from app.services.errors import BadRequest
    data = None
    if request.is_json:  # application/json or */*+json, as get_json() requires
        try:  # orjson: refuses NaN/Infinity and lone surrogates, no recursion limit to trip
            data = loads(request.get_data(cache=False) or b"")
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object (Content-Type: application/json)")
    return data




from app.api import (cache, groups, keys, models, providers, settings, teams, usage,  # noqa: E402,F401
                     users)  # (routes register on bp)
