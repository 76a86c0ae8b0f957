"""Every registered console and /api/admin route, with every role, against the declared matrix.

The walk takes app.url_map as it is, so a new route is covered (and, undeclared, refused) without
touching this file. A hand-written table below pins what the presets mean for representative
routes, so a wrong declaration cannot pass just by being consistent with itself.
"""
from __future__ import annotations

import pytest
from werkzeug.routing import AnyConverter, IntegerConverter, PathConverter

from app.admin import access

ROLES = access.ROLES
CONSOLE_ROLES = ROLES
API_SCOPES = {"admin": "admin", "operator": "admin:operator", "viewer": "admin:read"}
ALL = set(ROLES)
STAFF = {"admin", "operator", "viewer"}
OPS = {"admin", "operator"}

# (endpoint, method) -> roles allowed: what the issue asks for, written out by hand
EXPECTED = {
    ("admin.index", "GET"): ALL,
    ("admin.logout", "POST"): ALL,
    ("admin.providers.index", "GET"): STAFF,
    ("admin.providers.new", "GET"): OPS,
    ("admin.providers.new", "POST"): OPS,
    ("admin.providers.toggle", "POST"): OPS,
    ("admin.models.edit", "POST"): OPS,
    ("admin.models.index", "GET"): STAFF,
    ("admin.groups.detail", "POST"): OPS,
    ("admin.keys.index", "GET"): ALL,
    ("admin.keys.detail", "GET"): ALL,
    ("admin.keys.new", "GET"): OPS | {"team_admin"},
    ("admin.keys.new", "POST"): OPS | {"team_admin"},
    ("admin.keys.revoke", "POST"): OPS | {"team_admin"},
    ("admin.health.index", "GET"): STAFF,
    ("admin.health.check_all", "POST"): OPS,
    ("admin.usage.index", "GET"): ALL,
    ("admin.usage.chart_csv", "GET"): ALL,
    ("admin.requests.index", "GET"): STAFF,
    ("admin.cache.clear_all", "POST"): OPS,
    ("admin.settings.index", "GET"): STAFF,
    ("admin.settings.index", "POST"): {"admin"},
    ("admin.teams.index", "GET"): STAFF,
    ("admin.teams.new", "GET"): {"admin"},
    ("admin.teams.new", "POST"): {"admin"},
    ("admin.users.index", "GET"): {"admin"},
    ("admin.users.new", "GET"): {"admin"},
    ("admin.users.new", "POST"): {"admin"},
    ("admin.users.edit", "POST"): {"admin"},
    ("admin.users.unlock", "POST"): {"admin"},
    ("admin.users.delete", "POST"): {"admin"},
    ("admin.audit.index", "GET"): STAFF,
    ("admin.playground.chat", "POST"): ALL,
    ("api.list_providers", "GET"): STAFF,
    ("api.create_provider", "POST"): OPS,
    ("api.create_key", "POST"): OPS | {"team_admin"},
    ("api.patch_settings", "PATCH"): {"admin"},
    ("api.get_settings", "GET"): STAFF,
    ("api.create_team", "POST"): {"admin"},
    ("api.audit_log", "GET"): STAFF,
    ("api.list_users", "GET"): {"admin"},
    ("api.get_user", "GET"): {"admin"},
    ("api.create_user", "POST"): {"admin"},
    ("api.update_user", "PATCH"): {"admin"},
    ("api.delete_user", "DELETE"): {"admin"},
    ("api.put_group", "PUT"): OPS,
    ("api.usage_summary", "GET"): ALL,
}


def _sample(converter) -> object:
    if isinstance(converter, IntegerConverter):
        return 987654  # no such row: an allowed role reaches the view and gets its 404
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    if isinstance(converter, PathConverter):
        return "no-such-group"
    return "requests"


def routes(app):
    """(endpoint, method, url) for every console and admin-API route and method."""
    out = []
    with app.test_request_context():
        from flask import url_for
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith(("admin.", "api.")):
                continue
            url = url_for(rule.endpoint, **{a: _sample(c) for a, c in rule._converters.items()})
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                out.append((rule.endpoint, method, url))
    return out


