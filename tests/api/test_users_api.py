"""/api/admin/users: create/list/get/update/delete, the one-time generated password, the guards,
admin keys only, responses true to the OpenAPI document, and the request schemas accepting
exactly what the service accepts."""
from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from app.extensions import db
from app.models import AuditLog, GatewayKey, PlaygroundConversation, User
from app.openapi import build_document

PASSWORD = "correct-horse-55"
FIELDS = {"id", "username", "role", "teams", "email", "sso", "issuer", "last_login_at", "locked",
          "created_at"}


@pytest.fixture
def doc():
    return build_document()


def validator(doc, schema) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": doc["components"]},
                                format_checker=FormatChecker())


def response_schema(doc, path, method, status):
    resp = doc["paths"][path][method]["responses"][str(status)]
    if "$ref" in resp:
        resp = doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
    return validator(doc, resp["content"]["application/json"]["schema"])


def request_schema(doc, path, method):
    return validator(doc, doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"])


def assert_valid(v, instance):
    errors = list(v.iter_errors(instance))
    assert not errors, [e.message for e in errors[:5]]


@pytest.fixture
def team(app):
    from app.services import teams
    return teams.create({"name": "research"}, actor="t")


def login(app, username, password=PASSWORD):
    c = app.test_client()
    r = c.post("/login", data={"username": username, "password": password})
    assert r.status_code == 303, r.data[:300]
    return c


@pytest.fixture
def fresh_g(app):
    """Requests share the test's app context (and so flask-login's cached user in `g`): forget
    it per request, so each client is who its cookie says."""
    @app.before_request
    def _forget():
        from flask import g
        g.pop("_login_user", None)


def test_create_list_get_update_delete(api, doc, team):
    r = api.post("/api/admin/users", json={"username": "jane", "role": "team_admin",
                                           "teams": ["research"], "email": "jane@example.com"})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert_valid(response_schema(doc, "/api/admin/users", "post", 201), created)
    assert set(created) == FIELDS | {"password"} and len(created["password"]) >= 20
    assert r.headers["Cache-Control"] == "no-store"
    assert (created["role"], created["teams"], created["sso"], created["locked"]) == \
        ("team_admin", ["research"], False, False)
    uid = created["id"]
    assert db.session.get(User, uid).check_password(created["password"])

    listing = api.get("/api/admin/users")
    assert listing.status_code == 200
    assert_valid(response_schema(doc, "/api/admin/users", "get", 200), listing.get_json())
    assert [u["username"] for u in listing.get_json()["data"]] == ["jane"]
    one = api.get(f"/api/admin/users/{uid}")
    assert_valid(response_schema(doc, "/api/admin/users/{user_id}", "get", 200), one.get_json())
    assert set(one.get_json()) == FIELDS  # the password was shown once, at creation
    for r in (listing, one):
        assert created["password"] not in r.get_data(as_text=True)
        assert db.session.get(User, uid).password_hash not in r.get_data(as_text=True)

    r = api.patch(f"/api/admin/users/{uid}", json={"role": "operator", "email": None})
    assert r.status_code == 200, r.get_json()
    assert_valid(response_schema(doc, "/api/admin/users/{user_id}", "patch", 200), r.get_json())
    assert (r.get_json()["role"], r.get_json()["teams"], r.get_json()["email"]) == ("operator", [], None)
    assert "password" not in r.get_json()

    r = api.delete(f"/api/admin/users/{uid}")
    assert r.status_code == 200 and r.get_json() == {"id": uid, "deleted": True}
    assert_valid(response_schema(doc, "/api/admin/users/{user_id}", "delete", 200), r.get_json())
    for method in ("get", "patch", "delete"):
        r = getattr(api, method)(f"/api/admin/users/{uid}", **({"json": {}} if method == "patch" else {}))
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "user_not_found"
        assert_valid(response_schema(doc, "/api/admin/users/{user_id}", method, 404), r.get_json())


def test_a_given_password_is_never_echoed(api):
    r = api.post("/api/admin/users", json={"username": "sam", "role": "viewer", "password": PASSWORD})
    assert r.status_code == 201 and "password" not in r.get_json()
    assert PASSWORD not in r.get_data(as_text=True)
    uid = r.get_json()["id"]
    r = api.patch(f"/api/admin/users/{uid}", json={"password": "another-secret-9"})
    assert r.status_code == 200 and "password" not in r.get_json()
    assert "another-secret-9" not in r.get_data(as_text=True)


def test_generated_reset_is_returned_once(api, doc):
    uid = api.post("/api/admin/users", json={"username": "sam", "role": "viewer",
                                             "password": PASSWORD}).get_json()["id"]
    r = api.patch(f"/api/admin/users/{uid}", json={"generate_password": True})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert_valid(response_schema(doc, "/api/admin/users/{user_id}", "patch", 200), r.get_json())
    new = r.get_json()["password"]
    db.session.expire_all()
    assert db.session.get(User, uid).check_password(new)
    assert "password" not in api.get(f"/api/admin/users/{uid}").get_json()


def test_passwords_and_hashes_never_reach_the_audit_api_or_rows(api):
    r = api.post("/api/admin/users", json={"username": "jane", "role": "viewer"})
    generated, uid = r.get_json()["password"], r.get_json()["id"]
    api.patch(f"/api/admin/users/{uid}", json={"password": "given-secret-42"})
    reset = api.patch(f"/api/admin/users/{uid}", json={"generate_password": True}).get_json()["password"]
    db.session.expire_all()
    hashed = db.session.get(User, uid).password_hash
    audit = api.get("/api/admin/audit?limit=1000").get_data(as_text=True)
    rows = json.dumps([(a.diff, a.entity_name) for a in db.session.scalars(db.select(AuditLog))])
    for text in (audit, rows):
        for secret in (generated, "given-secret-42", reset, hashed, hashed.split("$")[-1]):
            assert secret not in text
    assert '"password"' in rows  # the change itself is recorded, masked


def test_last_admin_guards(api, doc):
    uid = api.post("/api/admin/users", json={"username": "root", "role": "admin",
                                             "password": PASSWORD}).get_json()["id"]
    r = api.patch(f"/api/admin/users/{uid}", json={"role": "viewer"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "last_admin"
    assert_valid(response_schema(doc, "/api/admin/users/{user_id}", "patch", 409), r.get_json())
    r = api.delete(f"/api/admin/users/{uid}")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "last_admin"
    assert_valid(response_schema(doc, "/api/admin/users/{user_id}", "delete", 409), r.get_json())
    api.post("/api/admin/users", json={"username": "root2", "role": "admin", "password": PASSWORD})
    assert api.delete(f"/api/admin/users/{uid}").status_code == 200


def test_duplicate_and_team_errors(api, doc, team):
    api.post("/api/admin/users", json={"username": "jane", "role": "viewer"})
    r = api.post("/api/admin/users", json={"username": "JANE", "role": "viewer"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "user_exists"
    assert_valid(response_schema(doc, "/api/admin/users", "post", 409), r.get_json())
    r = api.post("/api/admin/users", json={"username": "ta", "role": "team_admin", "teams": ["ghost"]})
    assert r.status_code == 422 and r.get_json()["error"]["param"] == "teams"
    assert "ghost" in r.get_json()["error"]["message"]
    assert_valid(response_schema(doc, "/api/admin/users", "post", 422), r.get_json())
    r = api.post("/api/admin/users", data="not json", content_type="application/json")
    assert r.status_code == 400
    assert api.post("/api/admin/users", json=["a", "list"]).status_code == 400


@pytest.mark.parametrize("scope", ["admin:operator", "admin:read"])
def test_only_admin_keys(client, app, scope):
    from app.services import keys, users
    target = users.create("target", PASSWORD, "viewer", actor="t")
    _, raw = keys.create({"name": f"k-{scope}", "scopes": [scope]}, actor="t")
    h = {"Authorization": f"Bearer {raw}"}
    for method, url, body in (("GET", "/api/admin/users", None),
                              ("POST", "/api/admin/users", {"username": "x", "role": "admin"}),
                              ("GET", f"/api/admin/users/{target.id}", None),
                              ("PATCH", f"/api/admin/users/{target.id}", {"role": "admin"}),
                              ("DELETE", f"/api/admin/users/{target.id}", None)):
        r = client.open(url, method=method, json=body, headers=h)
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope", (method, url)
    db.session.expire_all()
    assert [u.username for u in db.session.scalars(db.select(User))] == ["target"]
    assert db.session.get(User, target.id).role == "viewer"


def test_role_change_and_password_reset_end_the_users_console_session(app, api, fresh_g):
    for data in ({"role": "operator"}, {"password": "a-brand-new-pass"}):
        db.session.query(User).filter(User.username == "victim").delete()
        db.session.commit()
        uid = api.post("/api/admin/users", json={"username": "victim", "role": "viewer",
                                                 "password": PASSWORD}).get_json()["id"]
        victim = login(app, "victim")
        assert victim.get("/providers").status_code == 200
        assert api.patch(f"/api/admin/users/{uid}", json=data).status_code == 200
        r = victim.get("/providers")
        assert r.status_code == 302 and r.headers["Location"].startswith("/login"), data


def test_an_email_change_keeps_the_session(app, api, fresh_g):
    uid = api.post("/api/admin/users", json={"username": "victim", "role": "viewer",
                                             "password": PASSWORD}).get_json()["id"]
    victim = login(app, "victim")
    assert api.patch(f"/api/admin/users/{uid}", json={"email": "v@example.com"}).status_code == 200
    assert victim.get("/providers").status_code == 200


def test_delete_revokes_the_playground_key_and_signs_out(app, api, fresh_g):
    from app.services import playground
    uid = api.post("/api/admin/users", json={"username": "chatty", "role": "viewer",
                                             "password": PASSWORD}).get_json()["id"]
    c = login(app, "chatty")
    key = playground.key_for(db.session.get(User, uid))
    db.session.add(PlaygroundConversation(user_id=uid, title="hi", model="m", params={}, messages=[]))
    db.session.commit()
    key_id = key.id
    assert api.delete(f"/api/admin/users/{uid}").status_code == 200
    db.session.expire_all()
    assert db.session.get(GatewayKey, key_id).status == "revoked"
    assert api.get(f"/api/admin/keys/{key_id}").get_json()["status"] == "revoked"
    assert db.session.scalar(db.select(db.func.count(PlaygroundConversation.id))) == 0
    r = c.get("/providers")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


# ------------------------------------------------------------------------------ schema parity
# (body, status): the request schema accepts a body iff the service does not answer 422
# ("research" exists; 409 and 201 both mean "valid")
CREATE_BODIES = [
    ({"username": "a", "role": "viewer"}, 201),
    ({"username": "a.b_c+d@e-f.io", "role": "operator", "password": PASSWORD}, 201),
    ({"username": "a", "role": "viewer", "password": None}, 201),
    ({"username": "a", "role": "viewer", "email": ""}, 201),
    ({"username": "a", "role": "viewer", "email": None}, 201),
    ({"username": "a", "role": "viewer", "email": "a@b"}, 201),
    ({"username": "a", "role": "viewer", "teams": []}, 201),
    ({"username": "a", "role": "team_admin", "teams": ["research"]}, 201),
    ({"username": "a" * 80, "role": "admin"}, 201),
    ({"username": "a", "role": "viewer", "password": "12345678"}, 201),
    ({"username": "a", "role": "viewer", "password": "x" * 200}, 201),
    ({"username": "a", "role": "viewer", "password": "  pass word  "}, 201),
    ({"username": "a" * 81, "role": "admin"}, 422),
    ({"username": " a", "role": "viewer"}, 422),
    ({"username": "a\n", "role": "viewer"}, 422),
    ({"username": "", "role": "viewer"}, 422),
    ({"username": "_a", "role": "viewer"}, 422),
    ({"username": "a b", "role": "viewer"}, 422),
    ({"username": 5, "role": "viewer"}, 422),
    ({"role": "viewer"}, 422),
    ({"username": "a"}, 422),
    ({"username": "a", "role": "root"}, 422),
    ({"username": "a", "role": None}, 422),
    ({"username": "a", "role": "team_admin"}, 422),
    ({"username": "a", "role": "team_admin", "teams": []}, 422),
    ({"username": "a", "role": "viewer", "teams": ["research"]}, 422),
    ({"username": "a", "role": "team_admin", "teams": ["research", "research"]}, 422),
    ({"username": "a", "role": "team_admin", "teams": [""]}, 422),
    ({"username": "a", "role": "team_admin", "teams": "research"}, 422),
    ({"username": "a", "role": "team_admin", "teams": [5]}, 422),
    ({"username": "a", "role": "viewer", "email": "nope"}, 422),
    ({"username": "a", "role": "viewer", "email": "a@b\n"}, 422),
    ({"username": "a", "role": "viewer", "email": " a@b"}, 422),
    ({"username": "a", "role": "viewer", "email": "a\ufeff@b"}, 422),
    ({"username": "a", "role": "viewer", "email": "a@" + "b" * 254}, 422),
    ({"username": "a", "role": "viewer", "email": 5}, 422),
    ({"username": "a", "role": "viewer", "password": "short"}, 422),
    ({"username": "a", "role": "viewer", "password": "x" * 201}, 422),
    ({"username": "a", "role": "viewer", "password": " " * 10}, 422),
    ({"username": "a", "role": "viewer", "password": "tab\tinside"}, 422),
    ({"username": "a", "role": "viewer", "password": "newline\n12"}, 422),
    ({"username": "a", "role": "viewer", "password": "del\x7finside"}, 422),
    ({"username": "a", "role": "viewer", "password": 12345678}, 422),
    ({"username": "a", "role": "viewer", "extra": 1}, 422),
    ({"username": "a", "role": "viewer", "generate_password": True}, 422),
]


def test_create_schema_agrees_with_the_service(api, doc, team):
    v = request_schema(doc, "/api/admin/users", "post")
    for body, status in CREATE_BODIES:
        r = api.post("/api/admin/users", json=body)
        assert r.status_code == status, (body, r.get_json())
        assert v.is_valid(body) == (status != 422), body
        if r.status_code == 201:
            api.delete(f"/api/admin/users/{r.get_json()['id']}")


UPDATE_BODIES = [  # against a viewer (and, marked "ta", a team admin of research)
    ({}, 200),
    ({"role": "operator"}, 200),
    ({"role": "team_admin", "teams": ["research"]}, 200),
    ({"role": "viewer", "teams": []}, 200),
    ({"email": "x@y.z"}, 200), ({"email": ""}, 200), ({"email": None}, 200),
    ({"password": "a-new-password"}, 200),
    ({"password": "a-new-password", "generate_password": False}, 200),
    ({"generate_password": True}, 200), ({"generate_password": False}, 200),
    ({"unlock": True}, 200), ({"unlock": False}, 200),
    ({"teams": []}, 200),
    ({"role": "viewer", "teams": ["research"]}, 422),
    ({"role": "team_admin", "teams": []}, 422),
    ({"role": "sudo"}, 422),
    ({"password": None}, 422),
    ({"password": "a-new-password", "generate_password": True}, 422),
    ({"generate_password": "yes"}, 422), ({"unlock": 1}, 422), ({"unlock": None}, 422),
    ({"username": "renamed"}, 422),
    ({"email": "nope"}, 422),
    ({"teams": "research"}, 422),
    ({"teams": ["research", "research"]}, 422),
]


def test_update_schema_agrees_with_the_service(api, doc, team, app):
    from app.services import users
    v = request_schema(doc, "/api/admin/users/{user_id}", "patch")
    for body, status in UPDATE_BODIES:
        db.session.query(User).delete()
        db.session.commit()
        target = users.create("target", PASSWORD, "viewer", actor="t")
        r = api.patch(f"/api/admin/users/{target.id}", json=body)
        assert r.status_code == status, (body, r.get_json())
        assert v.is_valid(body) == (status != 422), body
    # data-dependent refusals the schema cannot see (a valid body, a 422 for this user)
    db.session.query(User).delete()
    db.session.commit()
    viewer = users.create("viewer", PASSWORD, "viewer", actor="t")
    for body in ({"teams": ["research"]}, {"role": "team_admin"},
                 {"role": "team_admin", "teams": ["ghost"]}):
        assert v.is_valid(body)
        assert api.patch(f"/api/admin/users/{viewer.id}", json=body).status_code == 422, body
