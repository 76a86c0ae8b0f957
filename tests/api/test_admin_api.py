"""The /api/admin automation contract: shapes, auth, errors."""
from __future__ import annotations

import responses

from app.models import AuditLog, GatewayKey, Provider
from app.extensions import db

SECRET = "sk-live-SECRET-abc123"


def provider_payload(**extra):
    body = {"name": "OpenAI prod", "type": "openai", "api_base": "https://api.openai.com/v1",
            "api_key": SECRET}
    body.update(extra)
    return body


def test_requires_bearer_key(client):
    r = client.get("/api/admin/providers")
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "missing_api_key"
    r = client.get("/api/admin/providers", headers={"Authorization": "Bearer gw-nope"})
    assert r.status_code == 401
    assert r.get_json()["error"]["type"] == "authentication_error"


def test_key_without_admin_scope_is_forbidden(client, app):
    from app.services import keys
    _, raw = keys.create({"name": "app", "scopes": ["chat"]}, actor="t")
    r = client.get("/api/admin/providers", headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 403
    assert r.get_json()["error"]["code"] == "insufficient_scope"


def test_master_key_from_environment(app_factory):
    app = app_factory(GATEWAY_MASTER_KEY="master-123456")
    c = app.test_client()
    assert c.get("/api/admin/keys", headers={"Authorization": "Bearer master-123456"}).status_code == 200
    assert c.get("/api/admin/keys", headers={"Authorization": "Bearer master-12345"}).status_code == 401


def test_revoked_and_expired_keys_are_rejected(client, app, api):
    from app.services import keys
    k, raw = keys.create({"name": "ops", "scopes": ["admin"]}, actor="t")
    hdr = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/admin/keys", headers=hdr).status_code == 200
    keys.update(k, {"expires_at": "2000-01-01T00:00:00Z"}, actor="t")
    assert client.get("/api/admin/keys", headers=hdr).status_code == 401
    keys.update(k, {"expires_at": None}, actor="t")
    assert client.get("/api/admin/keys", headers=hdr).status_code == 200
    assert api.delete(f"/api/admin/keys/{k.id}").get_json()["status"] == "revoked"
    assert client.get("/api/admin/keys", headers=hdr).status_code == 401


def test_provider_crud_never_returns_secret(api, app):
    r = api.post("/api/admin/providers", json=provider_payload(config={"organization": "org-1"}))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["has_api_key"] is True
    assert SECRET not in r.get_data(as_text=True)
    assert body["type"] == "openai" and body["slug"] == "openai-prod"
    pid = body["id"]
    # the stored value is encrypted and tagged with the key id
    stored = db.session.get(Provider, pid).secrets_encrypted
    assert SECRET not in stored and "$" in stored

    listing = api.get("/api/admin/providers").get_json()["data"]
    assert [p["name"] for p in listing] == ["OpenAI prod"]
    assert SECRET not in str(listing)

    r = api.patch(f"/api/admin/providers/{pid}", json={"enabled": False, "read_timeout": 30})
    assert r.status_code == 200
    assert r.get_json()["enabled"] is False and r.get_json()["read_timeout"] == 30
    # patch without api_key keeps the secret
    from app.services import providers
    assert providers.decrypt_secrets(db.session.get(Provider, pid)) == {"api_key": SECRET}

    audit = db.session.scalars(db.select(AuditLog).where(AuditLog.entity_type == "provider")).all()
    assert [a.action for a in audit] == ["create", "update"]
    assert SECRET not in str([a.diff for a in audit])
    assert audit[0].diff["api_key"] == [None, "***"]

    assert api.delete(f"/api/admin/providers/{pid}").status_code == 200
    assert api.get(f"/api/admin/providers/{pid}").status_code == 404


def test_provider_validation_errors(api):
    r = api.post("/api/admin/providers", json={"name": "x", "type": "nope", "api_base": "http://a"})
    assert r.status_code == 422
    assert r.get_json()["error"]["param"] == "type"
    r = api.post("/api/admin/providers", json=provider_payload(api_base="ftp://x"))
    assert r.status_code == 422 and r.get_json()["error"]["param"] == "api_base"
    r = api.post("/api/admin/providers", json=provider_payload(default_temperature=7))
    assert r.status_code == 422 and "at most 2" in r.get_json()["error"]["message"]
    r = api.post("/api/admin/providers", json=provider_payload(name=""))
    assert r.status_code == 422 and r.get_json()["error"]["param"] == "name"
    r = api.post("/api/admin/providers", data="not json", content_type="text/plain")
    assert r.status_code == 400
    r = api.post("/api/admin/providers", json=["list"])
    assert r.status_code == 400
    r = api.post("/api/admin/providers", json={"name": "B", "type": "bedrock"})
    assert r.status_code == 422 and "region" in r.get_json()["error"]["message"]


def test_duplicate_provider_name_is_409(api):
    assert api.post("/api/admin/providers", json=provider_payload()).status_code == 201
    r = api.post("/api/admin/providers", json=provider_payload())
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "provider_exists"


def test_preset_type_fills_base_url(api):
    r = api.post("/api/admin/providers", json={"name": "Groq", "type": "groq", "api_key": "gsk_x"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["type"] == "openai-compatible"
    assert body["config"]["preset"] == "groq"
    assert body["api_base"].startswith("https://")


def test_model_crud_and_alias_rules(api):
    pid = api.post("/api/admin/providers", json=provider_payload()).get_json()["id"]
    r = api.post("/api/admin/models", json={"provider_id": pid, "model_id": "gpt-4o-mini",
                                            "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.6})
    assert r.status_code == 201, r.get_json()
    m = r.get_json()
    assert m["name"] == "gpt-4o-mini"  # defaults to model_id
    assert m["kind"] == "chat" and m["input_price_per_mtok"] == 0.15
    # same alias again while enabled -> 409
    pid2 = api.post("/api/admin/providers", json=provider_payload(name="Other")).get_json()["id"]
    r = api.post("/api/admin/models", json={"provider_id": pid2, "model_id": "gpt-4o-mini"})
    assert r.status_code == 409
    # allowed once disabled
    r = api.post("/api/admin/models", json={"provider_id": pid2, "model_id": "gpt-4o-mini",
                                            "enabled": False})
    assert r.status_code == 201
    # bad input
    r = api.post("/api/admin/models", json={"provider_id": 999, "model_id": "x"})
    assert r.status_code == 422 and r.get_json()["error"]["param"] == "provider_id"
    r = api.post("/api/admin/models", json={"provider_id": pid, "model_id": "y",
                                            "input_price_per_mtok": -1})
    assert r.status_code == 422
    r = api.post("/api/admin/models", json={"provider_id": pid, "model_id": "y", "kind": "image"})
    assert r.status_code == 422
    r = api.patch(f"/api/admin/models/{m['id']}", json={"name": "mini", "context_window": 128000})
    assert r.status_code == 200 and r.get_json()["name"] == "mini"
    found = api.get(f"/api/admin/models?q=mini&provider_id={pid}").get_json()["data"]
    assert [(x["name"], x["context_window"]) for x in found] == [("mini", 128000)]
    assert api.delete(f"/api/admin/models/{m['id']}").status_code == 200
    assert api.get(f"/api/admin/models/{m['id']}").status_code == 404


def test_key_creation_returns_secret_once(api, client):
    r = api.post("/api/admin/keys", json={"name": "team-a", "owner": "alice",
                                          "scopes": ["chat", "models"],
                                          "allowed_models": ["gpt-4o*"],
                                          "limits": {"rpm": 60},
                                          "budget": {"amount_usd": 10, "period": "month"},
                                          "expires_at": "2030-01-01T00:00:00Z",
                                          "allowed_ips": ["10.0.0.0/8"]})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    raw = body["key"]
    assert raw.startswith("gw-") and len(raw) > 40
    assert body["prefix"] == raw[:11]
    assert body["limits"]["rpm"] == 60 and body["limits"]["tpm"] is None
    assert body["budget"] == {"amount_usd": "10", "period": "month", "soft_pct": 80}
    row = db.session.get(GatewayKey, body["id"])
    assert raw not in (row.key_hash, row.prefix)
    listing = api.get("/api/admin/keys").get_data(as_text=True)
    assert raw not in listing and body["prefix"] in listing
    one = api.get(f"/api/admin/keys/{body['id']}").get_json()
    assert "key" not in one
    r = api.post("/api/admin/keys", json={"name": "bad", "scopes": ["root"]})
    assert r.status_code == 422
    r = api.post("/api/admin/keys", json={"name": "bad", "allowed_ips": ["not-an-ip"]})
    assert r.status_code == 422
    r = api.post("/api/admin/keys", json={"name": "bad", "limits": {"rpm": 0}})
    assert r.status_code == 422
    r = api.post("/api/admin/keys", json={"name": "bad", "budget": {"amount_usd": 5, "period": "year"}})
    assert r.status_code == 422


@responses.activate
def test_health_endpoint_reports_status(api):
    pid = api.post("/api/admin/providers",
                   json=provider_payload(type="openai-compatible", api_base="http://up.test/v1")).get_json()["id"]
    responses.get("http://up.test/v1/models", json={"object": "list", "data": [
        {"id": "m1", "object": "model", "created": 1, "owned_by": "x"}]})
    r = api.post(f"/api/admin/providers/{pid}/health")
    body = r.get_json()
    assert body["status"] == "healthy" and body["error"] is None and body["latency_ms"] >= 0
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {SECRET}"
    ups = api.get(f"/api/admin/providers/{pid}/upstream-models").get_json()["data"]
    assert [m["id"] for m in ups] == ["m1"] and ups[0]["registered"] is False
    hist = api.get(f"/api/admin/providers/{pid}/health").get_json()["data"]
    assert hist[0]["status"] == "healthy"


def test_unknown_ids_and_paths_are_json_404(api):
    for url in ("/api/admin/providers/12345", "/api/admin/models/9", "/api/admin/keys/9",
                "/api/admin/nothing"):
        r = api.get(url)
        assert r.status_code == 404
        assert set(r.get_json()["error"]) >= {"message", "type", "code"}


def test_rename_onto_existing_name_is_409_not_500(api):
    a = api.post("/api/admin/providers", json=provider_payload(name="A")).get_json()["id"]
    api.post("/api/admin/providers", json=provider_payload(name="B"))
    r = api.patch(f"/api/admin/providers/{a}", json={"name": "B"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "provider_exists"
    assert api.get(f"/api/admin/providers/{a}").get_json()["name"] == "A"
    m1 = api.post("/api/admin/models", json={"provider_id": a, "model_id": "m1"}).get_json()["id"]
    api.post("/api/admin/models", json={"provider_id": a, "model_id": "m2"})
    r = api.patch(f"/api/admin/models/{m1}", json={"model_id": "m2"})
    assert r.status_code == 409
    assert api.get(f"/api/admin/models/{m1}").get_json()["model_id"] == "m1"


def test_preset_can_be_switched_back_to_plain_type(api):
    pid = api.post("/api/admin/providers", json={"name": "G", "type": "groq", "api_key": "gsk_x"}).get_json()["id"]
    r = api.patch(f"/api/admin/providers/{pid}", json={"type": "openai-compatible"})
    assert r.status_code == 200 and "preset" not in r.get_json()["config"]
    r = api.patch(f"/api/admin/providers/{pid}", json={"config": {"organization": "o"}})
    assert r.get_json()["config"] == {"organization": "o"}
    r = api.patch(f"/api/admin/providers/{pid}", json={"type": "mistral"})
    assert r.get_json()["config"]["preset"] == "mistral"
