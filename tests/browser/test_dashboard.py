"""Usage dashboard, request log and request detail in headless Chromium, against gunicorn + gevent
serving a DB seeded with a week of synthetic usage (`flask seed-usage`) and one failed-over call."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, ADMIN_USER, BIN, CHROMIUM, ROOT, _free_port, _stop, _wait_http

pytestmark = [pytest.mark.browser, pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]

# Names for the ids the synthetic rows use (providers 1-3, keys 1-3 of 20), and one call that
# failed over from one deployment to another, with the details the proxy records.
SETUP = r"""
from datetime import timedelta
from decimal import Decimal

from app import create_app
from app.models import utcnow
from app.services import keys, providers
from app.services.usage import UsageWriter

app = create_app()
with app.app_context():
    made = [providers.create({"name": name, "type": "openai-compatible", "enabled": False,
                              "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-unused"}, actor="seed")
            for name in ("OpenAI", "Anthropic", "Local Ollama")]
    providers.update(made[2], {"read_timeout": 90, "api_key": "sk-rotated", "trust_level": "local"}, actor="ops")
    for name, owner in (("web-app", "growth"), ("support-bot", "support"), ("notebooks", "research")):
        keys.create({"name": name, "owner": owner, "scopes": ["chat"]}, actor="seed")
    UsageWriter._write([{
        # one call from the week before, so "vs prev. 7d" has a base whatever the seed's edges do
        "created_at": utcnow() - timedelta(days=10), "request_id": "req_e2e_last_week", "endpoint": "chat",
        "key_id": 2, "owner": "support", "model_name": "gpt-4o", "model_id": None, "provider_id": 1,
        "prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 0, "tokens_estimated": False,
        "cost_usd": Decimal("0.0001"), "latency_ms": 300.0, "ttfb_ms": 100.0, "status_code": 200,
        "error_class": None, "cache_hit": False, "stream": False, "attempts": None, "detectors": None,
        "details": {}}, {
        "created_at": utcnow() - timedelta(minutes=2), "request_id": "req_e2e_failover", "endpoint": "chat",
        "key_id": 1, "owner": "growth", "model_name": "gpt-4o-mini", "model_id": None, "provider_id": 1,
        "prompt_tokens": 1000, "completion_tokens": 200, "cached_tokens": 0, "tokens_estimated": False,
        "cost_usd": Decimal("0.00027"), "latency_ms": 1460.5, "ttfb_ms": 890.0, "status_code": 200,
        "error_class": None, "cache_hit": False, "stream": False,
        "attempts": "Anthropic/gpt-4o-mini=502;OpenAI/gpt-4o-mini=200", "detectors": "email",
        "details": {
            "checks": ["key: valid", "scopes: chat allowed", "limits/budget: admitted"],
            "routing": {"group": "mini-pool", "strategy": "priority",
                        "order": ["Anthropic/gpt-4o-mini", "OpenAI/gpt-4o-mini", "Local Ollama/gpt-4o-mini"]},
            "attempts": [
                {"deployment": "Anthropic/gpt-4o-mini", "status": 502, "outcome": "server_error",
                 "error": "The upstream provider 'Anthropic' returned HTTP 502 Bad Gateway.", "ms": 812.4},
                {"deployment": "OpenAI/gpt-4o-mini", "status": 200, "outcome": "ok", "ms": 640.2}],
            "cache": "MISS", "detectors": ["email"], "redacted": "1 span(s): email",
            "cost": {"usd": "0.00027", "tokens": "provider",
                     "prices": {"input_per_mtok": "0.15", "output_per_mtok": "0.60",
                                "cached_input_per_mtok": None}}}}])
