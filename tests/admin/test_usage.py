"""Usage dashboard: totals with change, chart data, Table toggles, CSV downloads, breakdown,
filters and access; numbers checked against usage rows inserted for the test."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from app.models import utcnow
from app.services.usage import UsageWriter

from .helpers import HTMX, element, is_fragment, squash, text

DAY = datetime(2026, 1, 10)  # a fixed custom window: 2026-01-10 00:00 → 2026-01-11 00:00, hourly
WINDOW = "range=custom&start=2026-01-10T00:00&end=2026-01-11T00:00"


def write(app, rows: list[dict]) -> None:
    """Insert usage rows (and rollups) like the batched writer, in its own app context: the
    writer removes its session afterwards, which must not detach the test's signed-in user."""
    with app.app_context():
        UsageWriter._write(rows)


def rec(at, model="gpt-4o-mini", provider_id=None, key_id=None, status=200, pt=100, ct=50,
        cost="0.0001", latency=120.0, ttfb=40.0, cache=False, owner=None, error_class=None, **extra):
    return {"created_at": at, "endpoint": "chat", "key_id": key_id, "model_name": model,
            "provider_id": provider_id, "prompt_tokens": pt, "completion_tokens": ct,
            "cost_usd": Decimal(cost), "latency_ms": latency, "ttfb_ms": ttfb, "status_code": status,
            "error_class": error_class, "cache_hit": cache, "stream": False, "owner": owner,
            "cached_tokens": 0, "tokens_estimated": False, "request_id": None, "attempts": None,
            "detectors": None, "details": None, **extra}


@pytest.fixture
def seeded(app, make_provider):
    """Five calls on 2026-01-10 (two models, two providers, two keys), one the day before."""
    from app.services import keys
    openai = make_provider(name="Fake OpenAI")
    anthropic = make_provider(name="Other AI", api_base="http://other.test/v1")
    key_a, _ = keys.create({"name": "research-bot", "owner": "research", "scopes": ["chat"]}, actor="test")
    key_b, _ = keys.create({"name": "support-bot", "owner": "support", "scopes": ["chat"]}, actor="test")
    a = {"provider_id": openai.id, "key_id": key_a.id, "owner": "research"}
    b = {"model": "claude-x", "provider_id": anthropic.id, "key_id": key_b.id, "owner": "support"}
    write(app, [
        rec(DAY.replace(hour=10, minute=15), pt=1000, ct=200, cost="0.0003", latency=150, ttfb=50, **a),
        rec(DAY.replace(hour=10, minute=40), pt=500, ct=100, cost="0.0002", latency=350, ttfb=90, **a),
        rec(DAY.replace(hour=10, minute=50), pt=300, ct=100, cost="0", latency=5, ttfb=5, cache=True, **a),
        rec(DAY.replace(hour=14, minute=5), status=502, error_class="upstream_error", pt=0, ct=0, cost="0",
            latency=80, ttfb=None, **b),
        rec(DAY.replace(hour=14, minute=30), pt=2000, ct=1000, cost="0.02", latency=900, ttfb=300, **b),
        rec(DAY - timedelta(hours=12), pt=100, ct=10, cost="0.001", latency=200, **a),  # previous period
    ])
    return {"openai": openai, "anthropic": anthropic, "key_a": key_a, "key_b": key_b}


def charts_of(html: str) -> dict[str, dict]:
    match = re.search(r'<script type="application/json" id="usage-chart-data">(.*?)</script>', html, re.S)
    assert match, "no chart data block"
    return {c["id"]: c for c in json.loads(match.group(1))}


def kpi(html: str, metric: str) -> str:
    return squash(element(html, f"kpi-{metric}"))


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(text(response))))


# ----------------------------------------------------------------------------- totals
def test_totals_cards_show_the_numbers_and_the_change(admin_client, seeded):
    html = text(admin_client.get(f"/usage?{WINDOW}"))
    assert re.search(r'class="kpi-value">5<', kpi(html, "requests"))
    assert "▲</span><span class=\"sr-only\">up</span> 400%" in kpi(html, "requests")  # 5 vs 1
    assert "is-good" in kpi(html, "requests")
    assert ">3.8k<" in kpi(html, "prompt_tokens") and ">1.4k<" in kpi(html, "completion_tokens")
    cost = kpi(html, "cost_usd")
    assert ">$0.0205<" in cost and "1,950%" in cost and "is-bad" in cost  # $0.0205 vs $0.001
    errors = kpi(html, "error_rate")
    assert ">20.0%<" in errors and "20.0 pp" in errors and "is-bad" in errors  # 1 of 5 vs 0 of 1
    assert "$0.001 in the previous period" in cost


