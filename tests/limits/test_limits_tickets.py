"""Tickets: settle and release are idempotent and exclusive; unknown tickets are ignored."""
from __future__ import annotations

import pytest
from limits_support import D

from app.limits import Budget, Denied, Limits

LIM = Limits(tpm=1000, concurrency=1)
B = Budget("key:1", D("1"), "month")


def test_settle_twice_charges_once(store, clock):
    a = store.admit("key:1", LIM, [B], 500, D("0.5"), clock())
    store.settle(a.ticket, 100, D("0.2"), clock())
    store.settle(a.ticket, 100, D("0.2"), clock())
    store.settle(a.ticket, 900, D("0.9"), clock())
    st = store.state("key:1", LIM, [B], clock())
    assert st["budgets"][0]["spent_usd"] == D("0.2")
    assert st["budgets"][0]["reserved_usd"] == 0
    assert st["limits"]["tpm"]["used"] == 100
    assert st["in_flight"] == 0


def test_release_twice_and_after_settle(store, clock):
    a = store.admit("key:1", LIM, [B], 500, D("0.5"), clock())
    store.release(a.ticket, clock())
    store.release(a.ticket, clock())
    store.settle(a.ticket, 100, D("0.2"), clock())     # too late: the ticket is gone
    b = store.admit("key:1", LIM, [B], 500, D("0.5"), clock())
    store.settle(b.ticket, 300, D("0.3"), clock())
    store.release(b.ticket, clock())
    st = store.state("key:1", LIM, [B], clock())
    assert st["budgets"][0]["spent_usd"] == D("0.3")
    assert st["budgets"][0]["reserved_usd"] == 0
    assert st["limits"]["tpm"]["used"] == 300
    assert st["in_flight"] == 0


@pytest.mark.parametrize("ticket", ["", "nope", "1.2.3", "x.y.key:1", "123.abc.key:1", None])
def test_unknown_tickets_are_ignored(store, clock, ticket):
    store.settle(ticket, 10, D("1"), clock())
    store.release(ticket, clock())
    store.admit("key:1", LIM, [B], 0, D("1"), clock())


def test_tickets_are_unique(store, clock):
    seen = {store.admit("key:1", Limits(), [], 0, 0, clock()).ticket for _ in range(200)}
    assert len(seen) == 200


def test_refused_admission_leaves_no_ticket(store, clock):
    store.admit("key:1", LIM, [], 0, 0, clock())
    with pytest.raises(Denied):
        store.admit("key:1", LIM, [], 0, 0, clock())
    assert store.state("key:1", LIM, [], clock())["in_flight"] == 1
