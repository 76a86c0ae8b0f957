"""The admin flows the walkthrough does not cover (provider edit and delete, model create, edit and
disable, a request that shows up in the request log and dashboard), done in headless Chromium with
objects named like XSS payloads, while every page is watched for Content-Security-Policy
violations, script errors and dialogs (an alert() would mean a payload ran)."""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, ADMIN_USER, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]

XSS = '<img src=x onerror=alert(1)><script>alert(2)</script>'
SECRET, ROTATED = "sk-browser-SECRET-5150", "sk-browser-ROTATED-6160"
PAGES = ["/", "/providers", "/models", "/keys", "/teams", "/groups", "/settings", "/usage",
         "/usage?range=7d&group=key", "/requests", "/health", "/cache", "/audit", "/playground",
         "/playground/compare", "/providers/new", "/models/new", "/keys/new", "/teams/new"]


class Watch:
    """Console errors, CSP violations, page errors and dialogs seen so far."""

    def __init__(self, page: Page):
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        page.on("dialog", self._dialog)

    def _console(self, msg):
        text = msg.text
        if msg.type == "error" or "Content Security Policy" in text or "Content-Security-Policy" in text:
            if "favicon" not in text:
                self.problems.append(f"console {msg.type}: {text[:300]}")

    def _dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def shot(page: Page, screens, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


def test_admin_lifecycle_under_csp_with_payload_names(page: Page, gateway: str, fake_upstream: str, screens):
    watch = Watch(page)
    page.goto(f"{gateway}/login")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")

    # provider: create (secret entry), edit (rename + rotate the secret)
    page.goto(f"{gateway}/providers/new")
    page.select_option("#type", "openai-compatible")
    page.fill("#name", f"Sec {XSS}")
    page.fill("#api_base", f"{fake_upstream}/v1")
    page.fill("#api_key", SECRET)
    page.click("form.form-card button[type=submit]")
    expect(page.locator("h1")).to_have_text(f"Sec {XSS}")  # shown as text
    provider_url = page.url
    assert re.search(r"/providers/\d+$", provider_url)
    page.click("a:has-text('Edit') >> nth=0")
    expect(page.locator("h1")).to_contain_text("Edit")
    expect(page.locator("#name")).to_have_value(f"Sec {XSS}")
    page.fill("#name", f"Sec edited {XSS}")
    page.fill("#api_key", ROTATED)
    page.click("form.form-card button[type=submit]")
    expect(page.locator("h1")).to_have_text(f"Sec edited {XSS}")
    for secret in (SECRET, ROTATED):
        assert secret not in page.content()
    shot(page, screens, "60-sec-provider-edited")

    # model: create through the form, edit, disable
    page.goto(f"{gateway}/models/new")
    page.select_option("#provider_id", label=f"Sec edited {XSS}")
    page.fill("#model_id", "fake-model")
    page.fill("#name", "sec-model")
    page.fill("#input_price_per_mtok", "1")
    page.fill("#output_price_per_mtok", "2")
    page.click("form.form-card button[type=submit]")
    expect(page.locator(".alert-success, h1").first).to_be_visible()
    page.goto(f"{gateway}/models?q=sec-model")
    row = page.locator("#models-table tbody tr", has_text="sec-model")
    expect(row).to_have_count(1)
    row.locator("a.btn", has_text="Edit").click()
    expect(page.locator("h1")).to_have_text("Edit model")
    page.fill("#max_output_tokens", "4096")
    page.click("form.form-card button[type=submit]")
    page.goto(f"{gateway}/models?q=sec-model")
    expect(page.locator("#models-table")).to_contain_text("sec-model")
    shot(page, screens, "61-sec-model")

    # a key (shown once), and a real call through the gateway so the log and dashboard have a row
    page.goto(f"{gateway}/keys/new")
    page.fill("#name", f"sec key {XSS}")
    page.click("form.form-card button[type=submit]")
    raw = page.input_value("#new-key")
    r = requests.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                      json={"model": "sec-model", "messages": [{"role": "user", "content": XSS}]}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    page.goto(f"{gateway}/keys")
    assert raw not in page.content()

    # the request log, filtered to the model, shows the call; the detail opens
    for _ in range(40):  # the usage writer flushes in batches
        page.goto(f"{gateway}/requests?model=sec-model")
        if page.locator("table tbody tr").count():
            break
        page.wait_for_timeout(500)
    expect(page.locator("table")).to_contain_text("sec-model")
    shot(page, screens, "62-sec-request-log")
    page.locator("table tbody tr a").first.click()
    expect(page.locator("h1")).to_be_visible()

    # every page, watched; the meters' data-width is applied under the CSP (no style attributes)
    for path in PAGES:
        page.goto(gateway + path)
        expect(page.locator("h1").first).to_be_visible()
    page.goto(f"{gateway}/usage?group=model")
    bars = page.locator(".share-bar span")
    if bars.count():
        width = bars.first.evaluate("el => el.getBoundingClientRect().width")
        assert width > 0, "data-width not applied: the CSP-safe geometry script did not run"
    shot(page, screens, "63-sec-usage")

    # disable the model in place, then delete the provider (and with it the model)
    page.goto(f"{gateway}/models?q=sec-model")
    switch = page.locator("#models-table tbody tr", has_text="sec-model").locator("button.switch")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    page.goto(provider_url)
    page.click("a:has-text('Delete')")
    expect(page.locator("h1")).to_contain_text("Delete provider")
    shot(page, screens, "64-sec-provider-delete-confirm")
    page.click("button:has-text('Delete provider')")
    expect(page.locator(".alert-success")).to_contain_text("were deleted")
    assert page.locator("#providers-table tr", has_text="Sec edited").count() == 0
    page.goto(f"{gateway}/audit")
    expect(page.locator("table")).to_contain_text("delete")
    shot(page, screens, "65-sec-audit")

    assert watch.dialogs == [], watch.dialogs       # no payload ever ran
    assert watch.problems == [], "\n".join(watch.problems)  # no CSP violation, no script error


def test_headers_reach_the_browser(page: Page, gateway: str):
    response = page.goto(f"{gateway}/login")
    headers = response.all_headers()
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    # an attempt to frame the console is refused by the browser
    page.set_content(f'<iframe id="f" src="{gateway}/login"></iframe>')
    page.wait_for_timeout(500)
    frame = page.frame_locator("#f")
    assert frame.locator("#username").count() == 0
