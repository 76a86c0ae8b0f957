"""LiveState: TTFB moving average, in-flight counts, upstream rate-limit headers, snapshot."""
from __future__ import annotations

import threading

import pytest
from routing_support import T0

from app.routing import LiveState, parse_duration, parse_reset


def test_latency_is_an_ewma_with_alpha_0_2_of_successful_ttfb():
    live = LiveState()
    assert live.latency(1) is None
    live.started(1)
    live.finished(1, 100.0, ok=True)
    assert live.latency(1) == 100.0                 # the first sample sets it
    live.finished(1, 200.0, ok=True)
    assert live.latency(1) == pytest.approx(120.0)
    live.finished(1, 5.0, ok=False)                 # a fast failure is not averaged in
    live.finished(1, None, ok=True)                 # nor a success without a TTFB
    assert live.latency(1) == pytest.approx(120.0)
    live.finished(1, 20.0, ok=True)
    assert live.latency(1) == pytest.approx(100.0)


def test_in_flight_counts_and_never_goes_negative():
    live = LiveState()
    assert live.in_flight(7) == 0
    for _ in range(3):
        live.started(7)
    assert live.in_flight(7) == 3
    for _ in range(5):
        live.finished(7, None, ok=False)
    assert live.in_flight(7) == 0


def test_in_flight_is_exact_under_threads():
    live = LiveState()

    def work():
        for _ in range(2000):
            live.started(1)
            live.finished(1, 10.0, ok=True)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert live.in_flight(1) == 0
    assert live.snapshot()[1]["ok"] == 16000


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0),
    ("174ms", 0.174), ("2.5", 2.5), ("500us", 0.0005), ("7m12s", 432.0), (" 3s ", 3.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "s", "-1", "1s garbage", "inf"])
def test_parse_duration_rejects_garbage(text):
    assert parse_duration(text) is None


def test_parse_reset_accepts_rfc3339_times():
    assert parse_reset("2026-03-02T10:00:30Z", T0) == pytest.approx(30.0)
    assert parse_reset("2026-03-02T09:00:00Z", T0) == 0.0
    assert parse_reset("6m0s", T0) == 360.0
    assert parse_reset("soon", T0) is None


def test_observe_ratelimit_pacing_and_reset():
    live = LiveState()
    live.observe_ratelimit(1, {"x-ratelimit-remaining-requests": "2",
                               "x-ratelimit-reset-requests": "1s",
                               "x-ratelimit-remaining-tokens": "90000",
                               "x-ratelimit-reset-tokens": "6m0s"}, T0)
    assert live.paced(1, T0)
    assert live.paced_until(1, T0) == T0 + 1
    assert not live.paced(1, T0 + 1)
    assert not live.paced(1, T0 + 1, est_tokens=90000)
    assert live.paced(1, T0 + 1, est_tokens=90001)           # tokens: until T0 + 360
    assert live.paced_until(1, T0 + 1, est_tokens=90001) == T0 + 360
    assert not live.paced(1, T0 + 360, est_tokens=90001)


def test_observe_ratelimit_threshold_and_partial_headers():
    live = LiveState(pace_requests=2)
    live.observe_ratelimit(1, {"x-ratelimit-remaining-requests": "3",
                               "x-ratelimit-reset-requests": "10s"}, T0)
    assert not live.paced(1, T0)
    live.observe_ratelimit(1, {"content-type": "application/json"}, T0)   # nothing to learn
    live.observe_ratelimit(1, None, T0)
    assert live.snapshot()[1]["remaining_requests"] == 3
    live.observe_ratelimit(1, {"x-ratelimit-remaining-requests": "0"}, T0)  # no reset header
    assert live.paced(1, T0 + 0.5)
    assert not live.paced(1, T0 + 1.0)                        # default_reset_s
    live.observe_ratelimit(1, {"x-ratelimit-remaining-requests": "junk",
                               "x-ratelimit-reset-requests": "10s"}, T0 + 2)
    assert not live.paced(1, T0 + 2)                          # unparsable: ignored


def test_observe_ratelimit_anthropic_headers():
    live = LiveState()
    live.observe_ratelimit(4, {"anthropic-ratelimit-requests-remaining": "1",
                               "anthropic-ratelimit-requests-reset": "2026-03-02T10:00:20Z"}, T0)
    assert live.paced(4, T0 + 19.9)
    assert not live.paced(4, T0 + 20)


def test_snapshot():
    live = LiveState()
    live.started(1)
    live.started(2)
    live.finished(2, 123.456, ok=True)
    live.observe_ratelimit(2, {"x-ratelimit-remaining-requests": "1",
                               "x-ratelimit-reset-requests": "5s"}, T0)
    snap = live.snapshot(T0)
    assert snap[1] == {"latency_ms": None, "in_flight": 1, "ok": 0, "errors": 0,
                       "remaining_requests": None, "reset_requests_at": None,
                       "remaining_tokens": None, "reset_tokens_at": None, "paced": False}
    assert snap[2]["latency_ms"] == 123.5 and snap[2]["in_flight"] == 0
    assert snap[2]["paced"] is True and snap[2]["reset_requests_at"] == T0 + 5
    assert "paced" not in live.snapshot()[2]
    live.forget(2)
    assert set(live.snapshot()) == {1}
