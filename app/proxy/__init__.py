"""/v1: the OpenAI-compatible proxy face. Views authenticate, parse and format; services do the rest."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from app import metrics
from app.providers.common import dumps, loads
from app.services import runtime
from app.services.completions import Call, JSONResult, Proxy, ProxyError
from app.services.transport import MAX_BODY, make_transport
from app.services.inspection import inspector_for
from app.services.response_cache import response_cache
from app.services.router import router
from app.limits.failover import StoreUnavailable
from app.services.spend import gate, unavailable
from app.services.usage import writer

bp = Blueprint("proxy", __name__, url_prefix="/v1")
SCOPE_FOR = {"chat": "chat", "embeddings": "embeddings", "models": "models"}


def proxy() -> Proxy:
    ext = current_app.extensions
    p = ext.get("gateway_proxy")
    if p is None:
        cfg = current_app.config
        sink = writer().record
        cache_ = runtime.cache()

        def record(row):  # metrics first (in memory), then the batched DB writer
            try:
                metrics.observe(row, cache_.get_cached().provider_names)
            except Exception:  # metrics must never break accounting
                pass
            sink(row)
        p = ext["gateway_proxy"] = Proxy(make_transport(cfg.get("GATEWAY_HTTP_CLIENT", "gevent"),
                                                        cfg.get("MAX_UPSTREAM_BYTES") or MAX_BODY),
                                         record, cfg.get("REQUEST_DEADLINE_SECONDS"),
                                         gate(), router(), response_cache(), inspector_for)
    return p


def _json(status: int, payload, headers: dict | None = None) -> Response:
    body = payload if isinstance(payload, bytes) else dumps(payload)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def _error(err: ProxyError) -> Response:
    return _json(err.status, err.to_openai(), err.headers)


def _raw_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


def _authenticate(scope: str):
    """(snapshot, key) or raise ProxyError 401/403."""
    snap = runtime.cache().get()
    raw = _raw_key()
    if not raw:
        raise ProxyError(401, "You didn't provide an API key. Send 'Authorization: Bearer <key>'.",
                         type_="authentication_error", code="missing_api_key")
    key = runtime.authenticate(raw, snap)
    if key is None:  # maybe created a moment ago: look once more with fresh state
        snap = runtime.cache().refresh_soon()
        key = runtime.authenticate(raw, snap)
    if key is None:
        raise ProxyError(401, "Incorrect, disabled or expired API key.",
                         type_="authentication_error", code="invalid_api_key")
    if not key.ip_allowed(request.remote_addr):
        raise ProxyError(403, "This API key may not be used from your IP address.",
                         type_="permission_error", code="ip_not_allowed")
    if scope not in key.scopes:
        raise ProxyError(403, f"This API key lacks the '{scope}' scope.",
                         type_="permission_error", code="insufficient_scope")
    return snap, key


def _body() -> dict:
    if not request.mimetype or request.mimetype != "application/json":
        if request.content_type and "json" not in request.content_type:
            raise ProxyError(415, "Content-Type must be application/json", code="unsupported_media_type")
    try:
        body = loads(request.get_data(cache=False) or b"")
    except (ValueError, UnicodeDecodeError):
        raise ProxyError(400, "We could not parse the JSON body of your request.",
                         code="invalid_json") from None
    if not isinstance(body, dict):
        raise ProxyError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def _call(key, endpoint: str) -> Call:
    """Per-request accounting, carrying the request id the client sent (or one we made)."""
    from flask import g
    rid = getattr(g, "request_id", None)
    return Call(key=key, endpoint=endpoint, **({"request_id": rid} if rid else {}))


def _deliver(result) -> Response:
    if isinstance(result, JSONResult):
        return _json(result.status, result.body, result.headers)
    headers = {**result.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(result.chunks, status=200, mimetype="text/event-stream", headers=headers,
                    direct_passthrough=True)


@bp.post("/chat/completions")
def chat_completions():
    try:
        snap, key = _authenticate("chat")
        body = _body()
    except ProxyError as err:
        return _error(err)
    return _deliver(proxy().chat(snap, _call(key, "chat"), body, request.headers))


@bp.post("/embeddings")
def embeddings():
    try:
        snap, key = _authenticate("embeddings")
        body = _body()
    except ProxyError as err:
        return _error(err)
    return _deliver(proxy().embeddings(snap, _call(key, "embeddings"), body))


def _model_obj(route) -> dict:
    return {"id": route.name, "object": "model", "created": route.created, "owned_by": route.owned_by}


@bp.get("/models")
def list_models():
    try:
        snap, key = _authenticate("models")
    except ProxyError as err:
        return _error(err)
    data = [_model_obj(routes[0]) for name, routes in sorted(snap.by_name.items()) if key.may_use(name)]
    return _json(200, {"object": "list", "data": data})


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    try:
        snap, key = _authenticate("models")
    except ProxyError as err:
        return _error(err)
    routes = snap.resolve(model_id)
    if not routes or not key.may_use(routes[0].name):
        return _error(ProxyError(404, f"The model '{model_id}' does not exist or you do not have "
                                 "access to it.", code="model_not_found", param="model"))
    return _json(200, _model_obj(routes[0]))


def _plain(value):
    """JSON-safe copy of the store's state (Decimals as fixed-point strings, never 1E-8)."""
    from decimal import Decimal
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@bp.get("/key/info")
def key_info():
    """A key's own view: its limits with current counts, and spend against each budget."""
    try:
        snap = runtime.cache().get()
        key = runtime.authenticate(_raw_key(), snap)
        if key is None:
            raise ProxyError(401, "Incorrect, disabled or expired API key.",
                             type_="authentication_error", code="invalid_api_key")
    except ProxyError as err:
        return _error(err)
    try:
        state = gate().key_state(snap, key)
    except StoreUnavailable:  # Redis down: the shared counts are unknown, local ones would mislead
        d = unavailable()
        return _error(ProxyError(d.status, d.message, d.type, d.code, headers=d.headers))
    return _json(200, {
        "object": "key_info", "id": key.id, "name": key.name, "prefix": key.prefix,
        "owner": key.owner, "scopes": sorted(key.scopes), "allowed_models": list(key.allowed_models),
        "expires_at": key.expires_at.isoformat() + "Z" if key.expires_at else None,
        "tags": key.tags, "state": _plain(state)})


bp.add_url_rule("/usage", view_func=key_info, endpoint="usage")
