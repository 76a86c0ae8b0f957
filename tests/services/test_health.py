"""Health checks per provider type against `responses` fakes: healthy, 401, timeout, refused."""
from __future__ import annotations

import pytest
import requests
import responses

from app.extensions import db
from app.models import HealthCheck
from app.services import health, providers

TYPES = {
    "openai-compatible": ({"api_base": "http://oai.test/v1", "api_key": "sk-a"},
                          "http://oai.test/v1/models",
                          {"object": "list", "data": [{"id": "m", "object": "model"}]}),
    "anthropic": ({"api_base": "http://ant.test", "api_key": "sk-ant-x"},
                  "http://ant.test/v1/models",
                  {"data": [{"id": "claude-sonnet-4-5", "type": "model"}], "has_more": False}),
    "ollama": ({"api_base": "http://oll.test:11434"}, "http://oll.test:11434/api/tags",
               {"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}]}),
    "azure-openai": ({"api_base": "https://res.openai.azure.com", "api_key": "az-key",
                      "api_version": "2024-10-21"},
                     "https://res.openai.azure.com/openai/models",
                     {"data": [{"id": "gpt-4o", "object": "model"}]}),
    "bedrock": ({"api_base": "https://bedrock-runtime.us-east-1.amazonaws.com",
                 "config": {"region": "us-east-1"}, "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
                 "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
                "https://bedrock.us-east-1.amazonaws.com/foundation-models",
                {"modelSummaries": [{"modelId": "amazon.titan-embed-text-v2:0",
                                     "outputModalities": ["EMBEDDING"]}]}),
}


def make(type_):
    data, url, ok_body = TYPES[type_]
    p = providers.create({"name": f"P {type_}", "type": type_, **data}, actor="t")
    return p, url, ok_body


@pytest.mark.parametrize("type_", sorted(TYPES))
@responses.activate
def test_healthy(app, type_):
    p, url, body = make(type_)
    responses.get(url, json=body)
    result = health.check(p)
    assert result["status"] == "healthy", result
    assert result["error"] is None and result["latency_ms"] is not None
    sent = responses.calls[0].request
    if type_ == "anthropic":
        assert sent.headers["x-api-key"] == "sk-ant-x" and "anthropic-version" in sent.headers
    if type_ == "azure-openai":
        assert sent.headers["api-key"] == "az-key" and "api-version=2024-10-21" in sent.url
    if type_ == "bedrock":
        assert sent.headers["Authorization"].startswith("AWS4-HMAC-SHA256")
    assert p.health_status == "healthy"
    rows = db.session.scalars(db.select(HealthCheck).where(HealthCheck.provider_id == p.id)).all()
    assert [r.status for r in rows] == ["healthy"]
    listed = health.upstream_models(p)
    assert listed and all("id" in m for m in listed)


@pytest.mark.parametrize("type_", sorted(TYPES))
@responses.activate
def test_unauthorized(app, type_):
    p, url, _ = make(type_)
    responses.get(url, status=401, json={"error": {"message": "invalid x-api-key", "type": "authentication_error"}})
    result = health.check(p)
    assert result["status"] == "unhealthy"
    assert result["error"].startswith("HTTP 401")
    assert p.health_error == result["error"]


@pytest.mark.parametrize("type_", sorted(TYPES))
@responses.activate
def test_timeout(app, type_):
    p, url, _ = make(type_)
    responses.get(url, body=requests.exceptions.ReadTimeout("slow"))
    result = health.check(p)
    assert result["status"] == "unhealthy" and "timed out" in result["error"]


def test_refused_is_unhealthy_not_500(app, api):
    p = providers.create({"name": "Nothing here", "type": "openai-compatible",
                          "api_base": "http://127.0.0.1:9/v1", "api_key": "k"}, actor="t")
    r = api.post(f"/api/admin/providers/{p.id}/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "unhealthy" and body["error"] == "connection refused"
    r = api.get(f"/api/admin/providers/{p.id}/upstream-models")
    assert r.status_code == 400 and "connection refused" in r.get_json()["error"]["message"]


def test_history_is_bounded(app, monkeypatch):
    monkeypatch.setattr(health, "HISTORY_KEEP", 3)
    p = providers.create({"name": "H", "type": "openai-compatible",
                          "api_base": "http://127.0.0.1:9/v1"}, actor="t")
    for _ in range(5):
        health.check(p)
    assert len(health.history(p.id, limit=100)) == 3


def test_scheduled_run_takes_a_lease(app):
    providers.create({"name": "L", "type": "openai-compatible", "api_base": "http://127.0.0.1:9/v1"},
                     actor="t")
    assert health.run_scheduled_once("worker-a") is True
    assert health.run_scheduled_once("worker-b") is False  # same interval: someone else ran it
    assert db.session.scalar(db.select(db.func.count(HealthCheck.id))) == 1


@responses.activate
def test_health_checks_feed_the_breakers(app):
    from app.services import models
    from app.services.router import router
    p = providers.create({"name": "B", "type": "openai-compatible", "api_base": "http://b.test/v1",
                          "api_key": "k"}, actor="t")
    m = models.create({"provider_id": p.id, "model_id": "m"}, actor="t")
    responses.get("http://b.test/v1/models", status=401, json={"error": {"message": "bad key"}})
    health.check(p)
    import time
    assert router().breaker.state(m.id, time.time())["state"] == "disabled"