@pytest.fixture
def world(app_factory):
    """An app, one console user per role (the team admin manages team "x"), one admin-API key
    per API role. Requests run outside the fixture's app context (no shared flask.g)."""
    app = app_factory()
    with app.app_context():
        from app.extensions import db
        from app.services import keys, users
        ids = {}
        for role in CONSOLE_ROLES:
            user = users.create(f"u-{role}", "correct-horse-1", role, actor="test")
            if role == "team_admin":
                user.teams = ["x"]
                db.session.commit()  # a team change bumps the session epoch
            ids[role] = user.id
        raws = {role: keys.create({"name": f"api-{role}", "scopes": [scope]}, actor="test")[1]
                for role, scope in API_SCOPES.items()}
        raws["proxy-only"] = keys.create({"name": "proxy", "scopes": ["chat"]}, actor="test")[1]
        db.session.remove()
    return app, ids, raws


def _console(app, user_id, method, url):
    c = app.test_client()
    if user_id is not None:
        with app.app_context():  # "<id>:<epoch>" as of now: the walk's own sign-outs bump the epoch
            from app.extensions import db
            from app.models import User
            session_id = db.session.get(User, user_id).get_id()
            db.session.remove()
        with c.session_transaction() as sess:
            sess["_user_id"], sess["_fresh"] = session_id, True
    r = c.open(url, method=method, data={}, follow_redirects=False)
    if user_id is not None and not url.endswith("/logout"):
        # a signed-in user is never sent to the sign-in page: that would hide a wrong declaration
        assert "/login" not in r.headers.get("Location", ""), (method, url)
    return r


def test_every_console_and_api_route_declares_its_roles(app):
    undeclared = sorted({e for e, _, _ in routes(app)
                         if access.declaration(app.view_functions[e]) is None})
    assert undeclared == []
    assert len({e for e, _, _ in routes(app)}) > 90  # the walk really sees the whole console


def test_hand_written_expectations_match_the_declarations(app):
    for (endpoint, method), allowed in EXPECTED.items():
        rule = access.declaration(app.view_functions[endpoint])
        got = {r for r in ROLES if rule.allows(r, method)}
        assert got == allowed, (endpoint, method)


def test_every_console_route_with_every_role(world):
    app, ids, _ = world
    checked, failures = 0, []
    for endpoint, method, url in routes(app):
        if not endpoint.startswith("admin."):
            continue
        rule = access.declaration(app.view_functions[endpoint])
        anon = _console(app, None, method, url)
        if rule.public:
            if anon.status_code in (401, 403):
                failures.append((endpoint, method, "anonymous", anon.status_code))
        elif anon.status_code not in (302, 401):  # to the sign-in page
            failures.append((endpoint, method, "anonymous", anon.status_code))
        for role in CONSOLE_ROLES:
            status = _console(app, ids[role], method, url).status_code
            allowed = rule.allows(role, method)
            checked += 1
            if allowed and status in (401, 403) or status >= 500 or not allowed and status != 403:
                failures.append((endpoint, method, role, status, "allowed" if allowed else "denied"))
    assert failures == []
    assert checked > 300


def test_every_admin_api_route_with_every_key_role(world):
    app, _, raws = world
    c = app.test_client()
    checked, failures = 0, []
    for endpoint, method, url in routes(app):
        if not endpoint.startswith("api."):
            continue
        rule = access.declaration(app.view_functions[endpoint])
        if c.open(url, method=method).status_code != 401:
            failures.append((endpoint, method, "no key"))
        r = c.open(url, method=method, headers={"Authorization": f"Bearer {raws['proxy-only']}"})
        if r.status_code != 403 or r.get_json()["error"]["code"] != "insufficient_scope":
            failures.append((endpoint, method, "proxy-only key", r.status_code))
        for role in API_SCOPES:
            r = c.open(url, method=method, json={} if method != "GET" else None,
                       headers={"Authorization": f"Bearer {raws[role]}"})
            r.close()
            allowed = rule.allows(role, method)
            checked += 1
            if allowed and r.status_code in (401, 403) or r.status_code >= 500 \
                    or not allowed and r.status_code != 403:
                failures.append((endpoint, method, role, r.status_code))
    assert failures == []
    assert checked > 100


def test_undeclared_routes_are_refused_for_everybody(world):
    app, ids, _ = world
    app.config["GATEWAY_MASTER_KEY"] = "master-key-for-test-123"

    def hello():
        return "should never be served"
    app.add_url_rule("/undeclared-page", "admin.undeclared_page", hello)
    app.add_url_rule("/api/admin/undeclared", "api.undeclared", hello)
    r = _console(app, ids["admin"], "GET", "/undeclared-page")
    assert r.status_code == 403 and b"should never" not in r.data
    r = app.test_client().get("/api/admin/undeclared",
                              headers={"Authorization": "Bearer master-key-for-test-123"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope"
