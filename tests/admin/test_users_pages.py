"""Console users: list, create (a generated password shown once), edit, reset, unlock, delete,
the guards as form messages, admins only, CSRF, and no password or hash in any page."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import AuditLog, GatewayKey, PlaygroundConversation, User, utcnow
from app.models.user import NO_PASSWORD

from .helpers import csrf_from, element, squash, text

PASSWORD = "correct-horse-1"      # the admin_client fixture's
OTHER = "other-horse-2345"


@pytest.fixture(autouse=True)
def _fresh_g(app):
    """Requests share the test's app context and so flask-login's cached user in `g`: forget it
    per request, so each test client is who its own cookie says."""
    @app.before_request
    def _forget():
        from flask import g
        g.pop("_login_user", None)
        g.pop("csrf_token", None)


def fresh(user_id: int) -> User | None:
    db.session.expire_all()
    return db.session.get(User, user_id)


def by_name(username: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(db.select(User).where(User.username == username))


def login(app, username, password=OTHER):
    c = app.test_client()
    r = c.post("/login", data={"username": username, "password": password})
    assert r.status_code == 303, text(r)[:300]
    return c


def signed_out(client) -> bool:
    r = client.get("/keys")
    return r.status_code == 302 and r.headers["Location"].startswith("/login")


def shown_password(response) -> str:
    match = re.search(r'id="new-password"[^>]*value="([^"]+)"', text(response))
    assert match, "no password on the result page"
    return match.group(1)


@pytest.fixture
def team(app):
    from app.services import teams
    return teams.create({"name": "research"}, actor="t")


@pytest.fixture
def bob(app):
    from app.services import users
    return users.create("bob", OTHER, "viewer", actor="t")


# ----------------------------------------------------------------------------- list
def test_nav_entry_for_admins_only(admin_client, app, make_user):
    nav = text(admin_client.get("/users"))
    nav = nav[nav.index("Configure"):nav.index("Operate")]
    assert 'href="/users"' in nav and "Users" in nav
    assert 'aria-current="page"' in nav.split('href="/users"')[1][:80]
    for role in ("operator", "viewer"):
        make_user(role, OTHER, role)
        page = text(login(app, role).get("/keys"))
        assert 'href="/users"' not in page


def test_list_shows_role_teams_sign_in_last_login_and_lock(admin_client, app, team, bob):
    from app.services import users
    users.add({"username": "tina", "role": "team_admin", "teams": ["research"],
               "email": "tina@example.com"}, actor="t")
    locked = by_name("bob")
    locked.locked_until = utcnow() + timedelta(minutes=15)
    db.session.add(User(username="sso.person@example.com", password_hash=NO_PASSWORD,
                        role="operator", oidc_issuer="https://login.example.com/realms/gw",
                        oidc_subject="s-1", last_login_at=utcnow() - timedelta(hours=3)))
    db.session.commit()
    html = text(admin_client.get("/users"))
    tina = squash(element(html, f"user-{by_name('tina').id}"))
    assert "tina@example.com" in tina and "team admin" in tina and "research" in tina
    assert "local password" in tina and "never" in tina and "active" in tina
    sso = squash(element(html, f"user-{by_name('sso.person@example.com').id}"))
    assert "SSO · login.example.com" in sso and "3 h ago" in sso and "operator" in sso
    bob_row = squash(element(html, f"user-{locked.id}"))
    assert "locked" in bob_row and "viewer" in bob_row
    me = squash(element(html, f"user-{by_name('admin').id}"))
    assert ">you<" in me and "Delete" not in me  # no delete link for oneself
    assert "Delete" in bob_row
    for u in db.session.scalars(db.select(User)):
        assert u.password_hash not in html


# ----------------------------------------------------------------------------- create
def test_create_with_a_generated_password_shows_it_once(admin_client, app, team):
    r = admin_client.get("/users/new")
    assert r.status_code == 200 and "Leave blank to generate" in text(r)
    r = admin_client.post("/users/new", data={"username": " carol ", "role": "team_admin",
                                              "teams": ["research"], "email": "carol@example.com",
                                              "password": ""})
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    assert "Copy this password now" in text(r)
    password = shown_password(r)
    carol = by_name("carol")
    assert carol is not None and carol.role == "team_admin" and carol.teams == ["research"]
    assert carol.check_password(password)
    for url in ("/users", f"/users/{carol.id}/edit", "/audit"):
        page = text(admin_client.get(url))
        assert password not in page and carol.password_hash not in page, url
    assert "Signs in with a password" in text(admin_client.get(f"/users/{carol.id}/edit"))
    # and the new user really signs in with it
    assert login(app, "carol", password).get("/keys").status_code == 200


def test_create_with_a_given_password(admin_client, app):
    r = admin_client.post("/users/new", data={"username": "dave", "role": "operator",
                                              "password": OTHER})
    assert r.status_code == 303 and r.headers["Location"].endswith("/users")
    page = text(admin_client.get("/users"))
    assert "User “dave” created (operator)" in page and OTHER not in page
    assert login(app, "dave").get("/providers").status_code == 200


@pytest.mark.parametrize("data, message", [
    ({"username": "x y", "role": "viewer"}, "letters, digits"),
    ({"username": "admin", "role": "viewer"}, "user &#39;admin&#39; already exists"),
    ({"username": "ADMIN", "role": "viewer"}, "ignoring case"),
    ({"username": "e", "role": "viewer", "password": "short"}, "at least 8 characters"),
    ({"username": "e", "role": "viewer", "email": "nope"}, "email must be an address"),
    ({"username": "e", "role": "team_admin"}, "needs at least one team"),
    ({"username": "e", "role": "team_admin", "teams": ["ghost"]}, "is not a valid choice"),
    ({"username": "", "role": "viewer"}, "This field is required"),
    ({"username": "e", "role": "root"}, "Not a valid choice"),
])
def test_create_errors_are_form_messages(admin_client, team, data, message):
    r = admin_client.post("/users/new", data={"password": "", **data})
    assert r.status_code == 422, text(r)[:300]
    page = text(r)
    assert message in page and 'class="field-error"' in page
    assert 'type="password"' in page and 'value="short"' not in page  # never echoed
    assert db.session.scalar(db.select(db.func.count(User.id))) == 1


def test_teams_are_ignored_for_other_roles(admin_client, team):
    """The teams checkboxes stay in the page (hidden by CSS) for other roles: a ticked box
    must not make an operator's form fail."""
    r = admin_client.post("/users/new", data={"username": "op", "role": "operator",
                                              "teams": ["research"], "password": OTHER})
    assert r.status_code == 303
    assert by_name("op").teams == []


