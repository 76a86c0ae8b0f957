"""Sign-in, sign-out, the login guard, roles, CSRF and the error page."""
from __future__ import annotations

import pytest

from app.admin.auth import safe_next

from .helpers import HTMX, csrf_from, is_fragment, text

PAGES = ["/", "/providers", "/providers/new", "/models", "/models/new", "/keys", "/keys/new",
         "/health", "/audit"]


def login(client, username="admin", password="correct-horse-1", **kw):
    return client.post("/login", data={"username": username, "password": password}, **kw)


def test_login_page_renders_form(client):
    r = client.get("/login")
    assert r.status_code == 200
    body = text(r)
    assert 'name="username"' in body and 'name="password"' in body and 'type="password"' in body
    assert "Sign in" in body
    assert "Overview" not in body  # no navigation for anonymous users


def test_login_success_redirects_to_overview(client, make_user, audit_rows):
    make_user()
    r = login(client)
    assert r.status_code == 303 and r.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "Overview" in text(page) and "admin" in text(page)
    assert audit_rows("user", "login")


def test_login_follows_local_next_only(client, make_user):
    make_user()
    r = login(client, query_string={"next": "/models?q=gpt"})
    assert r.headers["Location"] == "/models?q=gpt"
    client.post("/logout")
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        r = login(client, query_string={"next": evil})
        assert r.headers["Location"] == "/", evil
        client.post("/logout")


@pytest.mark.parametrize("target,expected", [
    ("/keys", "/keys"), ("/a?b=c", "/a?b=c"), (None, None), ("", None), ("keys", None),
    ("//x.test", None), ("https://x.test/", None), ("/\\x.test", None),
])
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_bad_password_shows_inline_error(client, make_user):
    make_user()
    r = login(client, password="wrong-password")
    assert r.status_code == 401
    assert "Wrong username or password" in text(r)
    assert client.get("/").status_code == 302  # still anonymous


def test_missing_fields_are_422(client):
    r = client.post("/login", data={"username": "", "password": ""})
    assert r.status_code == 422
    assert "This field is required" in text(r)


def test_login_throttled_after_repeated_failures(client, make_user, audit_rows):
    make_user()
    for _ in range(6):
        login(client, password="nope-nope")
    r = login(client)  # the right password, but the account is locked
    assert r.status_code == 429
    assert "temporarily locked" in text(r) and "try again later" in text(r)
    assert client.get("/").status_code == 302
    assert audit_rows("user", "lockout")


def test_logout_requires_post(admin_client):
    assert admin_client.get("/logout").status_code == 405
    r = admin_client.post("/logout")
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert admin_client.get("/").status_code == 302
    assert "signed out" in text(admin_client.get("/login"))


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_is_sent_to_login(client, path):
    r = client.get(path)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")


def test_anonymous_post_is_sent_to_login(client, make_provider):
    p = make_provider()
    r = client.post(f"/providers/{p.id}/toggle")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_anonymous_htmx_gets_hx_redirect(client):
    r = client.get("/health", headers=HTMX)
    assert r.status_code == 401
    assert r.headers["HX-Redirect"].startswith("/login")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_admin(admin_client, path):
    r = admin_client.get(path)
    assert r.status_code == 200
    body = text(r)
    assert "<html" in body and 'name="csrf-token"' in body and "hx-headers" in body
    assert 'href="/providers"' in body and 'href="/audit"' in body  # navigation


@pytest.mark.parametrize("path", ["/", "/providers", "/models", "/keys", "/health", "/audit"])
def test_viewer_can_read(viewer_client, path):
    r = viewer_client.get(path)
    assert r.status_code == 200
    assert "viewer" in text(r)


@pytest.mark.parametrize("path", ["/providers/new", "/models/new", "/keys/new"])
def test_viewer_cannot_open_write_forms(viewer_client, path):
    r = viewer_client.get(path)
    assert r.status_code == 403
    assert "read-only" in text(r)


def test_viewer_sees_no_write_buttons(viewer_client, make_provider):
    make_provider()
    body = text(viewer_client.get("/providers"))
    assert "Add provider" not in body and 'class="switch' not in body


def test_viewer_can_sign_out(viewer_client):
    assert viewer_client.post("/logout").status_code == 303


def test_error_page_uses_layout_without_login(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404
    body = text(r)
    assert "Not found" in body and "app.css" in body and "Sign out" not in body


def test_error_page_keeps_navigation_when_signed_in(admin_client):
    r = admin_client.get("/providers/999")
    assert r.status_code == 404
    assert "Provider 999 not found" in text(r) and "Sign out" in text(r)


class TestCsrf:
    def test_login_without_token_is_400(self, app_factory, make_user):
        make_user()
        client = app_factory(WTF_CSRF_ENABLED=True).test_client()
        r = login(client)
        assert r.status_code == 400
        assert "security token" in text(r)

    def test_forms_and_htmx_need_the_token(self, app_factory, make_user, make_provider, count):
        from app.models import Provider

        make_user()
        p = make_provider()
        client = app_factory(WTF_CSRF_ENABLED=True).test_client()
        token = csrf_from(text(client.get("/login")))
        r = client.post("/login", data={"username": "admin", "password": "correct-horse-1",
                                        "csrf_token": token})
        assert r.status_code == 303
        page = text(client.get("/providers/new"))
        token = csrf_from(page)
        assert f'"X-CSRFToken": "{token}"' in page  # hx-headers on <body>
        r = client.post("/providers/new", data={"name": "No token", "type": "openai",
                                                "api_key": "sk-x"})
        assert r.status_code == 400
        assert count(Provider) == 1
        r = client.post(f"/providers/{p.id}/toggle", headers={**HTMX})
        assert r.status_code == 400
        r = client.post(f"/providers/{p.id}/toggle", headers={**HTMX, "X-CSRFToken": token})
        assert r.status_code == 200 and is_fragment(r)
