"""Prometheus metrics (prometheus-client), in multiprocess mode under gunicorn.

gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start,
so every worker writes its samples to shared mmap files and GET /metrics (served by any worker)
aggregates all of them. Outside gunicorn (tests, flask run) the default registry is used.
"""
from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("gateway_requests_total", "Proxied calls by outcome",
                   ["endpoint", "model", "provider", "status"])
TOKENS = Counter("gateway_tokens_total", "Tokens by direction", ["model", "provider", "direction"])
COST = Counter("gateway_cost_usd_total", "Cost in USD", ["model", "provider"])
LATENCY = Histogram("gateway_request_duration_seconds", "Whole call duration", ["model", "provider"],
                    buckets=BUCKETS)
TTFB = Histogram("gateway_ttfb_seconds", "Time to first byte from the upstream", ["model", "provider"],
                 buckets=BUCKETS)
CACHE = Counter("gateway_cache_lookups_total", "Response cache lookups", ["result"])
REJECTIONS = Counter("gateway_limiter_rejections_total", "Requests refused by limits or budgets",
                     ["reason"])
IN_FLIGHT = Gauge("gateway_streams_in_flight", "Streams being relayed", multiprocess_mode="livesum")
USAGE_PENDING = Gauge("gateway_usage_pending", "Usage records queued in memory, not yet written",
                      multiprocess_mode="livesum")
USAGE_WRITE_FAILURES = Counter("gateway_usage_write_failures_total",
                               "Usage batches the DB refused (kept in memory and retried)")
USAGE_DROPPED = Counter("gateway_usage_dropped_total",
                        "Usage records lost because the in-memory backlog was full")
# Redis-backed shared state (GATEWAY_REDIS_URL). One definition for every store, label
# ``store``: "cache" (response cache), "breaker" (circuit breakers), "pubsub" (config-change
# notifications), "limits" (rate limits and budgets). Keep these names exact.
REDIS_FAILURES = Counter("gateway_redis_failures_total",
                         "Redis operations that failed (the store fell back: cache miss, local "
                         "breaker, polling)", ["store"])
REDIS_UP = Gauge("gateway_redis_up", "1 when the store's last Redis operation succeeded, 0 while "
                 "it is failing (lowest over the live workers)", ["store"],
                 multiprocess_mode="livemin")


def observe(row: dict[str, Any], provider_names: dict[int, str]) -> None:
    """Update the counters from one usage record (called once per proxied call)."""
    model = row.get("model_name") or "unknown"
    provider = provider_names.get(row.get("provider_id"), "none")
    status = str(row.get("status_code"))
    REQUESTS.labels(row.get("endpoint") or "chat", model, provider, status).inc()
    if row.get("prompt_tokens"):
        TOKENS.labels(model, provider, "input").inc(row["prompt_tokens"])
    if row.get("completion_tokens"):
        TOKENS.labels(model, provider, "output").inc(row["completion_tokens"])
    cost = row.get("cost_usd")
    if cost:
        COST.labels(model, provider).inc(float(cost) if isinstance(cost, Decimal) else cost)
    if row.get("latency_ms") is not None:
        LATENCY.labels(model, provider).observe(row["latency_ms"] / 1000)
    if row.get("ttfb_ms") is not None and not row.get("cache_hit"):
        TTFB.labels(model, provider).observe(row["ttfb_ms"] / 1000)
    if row.get("cache_hit"):
        CACHE.labels("hit").inc()
    if row.get("error_class") in ("rate_limited", "budget_exceeded"):
        REJECTIONS.labels(row["error_class"]).inc()


class StateCollector:
    """Gauges read at scrape time: provider health and breaker states (not per request)."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        health = GaugeMetricFamily("gateway_provider_healthy", "1 healthy, 0 unhealthy, -1 unknown",
                                   labels=["provider"])
        breaker = GaugeMetricFamily("gateway_breaker_open",
                                    "1 when the deployment's breaker is open/disabled",
                                    labels=["deployment", "state"])
        with self.app.app_context():
            from app.extensions import db
            from app.models import Provider
            for name, status in db.session.execute(db.select(Provider.name, Provider.health_status)):
                health.add_metric([name], {"healthy": 1, "unhealthy": 0}.get(status, -1))
            from app.services.router import router
            for dep_id, state in router().breaker.states(time.time()).items():
                breaker.add_metric([str(dep_id), state["state"]],
                                   0 if state["state"] == "closed" else 1)
            db.session.remove()
        yield health
        yield breaker


def render(app) -> tuple[bytes, str]:
    """The /metrics body: every worker's samples (multiprocess) plus the scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    extra = CollectorRegistry()
    extra.register(StateCollector(app))
    return generate_latest(registry) + generate_latest(extra), CONTENT_TYPE_LATEST
