"""Budgets: reservation/settle arithmetic, hard limit, soft warning, periods, expiry, state."""
from __future__ import annotations

from decimal import Decimal

import pytest
from limits_support import T0, D, utc

from app.limits import Budget, Denied, Limits

NOLIM = Limits()


def admit(store, budgets, reserve, now, subject="key:12"):
    return store.admit(subject, NOLIM, budgets, 0, reserve, now)


def test_reserve_settle_arithmetic_is_exact(store, clock):
    b = Budget("key:12", D("1.00000000"), "month")
    a1 = admit(store, [b], D("0.12345678"), clock())
    a2 = admit(store, [b], D("0.00000001"), clock())
    st = store.state("key:12", NOLIM, [b], clock())["budgets"][0]
    assert st["reserved_usd"] == D("0.12345679")
    assert st["spent_usd"] == 0
    assert st["remaining_usd"] == D("0.87654321")
    store.settle(a1.ticket, 10, D("0.10000001"), clock())
    store.settle(a2.ticket, 10, D("0.00000002"), clock())     # more than reserved: charged
    st = store.state("key:12", NOLIM, [b], clock())["budgets"][0]
    assert st["reserved_usd"] == 0
    assert st["spent_usd"] == D("0.10000003")
    assert store.spend("key:12", "month", clock()) == D("0.10000003")
    assert isinstance(store.spend("key:12", "month", clock()), Decimal)
    # a thousand tiny charges add up exactly (no float anywhere)
    for _ in range(1000):
        store.settle(admit(store, [b], D("0.00000001"), clock()).ticket, 0, D("0.00000001"),
                     clock())
    assert store.spend("key:12", "month", clock()) == D("0.10001003")


def test_float_inputs_are_taken_as_their_decimal_text(store, clock):
    b = Budget("key:12", 0.3, "month")
    a = admit(store, [b], 0.1, clock())
    store.settle(a.ticket, 0, 0.2, clock())
    assert store.spend("key:12", "month", clock()) == D("0.2")
    admit(store, [b], 0.1, clock())               # 0.2 + 0.1 == 0.3 exactly: fits
    with pytest.raises(Denied):
        admit(store, [b], D("0.00000001"), clock())


def test_hard_limit_fits_exactly_k(store, clock):
    b = Budget("team:research", D("1.00"), "day")
    for _ in range(4):
        admit(store, [b], D("0.25"), clock())
    with pytest.raises(Denied) as e:
        admit(store, [b], D("0.01"), clock())
    d = e.value
    assert d.reason == "budget" and d.scope == "team:research"
    assert d.retry_after is None and "Retry-After" not in d.headers
    assert d.message == ("Budget exceeded for team:research: $0.00 spent and $1.00 reserved of "
                         "its $1.00 day budget; this request needs up to $0.01.")


def test_zero_reserve_refused_once_budget_is_used_up(store, clock):
    b = Budget("key:12", D("1"), "month")
    admit(store, [b], D("0"), clock())               # nothing spent yet: allowed
    a = admit(store, [b], D("0.4"), clock())
    store.settle(a.ticket, 0, D("1.0"), clock())
    with pytest.raises(Denied):
        admit(store, [b], D("0"), clock())


def test_settle_frees_the_difference(store, clock):
    b = Budget("key:12", D("1"), "month")
    a = admit(store, [b], D("0.9"), clock())
    with pytest.raises(Denied):
        admit(store, [b], D("0.2"), clock())
    store.settle(a.ticket, 0, D("0.3"), clock())
    admit(store, [b], D("0.7"), clock())             # 0.3 + 0.7 == 1
    with pytest.raises(Denied):
        admit(store, [b], D("0.000001"), clock())


def test_release_drops_the_reservation_without_spend(store, clock):
    b = Budget("key:12", D("1"), "month")
    a = admit(store, [b], D("1"), clock())
    store.release(a.ticket, clock())
    assert store.spend("key:12", "month", clock()) == 0
    admit(store, [b], D("1"), clock())


