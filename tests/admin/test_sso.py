"""Single sign-on through a real (fake) OpenID Connect provider process: the whole code + PKCE
flow with Flask's test client on the gateway side and real HTTP to the provider."""
from __future__ import annotations

import base64
import html
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.services.sso import SSOConfigError, parse_role_map
from tests.admin.helpers import squash
from tests.admin.helpers import text as raw_text
from tests.support import fake_oidc_process, free_port

ROLE_MAP = ("gw-admins=admin,gw-ops=operator,team-x-admins=team_admin:x,"
            "team-y-admins=team_admin:y,gw-staff=viewer")


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    with fake_oidc_process(tmp_path_factory.mktemp("oidc") / "fake_oidc.log") as provider:
        yield provider


@pytest.fixture
def sso_app(app_factory, idp):
    idp.configure()  # the default user (an operator from example.com), no misbehaviour
    app = app_factory(**idp.env(GATEWAY_OIDC_ROLE_MAP=ROLE_MAP,
                                GATEWAY_OIDC_ALLOWED_DOMAINS="example.com, example.org"))
    with app.app_context():
        yield app
        from app.extensions import db
        db.session.remove()


def text(response) -> str:
    return html.unescape(raw_text(response))


def start(client):
    """GET /login/sso -> the provider's /authorize URL (checked for state, nonce, PKCE)."""
    from flask import g
    g.pop("_login_user", None)  # the test's app context outlives requests: forget the last user
    r = client.get("/login/sso")
    assert r.status_code == 302, text(r)[:500]
    return r.headers["Location"]


def approve(authorize_url: str) -> str:
    """The provider's answer: the callback path + query it redirects the browser to."""
    r = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    back = urlsplit(r.headers["Location"])
    assert back.path == "/login/sso/callback"
    return f"{back.path}?{back.query}"


def sso_login(client):
    return client.get(approve(start(client)))


def user_named(name):
    from app.extensions import db
    from app.models import User
    db.session.expire_all()
    return db.session.scalar(db.select(User).where(User.username == name))


def test_login_page_offers_sso_only_when_configured(app, client, sso_app):
    assert "Sign in with SSO" not in text(client.get("/login"))
    page = text(sso_app.test_client().get("/login?next=/keys"))
    assert "Sign in with SSO" in page and 'href="/login/sso?next=/keys"' in page


def test_full_flow_creates_the_user_with_the_mapped_role(sso_app, idp, audit_rows):
    c = sso_app.test_client()
    authorize = start(c)
    q = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert authorize.startswith(idp.url + "/authorize?")
    assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
    assert q["client_id"] == "gateway-console" and "openid" in q["scope"].split()
    assert len(q["state"]) >= 20 and len(q["nonce"]) >= 20
    r = c.get(approve(authorize))
    assert r.status_code == 303 and r.headers["Location"] == "/"
    # the token request carried the verifier whose S256 hash is the challenge sent earlier
    sent = idp.last_token_request()
    digest = base64.urlsafe_b64encode(hashlib.sha256(sent["code_verifier"].encode()).digest())
    assert digest.rstrip(b"=").decode() == q["code_challenge"]
    user = user_named("ops@example.com")
    assert (user.role, user.oidc_issuer, user.oidc_subject, user.email) == \
        ("operator", idp.url, "user-1", "ops@example.com")
    assert not user.check_password("")  # no password works for an SSO account
    assert [a.actor for a in audit_rows("user", "sso_login")] == ["ops@example.com"]
    assert audit_rows("user", "create")[0].diff["role"] == [None, "operator"]
    page = text(c.get("/"))
    assert "ops@example.com" in page and "operator" in page
    # an operator: providers and keys yes, settings read-only
    assert c.get("/providers/new").status_code == 200
    assert c.post("/settings", data={}).status_code == 403


