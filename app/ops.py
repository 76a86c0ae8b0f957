"""Operational endpoints: liveness, readiness, Prometheus metrics; request ids on every response."""
from __future__ import annotations

import hmac
import re
import uuid

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from sqlalchemy import text

from app.extensions import db

bp = Blueprint("ops", __name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers. No DB, no network."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the DB answers and its schema is at the migrations' head."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask_migrate import Migrate
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_heads()
    except Exception as exc:
        return jsonify({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}), 503
    migrate: Migrate = current_app.extensions["migrate"]
    config = migrate.migrate.get_config(migrate.directory)
    heads = ScriptDirectory.from_config(config).get_heads()
    if set(current) != set(heads):
        return jsonify({"status": "unavailable", "database": "ok",
                        "migrations": {"current": sorted(current), "head": sorted(heads)}}), 503
    body = {"status": "ready", "database": "ok", "migrations": {"head": sorted(heads)}}
    redis_state = _redis_state()
    if redis_state is not None:
        body["redis"] = redis_state
        if redis_state != "ok" and current_app.config.get("REDIS_FAILURE") == "closed":
            # fail-closed: the proxy refuses limited traffic, so take this host out of the pool
            return jsonify({**body, "status": "unavailable"}), 503
    return jsonify(body)


def _redis_state() -> str | None:
    """None without GATEWAY_REDIS_URL; "ok" or "unreachable: <error class>" (no URL, no detail
    that could carry a password)."""
    from app import redisconn
    client = redisconn.app_client(current_app)
    if client is None:
        return None
    try:
        client.ping()
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


@bp.get("/metrics")
def metrics_endpoint():
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        sent = request.headers.get("Authorization", "")[7:].strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return jsonify({"error": {"message": "metrics need the bearer token", "type":
                                      "authentication_error", "code": "invalid_api_key",
                                      "param": None}}), 401
    from app import metrics
    body, ctype = metrics.render(current_app._get_current_object())
    return Response(body, mimetype=ctype.split(";")[0], headers={"Content-Type": ctype})


def install_request_ids(app: Flask) -> None:
    """x-request-id: passed through when the client sent a sane one, generated otherwise, and
    returned on every response (the proxy uses the same id for its usage record)."""

    @app.before_request
    def _assign():
        sent = request.headers.get("x-request-id", "")
        g.request_id = sent if _REQUEST_ID.match(sent) else "req_" + uuid.uuid4().hex[:24]

    @app.after_request
    def _echo(response):
        rid = getattr(g, "request_id", None)
        if rid and "x-request-id" not in response.headers:
            response.headers["x-request-id"] = rid
        return response
