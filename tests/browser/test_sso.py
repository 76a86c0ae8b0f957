"""Single sign-on in headless Chromium: the gateway under gunicorn + gevent, the fake OpenID
Connect provider as its own process; each signed-in role sees only what it may use."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import BIN, CHROMIUM, ROOT, _free_port, _stop, _wait_http
from tests.support import fake_oidc_process

pytestmark = [pytest.mark.browser, pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]

ROLE_MAP = "gw-admins=admin,gw-ops=operator,gw-staff=viewer,team-x-admins=team_admin:x"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    with fake_oidc_process(tmp_path_factory.mktemp("oidc") / "fake_oidc.log") as provider:
        yield provider


@pytest.fixture(scope="module")
def sso_gateway(tmp_path_factory, idp):
    tmp = tmp_path_factory.mktemp("sso-gateway")
    env = {**os.environ, "GATEWAY_INSTANCE_PATH": str(tmp), "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
           "GATEWAY_ENV": "development", "GATEWAY_HEALTH_INTERVAL": "0", "NO_PROXY": "127.0.0.1",
           **idp.env(GATEWAY_OIDC_ROLE_MAP=ROLE_MAP, GATEWAY_OIDC_ALLOWED_DOMAINS="example.com")}
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    port = _free_port()
    log = (tmp / "gunicorn.log").open("w")
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
                             "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/login", proc)
        yield url
    finally:
        _stop(proc)
        log.close()


def sign_in(page: Page, gateway: str, next_path: str = "/") -> None:
    page.context.clear_cookies()
    page.goto(f"{gateway}/login?next={next_path}")
    page.click("#sso-login")  # -> fake provider /authorize -> /login/sso/callback -> next


def nav_links(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("nav.nav a.nav-link").all_inner_texts()]


def test_operator_signs_in_with_sso_and_sees_only_what_the_role_allows(page: Page, sso_gateway, idp,
                                                                       screens):
    idp.configure({"sub": "op-1", "email": "olive@example.com", "groups": ["gw-ops"]})
    page.goto(f"{sso_gateway}/login")
    expect(page.locator("#sso-login")).to_have_text(re.compile("Sign in with SSO"))
    sign_in(page, sso_gateway, "/providers")
    expect(page).to_have_url(f"{sso_gateway}/providers")
    expect(page.locator(".userbox-name")).to_have_text("olive@example.com")
    expect(page.locator(".userbox-role")).to_have_text("operator")
    expect(page.locator('a[href="/providers/new"]').first).to_be_visible()  # operators add providers
    page.screenshot(path=str(screens / "sso-01-operator-providers.png"), full_page=True)
    # settings: readable, but the form is disabled and marked read-only; teams: no "New team"
    page.goto(f"{sso_gateway}/settings")
    expect(page.locator("text=read-only").first).to_be_visible()
    expect(page.locator("fieldset.settings-body input:not([type=hidden])").first).to_be_disabled()
    page.goto(f"{sso_gateway}/teams")
    expect(page.locator('a[href="/teams/new"]')).to_have_count(0)
    response = page.goto(f"{sso_gateway}/teams/new")
    assert response.status == 403
    expect(page.locator(".error-message")).to_contain_text("may not open this page")
    page.screenshot(path=str(screens / "sso-02-operator-teams-new-refused.png"), full_page=True)


def test_team_admin_sees_only_keys_and_usage(page: Page, sso_gateway, idp, screens):
    idp.configure({"sub": "ta-1", "email": "tara@example.com", "groups": ["team-x-admins"]})
    sign_in(page, sso_gateway)
    expect(page).to_have_url(f"{sso_gateway}/keys")  # the overview sends team admins to their keys
    expect(page.locator(".userbox-role")).to_have_text("team_admin")
    links = nav_links(page)
    assert "Keys" in links and "Usage" in links and "Playground" in links
    for absent in ("Providers", "Models", "Teams", "Routing", "Settings", "Requests", "Health",
                   "Cache", "Audit log"):
        assert absent not in links, (absent, links)
    page.screenshot(path=str(screens / "sso-03-team-admin-keys.png"), full_page=True)
    for forbidden in ("/providers", "/settings", "/audit", "/requests"):
        assert page.goto(f"{sso_gateway}{forbidden}").status == 403, forbidden
    expect(page.locator(".error-message")).to_contain_text("may not open this page")
    page.screenshot(path=str(screens / "sso-04-team-admin-refused.png"), full_page=True)


def test_viewer_gets_no_write_buttons_and_a_wrong_domain_is_refused(page: Page, sso_gateway, idp, screens):
    idp.configure({"sub": "v-1", "email": "vic@example.com", "groups": ["gw-staff"]})
    sign_in(page, sso_gateway, "/providers")
    expect(page.locator(".userbox-role")).to_have_text("viewer")
    assert "Settings" in nav_links(page)
    expect(page.locator('a[href="/providers/new"]')).to_have_count(0)
    assert page.goto(f"{sso_gateway}/providers/new").status == 403
    # someone from another domain: the login page says why
    idp.configure({"sub": "m-1", "email": "mallory@evil.test", "groups": ["gw-admins"]})
    sign_in(page, sso_gateway)
    expect(page.locator("#sso-error")).to_contain_text("Accounts from evil.test may not sign in here")
    page.screenshot(path=str(screens / "sso-05-wrong-domain.png"), full_page=True)
