"""Sessions: fixation, sign-out that really ends the session, throttling, and `next=` that never
leaves the site."""
from __future__ import annotations

import pytest

from .conftest import PASSWORD, csrf_token, login, sec_app_for


def cookie(client) -> str | None:
    c = client.get_cookie("session")
    return c.value if c else None


def test_login_rotates_the_session(sec_app, world):
    """An attacker who planted a pre-login session (and its CSRF token) gains nothing."""
    c = sec_app.test_client()
    c.get("/login")
    with c.session_transaction() as s:
        s["planted"] = "by-attacker"
        s["csrf_token"] = "attacker-known-token"
    planted = cookie(c)
    r = c.post("/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 303
    assert cookie(c) != planted
    with c.session_transaction() as s:
        assert "planted" not in s and s.get("csrf_token") != "attacker-known-token"
        assert s["_user_id"].startswith(f"{world['admin'].id}:")


def test_session_protection_is_on(sec_app):
    from app.extensions import login_manager
    assert login_manager.session_protection in ("basic", "strong")
    assert sec_app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert sec_app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_cookie_flags_in_production(app_factory, monkeypatch):
    monkeypatch.setenv("GATEWAY_ENV", "production")
    from app.config import load_config
    from cryptography.fernet import Fernet
    monkeypatch.setenv("GATEWAY_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "x" * 40)
    config = load_config({})
    assert config["SESSION_COOKIE_SECURE"] is True and config["REMEMBER_COOKIE_SECURE"] is True


def test_logout_invalidates_a_copied_cookie(sec_app, world):
    c = login(sec_app, "admin")
    stolen = cookie(c)
    assert c.get("/providers").status_code == 200
    assert c.post("/logout").status_code == 303
    replay = sec_app.test_client()
    replay.set_cookie("session", stolen)
    r = replay.get("/providers")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert replay.post(f"/providers/{world['provider'].id}/toggle").status_code == 302
    # signing in again works and gives a new, valid session
    c2 = login(sec_app, "admin")
    assert c2.get("/providers").status_code == 200 and cookie(c2) != stolen


def test_logout_needs_post_and_csrf(app_factory):
    app = sec_app_for(app_factory, WTF_CSRF_ENABLED=True)
    with app.app_context():
        from .conftest import populate
        populate(app)
        c = app.test_client()
        token = csrf_token(c.get("/login").get_data(as_text=True))
        assert c.post("/login", data={"username": "admin", "password": PASSWORD,
                                      "csrf_token": token}).status_code == 303
        assert c.get("/logout").status_code == 405
        assert c.post("/logout").status_code == 400  # a cross-site form cannot sign you out
        assert c.get("/").status_code == 200


def test_a_bare_or_tampered_user_id_does_not_sign_in(sec_app, world):
    c = login(sec_app, "admin")
    with c.session_transaction() as s:
        s["_user_id"] = f"{world['admin'].id}:999"
    assert c.get("/").status_code == 302
    with c.session_transaction() as s:
        s["_user_id"] = "1 OR 1=1"
    assert c.get("/").status_code == 302


def test_throttle_locks_the_account_and_the_address(sec_app, world):
    from app.services import users
    c = sec_app.test_client()
    limit = sec_app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit):
        assert c.post("/login", data={"username": "admin", "password": "wrong"}).status_code == 401
    r = c.post("/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 429 and c.get("/").status_code == 302
    # guessing other accounts from the same address is throttled too
    users._ip_failures.clear()
    for i in range(30):
        r = c.post("/login", data={"username": f"nobody{i}", "password": "wrong"})
        if r.status_code == 429:
            break
    assert r.status_code == 429, "no per-address throttle after 30 failures"
    assert "temporarily locked" in r.get_data(as_text=True)


def test_unknown_user_costs_a_password_hash_too(sec_app, world, monkeypatch):
    """No username oracle by timing: a failed sign-in for an unknown name checks a hash too."""
    import werkzeug.security

    from app.services import users
    calls = []
    real = werkzeug.security.check_password_hash
    monkeypatch.setattr(users, "check_password_hash",
                        lambda h, p: calls.append(h) or real(h, p), raising=False)
    users.authenticate("no-such-user", "x", "10.0.0.9")
    assert calls, "unknown users are answered without any hash work"


EVIL_NEXT = ["//evil.com", "https://evil.com", "http://evil.com/x", "/\\evil.com", "\\\\evil.com",
             "javascript:alert(1)", "%2F%2Fevil.com", "/%2F%2Fevil.com", "/%5Cevil.com",
             "%2f%2fevil.com", "///evil.com", "/ /evil.com", "https:evil.com", "//evil.com@x",
             "\t//evil.com", "/\t/evil.com", "data:text/html,<script>alert(1)</script>",
             " //evil.com", "//%65vil.com"]


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_next_never_leaves_the_site(sec_app, world, target):
    from urllib.parse import urlsplit
    c = sec_app.test_client()
    r = c.post("/login", query_string={"next": target},
               data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 303
    loc = r.headers["Location"]
    parts = urlsplit(loc)
    assert not parts.scheme and not parts.netloc and loc.startswith("/") and not loc.startswith("//"), loc
    assert "\\" not in loc and "evil" not in loc.split("?")[0].lstrip("/").split("/")[0] or loc == "/", loc
    # already signed in: GET /login?next=... redirects the same way
    r = c.get("/login", query_string={"next": target})
    loc = r.headers["Location"]
    assert not urlsplit(loc).netloc and not loc.startswith("//"), loc


def test_next_keeps_local_paths(sec_app, world):
    c = sec_app.test_client()
    r = c.post("/login", query_string={"next": "/requests?status=200"},
               data={"username": "admin", "password": PASSWORD})
    assert r.headers["Location"] == "/requests?status=200"
