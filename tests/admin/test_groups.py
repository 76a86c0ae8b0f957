"""Routing groups: list, create, detail (live breakers, inline priority/weight, breaker reset),
routing settings, delete, viewer read-only."""
from __future__ import annotations

import time

import pytest

from app.extensions import db
from app.models import Model, ModelGroup

from .helpers import HTMX, element, is_fragment, squash, text

VALID = {"name": "claude", "strategy": "weighted", "fallbacks": "gpt-4o", "retries": "3",
         "timeout_s": "45"}


def fresh_group(name: str) -> ModelGroup | None:
    db.session.expire_all()
    return db.session.scalar(db.select(ModelGroup).where(ModelGroup.name == name))


def fresh_model(pk: int) -> Model:
    db.session.expire_all()
    return db.session.get(Model, pk)


def breaker():
    from app.services.router import router
    return router().breaker


@pytest.fixture
def fleet(make_provider, make_model):
    """Group gpt-4o on two providers (OpenAI priority 0 weight 3, Azure priority 1)."""
    from app.services import groups
    openai = make_provider(name="OpenAI")
    azure = make_provider(name="Azure East", api_base="http://azure.test/v1")
    groups.put("gpt-4o", {"strategy": "priority", "fallbacks": [], "retries": 2}, "t")
    return {"openai": openai, "azure": azure,
            "o": make_model(openai, model_id="gpt-4o", name="gpt-4o", priority=0, weight=3),
            "a": make_model(azure, model_id="gpt-4o-2024-08-06", name="gpt-4o", priority=1, weight=1)}


# --- list ---------------------------------------------------------------------------------------

def test_list_empty(admin_client):
    r = admin_client.get("/groups")
    assert r.status_code == 200 and "No routing groups yet" in text(r)
    assert 'href="/groups/-/new"' in text(r) and "routing.css" in text(r)
    assert 'aria-current="page"' in text(r).split('href="/groups"')[1][:80]


def test_list_shows_settings_deployments_and_breakers(admin_client, fleet):
    from app.services import groups
    groups.put("gpt-4o", {"fallbacks": ["gpt-4o-mini"], "timeout_s": 30}, "t")
    breaker().record(fleet["a"].id, "auth", time.time())
    group = fresh_group("gpt-4o")
    row = squash(element(text(admin_client.get("/groups")), f"group-{group.id}"))
    assert 'href="/groups/gpt-4o"' in row and ">priority<" in row and "gpt-4o-mini" in row
    assert '<td class="num">2</td>' in row and "30 s" in row
    assert "2<span class=\"muted\"> / 2</span>" in row
    assert 'data-breaker="closed"' in row and "1 closed" in row and "1 disabled" in row


def test_list_offers_names_with_several_deployments_but_no_group(admin_client, make_provider,
                                                                 make_model):
    a, b = make_provider(name="A"), make_provider(name="B", api_base="http://b.test/v1")
    make_model(a, model_id="sonnet", name="claude")
    make_model(b, model_id="sonnet-v2", name="claude", enabled=False)
    make_model(b, model_id="solo")
    box = squash(element(text(admin_client.get("/groups")), "ungrouped"))
    assert "1 name has several deployments but no group" in box
    assert 'href="/groups/-/new?name=claude"' in box and "solo" not in box
    assert 'value="claude"' in text(admin_client.get("/groups/-/new?name=claude"))


# --- create -------------------------------------------------------------------------------------

def test_create(admin_client, fleet, audit_rows):
    r = admin_client.post("/groups/-/new", data=VALID)
    assert r.status_code == 303 and r.headers["Location"] == "/groups/claude"
    g = fresh_group("claude")
    assert (g.strategy, g.fallbacks, g.retries, g.timeout_s) == ("weighted", ["gpt-4o"], 3, 45.0)
    assert audit_rows("group", "create")[0].entity_name == "claude"
    assert "Group “claude” created with 0 deployment(s)" in text(admin_client.get("/groups/claude"))