def test_role_and_teams_are_refreshed_from_the_claims_at_every_login(sso_app, idp, audit_rows,
                                                                     count):
    from app.models import User
    assert sso_login(sso_app.test_client()).status_code == 303
    idp.configure({"groups": ["team-x-admins", "team-y-admins", "unrelated"]})
    assert sso_login(sso_app.test_client()).status_code == 303
    user = user_named("ops@example.com")
    assert (user.role, user.teams) == ("team_admin", ["x", "y"])
    assert count(User) == 1
    assert audit_rows("user", "update")[0].diff["role"] == ["operator", "team_admin"]
    idp.configure({"groups": ["gw-staff", "gw-admins"]})  # the strongest role wins
    sso_login(sso_app.test_client())
    assert user_named("ops@example.com").role == "admin"


def test_a_string_role_claim_and_a_star_default(app_factory, idp):
    idp.configure({"groups": None, "role": "nobody-special"})
    app = app_factory(**idp.env(GATEWAY_OIDC_ROLE_MAP="gw-admins=admin,*=viewer",
                                GATEWAY_OIDC_ROLE_CLAIM="role"))
    with app.app_context():
        assert sso_login(app.test_client()).status_code == 303
        assert user_named("ops@example.com").role == "viewer"


def test_groups_only_in_userinfo_are_read_from_there(sso_app, idp):
    idp.configure(groups_in="userinfo")
    assert sso_login(sso_app.test_client()).status_code == 303
    assert user_named("ops@example.com").role == "operator"


@pytest.mark.parametrize("user, status, message, reason", [
    ({"email": "mallory@evil.test"}, 403, "Accounts from evil.test may not sign in here", "wrong_domain"),
    ({"email": None}, 403, "did not send an e-mail address", "missing_claim"),
    ({"email_verified": False}, 403, "is not verified", "unverified_email"),
    ({"groups": ["marketing"]}, 403, "None of your 'groups' values (marketing) is given a console role",
     "no_role"),
])
def test_refused_identities_get_a_clear_page_and_an_audit_row(sso_app, idp, audit_rows, count,
                                                              user, status, message, reason):
    from app.models import User
    idp.configure(user)
    r = sso_login(sso_app.test_client())
    assert r.status_code == status
    assert message in squash(text(r)) and 'id="sso-error"' in text(r)
    assert count(User) == 0
    assert audit_rows("user", "sso_denied")[0].diff["reason"] == [None, reason]


def test_missing_role_claim(sso_app, idp):
    idp.configure(groups_in="none")
    r = sso_login(sso_app.test_client())
    assert r.status_code == 403
    assert "did not send the 'groups' claim" in text(r)


def test_state_mismatch_is_refused(sso_app, idp, count):
    from app.models import User
    c = sso_app.test_client()
    callback = approve(start(c))
    forged = callback.replace("state=", "state=forged")
    r = c.get(forged)
    assert r.status_code == 400 and "state mismatch" in text(r)
    # and an answer for a sign-in this browser never started (another client's session)
    r = sso_app.test_client().get(callback)
    assert r.status_code == 400 and "state mismatch" in text(r)
    assert count(User) == 0


def test_wrong_nonce_in_the_id_token_is_refused(sso_app, idp, count):
    from app.models import User
    idp.configure(nonce="replayed-nonce-from-elsewhere")
    r = sso_login(sso_app.test_client())
    assert r.status_code == 400
    assert "ID token failed validation" in text(r) and "nonce" in text(r)
    assert count(User) == 0


def test_id_token_signed_by_an_unknown_key_is_refused(sso_app, idp, count):
    from app.models import User
    idp.configure(wrong_key=True)
    r = sso_login(sso_app.test_client())
    assert r.status_code == 400 and "ID token failed validation" in text(r)
    assert count(User) == 0


def test_id_token_for_another_audience_is_refused(sso_app, idp):
    idp.configure(aud="some-other-client")
    r = sso_login(sso_app.test_client())
    assert r.status_code == 400 and "ID token failed validation" in text(r)


