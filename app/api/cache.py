from flask import jsonify

from app.admin import access
from app.api import body, bp
from app.services import audit
from app.services import validation as v
from app.services.response_cache import clear, response_cache


@bp.get("/cache")
@access.ops
def cache_stats():
    return jsonify(response_cache().stats())


@bp.post("/cache/clear")
@access.ops
def cache_clear():
    """Clear all entries, or those of a model, a key, or model names matching a glob pattern."""
    from flask import g

    from app.extensions import db
    data = body()
    model = v.text(data, "model", max_len=200)
    key_id = v.integer(data, "key_id", lo=1, hi=v.ID_MAX)
    pattern = v.text(data, "pattern", max_len=200)
    removed = clear(g.actor, model or pattern or (f"key {key_id}" if key_id else "all"),
                    model=model, key_id=key_id, pattern=pattern)
    return jsonify({"removed": removed})