def test_create_name_with_slashes(admin_client):
    r = admin_client.post("/groups/-/new", data={**VALID, "name": "meta/llama-3.1-70b",
                                                 "fallbacks": ""})
    assert r.status_code == 303 and r.headers["Location"] == "/groups/meta/llama-3.1-70b"
    r = admin_client.get("/groups/meta/llama-3.1-70b")
    assert r.status_code == 200 and "<h1>meta/llama-3.1-70b</h1>" in text(r)
    assert 'action="/groups/-/delete/meta/llama-3.1-70b"' not in text(r)  # a link, not a form
    assert 'href="/groups/-/delete/meta/llama-3.1-70b"' in text(r)


@pytest.mark.parametrize("field, value, message", [
    ("name", "", "This field is required."),
    ("name", "gpt-4o", "A group with this name already exists."),
    ("strategy", "fastest", "Not a valid choice"),
    ("retries", "11", "Number must be between 0 and 10."),
    ("retries", "", "Enter a number from 0 to 10."),
    ("timeout_s", "0", "Number must be between 0.1 and 3600."),
    ("fallbacks", "gpt-4o\nnope", "No model is named nope"),
])
def test_create_invalid_shows_error_on_field(admin_client, fleet, field, value, message):
    r = admin_client.post("/groups/-/new", data={**VALID, field: value})
    assert r.status_code == 422
    html = text(r)
    assert message in html and "has-error" in html
    assert fresh_group("claude") is None


def test_fallback_to_itself_is_refused_by_the_service(admin_client, fleet):
    r = admin_client.post("/groups/gpt-4o", data={"strategy": "priority", "retries": "2",
                                                  "fallbacks": "gpt-4o"})
    assert r.status_code == 422 and "a group cannot fall back to itself" in text(r)
    assert '<div class="field has-error"> <label for="fallbacks">' in squash(text(r))


# --- detail: deployments with live state --------------------------------------------------------

def test_detail_lists_deployments_with_live_numbers(admin_client, fleet):
    from app.services.router import router
    live = router().live
    live.started(fleet["o"].id)
    live.started(fleet["o"].id)
    live.finished(fleet["o"].id, 120.0, True)
    for _ in range(5):
        breaker().record(fleet["a"].id, "server_error", time.time())
    html = text(admin_client.get("/groups/gpt-4o"))
    o = squash(element(html, f"dep-{fleet['o'].id}"))
    assert "OpenAI" in o and "gpt-4o" in o and '<td class="num">0</td>' in o and '<td class="num">3</td>' in o
    assert "120 ms" in o and '<td class="num">1</td>' in o  # one still in flight
    assert 'data-breaker="closed"' in o and "Reset breaker" not in o
    a = squash(element(html, f"dep-{fleet['a'].id}"))
    assert 'data-breaker="open"' in a and "5 consecutive failures (last: server_error)" in a
    assert "probe in" in a and "Reset breaker" in a
    assert "1 closed" in html and "1 open" in html  # the header's summary


def test_disabled_model_is_shown_as_not_routed(admin_client, fleet):
    from app.services import models
    models.update(fleet["a"], {"enabled": False}, "t")
    row = squash(element(text(admin_client.get("/groups/gpt-4o")), f"dep-{fleet['a'].id}"))
    assert "model disabled" in row and ">off<" in row and "is-off" in row


def test_unknown_group_is_404(admin_client):
    r = admin_client.get("/groups/nope")
    assert r.status_code == 404 and "Group &#39;nope&#39; not found" in text(r)


# --- breaker reset ------------------------------------------------------------------------------

