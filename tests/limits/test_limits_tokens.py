"""Token limits (sliding window over buckets): pre-charge, settle, denial, expiry."""
from __future__ import annotations

import pytest
from limits_support import T0

from app.limits import Denied, Limits

SUBJ = "key:7"


def admit(store, limits, est, now):
    return store.admit(SUBJ, limits, [], est, 0, now)


def test_precharge_then_settle_lower_frees_room(store, clock):
    lim = Limits(tpm=1000)
    a = admit(store, lim, 1000, clock())
    assert a.headers["x-ratelimit-limit-tokens"] == "1000"
    assert a.headers["x-ratelimit-remaining-tokens"] == "0"
    with pytest.raises(Denied) as e:
        admit(store, lim, 10, clock())
    assert e.value.reason == "rate_limit_tokens"
    clock.advance(2)
    store.settle(a.ticket, 200, 0, clock())          # the real count: 200
    b = admit(store, lim, 500, clock())
    assert b.headers["x-ratelimit-remaining-tokens"] == "300"
    st = store.state(SUBJ, lim, [], clock())
    assert st["limits"]["tpm"]["used"] == 700 and st["limits"]["tpm"]["remaining"] == 300


def test_refused_only_when_window_is_full(store, clock):
    lim = Limits(tpm=1000)
    admit(store, lim, 800, clock())
    b = admit(store, lim, 300, clock())      # 800 < 1000: admitted, the window now holds 1100
    assert b.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.advance(10.25)
    with pytest.raises(Denied) as e:
        admit(store, lim, 1, clock())
    d = e.value
    assert d.message == ("Rate limit reached for tokens per minute: limit 1000, used 1100, "
                         "requested 1. Please try again in 49.75s.")
    assert d.retry_after == pytest.approx(49.75)     # both charges leave the window at T0+60
    assert d.headers["Retry-After"] == "50"
    assert d.headers["x-ratelimit-remaining-tokens"] == "0"
    assert d.headers["x-ratelimit-reset-tokens"] == "49.75s"
    store.settle(b.ticket, 100, 0, clock())          # 800 + 100 < 1000
    admit(store, lim, 50, clock())


def test_retry_after_counts_only_the_buckets_needed(store, clock):
    lim = Limits(tpm=100)
    admit(store, lim, 60, clock())            # bucket T0
    clock.advance(20)
    admit(store, lim, 60, clock())            # bucket T0+20: 120 in the window
    clock.advance(5)
    with pytest.raises(Denied) as e:
        admit(store, lim, 1, clock())
    # once the T0 bucket leaves (T0+60) 60 < 100 remain: 35 s from now
    assert e.value.retry_after == pytest.approx(35.0)
    clock.advance(35)
    a = admit(store, lim, 1, clock())
    assert a.headers["x-ratelimit-remaining-tokens"] == str(100 - 61)


def test_window_slides(store, clock):
    lim = Limits(tpm=100)
    admit(store, lim, 100, clock())
    clock.advance(59.9)
    with pytest.raises(Denied):
        admit(store, lim, 1, clock())
    clock.advance(0.1)                          # the bucket of T0 is out of the window now
    admit(store, lim, 100, clock())


def test_tpd_per_minute_buckets(store, clock):
    lim = Limits(tpd=5000)
    admit(store, lim, 3000, clock())
    clock.advance(3600)
    admit(store, lim, 2500, clock())
    clock.advance(60)
    with pytest.raises(Denied) as e:
        admit(store, lim, 1, clock())
    assert "tokens per day" in e.value.message
    # the T0 minute leaves the day window at T0+86400
    assert e.value.retry_after == pytest.approx(86400 - 3660)
    clock.t = T0 + 86400
    admit(store, lim, 1, clock())


def test_settle_higher_than_estimate_counts_the_real_tokens(store, clock):
    lim = Limits(tpm=1000, tpd=10_000)
    a = admit(store, lim, 10, clock())
    clock.advance(3)
    store.settle(a.ticket, 1000, 0, clock())
    st = store.state(SUBJ, lim, [], clock())
    assert st["limits"]["tpm"]["used"] == 1000
    assert st["limits"]["tpd"]["used"] == 1000
    with pytest.raises(Denied):
        admit(store, lim, 1, clock())
    # counted from when the real tokens became known (T0+3): they leave at T0+63
    clock.t = T0 + 62.9
    assert store.state(SUBJ, lim, [], clock())["limits"]["tpm"]["used"] == 1000
    clock.t = T0 + 63
    assert store.state(SUBJ, lim, [], clock())["limits"]["tpm"]["used"] == 0
    assert store.state(SUBJ, lim, [], clock())["limits"]["tpd"]["used"] == 1000
    admit(store, lim, 1, clock())


def test_release_drops_the_precharge(store, clock):
    lim = Limits(tpm=100)
    a = admit(store, lim, 100, clock())
    store.release(a.ticket, clock())
    b = admit(store, lim, 100, clock())
    assert b.headers["x-ratelimit-remaining-tokens"] == "0"


def test_zero_estimate_settled_later(store, clock):
    lim = Limits(tpm=100)
    a = admit(store, lim, 0, clock())
    store.settle(a.ticket, 150, 0, clock())        # same bucket as the admission
    with pytest.raises(Denied):
        admit(store, lim, 0, clock())


def test_strict_tokens_refuses_what_would_not_fit(make, clock):
    store = make(strict_tokens=True)
    lim = Limits(tpm=1000)
    admit(store, lim, 800, clock())
    with pytest.raises(Denied) as e:
        admit(store, lim, 300, clock())
    assert e.value.retry_after == pytest.approx(60.0)
    admit(store, lim, 200, clock())
    with pytest.raises(Denied) as e:                 # can never fit
        store.admit("key:8", lim, [], 1001, 0, clock())
    assert e.value.retry_after is None and "never" in e.value.message


def test_tightest_token_limit_in_headers(store, clock):
    lim = Limits(tpm=1000, tpd=1500)
    a = admit(store, lim, 600, clock())
    assert a.headers["x-ratelimit-limit-tokens"] == "1000"
    assert a.headers["x-ratelimit-remaining-tokens"] == "400"
    clock.advance(120)
    b = admit(store, lim, 600, clock())
    assert b.headers["x-ratelimit-limit-tokens"] == "1500"
    assert b.headers["x-ratelimit-remaining-tokens"] == "300"
