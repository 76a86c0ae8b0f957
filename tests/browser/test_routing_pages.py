"""Routing groups, health breakers, cache and settings in headless Chromium (screens 50-*).

A gateway of its own (gunicorn + gevent, one worker), seeded before it starts: providers on the
bench's fake upstream, models sharing public names, groups, tripped breakers (the breaker and
cache stores are SQLite files under the instance path, shared with the server's worker) and
cached responses. Its own instance keeps the other browser tests' counts untouched.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from playwright.sync_api import Page, expect

from .conftest import (ADMIN_PASSWORD, ADMIN_USER, BIN, CHROMIUM, ROOT, _free_port, _stop,
                       _wait_http)

pytestmark = [pytest.mark.browser, pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]

SEED = r'''
import sys, time
from app import create_app
from app.services import groups, keys, models, providers, settings
from app.services.response_cache import response_cache
from app.services.router import router

upstream = sys.argv[1]
app = create_app()
with app.app_context():
    def provider(name, trust, key="sk-fake-1234"):
        return providers.create({"name": name, "type": "openai-compatible", "api_base": upstream + "/v1",
                                 "api_key": key, "trust_level": trust}, actor="seed")

    def model(p, model_id, name, **kw):
        return models.create({"provider_id": p.id, "model_id": model_id, "name": name, **kw}, actor="seed")

    openai, azure, local = provider("OpenAI", "public"), provider("Azure East", "private"), \
        provider("Local vLLM", "local", key="sk-revoked-0000")
    groups.put("gpt-4o", {"strategy": "priority", "fallbacks": ["gpt-4o-mini"], "retries": 2,
                          "timeout_s": 30}, "seed")
    groups.put("gpt-4o-mini", {"strategy": "least-latency", "retries": 1}, "seed")
    groups.put("meta/llama-3.1-70b", {"strategy": "cost", "retries": 3}, "seed")
    o4 = model(openai, "gpt-4o", "gpt-4o", priority=0, weight=3)
    a4 = model(azure, "gpt-4o-2024-08-06", "gpt-4o", priority=0, weight=1)
    l4 = model(local, "qwen2.5-72b-instruct", "gpt-4o", priority=1, weight=1)
    model(openai, "gpt-4o-mini", "gpt-4o-mini")
    am = model(azure, "gpt-4o-mini-2024-07-18", "gpt-4o-mini")
    ll = model(local, "meta-llama/Llama-3.1-70B-Instruct", "meta/llama-3.1-70b",
               input_price_per_mtok="0", output_price_per_mtok="0")
    model(openai, "llama-3.1-70b-versatile", "meta/llama-3.1-70b", priority=1)
    model(openai, "claude-3-5-sonnet", "claude-3-5-sonnet")
    model(azure, "claude-3-5-sonnet-v2", "claude-3-5-sonnet", enabled=False)
    _, raw = keys.create({"name": "routing e2e"}, actor="seed")
    settings.update({"sensitivity": {"action": "route", "keywords": ["Project Falcon"],
                                     "patterns": ["ACME-\\d{6}"]}}, "seed")

    now = time.time()
    breaker = router().breaker
    for _ in range(5):
        breaker.record(a4.id, "server_error", now, detail="HTTP 503 from upstream")
    breaker.record(ll.id, "auth", now, detail="Incorrect API key provided: sk-revo****0000")
    breaker.record(l4.id, "auth", now, detail="Incorrect API key provided: sk-revo****0000")
    breaker.record(am.id, "rate_limited", now, retry_after=1)

    cache = response_cache()
    for i in range(14):
        name = "gpt-4o" if i < 9 else "gpt-4o-mini"
        body = {"id": f"chatcmpl-{i}", "object": "chat.completion", "created": int(now), "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "cached " * (40 + i * 30)},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52}}
        cache.put(f"k{i}", body, model=name, key_id=None, ttl=3600, now=now)
    for i in range(20):
        cache.get(f"k{i % 17}", now)
    cache.flush()
    print(raw)
'''


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, fake_upstream):
    """(gateway URL, gateway key): a migrated, seeded DB, then gunicorn -k gevent -w 1."""
    tmp = tmp_path_factory.mktemp("routing-gateway")
    env = {**os.environ, "GATEWAY_INSTANCE_PATH": str(tmp),
           "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
           "GATEWAY_ADMIN_USER": ADMIN_USER, "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "GATEWAY_ENV": "development", "GATEWAY_WORKERS": "1"}
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    seed = subprocess.run([sys.executable, "-c", SEED, fake_upstream], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert seed.returncode == 0, seed.stderr[-3000:]
    raw_key = seed.stdout.strip().splitlines()[-1]
    port = _free_port()
    log = (tmp / "gunicorn.log").open("w")
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
                             "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/login", proc)
        yield url, raw_key
    finally:
        _stop(proc)
        log.close()


def shot(page: Page, screens, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screens / f"50-{name}.png"), full_page=True)


def login(page: Page, gateway: str) -> None:
    page.goto(f"{gateway}/login")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def test_routing_groups(page: Page, seeded, screens):
    gateway, raw_key = seeded
    for _ in range(3):  # real traffic: this worker measures OpenAI's gpt-4o latency
        r = requests.post(f"{gateway}/v1/chat/completions", timeout=10,
                          headers={"Authorization": f"Bearer {raw_key}"},
                          json={"model": "gpt-4o", "temperature": 0.7,
                                "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
    login(page, gateway)

    page.click("nav >> text=Routing")
    expect(page.locator("h1")).to_have_text("Routing groups")
    table = page.locator("#groups-table")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(page.locator("#ungrouped")).to_contain_text("claude-3-5-sonnet")
    expect(table.locator("tr", has_text="meta/llama-3.1-70b")).to_contain_text("1 disabled")
    shot(page, screens, "groups")

    page.click("#groups-table >> text=gpt-4o >> nth=0")
    expect(page.locator("h1")).to_have_text("gpt-4o")
    rows = page.locator("#deployments tbody tr")
    expect(rows).to_have_count(3)

    def row(provider: str):
        return page.locator("#deployments tbody tr",
                            has=page.get_by_role("link", name=provider, exact=True))
    azure = row("Azure East")
    expect(azure.locator("[data-breaker]")).to_have_text("open")
    expect(azure).to_contain_text("5 consecutive failures")
    expect(row("Local vLLM").locator("[data-breaker]")).to_have_text("disabled")
    expect(row("OpenAI")).to_contain_text(" ms")  # a measured latency
    shot(page, screens, "group-detail")

    # inline edit: invalid first (the row keeps the editor and says why), then valid
    row("OpenAI").locator("text=Edit").click()
    expect(page.locator("#deployments tr.is-editing")).to_have_count(1)
    editing = page.locator("#deployments tr.is-editing")
    editing.locator("input[name=weight]").fill("-1")
    editing.locator("button:has-text('Save')").click()
    expect(editing.locator(".field-error")).to_contain_text("between 0 and 1000")
    shot(page, screens, "group-inline-edit-error")
    editing.locator("input[name=weight]").fill("5")
    editing.locator("input[name=priority]").fill("2")
    editing.locator("input[name=priority]").press("Enter")
    expect(page.locator("#deployments tr.is-editing")).to_have_count(0)
    expect(row("OpenAI").locator("td.num").nth(0)).to_have_text("2")
    expect(row("OpenAI").locator("td.num").nth(1)).to_have_text("5")

    # reset the open breaker in place
    azure.locator("button:has-text('Reset breaker')").click()
    expect(azure.locator("[data-breaker]")).to_have_text("closed")
    expect(azure.locator("button:has-text('Reset breaker')")).to_have_count(0)

    # routing settings: pick a strategy card, save (post/redirect/get with a flash)
    page.click("label.choice-card:has-text('weighted')")
    page.fill("#fallbacks", "gpt-4o-mini\nno-such-model")
    page.click("button:has-text('Save routing')")
    expect(page.locator("#group-settings .field-error")).to_contain_text("No model is named no-such-model")
    page.fill("#fallbacks", "gpt-4o-mini")
    page.click("button:has-text('Save routing')")
    expect(page.locator(".alert-success")).to_contain_text("Routing of “gpt-4o” saved")
    expect(page.locator(".subtitle .tag")).to_have_text("weighted")
    shot(page, screens, "group-saved")

    # a name with a slash, the new-group form, the delete confirmation
    page.goto(f"{gateway}/groups/meta/llama-3.1-70b")
    expect(page.locator("h1")).to_have_text("meta/llama-3.1-70b")
    page.goto(f"{gateway}/groups")
    page.click("#ungrouped >> text=claude-3-5-sonnet")
    expect(page.locator("#name")).to_have_value("claude-3-5-sonnet")
    shot(page, screens, "group-new")
    page.click("button:has-text('Create group')")
    expect(page.locator("h1")).to_have_text("claude-3-5-sonnet")
    expect(page.locator(".alert-success")).to_contain_text("created with 2 deployment(s)")
    page.click("text=Delete")
    expect(page.locator("h1")).to_contain_text("Delete group")
    shot(page, screens, "group-delete-confirm")
    page.click("button:has-text('Delete group')")
    expect(page.locator(".alert-success")).to_contain_text("deleted")

    # narrow screens: the deployments table scrolls inside its card, the page does not
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(f"{gateway}/groups/gpt-4o")
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    shot(page, screens, "group-detail-narrow")


def test_health_breakers_and_reset(page: Page, seeded, screens):
    gateway, _ = seeded
    login(page, gateway)
    page.goto(f"{gateway}/health")
    alert = page.locator("#breaker-alert")
    expect(alert).to_contain_text("2 deployments are disabled")
    expect(alert).to_contain_text("Fix the key, then reset the breaker")
    expect(alert).to_contain_text("Incorrect API key provided")
    expect(page.locator("#health-table tr", has_text="Local vLLM")).to_contain_text("2 disabled")
    shot(page, screens, "health-disabled")
    alert.locator("li", has_text="qwen2.5").locator("button:has-text('Reset breaker')").click()
    expect(alert).to_contain_text("1 deployment is disabled")
    alert.locator("button:has-text('Reset breaker')").click()
    expect(alert.locator(".breaker-alert")).to_have_count(0)
    expect(page.locator("#health-table tr", has_text="Local vLLM")).not_to_contain_text("disabled")
    shot(page, screens, "health-reset")


def test_cache_page(page: Page, seeded, screens):
    gateway, _ = seeded
    login(page, gateway)
    page.click("nav >> text=Cache")
    expect(page.locator("#stat-entries .stat-value")).to_have_text("14")
    expect(page.locator("#stat-hit-rate")).to_contain_text("17 hits · 3 misses")
    expect(page.locator("#stat-hit-rate .stat-value")).to_contain_text("85.0")
    shot(page, screens, "cache")
    page.fill("#model", "gpt-4o-mini")
    page.click("#clear-model button")
    expect(page.locator(".alert-success")).to_contain_text("Removed 5 entries for model “gpt-4o-mini”")
    expect(page.locator("#stat-entries .stat-value")).to_have_text("9")
    page.click("#clear-pattern button")  # empty: says what is missing
    expect(page.locator("#clear-pattern .field-error")).to_contain_text("Choose the glob pattern")
    page.fill("#pattern", "gpt-4*")
    page.click("#clear-pattern button")
    expect(page.locator(".alert-success")).to_contain_text("Removed 9 entries for models matching “gpt-4*”")
    shot(page, screens, "cache-cleared")
    page.click("text=Clear all…")
    expect(page.locator("h1")).to_have_text("Clear the whole response cache?")
    shot(page, screens, "cache-clear-all-confirm")


def test_settings_page(page: Page, seeded, screens):
    gateway, _ = seeded
    login(page, gateway)
    page.click("nav >> text=Settings")
    expect(page.locator("#action-1")).to_be_checked()  # route, as seeded
    expect(page.locator("#patterns")).to_have_value("ACME-\\d{6}")
    shot(page, screens, "settings")
    page.click("label.choice-card:has-text('Redact')")
    page.fill("#patterns", "ACME-\\d{6}\n\n(a+)+")
    page.fill("#default_ttl", "600")
    page.click("button:has-text('Save settings')")
    error = page.locator("#patterns ~ .field-error")
    expect(error).to_contain_text("Line 3 ((a+)+)")
    expect(page.locator("#action-3")).to_be_checked()  # what was typed is kept
    shot(page, screens, "settings-error")
    page.fill("#patterns", "ACME-\\d{6}\nINV-[0-9]{4,8}")
    page.click("button:has-text('Save settings')")
    expect(page.locator(".alert-success")).to_contain_text("Settings saved")
    expect(page.locator("#default_ttl")).to_have_value("600")
    expect(page.locator("#action-3")).to_be_checked()
