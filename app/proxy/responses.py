"""/v1/responses: the OpenAI Responses API front door (views only; app.services.responses_api
does the translation and storage over the proxy's chat flow)."""
from __future__ import annotations

from flask import Blueprint, request

from app.proxy import _authenticate, _body, _call, _deliver, _error, _json, proxy
from app.services import responses_api
from app.services.completions import ProxyError

bp = Blueprint("responses", __name__, url_prefix="/v1")


@bp.post("/responses")
def create_response():
    try:
        snap, key = _authenticate("chat")
        body = _body()
    except ProxyError as err:
        return _error(err)
    return _deliver(responses_api.create(proxy(), snap, _call(key, "responses"), body, request.headers))


@bp.get("/responses/<response_id>")
def get_response(response_id: str):
    try:
        _, key = _authenticate("chat")
        return _json(200, responses_api.get(key.id, response_id))
    except ProxyError as err:
        return _error(err)


@bp.delete("/responses/<response_id>")
def delete_response(response_id: str):
    try:
        _, key = _authenticate("chat")
        return _json(200, responses_api.delete(key.id, response_id))
    except ProxyError as err:
        return _error(err)
