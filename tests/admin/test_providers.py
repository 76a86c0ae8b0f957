"""Providers: list, per-type form, create/edit/delete, toggle, test connection, import models."""
from __future__ import annotations

import re

import pytest
import requests

from app.extensions import db
from app.models import HealthCheck, Model, Provider

from .helpers import HTMX, MODEL_LIST, SECRET, UPSTREAM, is_fragment, text

VALID = {"name": "Local vLLM", "type": "openai-compatible", "api_base": "http://gpu-box:8000/v1",
         "api_key": "sk-local-1", "trust_level": "local", "connect_timeout": "3",
         "read_timeout": "120", "default_temperature": "0.7", "default_max_tokens": "2048",
         "enabled": "y"}


def fresh(provider_id: int) -> Provider | None:
    db.session.expire_all()
    return db.session.get(Provider, provider_id)


# --- list and detail ----------------------------------------------------------------------------

def test_list_shows_providers_with_health_and_counts(admin_client, make_provider, make_model):
    p = make_provider(name="Acme AI")
    make_model(p)
    make_model(p, model_id="gpt-4o")
    body = text(admin_client.get("/providers"))
    assert "Acme AI" in body and "OpenAI-compatible" in body and UPSTREAM in body
    assert "unknown" in body  # health badge before any check
    assert f'href="/models?provider_id={p.id}">2</a>' in body
    assert f'hx-post="/providers/{p.id}/toggle"' in body


def test_list_empty_state(admin_client):
    body = text(admin_client.get("/providers"))
    assert "No providers yet" in body and "Add provider" in body


def test_list_htmx_returns_table_fragment(admin_client, make_provider):
    make_provider(name="Acme AI")
    r = admin_client.get("/providers", headers=HTMX)
    assert is_fragment(r) and "Acme AI" in text(r) and 'id="providers-table"' in text(r)
    assert "HX-Request" in r.headers["Vary"]


def test_boosted_request_gets_full_page(admin_client):
    r = admin_client.get("/providers", headers={**HTMX, "HX-Boosted": "true"})
    assert "<html" in text(r)


def test_detail_shows_config_models_and_history(admin_client, make_provider, make_model, upstream):
    p = make_provider(name="Acme AI", api_key=SECRET)
    make_model(p, name="fast")
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    admin_client.post(f"/providers/{p.id}/test")
    body = text(admin_client.get(f"/providers/{p.id}"))
    assert "Acme AI" in body and "fast" in body and "gpt-4o-mini" in body
    assert "a key is stored" in body and "Test connection" in body and "Import models" in body
    assert "healthy" in body and "manual" in body  # history row
    assert SECRET not in body


def test_detail_unknown_provider_is_404(admin_client):
    assert admin_client.get("/providers/12345").status_code == 404


# --- the per-type form --------------------------------------------------------------------------

def test_new_form_renders_type_select_with_presets(admin_client):
    body = text(admin_client.get("/providers/new"))
    assert 'name="type"' in body and 'hx-get="/providers/fields"' in body
    assert 'hx-target="#type-fields"' in body
    assert '<optgroup label="OpenAI-compatible services">' in body and "Groq" in body
    for value in ("openai", "azure-openai", "anthropic", "ollama", "bedrock", "xai", "groq", "vllm"):
        assert f'value="{value}"' in body
    assert 'type="password"' in body and 'name="api_key"' in body