def test_no_earlier_data_and_falling_numbers(admin_client, seeded):
    # the day before has one call and no day before it: the change is unknown, not +∞
    html = text(admin_client.get("/usage?range=custom&start=2026-01-09T00:00&end=2026-01-10T00:00"))
    assert re.search(r'class="kpi-value">1<', kpi(html, "requests"))
    assert "no earlier data" in kpi(html, "requests")


def test_preset_range_counts_recent_calls(app, admin_client, seeded):
    now = utcnow()
    write(app, [rec(now - timedelta(minutes=3), cost="0.5"), rec(now - timedelta(hours=3))])
    one_hour = text(admin_client.get("/usage?range=1h"))
    assert re.search(r'class="kpi-value">1<', kpi(one_hour, "requests"))
    assert ">$0.50<" in kpi(one_hour, "cost_usd")
    day = text(admin_client.get("/usage"))  # 24h by default
    assert re.search(r'class="kpi-value">2<', kpi(day, "requests"))
    assert 'id="range-24h" checked' in day


# ----------------------------------------------------------------------------- charts
def test_chart_data_matches_the_rows(admin_client, seeded):
    charts = charts_of(text(admin_client.get(f"/usage?{WINDOW}&group=model")))
    assert list(charts) == ["requests", "tokens", "cost", "errors", "latency", "cache"]
    req = charts["requests"]
    assert req["stacked"] and len(req["labels"]) == 25 and req["buckets"][10] == "2026-01-10T10:00:00Z"
    by = {d["label"]: d["data"] for d in req["datasets"]}
    assert [d["label"] for d in req["datasets"]] == ["gpt-4o-mini", "claude-x"]  # biggest first
    assert by["gpt-4o-mini"][10] == 3 and by["claude-x"][14] == 2 and sum(by["claude-x"]) == 2
    cost = {d["label"]: d["data"] for d in charts["cost"]["datasets"]}
    assert cost["claude-x"][14] == pytest.approx(0.02) and sum(cost["gpt-4o-mini"]) == pytest.approx(0.0005)
    tokens = {d["label"]: d["data"] for d in charts["tokens"]["datasets"]}
    assert tokens["Tokens in"][10] == 1800 and tokens["Tokens out"][14] == 1000
    errors = charts["errors"]["datasets"][0]["data"]
    assert errors[14] == 50.0 and errors[10] == 0.0 and errors[3] is None  # no requests: a gap
    assert charts["cache"]["datasets"][0]["data"][10] == pytest.approx(33.33)
    latency = {d["label"]: d["data"] for d in charts["latency"]["datasets"]}
    assert set(latency) == {"Latency p50", "Latency p95", "TTFB p50", "TTFB p95"}
    assert 0 < latency["Latency p50"][14] <= latency["Latency p95"][14] <= 1600


def test_charts_stack_by_the_chosen_breakdown(admin_client, seeded):
    keys = {f"research-bot ({seeded['key_a'].prefix}…)", f"support-bot ({seeded['key_b'].prefix}…)"}
    for group, labels in (("provider", {"Fake OpenAI", "Other AI"}), ("key", keys),
                          ("owner", {"research", "support"})):
        charts = charts_of(text(admin_client.get(f"/usage?{WINDOW}&group={group}")))
        assert {d["label"] for d in charts["requests"]["datasets"]} == labels, group
        assert f"stacked by {group}" in charts["cost"]["subtitle"]


