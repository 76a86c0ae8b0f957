"""Models: live search, filters, create/edit/delete, toggle."""
from __future__ import annotations

from decimal import Decimal

import pytest

from app.extensions import db
from app.models import Model

from .helpers import HTMX, is_fragment, text


def fresh(model_pk: int) -> Model | None:
    db.session.expire_all()
    return db.session.get(Model, model_pk)


@pytest.fixture
def catalog(make_provider, make_model):
    """Two providers, three models."""
    openai = make_provider(name="OpenAI")
    local = make_provider(name="Local", api_base="http://gpu:8000/v1")
    return {
        "mini": make_model(openai, model_id="gpt-4o-mini", context_window=128000),
        "embed": make_model(openai, model_id="text-embedding-3-small", kind="embedding"),
        "llama": make_model(local, model_id="llama-3.1-8b", name="llama"),
        "openai": openai, "local": local,
    }


def valid(pid: int, **extra) -> dict:
    return {"provider_id": str(pid), "model_id": "gpt-4.1", "name": "smart", "kind": "chat",
            "supports_streaming": "y", "supports_tools": "y", "context_window": "1000000",
            "max_output_tokens": "32768", "input_price_per_mtok": "2", "output_price_per_mtok": "8",
            "cached_input_price_per_mtok": "0.5", "priority": "5", "weight": "2", "enabled": "y",
            **extra}


# --- list and search ----------------------------------------------------------------------------

def test_list_shows_models(admin_client, catalog):
    body = text(admin_client.get("/models"))
    for name in ("gpt-4o-mini", "text-embedding-3-small", "llama", "llama-3.1-8b", "OpenAI", "Local"):
        assert name in body
    assert "$0.15" in body and "$0.60" in body and "128,000" in body
    assert 'hx-trigger="keyup changed delay:300ms, search"' in body
    assert 'hx-target="#models-table"' in body


