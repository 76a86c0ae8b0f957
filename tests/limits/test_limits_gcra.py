"""Request limits (GCRA): bursts, refill, no double burst at window boundaries."""
from __future__ import annotations

import pytest

from app.limits import Denied, Limits

from limits_support import T0

SUBJ = "key:1"


def admit(store, limits, now):
    return store.admit(SUBJ, limits, [], 0, 0, now)


def burst(store, limits, now, n) -> int:
    ok = 0
    for _ in range(n):
        try:
            admit(store, limits, now)
            ok += 1
        except Denied:
            pass
    return ok


def test_rpm_burst_then_one_per_second(store, clock):
    lim = Limits(rpm=60)
    for i in range(60):
        a = admit(store, lim, clock())
        assert a.headers["x-ratelimit-remaining-requests"] == str(59 - i)
    with pytest.raises(Denied) as e:
        admit(store, lim, clock())
    d = e.value
    assert d.reason == "rate_limit_requests"
    assert d.retry_after == pytest.approx(1.0, abs=1e-6)
    assert d.headers["Retry-After"] == "1"
    assert d.message.startswith("Rate limit reached for requests per minute: limit 60, used 60")
    assert "Please try again in 1s." in d.message
    assert d.limit_name == "rpm" and d.subject == SUBJ

    clock.advance(0.999)
    with pytest.raises(Denied) as e:
        admit(store, lim, clock())
    assert e.value.retry_after == pytest.approx(0.001, abs=1e-6)
    assert e.value.headers["Retry-After"] == "1"          # ceil, never 0

    clock.advance(0.001)                                   # exactly 1 s after the burst
    admit(store, lim, clock())
    with pytest.raises(Denied):
        admit(store, lim, clock())
    clock.advance(1.0)
    assert burst(store, lim, clock(), 5) == 1


def test_denied_request_is_not_counted(store, clock):
    lim = Limits(rpm=2)
    assert burst(store, lim, clock(), 10) == 2
    # 8 refusals did not push the TAT: one interval (30 s) later exactly one more fits
    clock.advance(30)
    assert burst(store, lim, clock(), 10) == 1


def test_no_double_burst_across_minute_boundary(store, clock):
    lim = Limits(rpm=60)
    t = T0 - 0.5                                   # half a second before a minute boundary
    assert burst(store, lim, t, 100) == 60
    # a fixed window would allow 60 more right after the boundary; GCRA allows one per second
    assert burst(store, lim, T0 + 0.5, 100) == 1
    assert burst(store, lim, T0 + 30.5, 100) == 30
    assert burst(store, lim, T0 + 120, 200) == 60     # fully rested: a whole burst again


def test_rph_and_rpd_windows(store, clock):
    lim = Limits(rph=10)
    assert burst(store, lim, clock(), 20) == 10
    with pytest.raises(Denied) as e:
        admit(store, lim, clock())
    assert e.value.retry_after == pytest.approx(360.0)           # 3600 / 10
    assert "requests per hour" in e.value.message
    assert e.value.headers["x-ratelimit-reset-requests"] == "1h0m0s"


def test_rpd(store, clock):
    lim = Limits(rpd=3)
    assert burst(store, lim, clock(), 5) == 3
    with pytest.raises(Denied) as e:
        admit(store, lim, clock())
    assert e.value.retry_after == pytest.approx(28800.0)           # 86400 / 3
    assert e.value.headers["Retry-After"] == "28800"
    assert e.value.headers["x-ratelimit-reset-requests"] == "24h0m0s"
    assert "requests per day" in e.value.message


def test_tightest_limit_wins_and_all_must_pass(store, clock):
    lim = Limits(rpm=5, rph=7)
    assert burst(store, lim, clock(), 10) == 5
    clock.advance(60)                       # rpm fully rested, rph has 2 left
    a = admit(store, lim, clock())
    assert a.headers["x-ratelimit-limit-requests"] == "7"
    assert a.headers["x-ratelimit-remaining-requests"] == "1"
    admit(store, lim, clock())
    with pytest.raises(Denied) as e:
        admit(store, lim, clock())
    assert "requests per hour" in e.value.message
    # rph interval is 3600/7 s; the 8th request conforms once one interval has drained
    assert e.value.retry_after == pytest.approx(3600 / 7 - 60, abs=1e-3)


def test_odd_limits_allow_exactly_the_limit_in_a_burst(store, clock):
    for i, n in enumerate((7, 13, 999, 1001)):
        subj = f"odd:{i}"
        ok = 0
        for _ in range(n + 5):
            try:
                store.admit(subj, Limits(rpm=n), [], 0, 0, clock())
                ok += 1
            except Denied:
                pass
        assert ok == n


def test_zero_limit_blocks(store, clock):
    with pytest.raises(Denied) as e:
        admit(store, Limits(rpm=0), clock())
    assert e.value.reason == "rate_limit_requests"
    assert e.value.retry_after is None and "Retry-After" not in e.value.headers


def test_subjects_are_independent(store, clock):
    lim = Limits(rpm=1)
    store.admit("key:1", lim, [], 0, 0, clock())
    store.admit("key:2", lim, [], 0, 0, clock())
    store.admit("model:5", lim, [], 0, 0, clock())
    with pytest.raises(Denied):
        store.admit("key:1", lim, [], 0, 0, clock())


def test_state_requests(store, clock):
    lim = Limits(rpm=60, rpd=1000)
    for _ in range(10):
        admit(store, lim, clock())
    clock.advance(2.5)
    st = store.state(SUBJ, lim, [], clock())
    assert st["limits"]["rpm"] == {"limit": 60, "used": 8, "remaining": 52, "reset_s": 7.5}
    assert st["limits"]["rpd"]["limit"] == 1000
    assert st["limits"]["rpd"]["used"] == 10 and st["limits"]["rpd"]["remaining"] == 990
    assert st["limits"]["rpd"]["reset_s"] == pytest.approx(10 * 86.4 - 2.5)
    clock.advance(60)
    st = store.state(SUBJ, lim, [], clock())
    assert st["limits"]["rpm"] == {"limit": 60, "used": 0, "remaining": 60, "reset_s": 0.0}
