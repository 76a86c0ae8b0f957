"""User management in headless Chromium: the admin creates a team admin with a generated
password (shown once), the teams field appears only for that role, the list and edit pages
render under the Content-Security-Policy, wrong passwords lock the account and the admin unlocks
it, and the new user signs in with the password."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, ADMIN_USER, CHROMIUM
from .test_security_flows import Watch

pytestmark = [pytest.mark.browser, pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]


def shot(page: Page, screens, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


def sign_in(page: Page, gateway: str, username: str, password: str) -> None:
    page.goto(f"{gateway}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_create_a_user_with_a_generated_password_then_sign_in_as_them(page: Page, gateway: str,
                                                                       screens):
    watch = Watch(page)
    sign_in(page, gateway, ADMIN_USER, ADMIN_PASSWORD)
    expect(page.locator("h1")).to_have_text("Overview")

    page.goto(f"{gateway}/teams/new")  # a team admin needs an existing team
    page.fill("#name", "browser-team")
    page.click("form.form-card button[type=submit]")
    expect(page.locator(".alert-success")).to_contain_text("browser-team")

    page.click("nav >> text=Users")
    expect(page.locator("h1")).to_have_text("Users")
    page.click("text=New user")
    expect(page.locator("h1")).to_have_text("New user")
    teams = page.locator(".teams-field")
    expect(teams).to_be_hidden()  # viewer is the default role
    page.fill("#username", "tina.b")
    page.fill("#email", "tina@example.com")
    page.select_option("#role", "team_admin")
    expect(teams).to_be_visible()
    page.check("input[name=teams][value='browser-team']")
    shot(page, screens, "80-users-new")
    page.click("form.form-card button[type=submit]")  # password left blank: generated

    expect(page.locator("h1")).to_have_text("User “tina.b” created")
    expect(page.locator(".alert-warning")).to_contain_text("Copy this password now")
    password = page.locator("#new-password").input_value()
    assert len(password) >= 20
    shot(page, screens, "81-users-password-once")

    page.click("text=I have copied it")
    expect(page.locator("h1")).to_have_text("Users")
    row = page.locator("tr", has_text="tina.b")
    expect(row).to_contain_text("team admin")
    expect(row).to_contain_text("browser-team")
    expect(row).to_contain_text("never")
    assert password not in page.content()
    shot(page, screens, "82-users-list")

    row.locator("text=Edit").click()
    expect(page.locator("h1")).to_have_text("tina.b")
    expect(page.locator("#role")).to_have_value("team_admin")
    expect(page.locator("input[name=teams][value='browser-team']")).to_be_checked()
    assert password not in page.content()
    shot(page, screens, "83-users-edit")

    # wrong passwords lock the account; the admin sees it and unlocks it
    page.click("button[aria-label='Sign out']")
    expect(page).to_have_url(re.compile(r"/login"))
    for _ in range(6):  # LOGIN_MAX_FAILURES, then one that meets the lock
        sign_in(page, gateway, "tina.b", "not-her-password")
    expect(page.locator(".alert-error")).to_contain_text("temporarily locked")
    sign_in(page, gateway, ADMIN_USER, ADMIN_PASSWORD)
    page.goto(f"{gateway}/users")
    row = page.locator("tr", has_text="tina.b")
    expect(row).to_contain_text("locked")
    shot(page, screens, "84-users-list-locked")
    row.locator("text=Edit").click()
    expect(page.locator(".user-lock")).to_contain_text("Sign-in is locked until")
    shot(page, screens, "85-users-edit-locked")
    page.click(".user-lock button[type=submit]")
    expect(page.locator(".alert-success")).to_contain_text("unlocked")
    expect(page.locator(".user-lock")).to_have_count(0)

    # sign out, sign in as the new user: a team admin lands on their keys
    page.click("button[aria-label='Sign out']")
    expect(page).to_have_url(re.compile(r"/login"))
    sign_in(page, gateway, "tina.b", password)
    expect(page.locator(".userbox-name")).to_have_text("tina.b")
    expect(page.locator(".userbox-role")).to_have_text("team_admin")
    expect(page.locator("nav >> text=Users")).to_have_count(0)
    # the refused sign-ins answer 401 and 429, which the browser logs itself; nothing else
    expected = re.compile(r"Failed to load resource: .* status of (401|429) ")
    assert not [p for p in watch.problems if not expected.search(p)], watch.problems
    assert not watch.dialogs, watch.dialogs
    assert page.goto(f"{gateway}/users").status == 403  # (the browser logs this 403 itself)
