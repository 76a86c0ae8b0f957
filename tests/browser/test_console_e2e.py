"""End to end in headless Chromium against gunicorn + gevent and the bench's fake upstream."""
from __future__ import annotations

import re
import socket

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, ADMIN_USER, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]

PROVIDER_SECRET = "sk-e2e-SECRET-4242"


def shot(page: Page, screens, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


def test_console_walkthrough(page: Page, gateway: str, fake_upstream: str, screens):
    # sign in
    page.goto(f"{gateway}/providers")
    expect(page).to_have_url(re.compile(r"/login\?next=(%2F|/)providers$"))
    page.fill("#password", "wrong-password")
    page.fill("#username", ADMIN_USER)
    page.click("button[type=submit]")
    expect(page.locator(".alert-error")).to_contain_text("Wrong username or password")
    shot(page, screens, "01-login-error")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{gateway}/providers")
    page.goto(gateway + "/")
    expect(page.locator("h1")).to_have_text("Overview")
    shot(page, screens, "02-overview-empty")

    # create an OpenAI-compatible provider; the type select swaps in its fields via htmx
    page.goto(f"{gateway}/providers/new")
    page.select_option("#type", "anthropic")
    expect(page.locator("#anthropic_version")).to_be_visible()
    page.select_option("#type", "openai-compatible")
    expect(page.locator("#anthropic_version")).to_have_count(0)
    expect(page.locator("#api-base-hint")).to_contain_text("Required")
    page.fill("#name", "Fake upstream")
    page.fill("#api_base", f"{fake_upstream}/v1")
    page.fill("#api_key", PROVIDER_SECRET)
    page.select_option("#trust_level", "local")
    shot(page, screens, "03-provider-form")
    page.click("form.form-card button[type=submit]")
    expect(page.locator("h1")).to_have_text("Fake upstream")
    assert PROVIDER_SECRET not in page.content()

    # test the connection: live health check shown inline
    page.click("text=Test connection")
    expect(page.locator("#test-result")).to_contain_text("healthy")
    expect(page.locator("#test-result")).not_to_contain_text("unhealthy")
    shot(page, screens, "04-provider-detail-tested")

    # import the upstream's models
    page.click("a:has-text('Import models') >> nth=0")
    expect(page.locator("h1")).to_have_text("Import models")
    expect(page.locator("table")).to_contain_text("fake-model")
    page.check("[data-check-all]")
    shot(page, screens, "05-import-models")
    page.click("text=Import selected")
    expect(page.locator(".alert-success")).to_contain_text("Imported 3 model(s)")
    expect(page.locator("section.card", has_text="Models")).to_contain_text("fake-embed")
    assert PROVIDER_SECRET not in page.content()

    # models: live search swaps only the table
    page.goto(f"{gateway}/models")
    expect(page.locator("#models-table tbody tr")).to_have_count(3)
    shot(page, screens, "06-models")
    page.fill("input[name=q]", "embed")
    page.keyboard.press("d")  # keyup triggers the search (the value is now "embedd": no match)
    expect(page.locator("#models-table")).to_contain_text("No models match")
    page.fill("input[name=q]", "")
    page.type("input[name=q]", "emb")
    expect(page.locator("#models-table tbody tr")).to_have_count(1)
    expect(page.locator("#models-table")).to_contain_text("fake-embed")
    shot(page, screens, "07-models-search")

    # toggle a model off in place
    switch = page.locator("#models-table tbody tr >> nth=0 >> button.switch")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")  # the row was swapped in place

    # edit form renders with values
    page.goto(f"{gateway}/models")
    page.click("#models-table tbody tr >> nth=0 >> text=Edit")
    expect(page.locator("h1")).to_have_text("Edit model")
    shot(page, screens, "08-model-edit")

    # create a key: shown once
    page.goto(f"{gateway}/keys/new")
    page.fill("#name", "e2e client")
    page.fill("#owner", "qa team")
    page.fill("#rpm", "60")
    page.fill("#budget_amount", "25")
    shot(page, screens, "09-key-form")
    page.click("form.form-card button[type=submit]")
    expect(page.locator("h1")).to_contain_text("created")
    raw_key = page.input_value("#new-key")
    assert raw_key.startswith("gw-") and len(raw_key) > 30
    shot(page, screens, "10-key-created")
    page.goto(f"{gateway}/keys")
    expect(page.locator("table")).to_contain_text("e2e client")
    assert raw_key not in page.content()
    shot(page, screens, "11-keys")

    # health dashboard: healthy badge, check now, polling fragment
    page.goto(f"{gateway}/health")
    expect(page.locator("#health-table")).to_contain_text("healthy")
    page.click("#health-table >> text=Check now")
    expect(page.locator("#health-table .badge-success")).to_have_count(1)
    shot(page, screens, "12-health")

    # providers list, audit log, overview with data
    page.goto(f"{gateway}/providers")
    expect(page.locator("#providers-table")).to_contain_text("Fake upstream")
    assert PROVIDER_SECRET not in page.content()
    shot(page, screens, "13-providers")
    page.goto(f"{gateway}/providers/1/edit")
    expect(page.locator(".stored-note")).to_contain_text("a key is stored")
    assert PROVIDER_SECRET not in page.content()
    shot(page, screens, "14-provider-edit")
    page.goto(f"{gateway}/audit")
    expect(page.locator("table")).to_contain_text("import")
    shot(page, screens, "15-audit")
    page.goto(gateway + "/")
    shot(page, screens, "16-overview")

    # revoke with a confirmation page; errors keep the layout
    page.goto(f"{gateway}/keys")
    page.click("text=Revoke")
    expect(page.locator("h1")).to_contain_text("Revoke key")
    shot(page, screens, "17-revoke-confirm")
    page.click("button:has-text('Revoke key')")
    expect(page.locator("table")).to_contain_text("revoked")
    page.goto(f"{gateway}/providers/999")
    expect(page.locator("h1")).to_have_text("Not found")
    shot(page, screens, "18-not-found")

    # sign out
    page.click("button[aria-label='Sign out']")
    expect(page).to_have_url(re.compile(r"/login"))


def login(page: Page, gateway: str) -> None:
    page.goto(f"{gateway}/login")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def test_failures_are_shown_not_crashed(page: Page, gateway: str, screens):
    login(page, gateway)
    # an invalid form keeps the values and shows the messages inline
    page.goto(f"{gateway}/providers/new")
    page.select_option("#type", "openai-compatible")
    expect(page.locator("#api_key")).to_be_visible()
    page.fill("#name", "Broken upstream")
    page.fill("#api_base", "ftp://nowhere")
    page.fill("#default_temperature", "7")
    page.click("form.form-card button[type=submit]")
    expect(page.locator(".has-error")).to_contain_text("Number must be between 0 and 2")
    expect(page.locator("#name")).to_have_value("Broken upstream")
    page.fill("#default_temperature", "0.5")
    page.click("form.form-card button[type=submit]")  # now the service's own check speaks
    expect(page.locator(".has-error")).to_contain_text("must be an http(s) URL")
    shot(page, screens, "20-provider-form-errors")

    # an upstream nobody listens on: unhealthy with the reason, import explains itself
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    page.fill("#api_base", f"http://127.0.0.1:{dead_port}/v1")
    page.fill("#default_temperature", "")
    page.click("form.form-card button[type=submit]")
    expect(page.locator("h1")).to_have_text("Broken upstream")
    page.click("text=Test connection")
    expect(page.locator("#test-result")).to_contain_text("unhealthy")
    expect(page.locator("#test-result")).to_contain_text("connection refused")
    expect(page.locator("#provider-status")).to_contain_text("unhealthy")
    shot(page, screens, "21-provider-unhealthy")
    page.click("a:has-text('Import models') >> nth=0")
    expect(page.locator(".alert-error")).to_contain_text("could not reach the upstream")
    shot(page, screens, "22-import-unreachable")
    page.goto(f"{gateway}/health")
    expect(page.locator("#health-table .badge-danger")).to_have_count(1)
    shot(page, screens, "23-health-mixed")

    # narrow screens: the sidebar folds into a top bar, tables scroll inside their card
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(f"{gateway}/providers")
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the page itself must not scroll sideways"
    shot(page, screens, "24-providers-narrow")