def test_reset_disabled_breaker_in_place(admin_client, fleet, audit_rows):
    b = breaker()
    b.record(fleet["a"].id, "auth", time.time(), detail="Incorrect API key provided")
    row = squash(element(text(admin_client.get("/groups/gpt-4o")), f"dep-{fleet['a'].id}"))
    assert 'data-breaker="disabled"' in row and "Incorrect API key provided" in row
    assert "fix the provider's key, then reset" in row
    r = admin_client.post(f"/groups/-/deployments/{fleet['a'].id}/reset", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    body = squash(text(r)).strip()
    assert body.startswith(f'<tr id="dep-{fleet["a"].id}"') and 'data-breaker="closed"' in body
    assert "Reset breaker" not in body and "is-saved" in body
    assert b.state(fleet["a"].id, time.time())["state"] == "closed"
    entry = audit_rows("model", "reset_breaker")[0]
    assert (entry.entity_id, entry.actor, entry.entity_name) == (fleet["a"].id, "admin", "gpt-4o")
    assert entry.diff["provider"] == "Azure East"


def test_reset_without_htmx_redirects_with_flash(admin_client, fleet):
    breaker().record(fleet["a"].id, "auth", time.time())
    r = admin_client.post(f"/groups/-/deployments/{fleet['a'].id}/reset")
    assert r.status_code == 303 and r.headers["Location"] == "/groups/gpt-4o"
    assert "Breaker of Azure East · gpt-4o-2024-08-06 reset" in text(admin_client.get("/groups/gpt-4o"))


# --- inline priority / weight -------------------------------------------------------------------

def test_edit_row_for_htmx_and_a_page_without(admin_client, fleet):
    pk = fleet["o"].id
    r = admin_client.get(f"/groups/-/deployments/{pk}", headers=HTMX)
    body = text(r).strip()
    assert r.status_code == 200 and is_fragment(r) and body.startswith(f'<tr id="dep-{pk}" class="is-editing"')
    assert f'form="dep-{pk}-form"' in body and 'name="priority"' in body and 'value="3"' in body
    assert f'hx-get="/groups/-/deployments/{pk}/row"' in body  # Cancel
    page = text(admin_client.get(f"/groups/-/deployments/{pk}"))
    assert "<html" in page and "Priority and weight" in page


def test_inline_edit_saves_and_returns_the_row(admin_client, fleet, audit_rows):
    pk = fleet["o"].id
    r = admin_client.post(f"/groups/-/deployments/{pk}", data={"priority": "2", "weight": "7"},
                          headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    row = squash(text(r))
    assert '<td class="num">2</td>' in row and '<td class="num">7</td>' in row and "is-editing" not in row
    m = fresh_model(pk)
    assert (m.priority, m.weight) == (2, 7)
    assert audit_rows("model", "update")[0].diff == {"priority": [0, 2], "weight": [3, 7]}


@pytest.mark.parametrize("data, message", [
    ({"priority": "1", "weight": "-1"}, "Number must be between 0 and 1000."),
    ({"priority": "", "weight": "1"}, "Enter a number."),
    ({"priority": "5000", "weight": "1"}, "Number must be between -1000 and 1000."),
])
def test_inline_edit_invalid_keeps_the_editor(admin_client, fleet, data, message):
    pk = fleet["o"].id
    r = admin_client.post(f"/groups/-/deployments/{pk}", data=data, headers=HTMX)
    assert r.status_code == 200 and "is-editing" in text(r) and message in text(r)
    assert (fresh_model(pk).priority, fresh_model(pk).weight) == (0, 3)
    r = admin_client.post(f"/groups/-/deployments/{pk}", data=data)
    assert r.status_code == 422 and message in text(r) and "<html" in text(r)


def test_edit_without_htmx_redirects_to_the_group(admin_client, fleet):
    r = admin_client.post(f"/groups/-/deployments/{fleet['a'].id}", data={"priority": "4", "weight": "2"})
    assert r.status_code == 303 and r.headers["Location"] == "/groups/gpt-4o"
    assert "Azure East · gpt-4o-2024-08-06: priority 4, weight 2." in text(admin_client.get("/groups/gpt-4o"))


def test_row_endpoint_returns_the_read_only_row(admin_client, fleet):
    r = admin_client.get(f"/groups/-/deployments/{fleet['o'].id}/row", headers=HTMX)
    assert r.status_code == 200 and text(r).strip().startswith(f'<tr id="dep-{fleet["o"].id}"')
    assert "is-editing" not in text(r)


# --- group settings, delete ---------------------------------------------------------------------

def test_settings_form_shows_and_saves(admin_client, fleet, make_model, audit_rows):
    make_model(fleet["openai"], model_id="gpt-4o-mini")
    form = text(admin_client.get("/groups/gpt-4o"))
    assert 'id="strategy-0" name="strategy" type="radio" value="priority"' in form.replace("checked ", "")
    assert "Lowest priority number first" in form and "Save routing" in form
    r = admin_client.post("/groups/gpt-4o", data={"strategy": "least-latency", "retries": "0",
                                                  "timeout_s": "12.5", "fallbacks": "gpt-4o-mini\n"})
    assert r.status_code == 303 and r.headers["Location"] == "/groups/gpt-4o"
    g = fresh_group("gpt-4o")
    assert (g.strategy, g.retries, g.timeout_s, g.fallbacks) == ("least-latency", 0, 12.5, ["gpt-4o-mini"])
    assert audit_rows("group", "update")[0].diff["strategy"] == ["priority", "least-latency"]
    page = text(admin_client.get("/groups/gpt-4o"))
    assert "Routing of “gpt-4o” saved." in page and 'value="12.5"' in page


def test_delete_confirm_then_delete(admin_client, fleet, count):
    page = text(admin_client.get("/groups/-/delete/gpt-4o"))
    assert "Delete group “gpt-4o”?" in page and "Its 2 deployment(s) keep their models" in page
    r = admin_client.post("/groups/-/delete/gpt-4o")
    assert r.status_code == 303 and r.headers["Location"] == "/groups"
    assert fresh_group("gpt-4o") is None and count(Model) == 2
    assert "Group “gpt-4o” deleted." in text(admin_client.get("/groups"))


# --- viewers ------------------------------------------------------------------------------------

def test_viewer_reads_but_cannot_change(viewer_client, fleet):
    breaker().record(fleet["a"].id, "auth", time.time())
    listing = text(viewer_client.get("/groups"))
    assert "gpt-4o" in listing and "New group" not in listing and "/groups/-/delete/" not in listing
    detail = text(viewer_client.get("/groups/gpt-4o"))
    assert 'data-breaker="disabled"' in detail and "read-only" in detail
    assert "Reset breaker" not in detail and "Save routing" not in detail
    assert "hx-get=\"/groups/-/deployments/" not in detail
    assert '<fieldset class="form-section" disabled>' in detail
    pk = fleet["a"].id
    for method, url in (("get", "/groups/-/new"), ("post", "/groups/-/new"),
                        ("get", f"/groups/-/deployments/{pk}"), ("post", f"/groups/-/deployments/{pk}"),
                        ("post", f"/groups/-/deployments/{pk}/reset"), ("post", "/groups/gpt-4o"),
                        ("get", "/groups/-/delete/gpt-4o"), ("post", "/groups/-/delete/gpt-4o")):
        assert getattr(viewer_client, method)(url, data={"priority": "9", "weight": "9"}).status_code == 403, url
    assert breaker().state(pk, time.time())["state"] == "disabled"
    assert fresh_model(pk).priority == 1 and fresh_group("gpt-4o") is not None


def test_reset_needs_the_csrf_token(app_factory, make_user, fleet):
    from .helpers import csrf_from
    make_user()
    client = app_factory(WTF_CSRF_ENABLED=True).test_client()
    token = csrf_from(text(client.get("/login")))
    client.post("/login", data={"username": "admin", "password": "correct-horse-1", "csrf_token": token})
    breaker().record(fleet["a"].id, "auth", time.time())
    url = f"/groups/-/deployments/{fleet['a'].id}/reset"
    assert client.post(url, headers=HTMX).status_code == 400
    token = csrf_from(text(client.get("/groups/gpt-4o")))
    assert client.post(url, headers={**HTMX, "X-CSRFToken": token}).status_code == 200