def test_every_chart_has_a_table_with_the_same_numbers(admin_client, seeded):
    html = text(admin_client.get(f"/usage?{WINDOW}"))
    for chart in ("requests", "tokens", "cost", "errors", "latency", "cache"):
        card = element(html, f"chart-{chart}")
        assert f'data-chart-toggle="chart-{chart}"' in card and f"/usage/charts/{chart}.csv?" in card
        assert f'id="chart-{chart}-table" hidden' in card
    table = squash(element(html, "chart-requests-table"))
    assert "<th>Bucket start</th>" in table and ">Total</th>" in table
    row = re.search(r"<tr> <td class=\"nowrap\">2026-01-10 10:00 UTC</td>(.*?)</tr>", table).group(1)
    assert re.findall(r">([^<]+)</td>", row) == ["3", "0", "3"]  # gpt-4o-mini, claude-x, total
    cost_table = squash(element(html, "chart-cost-table"))
    cost_row = re.search(r"2026-01-10 14:00 UTC</td>(.*?)</tr>", cost_table).group(1)
    assert re.findall(r">([^<]+)</td>", cost_row) == ["$0.00", "$0.02", "$0.02"]
    errors = squash(element(html, "chart-errors-table"))
    assert re.search(r"2026-01-10 14:00 UTC</td> <td class=\"num\">50.0%</td>", errors)
    assert re.search(r"2026-01-10 03:00 UTC</td> <td class=\"num\">—</td>", errors)


def test_chart_csv_downloads(admin_client, seeded):
    rows = csv_rows(admin_client.get(f"/usage/charts/requests.csv?{WINDOW}&group=model"))
    assert list(rows[0]) == ["bucket_start_utc", "gpt-4o-mini", "claude-x", "Total"]
    assert len(rows) == 25 and rows[10]["bucket_start_utc"] == "2026-01-10T10:00:00Z"
    assert (rows[10]["gpt-4o-mini"], rows[10]["Total"]) == ("3", "3")
    assert sum(int(r["Total"]) for r in rows) == 5

    cost = csv_rows(admin_client.get(f"/usage/charts/cost.csv?{WINDOW}&group=provider"))
    assert list(cost[0]) == ["bucket_start_utc", "Fake OpenAI (USD)", "Other AI (USD)", "Total (USD)"]
    assert float(cost[14]["Other AI (USD)"]) == pytest.approx(0.02)
    assert sum(float(r["Total (USD)"]) for r in cost) == pytest.approx(0.0205)

    errors = csv_rows(admin_client.get(f"/usage/charts/errors.csv?{WINDOW}"))
    assert list(errors[0]) == ["bucket_start_utc", "Error rate (%)"]
    assert errors[14]["Error rate (%)"] == "50.0" and errors[3]["Error rate (%)"] == ""

    latency = csv_rows(admin_client.get(f"/usage/charts/latency.csv?{WINDOW}"))
    assert list(latency[0])[1:] == ["Latency p50 (ms)", "Latency p95 (ms)", "TTFB p50 (ms)", "TTFB p95 (ms)"]


def test_chart_csv_follows_the_filters(admin_client, seeded):
    rows = csv_rows(admin_client.get(f"/usage/charts/requests.csv?{WINDOW}&group=model&model=claude-x"))
    assert list(rows[0]) == ["bucket_start_utc", "claude-x", "Total"]
    assert sum(int(r["Total"]) for r in rows) == 2
    rows = csv_rows(admin_client.get(f"/usage/charts/tokens.csv?{WINDOW}&key_id={seeded['key_a'].id}"))
    assert sum(int(r["Tokens in"]) for r in rows) == 1800
    r = admin_client.get(f"/usage/charts/requests.csv?{WINDOW}&group=model&model=claude-x")
    assert r.headers["Content-Disposition"] == "attachment; filename=usage-requests-custom.csv"
    assert admin_client.get(f"/usage/charts/nope.csv?{WINDOW}").status_code == 404
    backwards = "range=custom&start=2026-02-01T00:00&end=2026-01-01T00:00"
    assert admin_client.get(f"/usage/charts/requests.csv?{backwards}").status_code == 422


# ----------------------------------------------------------------------------- breakdown, filters
def test_breakdown_table(admin_client, seeded):
    table = squash(element(text(admin_client.get(f"/usage?{WINDOW}&group=model")), "usage-breakdown"))
    assert "By model" in table
    gpt = re.search(r"gpt-4o-mini</a>.*?</tr>", table).group(0)
    assert re.findall(r'<td class="num[^"]*">([^<]+)', gpt)[:5] == ["3", "0 ", "1,800", "400", "$0.0005"]
    assert "60.0%" in gpt
    claude = re.search(r"claude-x</a>.*?</tr>", table).group(0)
    assert "40.0%" in claude and "(50.0%)" in claude and "$0.02" in claude and "text-danger" in claude
    # a row links to the dashboard filtered to it
    assert "model=claude-x" in re.search(r'href="([^"]+)"[^>]*>claude-x</a>', table).group(1)