def test_team_budget_spans_keys_and_every_budget_is_charged(store, clock):
    team = Budget("team:research", D("10"), "month")
    k1 = Budget("key:1", D("6"), "month")
    k2 = Budget("key:2", D("6"), "month")
    a = store.admit("key:1", NOLIM, [k1, team], 0, D("5"), clock())
    b = store.admit("key:2", NOLIM, [k2, team], 0, D("5"), clock())
    with pytest.raises(Denied) as e:                 # key:2 has room, the team has not
        store.admit("key:2", NOLIM, [k2, team], 0, D("0.5"), clock())
    assert e.value.scope == "team:research"
    store.settle(a.ticket, 0, D("4"), clock())
    store.settle(b.ticket, 0, D("3"), clock())
    assert store.spend("team:research", "month", clock()) == D("7")
    assert store.spend("key:1", "month", clock()) == D("4")
    assert store.spend("key:2", "month", clock()) == D("3")
    with pytest.raises(Denied) as e:                 # the key's own budget: 4 + 2.5 > 6
        store.admit("key:1", NOLIM, [k1, team], 0, D("2.5"), clock())
    assert e.value.scope == "key:1"
    # a refused admission reserved nothing anywhere
    st = store.state("key:1", NOLIM, [k1, team], clock())["budgets"]
    assert [x["reserved_usd"] for x in st] == [0, 0]


def test_soft_warning(store, clock):
    b = Budget("key:12", D("10.00"), "month", soft_pct=80)
    a = admit(store, [b], D("7.9"), clock())
    assert a.budget_warning is None                  # 79%
    store.settle(a.ticket, 0, D("7.9"), clock())
    a = admit(store, [b], D("0.4"), clock())         # spent + reserved = 8.3
    assert a.budget_warning == "key:12 at 83% of $10.00 month budget"
    b50 = Budget("team:x", D("2"), "total", soft_pct=50)
    a = admit(store, [b, b50], D("1"), clock())
    assert a.budget_warning == ("key:12 at 93% of $10.00 month budget; "
                                "team:x at 50% of $2.00 total budget")


def test_expired_reservation_of_a_dead_worker_is_dropped(make, clock):
    store = make(lease_ttl=900)
    b = Budget("key:12", D("1"), "month")
    dead = admit(store, [b], D("0.6"), clock())      # the worker dies, never settles
    with pytest.raises(Denied):
        admit(store, [b], D("0.6"), clock())
    clock.advance(899)
    assert store.state("key:12", NOLIM, [b], clock())["budgets"][0]["reserved_usd"] == D("0.6")
    clock.advance(1)
    assert store.state("key:12", NOLIM, [b], clock())["budgets"][0]["reserved_usd"] == 0
    a = admit(store, [b], D("0.6"), clock())
    st = store.state("key:12", NOLIM, [b], clock())["budgets"][0]
    assert st["reserved_usd"] == D("0.6")
    # the late settle of the expired ticket is still charged, but not un-reserved twice
    store.settle(dead.ticket, 0, D("0.25"), clock())
    st = store.state("key:12", NOLIM, [b], clock())["budgets"][0]
    assert st["spent_usd"] == D("0.25") and st["reserved_usd"] == D("0.6")
    store.settle(a.ticket, 0, D("0.5"), clock())
    st = store.state("key:12", NOLIM, [b], clock())["budgets"][0]
    assert st["spent_usd"] == D("0.75") and st["reserved_usd"] == 0


