"""Breaker policy, on both stores: trips, cooldown, the single probe, auth, 429, neutral 4xx."""
from __future__ import annotations

import pytest
from routing_support import T0

from app.routing import Breaker, BreakerStore, MemoryBreakerStore, SQLiteBreakerStore


def fail(b, n, now, dep_id=1, outcome="server_error"):
    for _ in range(n):
        b.record(dep_id, outcome, now)


def phase(b, now, dep_id=1):
    return b.state(dep_id, now)["state"]


# --- tripping ------------------------------------------------------------------------------------
def test_new_deployment_is_closed(breaker):
    assert breaker.allow(1, T0)
    assert breaker.state(1, T0) == {
        "state": "closed", "consecutive_failures": 0, "error_rate": 0.0,
        "requests_in_window": 0, "open_until": None, "cooldown_s": None, "opened_at": None,
        "reason": None, "probe_in_flight": False}


@pytest.mark.parametrize("outcome", ["server_error", "timeout", "connect", "not_found"])
def test_opens_after_5_consecutive_failures(breaker, outcome):
    fail(breaker, 4, T0, outcome=outcome)
    assert phase(breaker, T0) == "closed" and breaker.allow(1, T0)
    assert breaker.record(1, outcome, T0 + 1) == "open"
    st = breaker.state(1, T0 + 1)
    assert st["state"] == "open" and st["consecutive_failures"] == 5
    assert st["open_until"] == T0 + 1 + 30 and st["opened_at"] == T0 + 1
    assert st["reason"] == f"5 consecutive failures (last: {outcome})"
    assert not breaker.allow(1, T0 + 1)
    assert breaker.allow(2, T0 + 1)                # other deployments unaffected


def test_a_success_resets_the_consecutive_count(make_breaker):
    b = make_breaker(min_requests=1000)            # keep the error rate out of it
    for _ in range(3):
        fail(b, 4, T0)
        b.record(1, "ok", T0)
    st = b.state(1, T0)
    assert st["state"] == "closed" and st["consecutive_failures"] == 0
    assert st["requests_in_window"] == 15 and st["error_rate"] == 0.8   # the window counts


def test_opens_on_error_rate_over_the_window(make_breaker):
    b = make_breaker(failure_threshold=5, error_rate=0.5, min_requests=10)
    t = T0
    for i in range(9):                             # ok, fail, ok, fail, ...: never 2 in a row
        b.record(1, "ok" if i % 2 == 0 else "timeout", t)
        t += 1
    assert phase(b, t) == "closed"                 # 4/9 failed, and under min_requests
    assert b.record(1, "timeout", t) == "open"     # 5/10 = 50%
    st = b.state(1, t)
    assert st["consecutive_failures"] == 1 and st["error_rate"] == 0.5
    assert st["reason"] == "error rate 50% over 60s (5/10; last: timeout)"


def test_error_rate_needs_min_requests_and_forgets_old_buckets(make_breaker):
    b = make_breaker(min_requests=10)
    fail(b, 4, T0)
    b.record(1, "ok", T0)                          # 4/5 = 80%, but only 5 requests
    assert phase(b, T0) == "closed"
    for _ in range(4):
        b.record(1, "ok", T0)
    assert b.state(1, T0)["error_rate"] == pytest.approx(4 / 9, abs=1e-4)
    t = T0 + 65                                    # the window has moved on
    assert b.state(1, t)["requests_in_window"] == 0
    for _ in range(6):
        b.record(1, "ok", t)
    fail(b, 3, t)
    assert phase(b, t) == "closed"                 # 3/9: under both thresholds
    fail(b, 1, t)                                  # 4/10 = 40% < 50%, 4 consecutive
    assert phase(b, t) == "closed"
    fail(b, 1, t)                                  # 5 consecutive (5/11 = 45%)
    assert phase(b, t) == "open"
    assert b.state(1, t)["reason"] == "5 consecutive failures (last: server_error)"


def test_error_rate_window_slides_bucket_by_bucket(make_breaker):
    b = make_breaker(window_s=60, window_buckets=12)
    fail(b, 4, T0)                                 # bucket [T0, T0+5)
    b.record(1, "ok", T0 + 5)
    assert b.state(1, T0 + 59.9)["requests_in_window"] == 5
    assert b.state(1, T0 + 60)["requests_in_window"] == 1      # the first bucket left
    assert b.state(1, T0 + 65)["requests_in_window"] == 0


# --- cooldown and the probe -----------------------------------------------------------------------
def test_open_then_half_open_after_cooldown_then_one_probe(breaker):
    fail(breaker, 5, T0)
    assert not breaker.allow(1, T0 + 29.999)
    assert phase(breaker, T0 + 29.999) == "open"
    assert phase(breaker, T0 + 30) == "half-open"
    assert not breaker.state(1, T0 + 30)["probe_in_flight"]
    assert breaker.allow(1, T0 + 30)               # the probe
    assert breaker.state(1, T0 + 30)["probe_in_flight"]
    assert [breaker.allow(1, T0 + 30 + i) for i in range(10)] == [False] * 10