@pytest.mark.parametrize("query,requests,cost", [
    ("model=claude-x", 2, "$0.02"),
    ("owner=research", 3, "$0.0005"),
    ("provider_id={openai}", 3, "$0.0005"),
    ("key_id={key_b}", 2, "$0.02"),
])
def test_filters(admin_client, seeded, query, requests, cost):
    query = query.format(openai=seeded["openai"].id, key_b=seeded["key_b"].id)
    html = text(admin_client.get(f"/usage?{WINDOW}&{query}"))
    assert re.search(rf'class="kpi-value">{requests}<', kpi(html, "requests"))
    assert f">{cost}<" in kpi(html, "cost_usd")
    name, value = query.split("=")
    assert re.search(rf'<option value="{re.escape(value)}" selected>', element(html, f"usage-{name}"))
    assert "Clear filters" in html


def test_filter_choices_come_from_config_and_data(admin_client, seeded):
    html = text(admin_client.get(f"/usage?{WINDOW}"))
    assert '<option value="claude-x">claude-x</option>' in element(html, "usage-model")
    assert '>Other AI</option>' in element(html, "usage-provider_id")
    assert '<option value="support">support</option>' in element(html, "usage-owner")
    assert f'>research-bot ({seeded["key_a"].prefix}…)</option>' in element(html, "usage-key_id")


def test_custom_range_inputs_and_errors(admin_client, seeded):
    html = text(admin_client.get("/usage?range=7d"))
    assert re.search(r'id="usage-start" value="\d{4}-\d\d-\d\dT\d\d:\d\d"', html)  # "Custom" starts from 7d
    r = admin_client.get("/usage?range=custom&start=2026-01-12T00:00&end=2026-01-10T00:00")
    assert r.status_code == 422 and "Start must be before end" in text(r)
    r = admin_client.get("/usage?range=custom&start=yesterday")
    assert r.status_code == 422 and "ISO 8601" in text(r)
    assert admin_client.get("/usage?provider_id=abc").status_code == 422


def test_empty_range(admin_client, seeded):
    html = text(admin_client.get("/usage?range=custom&start=2025-01-01T00:00&end=2025-01-02T00:00"))
    assert "No requests in this range" in html and "usage-chart-data" not in html
    assert re.search(r'class="kpi-value">0<', kpi(html, "requests"))


# ----------------------------------------------------------------------------- htmx, access
def test_htmx_gets_the_dashboard_fragment(admin_client, seeded):
    r = admin_client.get(f"/usage?{WINDOW}&group=owner", headers=HTMX)
    body = text(r)
    assert r.status_code == 200 and is_fragment(r) and "HX-Request" in r.headers["Vary"]
    assert body.lstrip().startswith('<div id="usage-dashboard"')
    assert 'hx-target="#usage-dashboard"' in body and "usage-chart-data" in body
    assert {d["label"] for d in charts_of(body)["requests"]["datasets"]} == {"research", "support"}
    full = text(admin_client.get(f"/usage?{WINDOW}"))
    assert "<html" in full and "vendor/chart.umd.min.js" in full and "js/charts.js" in full
    assert "css/analytics.css" in full


def test_htmx_error_is_a_readable_message(admin_client):
    r = admin_client.get("/usage?range=custom&start=2026-01-12T00:00&end=2026-01-10T00:00", headers=HTMX)
    assert r.status_code == 422 and is_fragment(r)
    assert '<p class="error-message">Start must be before end.</p>' in text(r)  # app.js toasts it


def test_no_inline_scripts(admin_client, seeded):
    html = text(admin_client.get(f"/usage?{WINDOW}"))
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_viewer_can_read_usage(viewer_client, seeded):
    assert viewer_client.get(f"/usage?{WINDOW}").status_code == 200
    assert viewer_client.get(f"/usage/charts/cost.csv?{WINDOW}").status_code == 200


def test_anonymous_is_sent_to_login(client):
    r = client.get("/usage?range=7d")
    assert r.status_code == 302 and "/login?next=" in r.headers["Location"]
    r = client.get("/usage/charts/requests.csv")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = client.get("/usage", headers=HTMX)
    assert r.status_code == 401 and "/login" in r.headers["HX-Redirect"]