def test_expiry_with_several_budgets_and_leases(make, clock):
    store = make(lease_ttl=100)
    team = Budget("team:t", D("10"), "month")
    k1, k2 = Budget("key:1", D("10"), "month"), Budget("key:2", D("10"), "day")
    store.admit("key:1", NOLIM, [k1, team], 0, D("1"), clock())        # expires at +100
    clock.advance(50)
    live = store.admit("key:2", NOLIM, [k2, team], 0, D("2"), clock())  # expires at +150
    clock.advance(50)
    # key:1's reservation expired: key:1 and team lose it, key:2 keeps its own
    admit_k2 = store.admit("key:2", NOLIM, [k2, team], 0, D("3"), clock())
    st = {x["scope"]: x for x in store.state("key:2", NOLIM, [k1, k2, team], clock())["budgets"]}
    assert st["key:1"]["reserved_usd"] == 0
    assert st["key:2"]["reserved_usd"] == D("5")
    assert st["team:t"]["reserved_usd"] == D("5")
    clock.advance(50)                                   # `live` expired too
    st = {x["scope"]: x for x in store.state("key:2", NOLIM, [k1, k2, team], clock())["budgets"]}
    assert st["team:t"]["reserved_usd"] == D("3") and st["key:2"]["reserved_usd"] == D("3")
    store.settle(admit_k2.ticket, 0, D("1"), clock())
    store.settle(live.ticket, 0, D("1"), clock())
    st = {x["scope"]: x for x in store.state("key:2", NOLIM, [k1, k2, team], clock())["budgets"]}
    assert st["team:t"]["reserved_usd"] == 0 and st["team:t"]["spent_usd"] == D("2")
    assert st["key:2"]["reserved_usd"] == 0 and st["key:1"]["reserved_usd"] == 0


@pytest.mark.parametrize("period,first,last_in,next_start", [
    ("day", utc(2026, 3, 2), utc(2026, 3, 2, 23, 59, 59.999), utc(2026, 3, 3)),
    # weeks start on Monday: 2026-03-02 is a Monday, 2026-03-08 a Sunday
    ("week", utc(2026, 3, 2), utc(2026, 3, 8, 23, 59, 59), utc(2026, 3, 9)),
    ("month", utc(2026, 2, 1), utc(2026, 2, 28, 23, 59, 59), utc(2026, 3, 1)),
    ("month", utc(2025, 12, 1), utc(2025, 12, 31, 12), utc(2026, 1, 1)),
    ("month", utc(2028, 2, 1), utc(2028, 2, 29, 12), utc(2028, 3, 1)),     # leap year
])
def test_period_rollover(store, period, first, last_in, next_start):
    b = Budget("key:12", D("1"), period)
    store.settle(admit(store, [b], D("0.6"), first).ticket, 0, D("0.6"), first)
    with pytest.raises(Denied):
        admit(store, [b], D("0.6"), last_in)
    assert store.spend("key:12", period, last_in) == D("0.6")
    st = store.state("key:12", NOLIM, [b], last_in)["budgets"][0]
    assert st["period_start"] == _iso(first) and st["period_end"] == _iso(next_start)
    assert st["reset_s"] == pytest.approx(next_start - last_in)
    # the next period starts from zero
    assert store.spend("key:12", period, next_start) == 0
    a = admit(store, [b], D("0.6"), next_start)
    store.settle(a.ticket, 0, D("0.5"), next_start + 10)
    assert store.spend("key:12", period, next_start + 10) == D("0.5")
    assert store.spend("key:12", period, last_in) == D("0.6")       # history kept


def test_total_never_rolls_over(store):
    b = Budget("key:12", D("1"), "total")
    t = utc(2026, 1, 1)
    store.settle(admit(store, [b], D("0.6"), t).ticket, 0, D("0.6"), t)
    later = utc(2030, 6, 1)
    assert store.spend("key:12", "total", later) == D("0.6")
    with pytest.raises(Denied):
        admit(store, [b], D("0.6"), later)
    st = store.state("key:12", NOLIM, [b], later)["budgets"][0]
    assert st["period_start"] is None and st["period_end"] is None and st["reset_s"] is None


def test_settle_after_rollover_charges_the_admission_period(store):
    b = Budget("key:12", D("1"), "day")
    t = utc(2026, 3, 2, 23, 59, 50)
    a = admit(store, [b], D("0.5"), t)
    store.settle(a.ticket, 0, D("0.4"), utc(2026, 3, 3, 0, 0, 30))
    assert store.spend("key:12", "day", t) == D("0.4")
    assert store.spend("key:12", "day", utc(2026, 3, 3, 0, 1)) == 0