@pytest.mark.parametrize("type_,present,absent", [
    ("bedrock", ["aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region"], ["api_key"]),
    ("azure-openai", ["deployment", "embeddings_deployment", "resource", "api_version", "api_key"], ["region"]),
    ("anthropic", ["anthropic_version", "api_key"], ["deployment"]),
    ("groq", ["api_key"], ["region", "deployment"]),
])
def test_type_fields_fragment(admin_client, type_, present, absent):
    r = admin_client.get("/providers/fields", query_string={"type": type_}, headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    body = text(r)
    for name in present:
        assert f'name="{name}"' in body, name
    for name in absent:
        assert f'name="{name}"' not in body, name
    assert 'id="api-base-hint" hx-swap-oob="true"' in body


def test_type_fields_hint_names_the_preset_base(admin_client):
    body = text(admin_client.get("/providers/fields?type=groq", headers=HTMX))
    assert "https://api.groq.com/openai/v1" in body


def test_type_fields_on_edit_say_a_key_is_stored(admin_client, make_provider):
    p = make_provider(api_key=SECRET)
    body = text(admin_client.get(f"/providers/fields?type=openai&provider_id={p.id}", headers=HTMX))
    assert "a key is stored" in body and "leave blank to keep" in body and SECRET not in body


# --- create -------------------------------------------------------------------------------------

def test_create_provider(admin_client, audit_rows):
    r = admin_client.post("/providers/new", data=VALID)
    assert r.status_code == 303
    p = db.session.scalar(db.select(Provider).where(Provider.name == "Local vLLM"))
    assert r.headers["Location"] == f"/providers/{p.id}"
    assert p.type == "openai-compatible" and p.api_base == "http://gpu-box:8000/v1"
    assert p.trust_level == "local" and p.connect_timeout == 3 and p.read_timeout == 120
    assert float(p.default_temperature) == 0.7 and p.default_max_tokens == 2048 and p.enabled
    assert p.has_api_key and "sk-local-1" not in p.secrets_encrypted
    row = audit_rows("provider", "create")[0]
    assert row.actor == "admin" and row.diff["api_key"] == [None, "***"]
    assert "created" in text(admin_client.get(r.headers["Location"]))


def test_create_from_preset_fills_api_base(admin_client):
    r = admin_client.post("/providers/new", data={"name": "Groq", "type": "groq", "api_key": "gsk_x"})
    assert r.status_code == 303
    p = db.session.scalar(db.select(Provider).where(Provider.name == "Groq"))
    assert p.api_base == "https://api.groq.com/openai/v1" and p.config["preset"] == "groq"
    assert "Groq" in text(admin_client.get("/providers"))


def test_create_bedrock_with_per_type_fields(admin_client):
    r = admin_client.post("/providers/new", data={
        "name": "Bedrock", "type": "bedrock", "region": "eu-west-1",
        "aws_access_key_id": "AKIAEXAMPLE000000000", "aws_secret_access_key": "s3cr3t"})
    assert r.status_code == 303
    p = db.session.scalar(db.select(Provider).where(Provider.name == "Bedrock"))
    assert p.config["region"] == "eu-west-1" and "eu-west-1" in p.api_base
    assert p.has_api_key


@pytest.mark.parametrize("data,message", [
    ({"name": ""}, "This field is required"),
    ({"api_base": "ftp://nope"}, "must be an http(s) URL"),
    ({"default_temperature": "3"}, "Number must be between 0 and 2"),
    ({"connect_timeout": "0"}, "Number must be between 0.1 and 600"),
    ({"default_max_tokens": "lots"}, "Not a valid integer value"),
    ({"type": "no-such-type"}, "Not a valid choice"),
])
def test_create_invalid_rerenders_with_message(admin_client, count, data, message):
    r = admin_client.post("/providers/new", data={**VALID, **data})
    assert r.status_code == 422
    assert message in text(r)
    assert count(Provider) == 0
    assert 'value="sk-local-1"' not in text(r)  # a typed secret is not echoed back


def test_create_bedrock_bad_region_is_field_error(admin_client, count):
    r = admin_client.post("/providers/new", data={"name": "B", "type": "bedrock", "region": "mars",
                                                  "aws_access_key_id": "AKIA", "aws_secret_access_key": "x"})
    assert r.status_code == 422
    assert "region must look like us-east-1" in text(r)
    assert count(Provider) == 0


def test_duplicate_name_is_a_form_error(admin_client, make_provider, count):
    make_provider(name="Local vLLM")
    r = admin_client.post("/providers/new", data=VALID)
    assert r.status_code == 422
    assert "already exists" in text(r)
    assert count(Provider) == 1


def test_viewer_cannot_create(viewer_client, count):
    r = viewer_client.post("/providers/new", data=VALID)
    assert r.status_code == 403
    assert count(Provider) == 0


# --- edit ---------------------------------------------------------------------------------------

def test_edit_form_prefilled_without_secret(admin_client, make_provider):
    p = make_provider(name="Acme AI", api_key=SECRET)
    body = text(admin_client.get(f"/providers/{p.id}/edit"))
    assert 'value="Acme AI"' in body and f'value="{UPSTREAM}"' in body
    assert "leave blank to keep" in body and "a key is stored" in body
    assert SECRET not in body


def test_edit_blank_secret_keeps_it(admin_client, make_provider, audit_rows):
    from app.services.providers import decrypt_secrets
    p = make_provider(name="Acme AI", api_key=SECRET)
    data = {"name": "Acme AI renamed", "type": "openai-compatible", "api_base": UPSTREAM,
            "api_key": "", "trust_level": "private", "enabled": "y"}
    r = admin_client.post(f"/providers/{p.id}/edit", data=data)
    assert r.status_code == 303
    p = fresh(p.id)
    assert p.name == "Acme AI renamed" and p.trust_level == "private"
    assert decrypt_secrets(p) == {"api_key": SECRET}
    diff = audit_rows("provider", "update")[0].diff
    assert diff["name"] == ["Acme AI", "Acme AI renamed"] and "api_key" not in diff


def test_edit_new_secret_replaces_it(admin_client, make_provider, audit_rows):
    from app.services.providers import decrypt_secrets
    p = make_provider(api_key=SECRET)
    data = {"name": p.name, "type": "openai-compatible", "api_base": UPSTREAM, "api_key": "sk-new-1",
            "trust_level": "public", "enabled": "y"}
    assert admin_client.post(f"/providers/{p.id}/edit", data=data).status_code == 303
    assert decrypt_secrets(fresh(p.id)) == {"api_key": "sk-new-1"}
    assert audit_rows("provider", "update")[0].diff["api_key"] == ["***", "***"]


def test_edit_can_clear_the_secret(admin_client, make_provider):
    p = make_provider(api_key=SECRET)
    data = {"name": p.name, "type": "openai-compatible", "api_base": UPSTREAM, "trust_level": "public",
            "enabled": "y", "clear_secret": "y"}
    assert admin_client.post(f"/providers/{p.id}/edit", data=data).status_code == 303
    assert not fresh(p.id).has_api_key


def test_edit_duplicate_name_is_422_and_unchanged(admin_client, make_provider):
    make_provider(name="First")
    p = make_provider(name="Second")
    data = {"name": "First", "type": "openai-compatible", "api_base": UPSTREAM, "trust_level": "public",
            "enabled": "y"}
    r = admin_client.post(f"/providers/{p.id}/edit", data=data)
    assert r.status_code == 422 and "already exists" in text(r)
    assert fresh(p.id).name == "Second"


def test_edit_invalid_url_is_422(admin_client, make_provider):
    p = make_provider()
    data = {"name": p.name, "type": "openai-compatible", "api_base": "not a url", "trust_level": "public"}
    r = admin_client.post(f"/providers/{p.id}/edit", data=data)
    assert r.status_code == 422 and "http(s) URL" in text(r)
    assert fresh(p.id).api_base == UPSTREAM


def test_edit_preserves_preset_and_config(admin_client):
    admin_client.post("/providers/new", data={"name": "Azure", "type": "azure-openai",
                                              "api_base": "https://r.openai.azure.com", "api_key": "k",
                                              "deployment": "gpt4o", "resource": "r"})
    p = db.session.scalar(db.select(Provider).where(Provider.name == "Azure"))
    assert p.config == {"deployment": "gpt4o", "resource": "r"} and p.api_version == "2024-10-21"
    body = text(admin_client.get(f"/providers/{p.id}/edit"))
    assert 'value="gpt4o"' in body and 'value="2024-10-21"' in body
    data = {"name": "Azure", "type": "azure-openai", "api_base": "https://r.openai.azure.com",
            "deployment": "gpt4o-2", "resource": "r", "api_version": "2025-01-01", "trust_level": "private",
            "enabled": "y"}
    assert admin_client.post(f"/providers/{p.id}/edit", data=data).status_code == 303
    p = fresh(p.id)
    assert p.config == {"deployment": "gpt4o-2", "resource": "r"} and p.api_version == "2025-01-01"


def test_viewer_cannot_edit(viewer_client, make_provider):
    p = make_provider(name="Keep")
    assert viewer_client.get(f"/providers/{p.id}/edit").status_code == 403
    r = viewer_client.post(f"/providers/{p.id}/edit", data={"name": "Changed", "type": "openai"})
    assert r.status_code == 403 and fresh(p.id).name == "Keep"


# --- secrets never in HTML ----------------------------------------------------------------------

def test_secret_never_rendered(admin_client, make_provider, make_model):
    admin_client.post("/providers/new", data={**VALID, "name": "Secretive", "api_key": SECRET})
    p = db.session.scalar(db.select(Provider).where(Provider.name == "Secretive"))
    make_model(p)
    for url in ("/", "/providers", f"/providers/{p.id}", f"/providers/{p.id}/edit",
                f"/providers/{p.id}/delete", "/models", "/audit", "/health",
                f"/providers/fields?type=openai-compatible&provider_id={p.id}"):
        r = admin_client.get(url)
        assert r.status_code == 200, url
        assert SECRET not in text(r), url
        assert p.secrets_encrypted not in text(r), url


# --- toggle -------------------------------------------------------------------------------------

def test_toggle_htmx_swaps_the_row(admin_client, make_provider, audit_rows):
    p = make_provider(name="Acme AI")
    r = admin_client.post(f"/providers/{p.id}/toggle", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    body = text(r)
    assert body.strip().startswith("<tr") and f'id="provider-{p.id}"' in body
    assert 'aria-checked="false"' in body and "disabled" in body
    assert fresh(p.id).enabled is False
    assert audit_rows("provider", "update")[0].diff["enabled"] == [True, False]
    admin_client.post(f"/providers/{p.id}/toggle", headers=HTMX)
    assert fresh(p.id).enabled is True


def test_toggle_without_htmx_redirects(admin_client, make_provider):
    p = make_provider()
    r = admin_client.post(f"/providers/{p.id}/toggle")
    assert r.status_code == 303 and r.headers["Location"] == "/providers"
    assert fresh(p.id).enabled is False


def test_viewer_cannot_toggle(viewer_client, make_provider):
    p = make_provider()
    assert viewer_client.post(f"/providers/{p.id}/toggle", headers=HTMX).status_code == 403
    assert fresh(p.id).enabled is True


# --- delete -------------------------------------------------------------------------------------

def test_delete_asks_then_deletes(admin_client, make_provider, make_model, count, audit_rows):
    p = make_provider(name="Doomed")
    make_model(p)
    page = admin_client.get(f"/providers/{p.id}/delete")
    assert page.status_code == 200
    assert "Delete provider “Doomed”?" in text(page) and "1 model(s)" in text(page)
    assert count(Provider) == 1
    r = admin_client.post(f"/providers/{p.id}/delete")
    assert r.status_code == 303 and r.headers["Location"] == "/providers"
    assert count(Provider) == 0 and count(Model) == 0
    assert audit_rows("provider", "delete")[0].entity_name == "Doomed"
    assert "deleted" in text(admin_client.get("/providers"))


def test_viewer_cannot_delete(viewer_client, make_provider, count):
    p = make_provider()
    assert viewer_client.get(f"/providers/{p.id}/delete").status_code == 403
    assert viewer_client.post(f"/providers/{p.id}/delete").status_code == 403
    assert count(Provider) == 1


# --- test connection ----------------------------------------------------------------------------

def test_test_connection_healthy(admin_client, make_provider, upstream, count):
    p = make_provider()
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    r = admin_client.post(f"/providers/{p.id}/test", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    body = text(r)
    assert 'id="test-result"' in body and "healthy" in body and " ms" in body
    assert 'id="provider-health" hx-swap-oob="true"' in body  # the health card refreshes too
    assert upstream.calls[0].request.headers["Authorization"] == "Bearer sk-test-secret-123"
    assert fresh(p.id).health_status == "healthy" and count(HealthCheck) == 1


def test_test_connection_401_shows_upstream_error(admin_client, make_provider, upstream):
    p = make_provider()
    upstream.get(f"{UPSTREAM}/models", status=401, json={"error": {
        "message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})
    r = admin_client.post(f"/providers/{p.id}/test", headers=HTMX)
    assert r.status_code == 200
    body = text(r)
    assert "unhealthy" in body and "HTTP 401" in body and "rejected the gateway" in body
    assert fresh(p.id).health_status == "unhealthy"


def test_test_connection_refused_is_unhealthy_not_500(admin_client, make_provider, upstream):
    p = make_provider()
    upstream.get(f"{UPSTREAM}/models", body=requests.ConnectionError("[Errno 111] Connection refused"))
    r = admin_client.post(f"/providers/{p.id}/test", headers=HTMX)
    assert r.status_code == 200
    assert "unhealthy" in text(r) and "connection refused" in text(r)


def test_test_connection_without_htmx_flashes(admin_client, make_provider, upstream):
    p = make_provider()
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    r = admin_client.post(f"/providers/{p.id}/test")
    assert r.status_code == 303
    assert "healthy" in text(admin_client.get(r.headers["Location"]))


def test_viewer_cannot_test(viewer_client, make_provider, count):
    p = make_provider()
    assert viewer_client.post(f"/providers/{p.id}/test", headers=HTMX).status_code == 403
    assert count(HealthCheck) == 0


# --- import models ------------------------------------------------------------------------------

def test_import_lists_upstream_models(admin_client, make_provider, make_model, upstream):
    p = make_provider()
    make_model(p, model_id="gpt-4o-mini")
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    r = admin_client.get(f"/providers/{p.id}/import")
    assert r.status_code == 200
    body = text(r)
    assert "gpt-4o" in body and "text-embedding-3-small" in body and "embedding" in body
    assert re.search(r'value="gpt-4o-mini" id="m-\d+"\s+disabled checked', body)
    assert not re.search(r'value="gpt-4o" id="m-\d+"\s+disabled', body)
    assert "2 not registered yet" in body


def test_import_creates_ticked_models(admin_client, make_provider, make_model, upstream, audit_rows):
    p = make_provider()
    make_model(p, model_id="gpt-4o-mini")
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    r = admin_client.post(f"/providers/{p.id}/import",
                          data={"model": ["gpt-4o", "text-embedding-3-small", "gpt-4o-mini", "not-upstream"]})
    assert r.status_code == 303 and r.headers["Location"] == f"/providers/{p.id}"
    models = {m.model_id: m for m in fresh(p.id).models}
    assert set(models) == {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}
    assert models["text-embedding-3-small"].kind == "embedding"
    assert len(audit_rows("model", "import")) == 2
    assert "Imported 2 model(s)" in text(admin_client.get(r.headers["Location"]))


def test_import_nothing_ticked_is_422(admin_client, make_provider, upstream, count):
    p = make_provider()
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    r = admin_client.post(f"/providers/{p.id}/import", data={})
    assert r.status_code == 422 and "Tick at least one model" in text(r)
    assert count(Model) == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"status": 401, "json": {"error": {"message": "Incorrect API key provided"}}}, "HTTP 401"),
    ({"body": requests.ConnectionError("Connection refused")}, "could not reach the upstream"),
    ({"status": 200, "body": "not json"}, "could not be read"),
])
def test_import_upstream_failure_is_a_message(admin_client, make_provider, upstream, count, kwargs, message):
    p = make_provider()
    upstream.get(f"{UPSTREAM}/models", **kwargs)
    r = admin_client.get(f"/providers/{p.id}/import")
    assert r.status_code == 502
    assert "Could not list the upstream" in text(r) and message in text(r)
    r = admin_client.post(f"/providers/{p.id}/import", data={"model": ["gpt-4o"]})
    assert r.status_code == 502 and count(Model) == 0


def test_viewer_cannot_import(viewer_client, make_provider, upstream, count):
    p = make_provider()
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    assert viewer_client.get(f"/providers/{p.id}/import").status_code == 403
    assert viewer_client.post(f"/providers/{p.id}/import", data={"model": ["gpt-4o"]}).status_code == 403
    assert count(Model) == 0


@pytest.mark.parametrize("type_,optional", [("groq", False), ("vllm", True), ("openai", False),
                                            ("openai-compatible", True)])
def test_secret_hint_follows_preset(admin_client, type_, optional):
    body = text(admin_client.get(f"/providers/fields?type={type_}", headers=HTMX))
    assert ("Optional for this type." in body) is optional