def test_pkce_verifier_that_does_not_match_is_refused_by_the_provider(sso_app, idp, count):
    from app.models import User
    c = sso_app.test_client()
    callback = approve(start(c))
    with c.session_transaction() as sess:
        key = next(k for k in sess if k.startswith("_state_gateway_oidc_"))
        data = sess[key]
        data["data"]["code_verifier"] = "x" * 50
        sess[key] = data
    r = c.get(callback)
    assert r.status_code == 400
    assert "PKCE verification failed" in text(r)
    assert count(User) == 0


def test_provider_error_answer_is_shown(sso_app, idp):
    c = sso_app.test_client()
    state = parse_qs(urlsplit(start(c)).query)["state"][0]
    r = c.get(f"/login/sso/callback?error=access_denied&error_description=User+said+no&state={state}")
    assert r.status_code == 400 and "access_denied: User said no" in text(r)


def test_provider_down(app_factory):
    app = app_factory(GATEWAY_OIDC_ISSUER=f"http://127.0.0.1:{free_port()}",
                      GATEWAY_OIDC_CLIENT_ID="gw", GATEWAY_OIDC_ROLE_MAP="*=viewer")
    with app.app_context():
        r = app.test_client().get("/login/sso")
        assert r.status_code == 502
        assert "could not be reached" in text(r) and "Traceback" not in text(r)


def test_sso_not_configured_is_a_404_page(client):
    r = client.get("/login/sso")
    assert r.status_code == 404 and "not configured" in text(r)


def test_local_accounts_keep_working_beside_sso(sso_app, idp):
    from app.services import users
    users.create("local-admin", "correct-horse-1", "admin", actor="test")
    c = sso_app.test_client()
    r = c.post("/login", data={"username": "local-admin", "password": "correct-horse-1"})
    assert r.status_code == 303
    assert c.get("/settings").status_code == 200
    # an SSO account cannot be used with a password
    sso_login(sso_app.test_client())
    assert sso_app.test_client().post("/login", data={"username": "ops@example.com",
                                                      "password": "!sso"}).status_code == 401


def test_a_local_account_with_the_same_name_is_not_taken_over(sso_app, idp, count):
    from app.models import User
    from app.services import users
    users.create("ops@example.com", "correct-horse-1", "viewer", actor="test")
    r = sso_login(sso_app.test_client())
    assert r.status_code == 409 and "already exists" in text(r)
    assert user_named("ops@example.com").oidc_subject is None and count(User) == 1


def test_next_is_kept_through_the_round_trip(sso_app, idp):
    c = sso_app.test_client()
    r = c.get("/login/sso?next=/keys")
    r = c.get(approve(r.headers["Location"]))
    assert r.status_code == 303 and r.headers["Location"] == "/keys"
    c2 = sso_app.test_client()
    from flask import g
    g.pop("_login_user", None)
    r = c2.get("/login/sso?next=//evil.example/")
    assert c2.get(approve(r.headers["Location"])).headers["Location"] == "/"


@pytest.mark.parametrize("bad, message", [
    ("gw=superuser", "'superuser' is not a role"),
    ("gw-admins", "is not 'claim-value=role'"),
    ("x-admins=team_admin", "needs a team"),
    ("ops=operator:x", "only team_admin takes a team"),
])
def test_role_map_errors(bad, message):
    with pytest.raises(SSOConfigError, match=message.replace("(", r"\(").replace("'", "'")):
        parse_role_map(bad)


def test_role_map_parses():
    grants = parse_role_map(" gw-admins=admin, team-x-admins=team_admin:x ,*=viewer,")
    assert [(g.value, g.role, g.team) for g in grants] == [
        ("gw-admins", "admin", None), ("team-x-admins", "team_admin", "x"), ("*", "viewer", None)]


def test_misconfigured_role_map_is_a_clear_page(app_factory, idp):
    app = app_factory(**idp.env(GATEWAY_OIDC_ROLE_MAP="gw=root"))
    with app.app_context():
        r = app.test_client().get("/login/sso")
        assert r.status_code == 500 and "misconfigured" in text(r) and "'root' is not a role" in text(r)
