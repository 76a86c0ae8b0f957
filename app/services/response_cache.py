"""The app's response cache: in Redis when GATEWAY_REDIS_URL is set (shared by every host),
else a SQLite file beside the DB (shared by the workers of a host)."""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from app.cache import ResponseCache, SQLiteStore


def _store():
    url = current_app.config.get("REDIS_URL")
    if url:
        from app import redisconn
        from app.cache.redis import RedisCacheStore
        return RedisCacheStore(lambda: redisconn.client(url))
    path = current_app.config.get("CACHE_STORE_PATH") or str(
        Path(current_app.instance_path) / "cache.db")
    return SQLiteStore(path)


def response_cache() -> ResponseCache:
    ext = current_app.extensions
    c = ext.get("gateway_cache")
    if c is None:
        max_mb = int(current_app.config.get("CACHE_MAX_MB", 256))
        c = ext["gateway_cache"] = ResponseCache(_store(), max_bytes=max_mb * 1024 * 1024)
    return c


def clear(actor: str, label: str, **filters) -> int:
    """Remove matching entries (model, key_id or glob pattern), with an audit row."""
    from app.extensions import db
    from app.services import audit
    removed = response_cache().clear(**filters)
    audit.record(actor, "clear", "cache", None, label, {"removed": removed})
    db.session.commit()
    return removed