def test_new_form_without_teams_says_to_create_one(admin_client):
    page = text(admin_client.get("/users/new"))
    assert "there are none yet" in page and 'href="/teams/new"' in page


# ----------------------------------------------------------------------------- edit
def test_role_change_ends_the_other_users_session(admin_client, app, bob):
    victim = login(app, "bob")
    assert victim.get("/keys").status_code == 200
    r = admin_client.post(f"/users/{bob.id}/edit", data={"role": "operator", "email": ""})
    assert r.status_code == 303
    assert "signed out everywhere" in text(admin_client.get("/users"))
    assert fresh(bob.id).role == "operator"
    assert signed_out(victim)
    assert login(app, "bob").get("/providers/new").status_code == 200  # the new role works


def test_password_reset_ends_the_other_users_session(admin_client, app, bob):
    victim = login(app, "bob")
    r = admin_client.post(f"/users/{bob.id}/edit", data={"role": "viewer",
                                                         "password": "fresh-password-1"})
    assert r.status_code == 303 and signed_out(victim)
    assert fresh(bob.id).check_password("fresh-password-1")
    assert "fresh-password-1" not in text(admin_client.get("/users"))
    login(app, "bob", "fresh-password-1")


def test_an_email_change_keeps_the_session(admin_client, app, bob):
    victim = login(app, "bob")
    assert admin_client.post(f"/users/{bob.id}/edit", data={"role": "viewer",
                                                            "email": "bob@example.com"}).status_code == 303
    assert fresh(bob.id).email == "bob@example.com"
    assert not signed_out(victim)


