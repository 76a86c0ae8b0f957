"""/v1/messages: the Anthropic Messages API front door (views only; app.services.messages_api does
the translation over the proxy's chat flow). Errors in Anthropic's shape and statuses; limit
headers also under Anthropic's names."""
from __future__ import annotations

from flask import Blueprint, Response, request

from app.providers.anthropic_messages import error_body
from app.providers.common import dumps, loads
from app.proxy import _authenticate, _body, _call, _deliver, proxy
from app.services import messages_api
from app.services.completions import JSONResult, ProxyError

bp = Blueprint("messages", __name__, url_prefix="/v1")

# the gateway's limit headers -> Anthropic's names for the same figures
HEADER_NAMES = {"x-ratelimit-limit-requests": "anthropic-ratelimit-requests-limit",
                "x-ratelimit-remaining-requests": "anthropic-ratelimit-requests-remaining",
                "x-ratelimit-reset-requests": "anthropic-ratelimit-requests-reset",
                "x-ratelimit-limit-tokens": "anthropic-ratelimit-tokens-limit",
                "x-ratelimit-remaining-tokens": "anthropic-ratelimit-tokens-remaining",
                "x-ratelimit-reset-tokens": "anthropic-ratelimit-tokens-reset"}


def _headers(headers: dict) -> dict:
    out = dict(headers or {})
    for ours, theirs in HEADER_NAMES.items():
        for name, value in list(out.items()):
            if name.lower() == ours:
                out[theirs] = value
    ra = next((v for k, v in out.items() if k.lower() == "retry-after"), None)
    if ra is not None:
        out["retry-after"] = ra
    return out


def _anthropic_error(status: int, message: str, headers: dict | None = None) -> Response:
    return Response(dumps(error_body(status, message)), status=status, mimetype="application/json",
                    headers=_headers(headers or {}))


def _error(err: ProxyError) -> Response:
    return _anthropic_error(err.status, err.message, err.headers)


def _deliver_anthropic(result) -> Response:
    if isinstance(result, JSONResult) and result.status >= 400:
        try:
            err = (loads(result.body).get("error") or {})
            message = err.get("message") if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            message = None
        return _anthropic_error(result.status, message or "The request failed.", result.headers)
    result.headers = _headers(result.headers)
    return _deliver(result)


@bp.post("/messages")
def create_message():
    try:
        snap, key = _authenticate("chat")
        body = _body()
    except ProxyError as err:
        return _error(err)
    return _deliver_anthropic(messages_api.create(proxy(), snap, _call(key, "messages"), body,
                                                  request.headers))


@bp.post("/messages/count_tokens")
def count_tokens():
    try:
        snap, key = _authenticate("chat")
        return Response(dumps(messages_api.count_tokens(snap, key, _body())), mimetype="application/json")
    except ProxyError as err:
        return _error(err)