def test_probe_success_closes_and_resets(breaker):
    fail(breaker, 5, T0)
    assert breaker.allow(1, T0 + 30)
    assert breaker.record(1, "ok", T0 + 31) == "closed"
    assert breaker.state(1, T0 + 31) == breaker.state(2, T0 + 31)    # clean as new
    assert all(breaker.allow(1, T0 + 31) for _ in range(5))
    fail(breaker, 4, T0 + 32)                      # counting starts afresh
    assert phase(breaker, T0 + 32) == "closed"
    fail(breaker, 1, T0 + 32)
    assert breaker.state(1, T0 + 32)["open_until"] == T0 + 32 + 30   # base cooldown again


def test_probe_failure_reopens_with_doubled_cooldown_up_to_the_max(breaker):
    fail(breaker, 5, T0)
    t, cooldown = T0, 30.0
    for expected in (60, 120, 240, 300, 300):
        t += cooldown
        assert not breaker.allow(1, t - 0.001)
        assert breaker.allow(1, t)
        assert breaker.record(1, "server_error", t + 1) == "open"
        st = breaker.state(1, t + 1)
        assert st["cooldown_s"] == expected and st["open_until"] == t + 1 + expected
        assert st["reason"] == f"probe failed (server_error), cooldown {expected}s"
        t, cooldown = t + 1, expected
    assert breaker.allow(1, t + cooldown)
    breaker.record(1, "ok", t + cooldown)
    fail(breaker, 5, t + cooldown)
    assert breaker.state(1, t + cooldown)["cooldown_s"] == 30        # success reset it


def test_outcomes_while_open_without_a_probe_are_ignored(breaker):
    fail(breaker, 5, T0)
    before = breaker.state(1, T0 + 1)
    for outcome in ("ok", "server_error", "timeout", "client_error"):
        breaker.record(1, outcome, T0 + 1)         # requests in flight when it tripped
    assert breaker.state(1, T0 + 1) == before
    breaker.record(1, "ok", T0 + 40)               # half-open but nobody took the probe
    assert phase(breaker, T0 + 40) == "half-open"


def test_a_lost_probe_frees_its_slot_after_probe_timeout(make_breaker):
    b = make_breaker(probe_timeout_s=60)
    fail(b, 5, T0)
    assert b.allow(1, T0 + 30)                     # the worker taking it dies
    assert not b.allow(1, T0 + 89.9)
    assert b.allow(1, T0 + 90)
    assert not b.allow(1, T0 + 90)


def test_client_error_on_the_probe_frees_the_slot(breaker):
    fail(breaker, 5, T0)
    assert breaker.allow(1, T0 + 30)
    assert breaker.record(1, "client_error", T0 + 30) == "half-open"
    assert breaker.allow(1, T0 + 31)               # the next request probes
    assert breaker.record(1, "ok", T0 + 31) == "closed"


# --- auth, 429, neutral 4xx -----------------------------------------------------------------------
def test_auth_disables_until_reset(breaker):
    assert breaker.record(1, "auth", T0, detail="invalid x-api-key") == "disabled"
    st = breaker.state(1, T0)
    assert st["state"] == "disabled" and st["open_until"] is None
    assert st["reason"] == "upstream rejected the credentials (401/403): invalid x-api-key"
    for dt in (0, 30, 300, 86400 * 365):
        assert not breaker.allow(1, T0 + dt)
        assert breaker.state(1, T0 + dt)["state"] == "disabled"
    for outcome in ("ok", "server_error", "rate_limited"):
        breaker.record(1, outcome, T0 + 1)         # nothing brings it back ...
    assert phase(breaker, T0 + 10**6) == "disabled"
    breaker.reset(1)                               # ... but an admin
    assert phase(breaker, T0 + 1) == "closed" and breaker.allow(1, T0 + 1)


def test_auth_disables_from_open_and_half_open_too(breaker):
    fail(breaker, 5, T0)
    breaker.record(1, "auth", T0 + 1)
    assert phase(breaker, T0 + 100) == "disabled"
    fail(breaker, 5, T0, dep_id=2)
    assert breaker.allow(2, T0 + 30)
    assert breaker.record(2, "auth", T0 + 30) == "disabled"
    assert not breaker.allow(2, T0 + 10**6)


def test_rate_limited_opens_for_retry_after_without_counting(breaker):
    fail(breaker, 3, T0)
    assert breaker.record(1, "rate_limited", T0 + 1, retry_after=12) == "open"
    st = breaker.state(1, T0 + 1)
    assert st["open_until"] == T0 + 13
    assert st["reason"] == "rate limited by the upstream (429), retry after 12s"
    assert st["consecutive_failures"] == 3 and st["requests_in_window"] == 3   # not counted
    assert not breaker.allow(1, T0 + 12.999)
    assert breaker.allow(1, T0 + 13)               # then a single probe, as usual
    assert not breaker.allow(1, T0 + 13)
    assert breaker.record(1, "ok", T0 + 14) == "closed"


