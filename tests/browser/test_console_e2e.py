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


def test_spend_and_limits(page: Page, gateway: str, fake_upstream: str, screens):
    """A key with its own and a team budget, driven through the proxy; its detail page shows
    the spend, limits and refusals and refreshes itself."""
    import time

    import requests

    login(page, gateway)

    # a provider with global limits
    page.goto(f"{gateway}/providers/new")
    page.select_option("#type", "openai-compatible")
    expect(page.locator("#api_key")).to_be_visible()
    page.fill("#name", "Spend upstream")
    page.fill("#api_base", f"{fake_upstream}/v1")
    page.fill("#api_key", PROVIDER_SECRET)
    page.fill("form.form-card #rpm", "600")
    page.fill("form.form-card #concurrency", "20")
    page.click("form.form-card button[type=submit]")
    expect(page.locator("h1")).to_have_text("Spend upstream")
    expect(page.locator("#provider-limits")).to_contain_text("Requests / minute")
    provider_url = page.url

    # a model: typing a well-known upstream id fills the blank prices with its list price
    page.goto(f"{gateway}/models/new")
    page.select_option("#provider_id", label="Spend upstream")
    page.type("#model_id", "gpt-4o")
    expect(page.locator("#price-hint")).to_contain_text("List price for gpt-4o — edit to match your contract")
    expect(page.locator("#input_price_per_mtok")).to_have_value("2.5")
    expect(page.locator("#output_price_per_mtok")).to_have_value("10")
    # the admin's own value survives the next suggestion (typed like a person: click, keys)
    page.click("#input_price_per_mtok")
    page.keyboard.press("Control+A")
    page.keyboard.type("2.4")
    page.click("#model_id")
    page.keyboard.press("End")
    with page.expect_response(lambda r: "/models/prices" in r.url):
        page.keyboard.type("-2024-08-06")
    expect(page.locator("input[name=autofill_input_price_per_mtok]")).to_have_count(0)  # swapped: now theirs
    expect(page.locator("#model_id")).to_have_value("gpt-4o-2024-08-06")
    expect(page.locator("#input_price_per_mtok")).to_have_value("2.4")
    expect(page.locator("#output_price_per_mtok")).to_have_value("10")
    # once the field is cleared, the list price comes back on the next change of the id
    page.click("#input_price_per_mtok")
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    page.click("#model_id")
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    expect(page.locator("#input_price_per_mtok")).to_have_value("2.5")
    expect(page.locator("#price-hint")).to_contain_text("edit to match your contract")
    page.keyboard.type("6")
    page.fill("#name", "spend-4o")
    shot(page, screens, "30-model-form-list-price")
    page.click("form.form-card button[type=submit]")
    expect(page.locator(".alert-success")).to_contain_text("spend-4o")

    # a team with a shared budget
    page.goto(f"{gateway}/teams/new")
    page.fill("#name", "growth")
    page.fill("#description", "Growth experiments")
    page.fill("#budget_amount", "0.5")
    page.select_option("#budget_period", "day")
    page.click("form.form-card button[type=submit]")
    expect(page.locator(".alert-success")).to_contain_text("growth")

    # a key in that team with its own budget and limits
    page.goto(f"{gateway}/keys/new")
    page.fill("#name", "spend demo")
    page.fill("#owner", "growth")
    page.fill("#rph", "10")  # per hour: the counts cannot drain while the test looks at them
    page.fill("#tpm", "100000")
    page.fill("#concurrency", "4")
    page.fill("#budget_amount", "0.04")
    page.select_option("#budget_period", "day")
    page.fill("#budget_soft_pct", "70")
    page.click("form.form-card button[type=submit]")
    raw_key = page.input_value("#new-key")

    # traffic: ~1,000 prompt tokens at $2.50/1M + 32 completion tokens at $10/1M each
    headers = {"Authorization": f"Bearer {raw_key}"}
    body = {"model": "spend-4o", "messages": [{"role": "user", "content": "x" * 4000}], "max_tokens": 50}
    statuses = []
    for _ in range(12):
        r = requests.post(f"{gateway}/v1/chat/completions", json=body, headers=headers, timeout=10)
        statuses.append((r.status_code, r.json().get("error", {}).get("code")))
        # the gateway settles finished requests in batches (GATEWAY_LIMITS_SETTLE_INTERVAL, 20 ms);
        # until then their concurrency lease is held, so a client firing back to back can be refused
        time.sleep(0.1)
    statuses = [code for code, _ in statuses] if all(c != 429 or e == "rate_limit_exceeded"
                                                     for c, e in statuses) else statuses
    big = requests.post(f"{gateway}/v1/chat/completions", json={**body, "max_tokens": 2000},
                        headers=headers, timeout=10)
    assert statuses == [200] * 10 + [429, 429], statuses
    assert big.status_code == 402 and big.json()["error"]["code"] == "insufficient_quota"
    time.sleep(1.5)  # usage rows are written in batches, every second (GATEWAY_USAGE_FLUSH_INTERVAL)

    # keys list: a compact spend bar
    page.goto(f"{gateway}/keys")
    row = page.locator("tr", has_text="spend demo")
    expect(row.locator(".meter.is-warn")).to_have_count(1)
    shot(page, screens, "31-keys-spend")

    # the detail page
    row.locator("a", has_text="spend demo").click()
    expect(page.locator("h1")).to_have_text("spend demo")
    spend = page.locator("#key-spend")
    expect(spend.locator("#budget-key .meter.is-warn")).to_have_count(1)
    expect(spend.locator("#budget-key")).to_contain_text("of $0.04")
    expect(spend.locator("#budget-team")).to_contain_text("Team “growth”")
    expect(spend.locator("#budget-team .meter.is-ok")).to_have_count(1)
    expect(spend.locator("#limit-rph")).to_contain_text("10 / 10")
    expect(spend.locator("#limit-concurrency")).to_contain_text("0 / 4")
    expect(spend.locator("#refusals-429")).to_contain_text("2")
    expect(spend.locator("#refusals-402")).to_contain_text("1")
    expect(page.locator("#key-requests tbody tr")).to_have_count(13)
    shot(page, screens, "32-key-detail")

    # the card refreshes itself (every 10 s): one more refusal shows up without a reload
    assert requests.post(f"{gateway}/v1/chat/completions", json=body, headers=headers,
                         timeout=10).status_code == 429
    expect(spend.locator("#refusals-429 .refusal-value")).to_have_text("3", timeout=15_000)
    expect(page.locator("#key-requests tbody tr")).to_have_count(14)  # swapped out of band

    # teams list and the overview's budgets card
    page.goto(f"{gateway}/teams")
    expect(page.locator("tr", has_text="growth")).to_contain_text("$0.50")
    shot(page, screens, "33-teams")
    page.goto(gateway + "/")
    expect(page.locator("#budget-alerts")).to_contain_text("spend demo")
    shot(page, screens, "34-overview-budgets")
    page.goto(provider_url)
    shot(page, screens, "35-provider-limits")

    # narrow screens: the detail page does not scroll sideways
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(page.url.replace(provider_url, "") or f"{gateway}/keys")
    page.goto(f"{gateway}/keys")
    page.locator("a", has_text="spend demo").first.click()
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the key page must not scroll sideways"
    shot(page, screens, "36-key-detail-narrow")