def test_state_numbers(store, clock):
    lim = Limits(rpm=60, tpm=1000, concurrency=5)
    key = Budget("key:12", D("10"), "month", soft_pct=75)
    team = Budget("team:r", D("100"), "week")
    a = store.admit("key:12", lim, [key, team], 300, D("2.5"), clock())
    store.admit("key:12", lim, [key, team], 200, D("1.25"), clock())
    clock.advance(1)
    store.settle(a.ticket, 120, D("1.75"), clock())
    st = store.state("key:12", lim, [key, team], clock())
    assert st["subject"] == "key:12"
    assert st["in_flight"] == 1
    assert st["limits"]["rpm"] == {"limit": 60, "used": 1, "remaining": 59, "reset_s": 1.0}
    assert st["limits"]["tpm"] == {"limit": 1000, "used": 320, "remaining": 680,
                                   "reset_s": 60.0}
    assert st["limits"]["concurrency"] == {"limit": 5, "used": 1, "remaining": 4, "reset_s": None}
    kb, tb = st["budgets"]
    assert kb == {"scope": "key:12", "amount_usd": D("10"), "spent_usd": D("1.75"),
                  "reserved_usd": D("1.25"), "remaining_usd": D("7.00"), "period": "month",
                  "period_start": "2026-03-01T00:00:00Z", "period_end": "2026-04-01T00:00:00Z",
                  "reset_s": pytest.approx(utc(2026, 4, 1) - clock()), "soft_pct": 75,
                  "used_pct": 30}
    assert tb["period"] == "week" and tb["period_start"] == "2026-03-02T00:00:00Z"
    assert tb["period_end"] == "2026-03-09T00:00:00Z"
    assert tb["remaining_usd"] == D("97.00") and tb["soft_pct"] == 80


def test_state_of_unknown_subject(store, clock):
    b = Budget("key:99", D("5"), "day")
    st = store.state("key:99", Limits(rpm=10, tpd=100), [b], clock())
    assert st["limits"]["rpm"] == {"limit": 10, "used": 0, "remaining": 10, "reset_s": 0.0}
    assert st["limits"]["tpd"] == {"limit": 100, "used": 0, "remaining": 100, "reset_s": 0.0}
    assert st["budgets"][0]["spent_usd"] == 0 and st["budgets"][0]["remaining_usd"] == D("5")
    assert st["in_flight"] == 0


def test_budget_refusal_records_nothing_else(store, clock):
    lim = Limits(rpm=1, tpm=100, concurrency=1)
    b = Budget("key:12", D("1"), "day")
    with pytest.raises(Denied):
        store.admit("key:12", lim, [b], 50, D("2"), clock())
    a = store.admit("key:12", lim, [b], 100, D("1"), clock())   # rpm, tpm, lease all free
    assert a.headers["x-ratelimit-remaining-requests"] == "0"
    assert a.headers["x-ratelimit-remaining-tokens"] == "0"


def test_invalid_input(store, clock):
    with pytest.raises(ValueError):
        Budget("key:1", D("1"), "year")
    with pytest.raises(ValueError):
        Budget("key:1", D("-1"), "day")
    with pytest.raises(ValueError):
        admit(store, [], D("-0.01"), clock())
    with pytest.raises(ValueError):
        admit(store, [], D("NaN"), clock())
    b = Budget("key:1", D("1"), "day")
    with pytest.raises(ValueError):
        admit(store, [b, b], D("0.01"), clock())
    with pytest.raises(ValueError):
        store.admit("key:1", NOLIM, [], -5, 0, clock())


def _iso(ts):
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_t0_is_a_monday():
    from datetime import datetime, timezone
    assert datetime.fromtimestamp(T0, timezone.utc).weekday() == 0