"""

CHARTS_DRAWN = """() => {
  const canvases = [...document.querySelectorAll('canvas[data-chart]')];
  return !!window.Chart && canvases.length === 6 && canvases.every(c => Chart.getChart(c) && c.width > 0);
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """gunicorn + gevent on a DB migrated, then seeded with the same environment."""
    tmp = tmp_path_factory.mktemp("dashboard")
    env = {**os.environ, "GATEWAY_INSTANCE_PATH": str(tmp), "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
           "GATEWAY_ADMIN_USER": ADMIN_USER, "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "GATEWAY_ENV": "development", "GATEWAY_WORKERS": "1"}
    flask = [str(BIN / "flask"), "--app", "wsgi"]
    for command in ([*flask, "db", "upgrade"], [sys.executable, "-c", SETUP],
                    [*flask, "seed-usage", "--rows", "2000", "--days", "7"]):
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=180)
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


def shot(page: Page, screens, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


def login(page: Page, url: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def bucket_count(page: Page) -> int:
    return page.evaluate("Chart.getChart(document.querySelector('canvas[data-chart=requests]')).data.labels.length")


def dataset_labels(page: Page, chart: str) -> list[str]:
    return page.evaluate(f"Chart.getChart(document.querySelector('canvas[data-chart={chart}]'))"
                         ".data.datasets.map(d => d.label)")


def test_usage_dashboard(page: Page, served: str, screens):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    login(page, served)

    page.click("nav >> text=Usage")
    expect(page.locator("h1")).to_have_text("Usage")
    page.wait_for_function(CHARTS_DRAWN)
    expect(page.locator("#range-24h")).to_be_checked()
    assert bucket_count(page) == 25
    shot(page, screens, "40-usage-24h")
    page.locator("#chart-latency").screenshot(path=str(screens / "40-usage-latency-card.png"))

    # switch to 7 days: htmx swaps the dashboard, charts are drawn again with 6-hour buckets
    page.click("label[for=range-7d]")
    expect(page).to_have_url(re.compile(r"/usage\?.*range=7d"))
    expect(page.locator("#range-7d")).to_be_checked()
    page.wait_for_function(CHARTS_DRAWN)
    assert bucket_count(page) == 29
    assert set(dataset_labels(page, "requests")) >= {"gpt-4o-mini", "gpt-4o", "claude-sonnet-4"}
    total = int(page.locator("#kpi-requests .kpi-value").inner_text().replace(",", ""))
    assert 1900 <= total <= 2001  # 2,000 seeded over 7 days (+1 failover), edges aside
    expect(page.locator("#kpi-requests .kpi-change")).to_contain_text("vs prev. 7d")
    expect(page.locator("#usage-breakdown tbody tr")).to_have_count(5)
    shot(page, screens, "41-usage-7d")

    # stack by provider: legend names come from the providers table
    page.select_option("#usage-group", "provider")
    expect(page.locator("#usage-breakdown h2")).to_contain_text("By provider")
    page.wait_for_function(CHARTS_DRAWN)
    assert set(dataset_labels(page, "cost")) == {"OpenAI", "Anthropic", "Local Ollama"}

    # a chart's Table toggle shows the same numbers; its CSV is the same query as text/csv
    card = page.locator("#chart-requests")
    card.locator("[data-chart-toggle]").click()
    expect(card.locator(".chart-table")).to_be_visible()
    expect(card.locator(".chart-box")).to_be_hidden()
    expect(card.locator(".chart-table tbody tr")).to_have_count(29)
    cells = card.locator(".chart-table tbody td.strong").all_inner_texts()
    table_total = sum(int(x.replace(",", "")) for x in cells)
    assert table_total == total
    csv_url = card.locator("a[download]").get_attribute("href")
    assert "group=provider" in csv_url and "range=7d" in csv_url
    response = page.request.get(served + csv_url)
    assert response.ok and response.headers["content-type"].startswith("text/csv")
    lines = response.text().splitlines()
    assert lines[0].startswith("bucket_start_utc,") and lines[0].endswith(",Total") and len(lines) == 30
    assert sum(int(line.rsplit(",", 1)[1]) for line in lines[1:]) == total
    shot(page, screens, "42-usage-table-by-provider")
    card.locator("[data-chart-toggle]").click()
    expect(card.locator(".chart-box")).to_be_visible()

    # filter to one model: cards and charts follow
    page.select_option("#usage-model", "claude-sonnet-4")
    expect(page).to_have_url(re.compile(r"model=claude-sonnet-4"))
    page.wait_for_function(CHARTS_DRAWN)
    filtered = int(page.locator("#kpi-requests .kpi-value").inner_text().replace(",", ""))
    assert 0 < filtered < total
    shot(page, screens, "43-usage-filtered")

    # custom range starts from the current window; dates apply with the button
    page.click("label[for=range-custom]")
    expect(page).to_have_url(re.compile(r"range=custom"))  # swapped: the inputs hold the 7d window
    expect(page.locator("#usage-start")).to_be_visible()
    expect(page.locator("#range-custom")).to_be_checked()
    page.fill("#usage-start", "2020-01-01T00:00")
    page.fill("#usage-end", "2020-01-02T00:00")
    page.click(".usage-custom button[type=submit]")
    expect(page.locator("#usage-dashboard")).to_contain_text("No requests in this range")
    shot(page, screens, "44-usage-custom-empty")
    page.go_back()
    expect(page.locator("#usage-start")).not_to_have_value("2020-01-01T00:00")
    page.wait_for_function(CHARTS_DRAWN)

    # narrow screens: cards wrap, charts stack, the page does not scroll sideways
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(f"{served}/usage?range=7d")
    page.wait_for_function(CHARTS_DRAWN)
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    shot(page, screens, "45-usage-narrow")
    assert not errors, errors


def test_request_log_and_detail(page: Page, served: str, screens):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, served)
    page.goto(f"{served}/requests")
    expect(page.locator("h1")).to_have_text("Request log")
    expect(page.locator(".log-table tbody tr")).to_have_count(50)
    expect(page.locator("a[rel=next]")).to_be_visible()
    shot(page, screens, "46-requests")
    assert page.evaluate("(() => { const w = document.querySelector('#request-log .table-wrap');"
                         " return w.scrollWidth <= w.clientWidth; })()"), "the log table must fit at 1440 px"
    shot(page, screens, "46-requests")

    # failed calls only, most expensive first: the filter and sort swap the table in place
    page.select_option("#log-outcome", "error")
    expect(page).to_have_url(re.compile(r"outcome=error"))
    statuses = page.locator(".log-table tbody td:nth-child(5) .badge").all_inner_texts()
    assert statuses and all(int(s) >= 400 for s in statuses)
    page.click("th >> text=Latency")
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Latency")
    shot(page, screens, "47-requests-errors")
    href = page.locator("a:has-text('Export CSV')").get_attribute("href")
    assert "outcome=error" in href and "sort=latency" in href
    exported = page.request.get(served + href)
    rows = exported.text().count("\n") - 1  # the export is the whole filtered set, not one page
    assert exported.ok and (rows == len(statuses) if len(statuses) < 50 else rows >= 50)

    # the failed-over call: its detail page explains the chain
    page.goto(f"{served}/requests?range=1h")
    page.locator("tr", has=page.locator(".cap", has_text="2 attempts")).locator("td:first-child a").click()
    expect(page.locator("h1")).to_contain_text("request #")
    expect(page.locator("#request-summary")).to_contain_text(
        "Served by OpenAI/gpt-4o-mini after 1 failed attempt (Anthropic/gpt-4o-mini answered 502, server_error).")
    expect(page.locator("#request-attempts .chain li")).to_have_count(2)
    expect(page.locator("#request-attempts")).to_contain_text("returned HTTP 502 Bad Gateway")
    expect(page.locator("#request-routing")).to_contain_text("mini-pool")
    expect(page.locator("#request-cost")).to_contain_text("1,000 input tokens × $0.15 / 1M")
    shot(page, screens, "48-request-detail")

    page.goto(f"{served}/audit?entity=provider")
    expect(page.locator("table")).to_contain_text("OpenAI")
    page.select_option("#audit-action", "update")
    expect(page).to_have_url(re.compile(r"action=update"))
    expect(page.locator(".change-row")).to_have_count(3)  # api_key (masked), read_timeout, trust_level
    expect(page.locator(".change-row", has_text="read_timeout")).to_contain_text("60.0")
    expect(page.locator(".change-row", has_text="api_key")).to_contain_text("secret replaced")
    assert "sk-rotated" not in page.content()
    shot(page, screens, "49-audit-diff")
    assert not errors, errors
