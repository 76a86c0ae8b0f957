"""backoff(), is_retryable(), classify(), retry_after_seconds()."""
from __future__ import annotations

import random

import pytest
from routing_support import T0

from app.routing import backoff, classify, is_retryable, retry_after_seconds


@pytest.mark.parametrize("attempt, ceiling", [(0, 0.25), (1, 0.5), (2, 1.0), (3, 2.0),
                                              (4, 4.0), (5, 8.0), (6, 8.0), (40, 8.0),
                                              (10_000, 8.0)])
def test_backoff_is_full_jitter_under_the_exponential_ceiling(attempt, ceiling):
    rng = random.Random(attempt)
    waits = [backoff(attempt, rng) for _ in range(2000)]
    assert all(0.0 <= w <= ceiling for w in waits)
    assert max(waits) > 0.95 * ceiling and min(waits) < 0.05 * ceiling   # the whole range
    assert abs(sum(waits) / len(waits) - ceiling / 2) < 0.05 * ceiling   # uniform: mean c/2


def test_backoff_base_and_cap():
    rng = random.Random(1)
    assert all(backoff(3, rng, base=1.0, cap=5.0) <= 5.0 for _ in range(500))
    assert all(backoff(0, rng, base=0.0) == 0.0 for _ in range(10))


def test_backoff_is_deterministic_given_the_rng():
    a = [backoff(i % 6, random.Random(42)) for i in range(10)]
    b = [backoff(i % 6, random.Random(42)) for i in range(10)]
    assert a == b


def test_backoff_honours_retry_after():
    rng = random.Random(3)
    for attempt in range(8):
        assert backoff(attempt, rng, retry_after=9.5) >= 9.5           # beyond the cap too
        assert backoff(attempt, rng, retry_after=20.0) == 20.0
    assert backoff(5, random.Random(3), retry_after=0.0) == backoff(5, random.Random(3))


def test_backoff_stops_at_the_deadline():
    assert backoff(0, random.Random(1), retry_after=5.0, deadline_left=4.9) is None
    assert backoff(0, random.Random(1), retry_after=5.0, deadline_left=5.0) == 5.0
    assert backoff(0, random.Random(1), deadline_left=0.0) in (None, 0.0)
    assert backoff(0, random.Random(1), deadline_left=-1.0) is None
    rng = random.Random(5)
    results = [backoff(5, rng, deadline_left=4.0) for _ in range(1000)]  # ceiling 8
    assert all(r is None or r <= 4.0 for r in results)
    assert 400 < sum(r is None for r in results) < 600                   # about half
    with pytest.raises(ValueError):
        backoff(-1, random.Random(1))


@pytest.mark.parametrize("status, error, expected", [
    (None, "connect", True), (None, "timeout", True), (None, "server_error", True),
    (429, "rate_limited", True), (500, "server_error", True), (502, "server_error", True),
    (503, "server_error", True), (504, "server_error", True), (529, "server_error", True),
    (408, "timeout", True),
    (501, "server_error", False), (400, "client_error", False), (401, "auth", False),
    (403, "auth", False), (404, "not_found", False), (413, "client_error", False),
    (422, "client_error", False), (409, "client_error", False), (200, "ok", False),
    (None, "client_error", False),
])
def test_is_retryable(status, error, expected):
    assert is_retryable(status, error) is expected


@pytest.mark.parametrize("status, error, outcome", [
    (200, None, "ok"), (204, None, "ok"), (401, None, "auth"), (403, None, "auth"),
    (404, None, "not_found"), (408, None, "timeout"), (429, None, "rate_limited"),
    (400, None, "client_error"), (413, None, "client_error"), (422, None, "client_error"),
    (500, None, "server_error"), (503, None, "server_error"),
    (None, "connect", "connect"), (None, "timeout", "timeout"),
    (None, "protocol", "server_error"), (None, None, "server_error"),
])
def test_classify(status, error, outcome):
    assert classify(status, error) == outcome


def test_retry_after_seconds():
    assert retry_after_seconds({"Retry-After": "12"}, T0) == 12.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}, T0) == 1.5
    assert retry_after_seconds({"Retry-After": "Mon, 02 Mar 2026 10:00:30 GMT"}, T0) == 30.0
    assert retry_after_seconds({"Retry-After": "Mon, 02 Mar 2026 09:00:00 GMT"}, T0) == 0.0
    assert retry_after_seconds({"Retry-After": "-3"}, T0) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}, T0) is None
    assert retry_after_seconds({}, T0) is None and retry_after_seconds(None, T0) is None
