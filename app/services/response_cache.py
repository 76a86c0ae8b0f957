"""The app's response cache (SQLite file beside the DB, shared by the workers of a host)."""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from app.cache import ResponseCache, SQLiteStore


def response_cache() -> ResponseCache:
    ext = current_app.extensions
    c = ext.get("gateway_cache")
    if c is None:
        path = current_app.config.get("CACHE_STORE_PATH") or str(
            Path(current_app.instance_path) / "cache.db")
        max_mb = int(current_app.config.get("CACHE_MAX_MB", 256))
        c = ext["gateway_cache"] = ResponseCache(SQLiteStore(path), max_bytes=max_mb * 1024 * 1024)
    return c


def clear(actor: str, label: str, **filters) -> int:
    """Remove matching entries (model, key_id or glob pattern), with an audit row."""
    from app.extensions import db
    from app.services import audit
    removed = response_cache().clear(**filters)
    audit.record(actor, "clear", "cache", None, label, {"removed": removed})
    db.session.commit()
    return removed
