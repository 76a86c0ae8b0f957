"""Global limits on providers and models (forms, list/detail pages), and the model form's
built-in list-price suggestion."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from app.extensions import db
from app.limits import Limits
from app.models import Model, Provider

from .helpers import HTMX, element, is_fragment, squash, text

LIMIT_NAMES = ("rpm", "rph", "rpd", "tpm", "tpd", "concurrency")
PROVIDER = {"name": "Acme", "type": "openai-compatible", "api_base": "http://upstream.test/v1",
            "api_key": "sk-test-1", "trust_level": "public", "connect_timeout": "5",
            "read_timeout": "60", "enabled": "y"}


def fresh(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def model_data(pid: int, **extra) -> dict:
    return {"provider_id": str(pid), "model_id": "gpt-4.1", "name": "smart", "kind": "chat",
            "input_price_per_mtok": "2", "output_price_per_mtok": "8", "priority": "0",
            "weight": "1", "enabled": "y", **extra}


# --- providers ----------------------------------------------------------------------------------

def test_provider_form_has_global_limits(admin_client):
    body = text(admin_client.get("/providers/new"))
    assert "Global limits" in body
    for name in LIMIT_NAMES:
        assert f'name="{name}"' in body, name


def test_create_provider_with_limits(admin_client, audit_rows):
    r = admin_client.post("/providers/new", data={**PROVIDER, "rpm": "500", "tpm": "200000",
                                                  "concurrency": "8", "rph": ""})
    assert r.status_code == 303, text(r)[:2000]
    p = db.session.scalar(db.select(Provider).where(Provider.name == "Acme"))
    assert p.limits == {"rpm": 500, "tpm": 200000, "concurrency": 8}
    assert "limits" in audit_rows("provider", "create")[0].diff
    detail = text(admin_client.get(f"/providers/{p.id}"))
    assert "500 rpm · 200,000 tpm · 8 concurrent" in detail
    assert "500 rpm · 200,000 tpm · 8 concurrent" in squash(element(text(admin_client.get("/providers")),
                                                                    f"provider-{p.id}"))


def test_provider_edit_prefills_and_clears_limits(admin_client, make_provider):
    p = make_provider(limits={"rpd": 1000, "concurrency": 2})
    body = text(admin_client.get(f"/providers/{p.id}/edit"))
    assert value_of(body, "rpd") == "1000" and value_of(body, "concurrency") == "2"
    assert not value_of(body, "rpm")
    blank = dict.fromkeys(LIMIT_NAMES, "")  # a browser posts every field, empty or not
    r = admin_client.post(f"/providers/{p.id}/edit", data={**PROVIDER, **blank, "name": p.name, "api_key": ""})
    assert r.status_code == 303
    assert not fresh(Provider, p.id).limits


@pytest.mark.parametrize("value, message", [("0", "Number must be between 1"), ("lots", "Not a valid integer")])
def test_provider_invalid_limit(admin_client, count, value, message):
    r = admin_client.post("/providers/new", data={**PROVIDER, "concurrency": value})
    assert r.status_code == 422
    html = text(r)
    assert message in html[html.index('for="concurrency"'):][:1200]
    assert count(Provider) == 0


def test_provider_without_limits_shows_none(admin_client, make_provider):
    p = make_provider()
    detail = text(admin_client.get(f"/providers/{p.id}"))
    assert "<dt>Global limits</dt><dd>none</dd>" in detail and 'id="provider-limits"' not in detail


def test_provider_detail_shows_current_usage(admin_client, make_provider):
    from app.services.spend import gate
    p = make_provider(limits={"rpd": 100, "concurrency": 4})  # per day: nothing drains mid-test
    store = gate().store
    for _ in range(3):
        store.admit(f"provider:{p.id}", Limits(rpd=100, concurrency=4), [], 10, Decimal(0), time.time())
    card = squash(element(text(admin_client.get(f"/providers/{p.id}")), "provider-limits"))
    assert "<strong>3</strong> / 100" in card and "<strong>3</strong> / 4" in card
    assert 'data-width="75.0"' in card  # 3 of 4 in flight
    store.admit(f"provider:{p.id}", Limits(rpd=100, concurrency=4), [], 10, Decimal(0), time.time())
    card = squash(element(text(admin_client.get(f"/providers/{p.id}")), "provider-limits"))
    assert "<strong>4</strong> / 4" in card and 'class="meter meter-sm is-over"' in card


def test_viewer_cannot_post_provider_limits(viewer_client, make_provider):
    p = make_provider()
    r = viewer_client.post(f"/providers/{p.id}/edit", data={**PROVIDER, "rpm": "1"})
    assert r.status_code == 403 and not fresh(Provider, p.id).limits


# --- models -------------------------------------------------------------------------------------

def test_model_form_has_global_limits(admin_client, make_provider):
    make_provider()
    body = text(admin_client.get("/models/new"))
    assert "Global limits" in body
    for name in LIMIT_NAMES:
        assert f'name="{name}"' in body, name


def test_create_model_with_limits(admin_client, make_provider):
    p = make_provider()
    r = admin_client.post("/models/new", data=model_data(p.id, rpm="60", tpd="5000000"))
    assert r.status_code == 303
    m = db.session.scalar(db.select(Model).where(Model.name == "smart"))
    assert m.limits == {"rpm": 60, "tpd": 5000000}
    row = squash(element(text(admin_client.get("/models")), f"model-{m.id}"))
    assert "60 rpm · 5,000,000 tpd" in row
    assert "60 rpm · 5,000,000 tpd" in text(admin_client.get(f"/providers/{p.id}"))


def test_model_edit_prefills_limits(admin_client, make_provider, make_model):
    m = make_model(make_provider(), limits={"tpm": 40000})
    body = text(admin_client.get(f"/models/{m.id}/edit"))
    assert value_of(body, "tpm") == "40000"
    r = admin_client.post(f"/models/{m.id}/edit", data=model_data(m.provider_id, model_id=m.model_id,
                                                                   name=m.name, tpm="", rpm="5"))
    assert r.status_code == 303 and fresh(Model, m.id).limits == {"rpm": 5}


def test_model_invalid_limit(admin_client, make_provider, count):
    p = make_provider()
    r = admin_client.post("/models/new", data=model_data(p.id, rpm="-3"))
    assert r.status_code == 422
    html = text(r)
    assert "Number must be between 1" in html[html.index('for="rpm"'):][:1200]
    assert count(Model) == 0


def test_models_without_limits_show_nothing(admin_client, make_provider, make_model):
    m = make_model(make_provider())
    assert "rpm" not in squash(element(text(admin_client.get("/models")), f"model-{m.id}"))


# --- list-price suggestion ----------------------------------------------------------------------

def prices_for(client, **args):
    return client.get("/models/prices", query_string=args, headers=HTMX)


def value_of(html: str, name: str) -> str | None:
    import re
    m = re.search(r'<input[^>]*name="%s"[^>]*>' % name, html)
    assert m, name
    v = re.search(r'value="([^"]*)"', m.group(0))
    return v.group(1) if v else None


def test_model_id_field_asks_for_prices(admin_client, make_provider):
    make_provider()
    body = text(admin_client.get("/models/new"))
    field = body[body.index('id="model_id"') - 300:body.index('id="model_id"') + 300]
    assert 'hx-get="/models/prices"' in field and 'hx-target="#price-fields"' in field
    assert 'hx-include="#price-fields"' in field and "delay:400ms" in field and "prices-refresh" in field
    assert 'id="price-fields"' in body


def test_blank_prices_are_filled_with_the_list_price(admin_client):
    r = prices_for(admin_client, model_id="gpt-4o-mini-2024-07-18", input_price_per_mtok="",
                   output_price_per_mtok="", cached_input_price_per_mtok="")
    assert r.status_code == 200 and is_fragment(r)
    html = text(r)
    assert value_of(html, "input_price_per_mtok") == "0.15"
    assert value_of(html, "output_price_per_mtok") == "0.6"
    assert value_of(html, "cached_input_price_per_mtok") == "0.075"
    assert "List price for <code>gpt-4o-mini</code> — edit to match your contract" in html
    assert value_of(html, "autofill_input_price_per_mtok") == "0.15"


def test_typed_prices_are_never_overwritten(admin_client):
    html = text(prices_for(admin_client, model_id="gpt-4o", input_price_per_mtok="1.99",
                           output_price_per_mtok="", cached_input_price_per_mtok=""))
    assert value_of(html, "input_price_per_mtok") == "1.99"       # typed: kept
    assert value_of(html, "output_price_per_mtok") == "10"        # blank: filled
    assert "autofill_input_price_per_mtok" not in html
    html = text(prices_for(admin_client, model_id="gpt-4o", input_price_per_mtok="1",
                           output_price_per_mtok="2", cached_input_price_per_mtok="0.5"))
    assert [value_of(html, n) for n in ("input_price_per_mtok", "output_price_per_mtok",
                                        "cached_input_price_per_mtok")] == ["1", "2", "0.5"]
    assert "Your values are kept" in html and "$2.50 in / $10.00 out" in html


def test_suggestion_follows_the_id_until_the_admin_edits_it(admin_client):
    # "gpt-4o" was suggested; typing on to "gpt-4o-mini" replaces the suggestion...
    html = text(prices_for(admin_client, model_id="gpt-4o-mini", input_price_per_mtok="2.5",
                           autofill_input_price_per_mtok="2.5", output_price_per_mtok="10",
                           autofill_output_price_per_mtok="10", cached_input_price_per_mtok=""))
    assert value_of(html, "input_price_per_mtok") == "0.15"
    assert value_of(html, "output_price_per_mtok") == "0.6"
    # ...but not a suggested value the admin has since changed
    html = text(prices_for(admin_client, model_id="gpt-4o-mini", input_price_per_mtok="2.4",
                           autofill_input_price_per_mtok="2.5", output_price_per_mtok=""))
    assert value_of(html, "input_price_per_mtok") == "2.4"


def test_unknown_id_clears_only_suggestions(admin_client):
    html = text(prices_for(admin_client, model_id="my-finetune", input_price_per_mtok="0.15",
                           autofill_input_price_per_mtok="0.15", output_price_per_mtok="3"))
    assert not value_of(html, "input_price_per_mtok")
    assert value_of(html, "output_price_per_mtok") == "3"
    assert "No built-in list price for “my-finetune”" in html


def test_bedrock_style_id_matches(admin_client):
    html = text(prices_for(admin_client, model_id="us.anthropic.claude-sonnet-4-20250514-v1:0"))
    assert "List price for <code>claude-sonnet-4</code>" in html
    assert value_of(html, "output_price_per_mtok") == "15"


def test_empty_id_gives_the_default_hint(admin_client):
    html = text(prices_for(admin_client, model_id=""))
    assert "Typing a well-known upstream ID" in html and "autofill_" not in html


def test_price_suggestion_is_admin_only(viewer_client):
    assert prices_for(viewer_client, model_id="gpt-4o").status_code == 403


def test_suggested_values_are_saved_as_shown(admin_client, make_provider):
    p = make_provider()
    data = model_data(p.id, model_id="gpt-4o-mini", name="mini", input_price_per_mtok="0.15",
                      output_price_per_mtok="0.6", cached_input_price_per_mtok="0.075",
                      autofill_input_price_per_mtok="0.15")
    assert admin_client.post("/models/new", data=data).status_code == 303
    m = db.session.scalar(db.select(Model).where(Model.name == "mini"))
    assert (m.input_price_per_mtok, m.output_price_per_mtok) == (Decimal("0.15"), Decimal("0.6"))
