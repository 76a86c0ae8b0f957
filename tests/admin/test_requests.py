"""Request log: filters, sorting, pages, streamed exports, and a detail page that explains a call
(checks, routing, the fallback chain, cache, detectors, where the cost came from)."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import UsageRecord, utcnow

from .helpers import HTMX, element, is_fragment, squash, text
from .test_usage import rec, write

FAILOVER_DETAILS = {
    "checks": ["key: valid", "scopes: chat allowed", "model: allowed by gpt-4o-mini", "limits/budget: admitted"],
    "routing": {"group": "mini-pool", "strategy": "priority",
                "order": ["azure/gpt-4o-mini", "openai/gpt-4o-mini", "backup/gpt-4o-mini"]},
    "attempts": [
        {"deployment": "azure/gpt-4o-mini", "status": 502, "outcome": "server_error",
         "error": "The upstream provider 'azure' returned HTTP 502 Bad Gateway.", "ms": 812.4},
        {"deployment": "openai/gpt-4o-mini", "status": 200, "outcome": "ok", "ms": 640.2},
    ],
    "cache": "MISS", "detectors": ["email"], "redacted": "1 span(s): email",
    "cost": {"usd": "0.00027", "tokens": "provider",
             "prices": {"input_per_mtok": "0.15", "output_per_mtok": "0.60", "cached_input_per_mtok": None}},
}


@pytest.fixture
def log(app, make_provider):
    """Six calls over the last two days; ids in insertion order."""
    from app.services import keys
    provider = make_provider(name="Fake OpenAI")
    key, _ = keys.create({"name": "web-app", "owner": "growth", "scopes": ["chat"]}, actor="test")
    now = utcnow()
    base = {"provider_id": provider.id, "key_id": key.id, "owner": "growth"}
    write(app, [
        rec(now - timedelta(hours=30), cost="0.004", latency=2400, pt=800, ct=400, request_id="req_old", **base),
        rec(now - timedelta(minutes=50), cost="0.00027", latency=1460.5, pt=1000, ct=200,
            request_id="req_failover", attempts="azure/gpt-4o-mini=502;openai/gpt-4o-mini=200",
            detectors="email", details=FAILOVER_DETAILS, **base),
        rec(now - timedelta(minutes=40), model="claude-x", status=502, error_class="upstream_error", cost="0",
            pt=0, ct=0, latency=300, request_id="req_failed", **base),
        rec(now - timedelta(minutes=30), cost="0", cache=True, latency=3, request_id="req_cached", **base),
        rec(now - timedelta(minutes=20), cost="0.0009", latency=90, stream=True, pt=100, ct=900,
            request_id="req_stream", **base),
        rec(now - timedelta(minutes=10), status=429, error_class="rate_limited", cost="0", pt=0, ct=0,
            latency=1, ttfb=None, request_id="req_refused", **{**base, "provider_id": None}),
    ])
    ids = {r.request_id: r.id for r in db.session.scalars(db.select(UsageRecord))}
    return {"provider": provider, "key": key, "ids": ids}


def rows_of(html: str) -> list[str]:
    """The request ids of the table rows, in order (the detail links carry the record ids)."""
    body = element(html, "request-log")
    return re.findall(r'<tr class="[^"]*">\s*<td><a class="strong" href="/requests/(\d+)"', body)


def ids(log, *names) -> list[str]:
    return [str(log["ids"][n]) for n in names]


# ----------------------------------------------------------------------------- list
def test_log_lists_newest_first_with_names(admin_client, log):
    html = text(admin_client.get("/requests"))
    assert rows_of(html) == ids(log, "req_refused", "req_stream", "req_cached", "req_failed",
                                "req_failover", "req_old")
    table = squash(element(html, "request-log"))
    assert ">web-app</a>" in table and "Fake OpenAI" in table and "claude-x" in table
    assert "1,000<span class=\"tokens-arrow\">→</span>200" in table
    assert "2 attempts" in table and ">cache hit<" in table and ">stream<" in table and ">sensitive<" in table
    assert "upstream error" in table and "rate limited" in table
    assert "Rows 1–6" in table


@pytest.mark.parametrize("query,expected", [
    ("outcome=error", ["req_refused", "req_failed"]),
    ("outcome=ok", ["req_stream", "req_cached", "req_failover", "req_old"]),
    ("status=429", ["req_refused"]),
    ("model=claude-x", ["req_failed"]),
    ("error_class=upstream_error", ["req_failed"]),
    ("cache=true", ["req_cached"]),
    ("stream=true", ["req_stream"]),
    ("range=24h", ["req_refused", "req_stream", "req_cached", "req_failed", "req_failover"]),
    ("range=1h&outcome=ok&stream=false", ["req_cached", "req_failover"]),
    ("provider_id={provider}", ["req_stream", "req_cached", "req_failed", "req_failover", "req_old"]),
])
def test_filters(admin_client, log, query, expected):
    html = text(admin_client.get("/requests?" + query.format(provider=log["provider"].id)))
    assert rows_of(html) == ids(log, *expected)


def test_custom_range_and_key_filter(admin_client, log):
    now = utcnow()
    start = (now - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M")
    end = (now - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M")
    html = text(admin_client.get(f"/requests?range=custom&start={start}&end={end}"))
    assert rows_of(html) == ids(log, "req_cached", "req_failed")
    assert f'id="log-start" value="{start}"' in html
    assert len(rows_of(text(admin_client.get(f"/requests?key_id={log['key'].id}")))) == 6
    assert "No requests match" in text(admin_client.get("/requests?key_id=999"))


@pytest.mark.parametrize("sort,order,expected", [
    ("cost", "desc", ["req_old", "req_stream", "req_failover"]),
    ("latency", "desc", ["req_old", "req_failover", "req_failed"]),
    ("latency", "asc", ["req_refused", "req_cached", "req_stream"]),
    ("tokens", "desc", ["req_stream", "req_old", "req_failover"]),
    ("time", "asc", ["req_old", "req_failover", "req_failed"]),
])
def test_sorting(admin_client, log, sort, order, expected):
    html = text(admin_client.get(f"/requests?sort={sort}&order={order}"))
    assert rows_of(html)[:3] == ids(log, *expected)
    head = squash(element(html, "request-log"))
    aria = "descending" if order == "desc" else "ascending"
    assert re.search(rf'aria-sort="{aria}"[^>]*>\s*<a class="th-sort is-active"', head)


def test_sort_links_flip_the_order_and_keep_filters(admin_client, log):
    html = text(admin_client.get("/requests?sort=cost&order=desc&outcome=ok"))
    links = re.findall(r'class="th-sort[^"]*" href="([^"]+)"', html)
    cost = next(x for x in links if "sort=cost" in x)
    latency = next(x for x in links if "sort=latency" in x)
    assert "order=asc" in cost and "outcome=ok" in cost
    assert "order=desc" in latency and "outcome=ok" in latency


def test_pagination(app, admin_client, log):
    now = utcnow()
    write(app, [rec(now - timedelta(days=3, minutes=i), request_id=f"bulk-{i}") for i in range(100)])
    first = text(admin_client.get("/requests?outcome=ok"))
    assert len(rows_of(first)) == 50 and "Rows 1–50, more on the next page" in first
    assert 'rel="next" href="/requests?outcome=ok&amp;sort=time&amp;order=desc&amp;page=2"' in first
    assert "← Previous</span>" in squash(first)  # disabled on page 1
    third = text(admin_client.get("/requests?outcome=ok&page=3"))
    assert len(rows_of(third)) == 4 and "Rows 101–104" in third  # 4 seeded ok + 100 bulk
    assert 'rel="prev" href="/requests?outcome=ok&amp;sort=time&amp;order=desc&amp;page=2"' in third
    assert "Next →</span>" in squash(third)


def test_htmx_gets_the_log_fragment(admin_client, log):
    r = admin_client.get("/requests?outcome=error", headers=HTMX)
    assert is_fragment(r)
    assert re.match(r'\s*<section class="card" id="request-log">', text(r))
    assert rows_of(text(r)) == ids(log, "req_refused", "req_failed")
    assert "HX-Request" in r.headers["Vary"]


def test_bad_filter_is_a_readable_error(admin_client, log):
    r = admin_client.get("/requests?status=abc")
    assert r.status_code == 422 and "Status must be an integer" in text(r)


# ----------------------------------------------------------------------------- export
def test_export_csv_streams_the_filtered_set(admin_client, log):
    html = text(admin_client.get("/requests?outcome=error&sort=cost"))
    assert 'href="/requests/export.csv?outcome=error&amp;sort=cost&amp;order=desc"' in html
    r = admin_client.get("/requests/export.csv?outcome=error")
    assert r.status_code == 200 and r.mimetype == "text/csv" and r.is_streamed
    assert re.match(r"attachment; filename=requests-\d{8}-\d{4}\.csv", r.headers["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(text(r))))
    assert [(x["request_id"], x["status"], x["error_class"]) for x in rows] == [
        ("req_failed", "502", "upstream_error"), ("req_refused", "429", "rate_limited")]  # oldest first
    assert rows[0]["model"] == "claude-x" and rows[0]["owner"] == "growth"


def test_export_jsonl(admin_client, log):
    r = admin_client.get("/requests/export.jsonl?model=gpt-4o-mini&range=24h")
    assert r.mimetype == "application/x-ndjson"
    lines = [json.loads(x) for x in text(r).splitlines()]
    assert [x["request_id"] for x in lines] == ["req_failover", "req_cached", "req_stream", "req_refused"]
    assert lines[0]["cost_usd"] == "0.00027000" and lines[0]["attempts"].endswith("=200")
    empty = admin_client.get("/requests/export.jsonl?model=nothing")
    assert empty.status_code == 200 and text(empty) == ""
    assert admin_client.get("/requests/export.xml").status_code == 404
    assert admin_client.get("/requests/export.csv?status=abc").status_code == 422


# ----------------------------------------------------------------------------- detail
def test_detail_explains_a_failed_over_call(admin_client, log):
    html = text(admin_client.get(f"/requests/{log['ids']['req_failover']}"))
    page = squash(html)
    assert "req_failover" in page
    summary = squash(element(html, "request-summary"))
    assert ("Served by <b>openai/gpt-4o-mini</b> after 1 failed attempt "
            "(<b>azure/gpt-4o-mini</b> answered 502, server_error).") in summary

    checks = squash(element(html, "request-checks"))
    for check in ("<strong>key</strong>: valid", "<strong>scopes</strong>: chat allowed",
                  "<strong>limits/budget</strong>: admitted"):
        assert check in checks

    routing = squash(element(html, "request-routing"))
    assert ("Routing group <strong>mini-pool</strong> with the <strong>priority</strong> strategy "
            "ranked 3 deployments") in routing
    order = re.findall(r'<li class="([^"]*)"> <span class="mono">([^<]+)</span> <span [^>]*>([^<]+)</span>',
                       routing)
    assert order == [("is-failed", "azure/gpt-4o-mini", "tried, failed"),
                     ("is-served", "openai/gpt-4o-mini", "served"), ("", "backup/gpt-4o-mini", "not needed")]

    chain = squash(element(html, "request-attempts"))
    assert "failed over" in chain
    assert chain.index("azure/gpt-4o-mini") < chain.index("openai/gpt-4o-mini")
    assert "The upstream provider &#39;azure&#39; returned HTTP 502 Bad Gateway." in chain
    assert "812 ms" in chain and "640 ms" in chain and "server error" in chain
    assert "Attempt 1: failed, fell back to the next deployment." in chain
    assert "Attempt 2: served the response." in chain

    cache = squash(element(html, "request-cache"))
    assert ">MISS<" in cache and "not found, so an upstream was called" in cache
    sensitive = squash(element(html, "request-sensitivity"))
    assert ">email<" in sensitive and "1 detector fired" in sensitive and "1 span(s): email" in sensitive

    cost = squash(element(html, "request-cost"))
    assert "Provider-reported tokens." in cost
    assert "<dt>1,000 input tokens × $0.15 / 1M</dt><dd>$0.00015</dd>" in cost
    assert "<dt>200 output tokens × $0.6 / 1M</dt><dd>$0.00012</dd>" in cost
    assert '<dd class="total">$0.00027</dd>' in cost and "failed attempts cost nothing" in cost


def test_detail_of_estimated_tokens_and_cached_prices(app, admin_client, log):
    prices = {"input_per_mtok": "0.15", "output_per_mtok": "0.60", "cached_input_per_mtok": "0.075"}
    details = {**FAILOVER_DETAILS, "attempts": [FAILOVER_DETAILS["attempts"][1]], "detectors": [],
               "redacted": None, "cost": {"usd": "0.0002", "tokens": "estimated", "prices": prices}}
    write(app, [rec(utcnow(), pt=1000, ct=100, cached_tokens=400, tokens_estimated=True, cost="0.00018",
                    request_id="req_est", details=details)])
    rid = db.session.scalar(db.select(UsageRecord.id).where(UsageRecord.request_id == "req_est"))
    html = text(admin_client.get(f"/requests/{rid}"))
    assert "Served by <b>openai/gpt-4o-mini</b> on the first attempt." in html
    cost = squash(element(html, "request-cost"))
    assert "Estimated tokens." in cost
    assert "600 input tokens × $0.15 / 1M" in cost and "400 cached input tokens × $0.075 / 1M" in cost
    assert "100 output tokens × $0.6 / 1M" in cost and "$0.00018" in cost
    assert "No sensitivity detector fired." in squash(element(html, "request-sensitivity"))


def test_detail_of_a_failed_call_without_details(admin_client, log):
    html = text(admin_client.get(f"/requests/{log['ids']['req_failed']}"))
    assert "this record has no routing details" not in html
    assert "Not recorded for this request." in squash(element(html, "request-checks"))
    assert "No upstream was called." in squash(element(html, "request-attempts"))
    refused = text(admin_client.get(f"/requests/{log['ids']['req_refused']}"))
    assert "Refused by the gateway with <b>HTTP 429</b> (rate limited) before any upstream was called." in refused
    assert "The gateway refused the call (HTTP 429, rate limited)." in squash(element(refused, "request-checks"))


def test_detail_rebuilds_the_chain_from_old_rows(app, admin_client, log):
    write(app, [rec(utcnow(), attempts="a/m=503;b/m=200", request_id="req_legacy")])
    rid = db.session.scalar(db.select(UsageRecord.id).where(UsageRecord.request_id == "req_legacy"))
    html = text(admin_client.get(f"/requests/{rid}"))
    assert "Served by <b>b/m</b> after 1 failed attempt (<b>a/m</b> answered 503, error)." in html
    chain = squash(element(html, "request-attempts"))
    assert chain.index("a/m") < chain.index("b/m") and "Attempt 1: failed, fell back" in chain


def test_detail_of_a_cache_hit(admin_client, log):
    html = text(admin_client.get(f"/requests/{log['ids']['req_cached']}"))
    assert "Served from the <b>response cache</b>" in html
    assert ">HIT<" in squash(element(html, "request-cache"))
    assert "Nothing was charged" in squash(element(html, "request-cost"))


def test_detail_not_found(admin_client, log):
    r = admin_client.get("/requests/999999")
    assert r.status_code == 404 and "There is no request #999999" in text(r)


# ----------------------------------------------------------------------------- access
def test_viewer_can_read_the_log_detail_and_exports(viewer_client, log):
    assert viewer_client.get("/requests").status_code == 200
    assert viewer_client.get(f"/requests/{log['ids']['req_failover']}").status_code == 200
    assert viewer_client.get("/requests/export.csv").status_code == 200


def test_anonymous_is_sent_to_login(client, log):
    for path in ("/requests", f"/requests/{log['ids']['req_old']}", "/requests/export.csv"):
        r = client.get(path)
        assert r.status_code == 302 and "/login?next=" in r.headers["Location"], path
