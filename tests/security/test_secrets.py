"""Secrets never leave: distinctive provider secrets, gateway keys and the admin password are
set, the app is exercised broadly (every page, exports, API reads, errors, audit, health checks
against an upstream that echoes the key, /metrics, logs), and every output is grepped."""
from __future__ import annotations

import logging
import re

import pytest
import responses

from .conftest import PROVIDER_SECRET, build, console_rules, login

FORM_SECRET = "sk-form-Z9q8W7e6R5t4Y3u2"
ROTATED_SECRET = "sk-rotated-K1l2M3n4B5v6C7x8"
UP = "http://upstream.test/v1"


def test_no_secret_in_any_output(sec_app, world, caplog):
    caplog.set_level(logging.DEBUG)
    from app.services import keys
    _, admin_raw = keys.create({"name": "automation", "scopes": ["admin"]}, actor="test")
    chat_raw = world["raw_key"]
    secrets = {PROVIDER_SECRET, FORM_SECRET, ROTATED_SECRET, admin_raw, chat_raw}
    outputs: list[tuple[str, str]] = []
    h = {"Authorization": f"Bearer {admin_raw}"}
    admin = login(sec_app, "admin")
    api = sec_app.test_client()

    def keep(label, r):
        outputs.append((label, r.get_data(as_text=True) + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items()
                                                                         if k.lower() != "set-cookie")))
        return r

    with responses.RequestsMock(assert_all_requests_are_fired=False) as up:
        echo = {"error": {"message": f"Incorrect API key provided: {PROVIDER_SECRET}. Bearer {PROVIDER_SECRET}",
                          "type": "invalid_request_error", "code": "invalid_api_key"}}
        up.add(responses.GET, f"{UP}/models", json=echo, status=401)
        up.add(responses.POST, f"{UP}/chat/completions", json=echo, status=401)
        # secret entry through the console form, then a rotation through the edit form
        keep("create form", admin.post("/providers/new", data={
            "name": "Form Provider", "type": "openai-compatible", "api_base": UP, "api_key": FORM_SECRET}))
        from app.extensions import db
        from app.models import Provider
        form_p = db.session.scalar(db.select(Provider).where(Provider.name == "Form Provider"))
        assert form_p is not None
        keep("edit form", admin.post(f"/providers/{form_p.id}/edit", data={
            "name": "Form Provider", "type": "openai-compatible", "api_base": UP, "api_key": ROTATED_SECRET}))
        keep("edit page", admin.get(f"/providers/{form_p.id}/edit"))
        # health checks and tests against an upstream that echoes the key back
        keep("test", admin.post(f"/providers/{world['ids']['provider_id']}/test", headers={"HX-Request": "true"}))
        keep("check", admin.post(f"/health/{world['ids']['provider_id']}/check", headers={"HX-Request": "true"}))
        keep("api check", api.post(f"/api/admin/providers/{world['ids']['provider_id']}/health", headers=h))
        keep("import", admin.get(f"/providers/{world['ids']['provider_id']}/import"))
        keep("api upstream models", api.get(f"/api/admin/providers/{world['ids']['provider_id']}/upstream-models", headers=h))
        # a proxied call whose upstream echoes the key; and bad auth attempts
        keep("proxy", api.post("/v1/chat/completions", headers={"Authorization": f"Bearer {chat_raw}"},
                               json={"model": "mini", "messages": [{"role": "user", "content": "hi"}]}))
        keep("bad key", api.post("/v1/chat/completions", headers={"Authorization": f"Bearer {chat_raw}x"},
                                 json={"model": "mini", "messages": []}))
        keep("bad login", sec_app.test_client().post("/login", data={"username": "admin", "password": PROVIDER_SECRET}))
    # every console page, every export, the API's reads, the metrics
    for endpoint, methods, rule in console_rules(sec_app):
        if "GET" in methods and endpoint not in ("admin.login",):
            keep(endpoint, admin.get(build(sec_app, rule, world)))
    for url in ("/requests/export.csv", "/requests/export.jsonl", "/usage/charts/requests.csv",
                "/audit?entity=provider", f"/playground/conversations/{world['ids']['conversation_id']}/export.json"):
        keep(url, admin.get(url))
    for url in ("/api/admin/providers", f"/api/admin/providers/{world['ids']['provider_id']}",
                f"/api/admin/providers/{form_p.id}", "/api/admin/keys", f"/api/admin/keys/{world['ids']['key_id']}",
                "/api/admin/audit?limit=1000", "/api/admin/requests", "/api/admin/requests/export",
                f"/api/admin/providers/{world['ids']['provider_id']}/health", "/openapi.json"):
        keep(url, api.get(url, headers=h))
    keep("metrics", api.get("/metrics"))
    keep("404", admin.get("/providers/999999"))
    keep("api 404", api.get("/api/admin/providers/999999", headers=h))
    outputs.append(("logs", "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)))
    # the audit diffs and health history, as stored
    from app.models import AuditLog, HealthCheck
    outputs.append(("audit rows", "\n".join(repr((a.diff, a.entity_name)) for a in db.session.scalars(db.select(AuditLog)))))
    outputs.append(("health rows", "\n".join(repr(c.error) for c in db.session.scalars(db.select(HealthCheck)))))

    assert len(outputs) > 60
    leaks = []
    for label, text in outputs:
        for secret in secrets:
            for probe in (secret, secret[-12:]):  # the whole secret, or its distinctive tail
                if probe in text:
                    leaks.append(f"{label}: {probe[:8]}...")
    assert not leaks, "\n".join(sorted(set(leaks)))
    # and the exercise really happened: the rotation is audited, the health check recorded the 401
    assert any("api_key" in (a.diff or {}) for a in db.session.scalars(db.select(AuditLog)))
    assert db.session.scalar(db.select(HealthCheck.error).order_by(HealthCheck.id.desc())).startswith("HTTP 401")


def test_provider_secret_is_encrypted_at_rest(sec_app, world):
    from app.extensions import db
    with db.engine.connect() as conn:
        dump = "\n".join(repr(tuple(row)) for table in db.metadata.sorted_tables
                         for row in conn.execute(table.select()))
    assert PROVIDER_SECRET not in dump and PROVIDER_SECRET[-12:] not in dump


def test_gateway_keys_are_stored_hashed(sec_app, world):
    from app.extensions import db
    from app.services.keys import hash_key
    raw = world["raw_key"]
    with db.engine.connect() as conn:
        dump = "\n".join(repr(tuple(row)) for table in db.metadata.sorted_tables
                         for row in conn.execute(table.select()))
    assert raw not in dump and raw[12:] not in dump  # only the shown prefix may be stored
    assert hash_key(raw) in dump and re.fullmatch(r"[0-9a-f]{64}", hash_key(raw))


def test_gateway_keys_are_looked_up_by_hash_and_compared_in_constant_time(sec_app, world, monkeypatch):
    import hmac
    import inspect

    from app.services import keys
    source = inspect.getsource(keys.find_by_secret)
    assert "hash_key(raw)" in source and "key_hash ==" in source  # an indexed lookup of the digest
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert keys.find_by_secret(world["raw_key"]).id == world["key"].id
    assert calls and calls[-1][0] == calls[-1][1] == keys.hash_key(world["raw_key"])
    assert keys.find_by_secret(world["raw_key"][:-1] + "x") is None
    # the master key and the metrics token are compared with compare_digest as well
    from app import api, ops
    assert "compare_digest" in inspect.getsource(api) and "compare_digest" in inspect.getsource(ops)


@pytest.mark.parametrize("header", ["Bearer ", "Bearer sk-", "Basic abc", "Bearer " + "a" * 10000])
def test_malformed_credentials_are_a_clean_401(sec_app, world, header):
    c = sec_app.test_client()
    for path in ("/v1/models", "/api/admin/providers"):
        r = c.get(path, headers={"Authorization": header})
        assert r.status_code == 401 and r.json["error"]["type"] == "authentication_error"
