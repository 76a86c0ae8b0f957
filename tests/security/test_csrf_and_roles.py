"""Walk app.url_map: every state-changing console route refuses a request without a valid CSRF
token, and a viewer can change nothing; in both cases the database is left exactly as it was."""
from __future__ import annotations

import pytest

from app.admin import access

from .conftest import (PASSWORD, WRITE_METHODS, build, console_rules, csrf_token, diff, populate,
                       sec_app_for, snapshot)

PLAYGROUND_OWN_DATA = {  # any_role (viewers may write): each user's own conversations and own key, limited like any key
    "admin.playground.chat", "admin.playground.delete", "admin.playground.delete_all",
    "admin.playground.snippet", "admin.playground.index", "admin.playground.compare",
    "admin.playground.conversation_list", "admin.playground.export",
}


def write_routes(app):
    return [(e, m, r) for e, methods, r in console_rules(app) for m in methods if m in WRITE_METHODS]


@pytest.fixture
def csrf_app(app_factory):
    app = sec_app_for(app_factory, WTF_CSRF_ENABLED=True)
    with app.app_context():
        w = populate(app)
        yield app, w
        from app.extensions import db
        db.session.remove()


def csrf_login(app, username="admin"):
    c = app.test_client()
    token = csrf_token(c.get("/login").get_data(as_text=True))
    r = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303
    return c, csrf_token(c.get("/").get_data(as_text=True))


def test_the_walk_finds_every_write_route(sec_app):
    found = {e for e, _, _ in write_routes(sec_app)}
    # a sample the walk must include; new routes are covered automatically
    assert {"admin.login", "admin.logout", "admin.providers.new", "admin.providers.delete",
            "admin.keys.revoke", "admin.models.toggle", "admin.settings.index",
            "admin.cache.clear_all", "admin.playground.chat", "admin.groups.detail"} <= found
    assert len(found) >= 30


def test_every_write_route_needs_a_valid_csrf_token(csrf_app):
    app, w = csrf_app
    client, good = csrf_login(app)
    other, other_token = csrf_login(app, "viewer")
    assert other_token != good
    routes = write_routes(app)
    failures = []
    for endpoint, method, rule in routes:
        url = build(app, rule, w)
        for label, headers, data in (
                ("no token", {}, {}),
                ("bogus token", {"X-CSRFToken": "bogus"}, {"csrf_token": "bogus"}),
                ("another session's token", {"X-CSRFToken": other_token}, {"csrf_token": other_token}),
                ("htmx without token", {"HX-Request": "true"}, {})):
            before = snapshot()
            r = client.open(url, method=method, headers=headers, data={"name": "changed", **data})
            body = r.get_data(as_text=True)
            if r.status_code != 400 or "security token" not in body:
                failures.append(f"{method} {url} ({label}): {r.status_code}")
            changed = diff(before, snapshot())
            if changed:
                failures.append(f"{method} {url} ({label}) changed {changed}")
    assert not failures, "\n".join(failures)
    # still signed in (the refused logout did not sign out), and the real token works
    assert client.get("/").status_code == 200
    r = client.post(f"/providers/{w['provider'].id}/toggle", headers={"HX-Request": "true",
                                                                      "X-CSRFToken": good})
    assert r.status_code == 200


def test_json_api_is_not_a_csrf_surface(csrf_app):
    """/api/admin and /v1 are CSRF-exempt because they take a bearer key, never the cookie."""
    app, w = csrf_app
    client, _ = csrf_login(app)
    before = snapshot()
    r = client.post("/api/admin/providers", json={"name": "x", "type": "openai", "api_key": "sk-x"})
    assert r.status_code == 401  # the console session cookie is not an API credential
    r = client.post("/v1/chat/completions", json={"model": "mini", "messages": []})
    assert r.status_code == 401
    assert not diff(before, snapshot())


def test_viewer_can_write_nothing(sec_app, world, as_viewer):
    from flask import current_app
    failures, allowed = [], set()
    for endpoint, methods, rule in console_rules(sec_app):
        declared = access.declaration(current_app.view_functions[endpoint])
        url = build(sec_app, rule, world)
        if endpoint in ("admin.login", "admin.logout") or declared.public:
            continue  # signing in and out is not a change to the gateway
        if declared.allows("viewer", "POST"):
            allowed.add(endpoint)
            continue
        for method in (*WRITE_METHODS, "GET"):
            if method == "GET" and (method not in methods or declared.allows("viewer", "GET")):
                continue
            before = snapshot()
            r = as_viewer.open(url, method=method, data={"name": "changed", "enabled": "y"},
                               headers={"HX-Request": "true"} if method != "GET" else {})
            expected = (403,) if method in methods else (403, 405)
            if r.status_code not in expected:
                failures.append(f"{method} {url}: {r.status_code} (want {expected})")
            changed = diff(before, snapshot())
            if changed:
                failures.append(f"{method} {url} changed {changed}")
    assert not failures, "\n".join(failures)
    assert allowed == PLAYGROUND_OWN_DATA  # a new any_role view must be looked at


def test_viewer_reads_every_other_page_without_errors(sec_app, world, as_viewer):
    from flask import current_app
    for endpoint, methods, rule in console_rules(sec_app):
        declared = access.declaration(current_app.view_functions[endpoint])
        if "GET" not in methods or not declared.allows("viewer", "GET") or declared.public:
            continue
        r = as_viewer.get(build(sec_app, rule, world))
        if endpoint == "admin.playground.export":  # the admin's conversation: not the viewer's
            assert r.status_code == 404
            continue
        assert r.status_code < 400, (endpoint, r.status_code)


def test_viewer_cannot_touch_another_users_conversation(sec_app, world, as_viewer):
    conv = world["conversation"]  # the admin's
    before = snapshot()
    assert as_viewer.post(f"/playground/conversations/{conv.id}/delete",
                          headers={"HX-Request": "true"}).status_code == 404
    assert as_viewer.get(f"/playground/conversations/{conv.id}/export.json").status_code == 404
    as_viewer.post("/playground/conversations/delete-all", headers={"HX-Request": "true"})
    assert not diff(before, snapshot())


def test_admin_walk_no_page_errors(sec_app, world, as_admin):
    for endpoint, methods, rule in console_rules(sec_app):
        if "GET" not in methods or endpoint in ("admin.login",):
            continue
        r = as_admin.get(build(sec_app, rule, world))
        if endpoint == "admin.providers.import_models":  # upstream.test does not resolve
            assert r.status_code == 502 and "could not reach the upstream" in r.get_data(as_text=True)
            continue
        assert r.status_code < 500, (endpoint, r.status_code)
