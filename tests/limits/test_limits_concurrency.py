"""Concurrency leases: the cap, release, and expiry of a dead worker's leases."""
from __future__ import annotations

import pytest

from app.limits import Denied, Limits

SUBJ = "key:3"
LIM = Limits(concurrency=2)


def admit(store, now, limits=LIM):
    return store.admit(SUBJ, limits, [], 0, 0, now)


def test_third_is_refused_and_release_frees(store, clock):
    a = admit(store, clock())
    b = admit(store, clock())
    with pytest.raises(Denied) as e:
        admit(store, clock())
    d = e.value
    assert d.reason == "concurrency"
    assert d.message.startswith("Too many concurrent requests: limit 2, in flight 2.")
    assert d.retry_after == 1.0 and d.headers["Retry-After"] == "1"
    assert store.state(SUBJ, LIM, [], clock())["in_flight"] == 2
    store.release(a.ticket, clock())
    c = admit(store, clock())
    with pytest.raises(Denied):
        admit(store, clock())
    store.settle(b.ticket, 0, 0, clock())
    store.settle(c.ticket, 0, 0, clock())
    st = store.state(SUBJ, LIM, [], clock())
    assert st["in_flight"] == 0
    assert st["limits"]["concurrency"] == {"limit": 2, "used": 0, "remaining": 2, "reset_s": None}


def test_expired_lease_frees_after_ttl(make, clock):
    store = make(lease_ttl=900)
    admit(store, clock())
    admit(store, clock())                      # the worker holding these is SIGKILLed
    clock.advance(899.9)
    with pytest.raises(Denied):
        admit(store, clock())
    assert store.state(SUBJ, LIM, [], clock())["in_flight"] == 2
    clock.advance(0.1)
    assert store.state(SUBJ, LIM, [], clock())["in_flight"] == 0
    admit(store, clock())
    admit(store, clock())
    with pytest.raises(Denied):
        admit(store, clock())


def test_short_lease_ttl(make, clock):
    store = make(lease_ttl=5)
    admit(store, clock())
    admit(store, clock())
    clock.advance(5)
    admit(store, clock())


def test_leases_are_per_subject(store, clock):
    admit(store, clock())
    admit(store, clock())
    store.admit("key:4", LIM, [], 0, 0, clock())


def test_release_keeps_the_request_count(store, clock):
    lim = Limits(rpm=2, concurrency=1)
    a = admit(store, clock(), lim)
    store.release(a.ticket, clock())
    b = admit(store, clock(), lim)
    store.release(b.ticket, clock())
    with pytest.raises(Denied) as e:
        admit(store, clock(), lim)
    assert e.value.reason == "rate_limit_requests"


def test_zero_concurrency(store, clock):
    with pytest.raises(Denied) as e:
        admit(store, clock(), Limits(concurrency=0))
    assert e.value.reason == "concurrency" and e.value.retry_after is None