def test_search_htmx_returns_table_only(admin_client, catalog):
    r = admin_client.get("/models", query_string={"q": "llama"}, headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    body = text(r)
    assert "llama-3.1-8b" in body and "gpt-4o-mini" not in body
    assert "toolbar" not in body  # the search box is not re-sent
    assert "HX-Request" in r.headers["Vary"]


def test_search_matches_provider_name(admin_client, catalog):
    body = text(admin_client.get("/models?q=local", headers=HTMX))
    assert "llama" in body and "gpt-4o-mini" not in body


def test_search_without_htmx_renders_full_page_with_query(admin_client, catalog):
    body = text(admin_client.get("/models?q=embedding"))
    assert "<html" in body and 'value="embedding"' in body
    assert "text-embedding-3-small" in body and "gpt-4o-mini" not in body


def test_history_restore_gets_full_page(admin_client, catalog):
    r = admin_client.get("/models?q=llama", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in text(r)


def test_filter_by_provider_and_kind(admin_client, catalog):
    body = text(admin_client.get(f"/models?provider_id={catalog['openai'].id}", headers=HTMX))
    assert "gpt-4o-mini" in body and "llama-3.1-8b" not in body
    body = text(admin_client.get("/models?kind=embedding", headers=HTMX))
    assert "text-embedding-3-small" in body and "gpt-4o-mini" not in body
    body = text(admin_client.get("/models?q=zzz", headers=HTMX))
    assert "No models match" in body


def test_empty_list(admin_client):
    assert "No models yet" in text(admin_client.get("/models"))


# --- create -------------------------------------------------------------------------------------

def test_new_form_lists_providers_and_fields(admin_client, catalog):
    body = text(admin_client.get(f"/models/new?provider_id={catalog['local'].id}"))
    assert f'<option selected value="{catalog["local"].id}">Local</option>' in body
    for name in ("model_id", "name", "kind", "supports_tools", "supports_vision", "supports_json",
                 "context_window", "max_output_tokens", "input_price_per_mtok", "output_price_per_mtok",
                 "cached_input_price_per_mtok", "enabled", "deprecated"):
        assert f'name="{name}"' in body, name


def test_create_model(admin_client, make_provider, audit_rows):
    p = make_provider()
    r = admin_client.post("/models/new", data=valid(p.id))
    assert r.status_code == 303 and r.headers["Location"] == "/models"
    m = db.session.scalar(db.select(Model).where(Model.name == "smart"))
    assert m.provider_id == p.id and m.model_id == "gpt-4.1" and m.kind == "chat"
    assert m.supports_streaming and m.supports_tools and not m.supports_vision and not m.supports_json
    assert m.context_window == 1_000_000 and m.max_output_tokens == 32768
    assert m.input_price_per_mtok == Decimal(2) and m.output_price_per_mtok == Decimal(8)
    assert m.cached_input_price_per_mtok == Decimal("0.5")
    assert m.priority == 5 and m.weight == 2 and m.enabled and not m.deprecated
    row = audit_rows("model", "create")[0]
    assert row.actor == "admin" and row.entity_name == "smart"
    assert "created" in text(admin_client.get("/models"))


def test_blank_alias_defaults_to_upstream_id(admin_client, make_provider):
    p = make_provider()
    admin_client.post("/models/new", data=valid(p.id, name=""))
    assert db.session.scalar(db.select(Model.name).where(Model.model_id == "gpt-4.1")) == "gpt-4.1"


@pytest.mark.parametrize("change,message", [
    ({"model_id": ""}, "This field is required"),
    ({"context_window": "0"}, "Number must be between 1 and 100000000"),
    ({"input_price_per_mtok": "-1"}, "Number must be between 0 and 100000"),
    ({"output_price_per_mtok": "abc"}, "Not a valid decimal value"),
    ({"priority": "5000"}, "Number must be between -1000 and 1000"),
    ({"kind": "image"}, "Not a valid choice"),
    ({"provider_id": "999"}, "Not a valid choice"),
])
def test_create_invalid_is_422(admin_client, make_provider, count, change, message):
    p = make_provider()
    r = admin_client.post("/models/new", data=valid(p.id, **change))
    assert r.status_code == 422
    assert message in text(r)
    assert count(Model) == 0


def test_duplicate_alias_is_form_error(admin_client, catalog, count):
    r = admin_client.post("/models/new", data=valid(catalog["local"].id, name="gpt-4o-mini"))
    assert r.status_code == 422
    assert "an enabled model named" in text(r) and "already exists" in text(r)
    assert count(Model) == 3


def test_duplicate_upstream_id_is_form_error(admin_client, catalog, count):
    r = admin_client.post("/models/new", data=valid(catalog["openai"].id, model_id="gpt-4o-mini", name="x"))
    assert r.status_code == 422 and "already registered for this provider" in text(r)
    assert count(Model) == 3


def test_viewer_cannot_create(viewer_client, make_provider, count):
    p = make_provider()
    assert viewer_client.post("/models/new", data=valid(p.id)).status_code == 403
    assert count(Model) == 0


# --- edit ---------------------------------------------------------------------------------------

def test_edit_form_prefilled(admin_client, catalog):
    m = catalog["mini"]
    body = text(admin_client.get(f"/models/{m.id}/edit"))
    assert 'value="gpt-4o-mini"' in body and 'value="0.15"' in body and 'value="0.6"' in body
    assert 'value="128000"' in body and "Edit model" in body


def test_edit_model(admin_client, catalog, audit_rows):
    m = catalog["mini"]
    data = valid(m.provider_id, model_id="gpt-4o-mini", name="mini", input_price_per_mtok="0.2")
    r = admin_client.post(f"/models/{m.id}/edit", data=data)
    assert r.status_code == 303
    m = fresh(m.id)
    assert m.name == "mini" and m.input_price_per_mtok == Decimal("0.2")
    diff = audit_rows("model", "update")[0].diff
    assert diff["name"] == ["gpt-4o-mini", "mini"]


def test_edit_onto_existing_upstream_id_is_422(admin_client, catalog):
    m = catalog["embed"]
    r = admin_client.post(f"/models/{m.id}/edit",
                          data=valid(m.provider_id, model_id="gpt-4o-mini", name="embedder"))
    assert r.status_code == 422 and "already registered" in text(r)
    assert fresh(m.id).model_id == "text-embedding-3-small"


def test_edit_invalid_is_422_and_unchanged(admin_client, catalog):
    m = catalog["mini"]
    r = admin_client.post(f"/models/{m.id}/edit", data=valid(m.provider_id, max_output_tokens="-5"))
    assert r.status_code == 422
    assert fresh(m.id).model_id == "gpt-4o-mini"


def test_viewer_cannot_edit(viewer_client, catalog):
    m = catalog["mini"]
    assert viewer_client.get(f"/models/{m.id}/edit").status_code == 403
    assert viewer_client.post(f"/models/{m.id}/edit", data=valid(m.provider_id)).status_code == 403
    assert fresh(m.id).name == "gpt-4o-mini"


# --- delete and toggle --------------------------------------------------------------------------

def test_delete_confirm_then_delete(admin_client, catalog, count, audit_rows):
    m = catalog["llama"]
    page = admin_client.get(f"/models/{m.id}/delete")
    assert page.status_code == 200 and "Delete model “llama”?" in text(page)
    r = admin_client.post(f"/models/{m.id}/delete")
    assert r.status_code == 303 and count(Model) == 2
    assert audit_rows("model", "delete")[0].entity_name == "llama"


def test_viewer_cannot_delete(viewer_client, catalog, count):
    assert viewer_client.post(f"/models/{catalog['llama'].id}/delete").status_code == 403
    assert count(Model) == 3


def test_toggle_swaps_row(admin_client, catalog, audit_rows):
    m = catalog["mini"]
    r = admin_client.post(f"/models/{m.id}/toggle", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    assert text(r).strip().startswith("<tr") and 'aria-checked="false"' in text(r)
    assert fresh(m.id).enabled is False
    assert audit_rows("model", "update")[0].diff["enabled"] == [True, False]


def test_toggle_conflict_shows_in_row(admin_client, catalog, make_model):
    m = catalog["mini"]
    admin_client.post(f"/models/{m.id}/toggle", headers=HTMX)  # off
    make_model(catalog["local"], model_id="gpt-4o-mini")         # takes the name
    r = admin_client.post(f"/models/{m.id}/toggle", headers=HTMX)  # on again: name clash
    assert r.status_code == 200 and "already exists" in text(r)
    assert fresh(m.id).enabled is False


def test_toggle_without_htmx_redirects(admin_client, catalog):
    r = admin_client.post(f"/models/{catalog['mini'].id}/toggle")
    assert r.status_code == 303 and r.headers["Location"] == "/models"


def test_viewer_cannot_toggle(viewer_client, catalog):
    assert viewer_client.post(f"/models/{catalog['mini'].id}/toggle", headers=HTMX).status_code == 403
    assert fresh(catalog["mini"].id).enabled is True