def test_generated_reset_is_shown_once(admin_client, app, bob):
    r = admin_client.post(f"/users/{bob.id}/edit", data={"role": "viewer", "generate_password": "y"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert "New password for “bob”" in text(r)
    password = shown_password(r)
    assert fresh(bob.id).check_password(password)
    assert password not in text(admin_client.get(f"/users/{bob.id}/edit"))
    login(app, "bob", password)


def test_changing_ones_own_password_keeps_this_session_only(admin_client, app):
    me = by_name("admin")
    copy = login(app, "admin", PASSWORD)  # the same account in another browser
    r = admin_client.post(f"/users/{me.id}/edit", data={"role": "admin",
                                                        "password": "my-new-password-1"})
    assert r.status_code == 303
    page = admin_client.get("/users")  # this session goes on
    assert page.status_code == 200 and "other sessions were signed out" in text(page)
    assert signed_out(copy)
    assert fresh(me.id).check_password("my-new-password-1")


def test_edit_errors_are_form_messages(admin_client, bob, team):
    for data, message in (({"role": "viewer", "password": "short"}, "at least 8"),
                          ({"role": "viewer", "password": "long-enough-1",
                            "generate_password": "y"}, "not both"),
                          ({"role": "team_admin"}, "at least one team")):
        r = admin_client.post(f"/users/{bob.id}/edit", data=data)
        assert r.status_code == 422 and message in text(r), data
    assert fresh(bob.id).role == "viewer" and fresh(bob.id).check_password(OTHER)


def test_the_last_admin_cannot_demote_themselves(admin_client):
    me = by_name("admin")
    r = admin_client.post(f"/users/{me.id}/edit", data={"role": "viewer"})
    assert r.status_code == 422 and "is the last admin" in text(r)
    assert fresh(me.id).role == "admin"


def test_sso_account_edit_page_has_no_password(admin_client):
    sso = User(username="ops@example.com", password_hash=NO_PASSWORD, role="viewer",
               oidc_issuer="https://idp.example.com", oidc_subject="abc")
    db.session.add(sso)
    db.session.commit()
    page = text(admin_client.get(f"/users/{sso.id}/edit"))
    assert 'name="password"' not in page and 'name="generate_password"' not in page
    assert "no local password" in page and "set again at every single sign-on" in page
    r = admin_client.post(f"/users/{sso.id}/edit", data={"role": "operator", "password": "sneaky-pass-1"})
    assert r.status_code == 303
    assert fresh(sso.id).role == "operator" and fresh(sso.id).password_hash == NO_PASSWORD


def test_unlock(admin_client, app, bob):
    u = fresh(bob.id)
    u.failed_logins, u.locked_until = 2, utcnow() + timedelta(minutes=15)
    db.session.commit()
    page = text(admin_client.get(f"/users/{bob.id}/edit"))
    assert "Sign-in is locked until" in page and f'action="/users/{bob.id}/unlock"' in page
    r = login_fails = app.test_client().post("/login", data={"username": "bob", "password": OTHER})
    assert login_fails.status_code == 429
    r = admin_client.post(f"/users/{bob.id}/unlock")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/users/{bob.id}/edit")
    assert "unlocked" in text(admin_client.get("/users"))
    assert fresh(bob.id).locked_until is None and fresh(bob.id).failed_logins == 0
    assert "Sign-in is locked" not in text(admin_client.get(f"/users/{bob.id}/edit"))
    login(app, "bob")


# ----------------------------------------------------------------------------- delete
def test_delete_asks_first_then_revokes_and_cascades(admin_client, app, bob):
    from app.services import playground
    victim = login(app, "bob")
    key = playground.key_for(fresh(bob.id))
    db.session.add(PlaygroundConversation(user_id=bob.id, title="hello", model="m", params={},
                                          messages=[]))
    db.session.commit()
    key_id, prefix = key.id, key.prefix
    r = admin_client.get(f"/users/{bob.id}/delete")
    page = text(r)
    assert r.status_code == 200 and "Delete user “bob”?" in page
    assert f"playground key ({prefix}…) is revoked" in page and "1 saved playground" in page
    assert fresh(bob.id) is not None  # a GET deletes nothing
    r = admin_client.post(f"/users/{bob.id}/delete")
    assert r.status_code == 303 and "User “bob” deleted" in text(admin_client.get("/users"))
    db.session.expire_all()
    assert fresh(bob.id) is None and db.session.get(GatewayKey, key_id).status == "revoked"
    assert db.session.scalar(db.select(db.func.count(PlaygroundConversation.id))) == 0
    assert signed_out(victim)
    row = db.session.scalar(db.select(AuditLog).where(AuditLog.entity_type == "user",
                                                      AuditLog.action == "delete"))
    assert row.entity_name == "bob" and row.actor == "admin"


def test_nobody_deletes_their_own_account(admin_client):
    me = by_name("admin")
    page = text(admin_client.get(f"/users/{me.id}/delete"))
    assert "You cannot delete your own account" in page
    r = admin_client.post(f"/users/{me.id}/delete")
    assert r.status_code == 409 and "cannot delete your own account" in text(r)
    assert fresh(me.id) is not None
    assert f'href="/users/{me.id}/delete"' not in text(admin_client.get(f"/users/{me.id}/edit"))


def test_demoting_another_admin_signs_them_out_and_protects_the_last_one(admin_client, app,
                                                                         make_user):
    other = make_user("root2", OTHER, "admin")
    me = by_name("admin")
    second = login(app, "root2")
    assert second.post(f"/users/{me.id}/edit", data={"role": "viewer"}).status_code == 303
    assert signed_out(admin_client) and fresh(me.id).role == "viewer"
    # root2 is now the only admin: neither demoting nor deleting themselves is possible
    r = second.post(f"/users/{other.id}/edit", data={"role": "operator"})
    assert r.status_code == 422 and "is the last admin" in text(r)
    r = second.post(f"/users/{other.id}/delete")
    assert r.status_code == 409 and fresh(other.id).role == "admin"


# ----------------------------------------------------------------------------- access
@pytest.mark.parametrize("role", ["operator", "viewer", "team_admin"])
def test_other_roles_get_403_everywhere(app, make_user, bob, role):
    make_user("someone", OTHER, role)
    c = login(app, "someone")
    for method, url, data in (("GET", "/users", None), ("GET", "/users/new", None),
                              ("POST", "/users/new", {"username": "evil", "role": "admin",
                                                      "password": "evil-password"}),
                              ("GET", f"/users/{bob.id}/edit", None),
                              ("POST", f"/users/{bob.id}/edit", {"role": "admin"}),
                              ("POST", f"/users/{bob.id}/unlock", {}),
                              ("GET", f"/users/{bob.id}/delete", None),
                              ("POST", f"/users/{bob.id}/delete", {})):
        r = c.open(url, method=method, data=data)
        assert r.status_code == 403, (role, method, url, r.status_code)
    assert by_name("evil") is None and fresh(bob.id).role == "viewer"


def test_csrf_is_enforced_on_every_users_form(app_factory):
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        from app.services import users
        users.create("admin", PASSWORD, "admin", actor="t")
        bob = users.create("bob", OTHER, "viewer", actor="t")
        bob_id = bob.id
        db.session.remove()
    c = app.test_client()
    token = csrf_from(text(c.get("/login")))
    assert c.post("/login", data={"username": "admin", "password": PASSWORD,
                                  "csrf_token": token}).status_code == 303
    page = text(c.get("/users/new"))
    good = csrf_from(page)
    for url, data in (("/users/new", {"username": "mallory", "role": "admin", "password": OTHER}),
                      (f"/users/{bob_id}/edit", {"role": "admin"}),
                      (f"/users/{bob_id}/unlock", {}),
                      (f"/users/{bob_id}/delete", {})):
        for label, extra in (("none", {}), ("bogus", {"csrf_token": "bogus"})):
            r = c.post(url, data={**data, **extra})
            assert r.status_code == 400 and "security token" in text(r), (url, label)
    with app.app_context():
        assert db.session.scalar(db.select(User).where(User.username == "mallory")) is None
        assert db.session.get(User, bob_id).role == "viewer"
        db.session.remove()
    # with the page's token the same forms work
    r = c.post("/users/new", data={"username": "mallory", "role": "viewer", "password": OTHER,
                                   "csrf_token": good})
    assert r.status_code == 303
    r = c.post(f"/users/{bob_id}/delete", data={"csrf_token": good})
    assert r.status_code == 303
    with app.app_context():
        assert db.session.get(User, bob_id) is None
        db.session.remove()
