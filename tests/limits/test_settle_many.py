"""settle_many: several settles/releases in one transaction, same results as one by one."""
from decimal import Decimal

import pytest

from app.limits import Budget, Limits, MemoryStore, SQLiteStore


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_settle_many_matches_individual_calls(tmp_path, kind):
    store = SQLiteStore(tmp_path / "c.db") if kind == "sqlite" else MemoryStore()
    budget = [Budget("key:1", Decimal("1"), "day")]
    limits = Limits(concurrency=3, tpm=10_000)
    now = 1_700_000_000.0
    tickets = [store.admit("key:1", limits, budget, 100, Decimal("0.2"), now).ticket for _ in range(3)]
    store.settle_many([(tickets[0], 50, Decimal("0.05"), now, True),
                       (tickets[1], 0, Decimal("0"), now, False),
                       (tickets[2], 70, Decimal("0.07"), now, True),
                       (tickets[2], 70, Decimal("0.07"), now, True)])  # idempotent
    state = store.state("key:1", limits, budget, now)
    (b,) = state["budgets"]
    assert b["spent_usd"] == Decimal("0.12") and b["reserved_usd"] == 0
    assert state["in_flight"] == 0
    assert state["limits"]["tpm"]["used"] == 120
