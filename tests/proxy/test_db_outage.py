"""The config database unreachable: the proxy keeps serving from its last snapshot of keys and
models (re-trying once per TTL, not per request), and picks changes up when it answers again."""
from __future__ import annotations

import logging

import responses
from sqlalchemy.exc import OperationalError

from tests.proxy.test_chat import CHAT_URL, openai_reply

BODY = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}


def _down(*_a, **_k):
    raise OperationalError("SELECT version FROM gateway_state", {}, ConnectionRefusedError("down"))


@responses.activate
def test_db_outage_serves_the_cached_snapshot_then_recovers(gw, gw_client, auth, openai_route,
                                                            monkeypatch, caplog):
    from app.services import models, state
    responses.post(CHAT_URL, json=openai_reply())
    assert gw_client.post("/v1/chat/completions", headers=auth, json=BODY).status_code == 200

    real_version = state.version
    calls = []

    def down(*a, **k):
        calls.append(1)
        _down()
    monkeypatch.setattr(state, "version", down)
    with caplog.at_level(logging.WARNING, logger="app.services.runtime"):
        for _ in range(3):
            r = gw_client.post("/v1/chat/completions", headers=auth, json=BODY)
            assert r.status_code == 200, r.data
            assert r.get_json()["choices"][0]["message"]["content"] == "Hello there"
        unknown = gw_client.post("/v1/chat/completions", json=BODY,
                                 headers={"Authorization": "Bearer gw-not-a-real-key"})
    assert unknown.status_code == 401 and unknown.get_json()["error"]["code"] == "invalid_api_key"
    assert calls  # it did try the database
    warned = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warned) == 1  # once per outage, not per request

    # a change made while this worker could not see it is picked up once the database answers
    monkeypatch.setattr(state, "version", real_version)
    _, model, _ = openai_route
    models.update(model, {"enabled": False}, actor="t")
    r = gw_client.post("/v1/chat/completions", headers=auth, json=BODY)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "model_not_found"


def test_no_snapshot_yet_and_no_database_is_an_error_not_a_hang(gw, gw_client, auth,
                                                                 monkeypatch):
    from app.services import runtime, state
    gw.extensions.pop("gateway_runtime", None)
    monkeypatch.setattr(state, "version", _down)
    r = gw_client.post("/v1/chat/completions", headers=auth, json=BODY)
    assert r.status_code >= 500 and "error" in r.get_json()
    assert "down" not in r.get_data(as_text=True)  # no driver detail leaks
    assert runtime  # module imported
