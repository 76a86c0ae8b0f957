"""x-ratelimit-* headers and Retry-After: names and formats as OpenAI sends them."""
from __future__ import annotations

import re

import pytest

from app.limits import Budget, Denied, Limits, fmt_duration
from limits_support import D

NAMES = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
         "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
         "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}
DURATION = re.compile(r"^(?:0s|[1-9]\d{0,2}ms|(?:\d+h)?(?:\d+m)?\d+(?:\.\d{1,3})?s)$")


def parse_duration(value: str) -> float:
    total = 0.0
    for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


@pytest.mark.parametrize("us,text", [
    (0, "0s"), (-5, "0s"), (1, "1ms"), (400, "1ms"), (20_000, "20ms"), (999_000, "999ms"),
    (999_001, "1s"), (1_000_000, "1s"), (1_500_000, "1.5s"), (59_736_000, "59.736s"),
    (60_000_000, "1m0s"), (360_000_000, "6m0s"), (90_500_000, "1m30.5s"),
    (3_600_000_000, "1h0m0s"), (3_723_000_000, "1h2m3s"), (86_400_000_000, "24h0m0s"),
])
def test_fmt_duration(us, text):
    assert fmt_duration(us) == text
    assert DURATION.match(text)
    assert parse_duration(text) == pytest.approx(max(0, us) / 1e6, abs=0.001)


def test_admission_headers(store, clock):
    lim = Limits(rpm=60, tpm=10_000)
    a = store.admit("key:1", lim, [], 1200, 0, clock())
    assert a.headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "8800",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    assert a.budget_warning is None
    clock.advance(0.98)
    a = store.admit("key:1", lim, [], 0, 0, clock())
    assert a.headers["x-ratelimit-reset-requests"] == "1.02s"
    assert a.headers["x-ratelimit-reset-tokens"] == "59.02s"
    # the first request's interval has not fully drained (0.98 of 1 s): 58, not 59
    assert a.headers["x-ratelimit-remaining-requests"] == "58"


def test_only_the_kinds_that_are_limited(store, clock):
    assert store.admit("k", Limits(), [], 5, 0, clock()).headers == {}
    h = store.admit("k", Limits(rpd=100, concurrency=3), [], 5, 0, clock()).headers
    assert set(h) == {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                      "x-ratelimit-reset-requests"}
    assert h["x-ratelimit-reset-requests"] == "14m24s"           # 86400 / 100
    h = store.admit("k2", Limits(tpd=100), [], 5, 0, clock()).headers
    assert set(h) == {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                      "x-ratelimit-reset-tokens"}
    assert h["x-ratelimit-reset-tokens"] == "24h0m0s"


def test_denied_headers(store, clock):
    lim = Limits(rpm=3, rph=100, tpm=50)
    for _ in range(3):
        store.admit("key:1", lim, [], 10, 0, clock())
    clock.advance(0.25)
    with pytest.raises(Denied) as e:
        store.admit("key:1", lim, [], 10, 0, clock())
    h = e.value.headers
    assert set(h) == NAMES | {"Retry-After"}
    assert h["x-ratelimit-limit-requests"] == "3"                 # the tightest: rpm
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert h["x-ratelimit-reset-requests"] == "59.75s"
    assert h["x-ratelimit-remaining-tokens"] == "20"
    assert e.value.retry_after == pytest.approx(19.75)
    assert h["Retry-After"] == "20"
    for name, value in h.items():
        if "reset" in name:
            assert DURATION.match(value), (name, value)
        else:
            assert value.isdigit(), (name, value)


def test_retry_after_is_the_longest_wait(store, clock):
    lim = Limits(rpm=1, tpm=10)
    store.admit("key:1", lim, [], 10, 0, clock())
    clock.advance(30.2)
    with pytest.raises(Denied) as e:
        store.admit("key:1", lim, [], 1, 0, clock())
    assert e.value.retry_after == pytest.approx(29.8)     # both need 29.8 s
    clock.advance(29.8)
    store.admit("key:1", lim, [], 1, 0, clock())


def test_budget_denial_has_rate_headers_but_no_retry_after(store, clock):
    with pytest.raises(Denied) as e:
        store.admit("key:1", Limits(rpm=10), [Budget("key:1", D("0"), "day")], 0, D("0.1"),
                    clock())
    assert e.value.headers == {"x-ratelimit-limit-requests": "10",
                               "x-ratelimit-remaining-requests": "10",
                               "x-ratelimit-reset-requests": "0s"}
    assert e.value.retry_after is None
