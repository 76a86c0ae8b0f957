"""Errors: HTML pages for the console, OpenAI-shaped JSON for /v1 and /api."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.services.errors import ServiceError

log = logging.getLogger(__name__)

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "invalid_request_error", 405: "invalid_request_error", 409: "invalid_request_error",
         413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
         429: "rate_limit_error"}
CODES = {400: "invalid_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "request_too_large",
         415: "unsupported_media_type", 422: "validation_error", 429: "rate_limit_exceeded"}


def wants_json() -> bool:
    return request.path.startswith(("/v1", "/api/"))


def json_error(status: int, message: str, code: str | None = None, type_: str | None = None,
               param: str | None = None, headers: dict | None = None):
    body = {"error": {"message": message, "type": type_ or TYPES.get(status, "api_error"),
                      "param": param, "code": code or CODES.get(status, "error")}}
    resp = jsonify(body)
    resp.status_code = status
    for k, val in (headers or {}).items():
        resp.headers[k] = val
    return resp


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        db.session.rollback()  # drop the half-applied change that failed validation
        if wants_json():
            return json_error(exc.status, exc.message, exc.code, exc.type, exc.field)
        return render_template("error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        message = "The form expired or is missing its security token; reload the page and try again."
        if wants_json():
            return json_error(400, message, "csrf_failed")
        return render_template("error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        if wants_json():
            message = exc.description if status != 404 else f"Unknown path {request.path}"
            return json_error(status, message)
        return render_template("error.html", status=status, message=exc.description), status

    from app.cache import StoreError

    @app.errorhandler(StoreError)
    def store_unavailable(exc: StoreError):
        """The response cache's shared store (Redis) is down: its admin views and clears answer
        503 (proxied requests never get here; for them it is a cache miss)."""
        db.session.rollback()
        message = "The response cache store is unavailable (Redis); try again shortly."
        if wants_json():
            return json_error(503, message, "cache_unavailable", "api_error",
                              headers={"Retry-After": "1"})
        return render_template("error.html", status=503, message=message), 503

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        _rollback()
        message = "The gateway hit an internal error; it has been logged."
        if wants_json():
            return json_error(500, message, "internal_error", "api_error")
        return render_template("error.html", status=500, message=message), 500


def _rollback() -> None:
    """A failed statement leaves the session's transaction aborted (PostgreSQL refuses every
    later command in it): roll it back so the error page and the next request work."""
    try:
        from app.extensions import db
        db.session.rollback()
    except Exception:  # the connection itself may be gone; the pool replaces it
        log.warning("rollback after an unhandled error failed", exc_info=True)
