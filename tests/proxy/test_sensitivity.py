"""Sensitivity policy on the proxy path: block, redact, route to trusted providers."""
from __future__ import annotations

import json

import responses

from tests.proxy.conftest import usage_rows

SECRET_MSG = [{"role": "user", "content": "deploy with key sk-proj-abcdefghijklmnopqrstuvwxyz123456 please"}]
CLEAN_MSG = [{"role": "user", "content": "what is the capital of France?"}]
UP = "http://up.test/v1/chat/completions"
REPLY = {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def policy(action, **extra):
    from app.services import settings
    settings.update({"sensitivity": {"action": action, **extra}}, actor="t")


@responses.activate
def test_block(gw_client, auth, openai_route):
    policy("block")
    responses.post(UP, json=REPLY)
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "mini", "messages": SECRET_MSG})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "content_policy"
    assert "openai_api_key" in r.get_json()["error"]["message"]
    assert "sk-proj" not in r.get_data(as_text=True)
    assert len(responses.calls) == 0
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "mini", "messages": CLEAN_MSG})
    assert r.status_code == 200
    rows = usage_rows()
    assert rows[0].error_class == "content_policy" and rows[0].detectors == "openai_api_key"
    assert rows[1].detectors is None


@responses.activate
def test_redact(gw_client, auth, openai_route):
    policy("redact")
    responses.post(UP, json=REPLY)
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "mini", "messages": SECRET_MSG})
    assert r.status_code == 200 and r.headers["x-gateway-redacted"] == "1 span(s): secret"
    sent = json.loads(responses.calls[0].request.body)["messages"][0]["content"]
    assert "sk-proj" not in sent and "[REDACTED:secret]" in sent
    assert usage_rows()[0].detectors == "openai_api_key"


@responses.activate
def test_route_only_to_trusted_providers(gw, gw_client, auth):
    from app.services import groups, models, providers
    policy("route", trusted_levels=["local"])
    groups.put("chat", {}, actor="t")
    for name, trust in (("pub", "public"), ("loc", "local")):
        p = providers.create({"name": name, "type": "openai-compatible", "api_base": f"http://{name}.test/v1",
                              "trust_level": trust}, actor="t")
        models.create({"provider_id": p.id, "model_id": f"m-{name}", "name": "chat",
                       "priority": 0 if name == "pub" else 1}, actor="t")
    responses.post("http://pub.test/v1/chat/completions", json=REPLY)
    responses.post("http://loc.test/v1/chat/completions", json=REPLY)
    gw_client.post("/v1/chat/completions", headers=auth, json={"model": "chat", "messages": CLEAN_MSG})
    gw_client.post("/v1/chat/completions", headers=auth, json={"model": "chat", "messages": SECRET_MSG})
    assert [c.request.url.split("/")[2] for c in responses.calls] == ["pub.test", "loc.test"]


@responses.activate
def test_route_with_no_trusted_deployment_is_refused(gw_client, auth, openai_route):
    policy("route")  # openai_route's provider is public
    responses.post(UP, json=REPLY)
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "mini", "messages": SECRET_MSG})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "content_policy"
    assert len(responses.calls) == 0


@responses.activate
def test_key_policy_overrides_global(gw, gw_client, openai_route):
    from app.services import keys
    policy("block")
    _, raw = keys.create({"name": "trusted-app", "sensitivity": {"action": "allow"}}, actor="t")
    responses.post(UP, json=REPLY)
    r = gw_client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                       json={"model": "mini", "messages": SECRET_MSG})
    assert r.status_code == 200


@responses.activate
def test_admin_keywords(gw_client, auth, openai_route):
    policy("block", keywords=["project bluebird"])
    responses.post(UP, json=REPLY)
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "mini", "messages": [{"role": "user", "content": "status of Project Bluebird?"}]})
    assert r.status_code == 400
