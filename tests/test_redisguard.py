"""The one outage state machine of the Redis-backed stores (app/redisguard.py)."""
from __future__ import annotations

import logging
import threading

from app import metrics
from app.redisguard import Guard


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_one_caller_probes_per_interval_and_the_others_use_the_fallback():
    clock = Clock()
    g = Guard("test-probe", 1.0, clock)
    assert g.available() and g.up is None
    g.failed(ConnectionError("refused"))
    assert g.down and not g.available()
    clock.t += 1.0
    results = []
    barrier = threading.Barrier(20)

    def ask():
        barrier.wait()
        results.append(g.available())
    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1, results      # exactly one probe when it is due
    g.failed(ConnectionError("still refused"))     # the probe failed: wait another interval
    clock.t += 0.5
    assert not g.available()
    clock.t += 0.5
    assert g.available()
    g.ok()
    assert g.up is True and all(g.available() for _ in range(5))


def test_one_warning_per_outage_without_credentials_and_the_metrics(caplog):
    clock = Clock()
    g = Guard("test-metrics", 1.0, clock, meanwhile="doing without")
    failures = metrics.REDIS_FAILURES.labels("test-metrics")
    base = failures._value.get()
    with caplog.at_level(logging.INFO, logger="app.redisguard"):
        g.ok()
        assert metrics.REDIS_UP.labels("test-metrics")._value.get() == 1
        for _ in range(3):
            g.failed(ConnectionError("Error 111 connecting to redis://user:s3cret@10.0.0.5:6379/0"))
        assert failures._value.get() == base + 3       # every failed call is counted
        assert metrics.REDIS_UP.labels("test-metrics")._value.get() == 0
        g.ok()
        g.ok()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages                # one when it went, one when it came back
    assert "test-metrics store unreachable" in messages[0] and "doing without" in messages[0]
    assert "s3cret" not in messages[0] and "redis://***@10.0.0.5" in messages[0]
    assert "answers again" in messages[1]
    assert metrics.REDIS_UP.labels("test-metrics")._value.get() == 1


def test_callbacks_replace_the_metrics():
    seen = {"errors": 0, "states": []}
    g = Guard("test-callbacks", 1.0, Clock(), on_error=lambda e: seen.__setitem__(
        "errors", seen["errors"] + 1), on_state=seen["states"].append)
    g.ok()
    g.failed(OSError("x"))
    g.failed(OSError("x"))
    g.ok()
    assert seen == {"errors": 2, "states": [True, False, True]}
