"""Team admins: keys and usage of their own team(s) only; operators: no scopes beyond their role."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import GatewayKey

from .helpers import squash, text
from .test_usage import DAY, WINDOW, rec, write


@pytest.fixture
def team_keys(app):
    from app.services import keys
    mine, _ = keys.create({"name": "x-bot", "owner": "x", "scopes": ["chat"]}, actor="test")
    other, _ = keys.create({"name": "y-secret-bot", "owner": "y", "scopes": ["chat"]}, actor="test")
    return mine, other


@pytest.fixture
def team_admin_client(app, make_user):
    user = make_user("tina", "correct-horse-3", "team_admin")
    user.teams = ["x"]
    db.session.commit()
    c = app.test_client()
    assert c.post("/login", data={"username": "tina", "password": "correct-horse-3"}).status_code == 303
    return c


@pytest.fixture
def operator_client(app, make_user):
    make_user("otto", "correct-horse-4", "operator")
    c = app.test_client()
    assert c.post("/login", data={"username": "otto", "password": "correct-horse-4"}).status_code == 303
    return c


def test_team_admin_lists_only_their_teams_keys(team_admin_client, team_keys):
    mine, other = team_keys
    page = text(team_admin_client.get("/keys"))
    assert "x-bot" in page and "y-secret-bot" not in page
    assert team_admin_client.get(f"/keys/{mine.id}").status_code == 200
    for url in (f"/keys/{other.id}", f"/keys/{other.id}/edit", f"/keys/{other.id}/revoke"):
        assert team_admin_client.get(url).status_code == 404, url
    assert team_admin_client.post(f"/keys/{other.id}/revoke", data={}).status_code == 404
    db.session.expire_all()
    assert db.session.get(GatewayKey, other.id).revoked_at is None


def test_team_admin_lands_on_keys_and_sees_only_their_nav(team_admin_client):
    r = team_admin_client.get("/")
    assert r.status_code == 302 and r.headers["Location"] == "/keys"
    nav = squash(text(team_admin_client.get("/keys")))
    assert 'href="/keys"' in nav and 'href="/usage"' in nav
    for hidden in ('href="/providers"', 'href="/settings"', 'href="/audit"', 'href="/requests"',
                   'href="/teams"'):
        assert hidden not in nav, hidden
    for page in ("/providers", "/settings", "/audit", "/requests", "/teams", "/health"):
        assert team_admin_client.get(page).status_code == 403, page


def test_team_admin_creates_keys_for_their_team_only(team_admin_client, count):
    r = team_admin_client.post("/keys/new", data={"name": "x-new", "scopes": ["chat"]})
    assert r.status_code == 201
    assert db.session.scalar(db.select(GatewayKey).where(GatewayKey.name == "x-new")).owner == "x"
    before = count(GatewayKey)
    r = team_admin_client.post("/keys/new", data={"name": "sneaky", "owner": "y", "scopes": ["chat"]})
    assert r.status_code == 422 and "owner must be one of your teams (x)" in text(r)
    r = team_admin_client.post("/keys/new", data={"name": "sneaky", "scopes": ["chat", "admin"]})
    assert r.status_code == 422 and "may not grant the scope(s) admin" in text(r)
    assert count(GatewayKey) == before


def test_team_admin_cannot_move_a_key_to_another_team(team_admin_client, team_keys):
    mine, _ = team_keys
    r = team_admin_client.post(f"/keys/{mine.id}/edit", data={"name": "x-bot", "owner": "y",
                                                             "scopes": ["chat"]})
    assert r.status_code == 422
    db.session.expire_all()
    assert db.session.get(GatewayKey, mine.id).owner == "x"


def test_team_admin_usage_is_their_team_only(app, team_admin_client, team_keys):
    mine, other = team_keys
    write(app, [rec(DAY.replace(hour=9), key_id=mine.id, owner="x", pt=111),
                rec(DAY.replace(hour=9), key_id=other.id, owner="y", pt=999999)])
    page = text(team_admin_client.get(f"/usage?{WINDOW}&group=key"))
    assert "x-bot" in page and "y-secret-bot" not in page and "999,999" not in page
    r = team_admin_client.get(f"/usage?{WINDOW}&owner=y")
    assert r.status_code == 403 and "only see the usage of your team(s): x" in text(r)
    r = team_admin_client.get(f"/usage/charts/tokens.csv?{WINDOW}")
    assert r.status_code == 200 and "111" in text(r) and "999999" not in text(r)


def test_operator_works_on_providers_but_not_settings_or_teams(operator_client):
    assert operator_client.get("/providers/new").status_code == 200
    assert operator_client.get("/settings").status_code == 200  # read-only
    assert operator_client.post("/settings", data={}).status_code == 403
    assert operator_client.get("/teams/new").status_code == 403
    nav = text(operator_client.get("/providers"))
    assert 'href="/providers/new"' in nav  # an operator gets the write buttons
    settings = text(operator_client.get("/settings"))
    assert "read-only" in settings


def test_operator_cannot_mint_an_admin_key(operator_client, count):
    before = count(GatewayKey)
    r = operator_client.post("/keys/new", data={"name": "escalate", "scopes": ["admin"]})
    assert r.status_code == 422 and "operator) may not grant the scope(s) admin" in text(r)
    assert count(GatewayKey) == before
    r = operator_client.post("/keys/new", data={"name": "ops-automation", "scopes": ["admin:operator"]})
    assert r.status_code == 201


def test_operator_api_key_cannot_mint_an_admin_key_either(client, app):
    from app.services import keys
    _, raw = keys.create({"name": "ops", "scopes": ["admin:operator"]}, actor="test")
    h = {"Authorization": f"Bearer {raw}"}
    r = client.post("/api/admin/keys", json={"name": "x", "scopes": ["admin"]}, headers=h)
    assert r.status_code == 422 and "may not grant" in r.get_json()["error"]["message"]
    assert client.post("/api/admin/keys", json={"name": "x", "scopes": ["chat"]}, headers=h).status_code == 201
    assert client.patch("/api/admin/settings", json={}, headers=h).status_code == 403
    _, read = keys.create({"name": "ro", "scopes": ["admin:read"]}, actor="test")
    h = {"Authorization": f"Bearer {read}"}
    assert client.get("/api/admin/keys", headers=h).status_code == 200
    assert client.post("/api/admin/keys", json={"name": "y"}, headers=h).status_code == 403