def test_rate_limited_without_retry_after_uses_the_cooldown_and_caps_huge_values(breaker):
    breaker.record(1, "rate_limited", T0)
    assert breaker.state(1, T0)["open_until"] == T0 + 30
    breaker.record(2, "rate_limited", T0, retry_after=86400)
    assert breaker.state(2, T0)["open_until"] == T0 + 300         # max_cooldown_s


def test_429s_never_trip_the_error_rate_or_the_consecutive_count(make_breaker):
    b = make_breaker(min_requests=10)
    t = T0
    for i in range(40):                            # a 429 storm between a few server errors
        if i % 10 == 9:
            b.record(1, "server_error", t)
        else:
            assert b.allow(1, t)
            b.record(1, "rate_limited", t, retry_after=0)
            assert b.allow(1, t)                   # open for 0 s: this request is the probe
            b.record(1, "ok", t)
        t += 0.5
    st = b.state(1, t)                             # 36 ok + 4 failed; the 429s count for nothing
    assert st["state"] == "closed"
    assert st["requests_in_window"] == 40 and st["error_rate"] == 0.1


def test_rate_limited_on_the_probe_reopens_without_doubling(breaker):
    fail(breaker, 5, T0)
    assert breaker.allow(1, T0 + 30)
    breaker.record(1, "rate_limited", T0 + 31, retry_after=5)
    st = breaker.state(1, T0 + 31)
    assert st["state"] == "open" and st["open_until"] == T0 + 36 and st["cooldown_s"] == 30
    assert breaker.allow(1, T0 + 36)
    breaker.record(1, "timeout", T0 + 37)
    assert breaker.state(1, T0 + 37)["cooldown_s"] == 60


def test_a_straggler_429_only_extends_an_open_breaker(breaker):
    fail(breaker, 5, T0)                           # open until T0 + 30
    breaker.record(1, "rate_limited", T0 + 1, retry_after=5)
    assert breaker.state(1, T0 + 1)["open_until"] == T0 + 30
    breaker.record(1, "rate_limited", T0 + 1, retry_after=100)
    assert breaker.state(1, T0 + 1)["open_until"] == T0 + 101


def test_client_errors_do_not_count(make_breaker):
    b = make_breaker(min_requests=10)
    fail(b, 4, T0)
    fail(b, 100, T0, outcome="client_error")       # neither failures nor requests
    st = b.state(1, T0)
    assert st["state"] == "closed"
    assert st["consecutive_failures"] == 4 and st["requests_in_window"] == 4
    for _ in range(6):
        b.record(1, "ok", T0)
        fail(b, 10, T0, outcome="client_error")
    st = b.state(1, T0)
    assert st["requests_in_window"] == 10 and st["error_rate"] == 0.4
    fail(b, 1, T0)                                 # 5/11 = 45%
    assert phase(b, T0) == "closed"
    fail(b, 1, T0)                                 # 6/12 = 50%: the client errors did not
    assert phase(b, T0) == "open"                  # dilute the rate either
    assert b.state(1, T0)["reason"] == "error rate 50% over 60s (6/12; last: server_error)"


def test_unknown_outcome_is_an_error(breaker):
    with pytest.raises(ValueError, match="unknown outcome"):
        breaker.record(1, "teapot", T0)


def test_states_lists_every_deployment_not_closed_and_clean(breaker):
    fail(breaker, 5, T0, dep_id=3)
    breaker.record(4, "auth", T0)
    breaker.record(5, "server_error", T0)
    breaker.record(6, "ok", T0)
    states = breaker.states(T0 + 1)
    assert states[3]["state"] == "open" and states[4]["state"] == "disabled"
    assert states[5]["state"] == "closed" and states[5]["consecutive_failures"] == 1
    breaker.reset(3)
    assert 3 not in breaker.states(T0 + 1)


# --- failing open ---------------------------------------------------------------------------------
class BrokenStore(BreakerStore):
    def get(self, dep_id, now, fresh=False):
        raise OSError("disk gone")

    def modify(self, dep_id, fn, now):
        raise OSError("disk gone")


def test_a_broken_store_fails_open_by_default(caplog):
    b = Breaker(BrokenStore())
    assert b.allow(1, T0) is True
    assert b.blocked(1, T0) is False
    assert b.record(1, "server_error", T0) == "unknown"
    assert "breaker store failed" in caplog.text
    strict = Breaker(BrokenStore(), fail_open=False)
    with pytest.raises(OSError):
        strict.allow(1, T0)
    with pytest.raises(OSError):
        strict.record(1, "ok", T0)


def test_policy_validation():
    with pytest.raises(ValueError):
        Breaker(MemoryBreakerStore(), error_rate=0)
    with pytest.raises(ValueError):
        Breaker(MemoryBreakerStore(), cooldown_s=400, max_cooldown_s=300)
    with pytest.raises(ValueError):
        SQLiteBreakerStore(":memory:")
