"""Usage analytics against hand-computed fixtures (bucket edges included)."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from app.models import UsageRecord, UsageRollup
from app.services import rollups
from app.services import usage_query as uq
from app.services.usage import UsageWriter

NOW = datetime(2026, 11, 25, 12, 0, 0)


def rec(at, model="m1", provider_id=1, key_id=1, status=200, pt=100, ct=50, cost="0.001",
        latency=120.0, ttfb=40.0, cache=False, stream=False, owner=None, error_class=None):
    return {"created_at": at, "endpoint": "chat", "key_id": key_id, "model_name": model,
            "provider_id": provider_id, "prompt_tokens": pt, "completion_tokens": ct,
            "cost_usd": Decimal(cost), "latency_ms": latency, "ttfb_ms": ttfb, "status_code": status,
            "error_class": error_class, "cache_hit": cache, "stream": stream, "owner": owner,
            "cached_tokens": 0, "tokens_estimated": False}


@pytest.fixture
def data(app):
    rows = [
        rec(NOW - timedelta(minutes=1)),                                    # bucket 11:55
        rec(NOW - timedelta(minutes=5), model="m2", pt=10, ct=10, cost="0.5", latency=900, ttfb=300),  # 11:55 edge
        rec(NOW - timedelta(minutes=5, seconds=1), status=502, error_class="upstream_error", pt=0, ct=0,
            cost="0", latency=30, ttfb=None),                               # 11:50
        rec(NOW - timedelta(hours=2), cache=True, cost="0"),               # outside 1h
        rec(NOW - timedelta(hours=25), owner="research"),                  # previous period of 24h
    ]
    UsageWriter._write(rows)
    return rows


def test_rollups_are_maintained_with_the_raw_insert(data):
    assert db.session.scalar(db.select(db.func.count(UsageRecord.id))) == 5
    buckets: dict = {}
    for r in db.session.scalars(db.select(UsageRollup).where(UsageRollup.dim == "model")):
        buckets[r.bucket] = buckets.get(r.bucket, 0) + r.requests
    assert buckets[datetime(2026, 11, 25, 11, 55)] == 2
    assert buckets[datetime(2026, 11, 25, 11, 50)] == 1
    assert sum(buckets.values()) == 5


def test_totals_and_previous_period(data):
    w = uq.window("24h", now=NOW)
    t = uq.totals(w)
    cur = t["current"]
    assert cur["requests"] == 4 and cur["errors"] == 1 and cur["error_rate"] == 0.25
    assert cur["prompt_tokens"] == 210 and cur["completion_tokens"] == 110
    assert cur["cost_usd"] == pytest.approx(0.501)  # 0.001 + 0.5 + 0 (error) + 0 (cache hit)
    assert cur["cache_hit_rate"] == 0.25
    assert t["previous"]["requests"] == 1
    assert t["change"]["requests"] == 3.0  # +300 %


def test_timeseries_buckets_and_groups(data):
    w = uq.window("1h", now=NOW)
    ts = uq.timeseries(w, group_by="model")
    assert ts["step_s"] == 300 and len(ts["buckets"]) == 13
    m1 = ts["series"]["m1"]
    assert sum(x["requests"] for x in m1) == 2 and sum(x["errors"] for x in m1) == 1
    assert sum(x["requests"] for x in ts["series"]["m2"]) == 1


def test_each_dimension_family_counts_every_call(data):
    for dim in ("model", "provider", "key", "owner", "model@1h", "key@1h"):
        total = db.session.scalar(db.select(db.func.sum(UsageRollup.requests)).where(UsageRollup.dim == dim))
        assert total == 5, dim


def test_combined_filters_use_raw_records_and_agree_with_rollups(data):
    w = uq.window("30d", now=NOW)
    assert uq.source(None, {"model": "m1", "key_id": 1}).rollup is False
    assert uq.source("key", {"key_id": 1}).rollup is True
    raw = uq.totals(w, {"model": "m1", "key_id": "1"})["current"]
    rolled = uq.totals(w, {"model": "m1"})["current"]
    for k in ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd", "latency_p50_ms"):
        assert raw[k] == rolled[k], k  # every m1 row has key 1: both paths must agree
    ts = uq.timeseries(w, group_by="owner", filters={"model": "m1"})
    assert ts["source"] == "raw" and sum(x["requests"] for x in ts["series"]["research"]) == 1


def test_breakdown_by_owner_and_percentiles(data):
    rows = uq.breakdown(uq.window("30d", now=NOW), "owner")
    by = {r["name"]: r["requests"] for r in rows}
    assert by == {"(none)": 4, "research": 1}
    # histogram estimate: 120 ms lies in the (100, 200] bucket
    assert 100 <= uq.percentile([0, 0, 1] + [0] * 9, 0.5) <= 200
    assert uq.percentile([0] * 12, 0.5) is None


def test_request_log_filters_sort_and_pages(data):
    page = uq.requests_page({"outcome": "error"})
    assert [r.status_code for r in page["rows"]] == [502]
    page = uq.requests_page({}, sort="cost", desc=True, per_page=2)
    assert [str(r.cost_usd) for r in page["rows"]][0].startswith("0.5") and page["has_more"]
    page = uq.requests_page({"model": "m2"})
    assert len(page["rows"]) == 1
    page = uq.requests_page({"cache": "true"})
    assert len(page["rows"]) == 1 and page["rows"][0].cache_hit


def test_export_streams_csv_and_jsonl(data):
    out = "".join(uq.export({"outcome": "ok"}, "csv"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 and rows[0]["model"] == "m1"
    lines = [json.loads(x) for x in "".join(uq.export({}, "jsonl")).splitlines()]
    assert len(lines) == 5 and {"cost_usd", "latency_ms"} <= set(lines[0])


def test_prune_deletes_in_batches_and_keeps_rollups(app):
    old = [rec(datetime.utcnow() - timedelta(days=100, minutes=i)) for i in range(25)]
    new = [rec(datetime.utcnow() - timedelta(days=1))]
    UsageWriter._write(old + new)
    assert uq.prune(90, batch=10, max_batches=1) == 10
    assert uq.prune(90, batch=10) == 15
    assert db.session.scalar(db.select(db.func.count(UsageRecord.id))) == 1
    assert db.session.scalar(db.select(db.func.sum(UsageRollup.requests))
                             .where(UsageRollup.dim == "model")) == 26


def test_usage_api(api, data):
    s = api.get("/api/admin/usage/summary?range=30d").get_json()
    assert s["current"]["requests"] >= 1
    ts = api.get("/api/admin/usage/timeseries?range=7d&group_by=provider").get_json()
    assert ts["group_by"] == "provider"
    assert api.get("/api/admin/usage/timeseries?range=2y").status_code == 422
    log = api.get("/api/admin/requests?outcome=error").get_json()["data"]
    assert [r["status"] for r in log] == [502]
    detail = api.get(f"/api/admin/requests/{log[0]['id']}").get_json()
    assert detail["error_class"] == "upstream_error"
    assert api.get("/api/admin/requests/999999").status_code == 404
    exp = api.get("/api/admin/requests/export?format=jsonl")
    assert exp.mimetype == "application/x-ndjson" and len(exp.get_data(as_text=True).splitlines()) == 5
    assert api.get("/api/admin/requests/export?format=xml").status_code == 422
    audit = api.get("/api/admin/audit?entity_type=key").get_json()["data"]
    assert audit and audit[0]["action"] == "create"
