"""Store plumbing: make_store, persistence, bounded storage, and SQLite == Memory semantics."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from limits_support import T0, D

from app.limits import (Budget, Denied, Limits, MemoryStore, RedisStore, SQLiteStore,
                        make_store, period_end, period_start)


def test_make_store(tmp_path):
    assert isinstance(make_store("memory://"), MemoryStore)
    s = make_store(f"sqlite:///{tmp_path}/a.db")          # sqlite:////abs/path
    assert isinstance(s, SQLiteStore) and s.path == f"{tmp_path}/a.db"
    s = make_store(str(tmp_path / "b.db"), lease_ttl=5)
    assert isinstance(s, SQLiteStore) and s.lease_us == 5_000_000
    for url in ("redis://localhost:6379/0", "rediss://:pw@cache.internal:6380/1",
                "unix:///run/redis.sock"):
        s = make_store(url, lease_ttl=7)   # no connection is made until the first call
        assert isinstance(s, RedisStore) and s.lease_us == 7_000_000
    for bad in ("redis:localhost", "postgres://x", "sqlite://", ":memory:"):
        with pytest.raises(ValueError):
            make_store(bad)


def test_sqlite_survives_a_restart(tmp_path):
    path = tmp_path / "limits.db"
    lim = Limits(rpm=2, tpm=100, concurrency=5)
    b = Budget("key:1", D("1"), "month")
    s1 = SQLiteStore(path)
    a = s1.admit("key:1", lim, [b], 60, D("0.4"), T0)
    s1.admit("key:1", lim, [b], 10, D("0.1"), T0)
    s1.close()
    del s1
    s2 = SQLiteStore(path)                  # a new process would see the same
    with pytest.raises(Denied):
        s2.admit("key:1", lim, [b], 1, D("0"), T0)
    s2.settle(a.ticket, 20, D("0.3"), T0 + 1)
    st_ = s2.state("key:1", lim, [b], T0 + 1)
    assert st_["in_flight"] == 1
    assert st_["limits"]["tpm"]["used"] == 30
    assert st_["budgets"][0]["spent_usd"] == D("0.3")
    assert st_["budgets"][0]["reserved_usd"] == D("0.1")


def test_sqlite_storage_is_bounded(tmp_path):
    s = SQLiteStore(tmp_path / "limits.db", prune_every=50, lease_ttl=60, retain=600)
    lim = Limits(rpm=10**6, tpm=10**9, tpd=10**9, concurrency=10**6)
    b = Budget("key:1", D(10**6), "day")
    now = T0
    for i in range(4320):               # one request a minute for 3 days, 1 in 10 never settled
        now += 60
        a = s.admit(f"key:{i % 3}", lim, [b], 50, D("0.01"), now)
        if i % 10:
            s.settle(a.ticket, 40, D("0.005"), now + 1)
    counts = s.counts()
    # Unpruned: ~4300 tpd minutes + ~8000 tpm seconds. Pruned: a day of tpd minutes (480 per
    # subject) plus whatever aged since the last prune (50 calls = 50 minutes).
    assert counts["rl_tokens"] <= 3 * (480 + 20) + 120
    assert counts["rl_gcra"] <= 3
    assert counts["rl_ticket"] <= 20          # unsettled tickets go `retain` after expiry
    assert counts["rl_budget"] == 4           # one row per calendar day: history is kept
    st_ = s.state("key:1", lim, [b], now + 100)["budgets"][0]
    assert st_["reserved_usd"] == 0           # the never-settled reservations expired


def test_period_helpers():
    assert period_start("day", T0 + 5) == T0 - 10 * 3600
    assert period_start("week", T0 + 6 * 86400) == T0 - 10 * 3600
    assert period_start("week", T0 - 1 - 10 * 3600) == T0 - 10 * 3600 - 7 * 86400
    assert period_start("total", T0) == 0 and period_end("total", 0) is None
    with pytest.raises(ValueError):
        period_start("fortnight", T0)


# --- SQLiteStore behaves exactly like MemoryStore (the reference) -----------------------------
BUDGETS = {
    "key:a": Budget("key:a", D("0.50"), "day", soft_pct=60),
    "key:b": Budget("key:b", D("0.30"), "week"),
    "team": Budget("team:t", D("0.70"), "month", soft_pct=90),
}
SUBJECTS = {"key:a": ["key:a", "team"], "key:b": ["key:b", "team"]}
LIMITS = Limits(rpm=4, rph=20, tpm=300, tpd=2000, concurrency=3)

op = st.one_of(
    st.tuples(st.just("admit"), st.sampled_from(sorted(SUBJECTS)), st.integers(0, 200),
              st.sampled_from(["0", "0.01", "0.05", "0.12345678", "0.2"])),
    st.tuples(st.just("settle"), st.integers(0, 40), st.integers(0, 300),
              st.sampled_from(["0", "0.00000001", "0.03", "0.1", "0.25"])),
    st.tuples(st.just("release"), st.integers(0, 40)),
    st.tuples(st.just("tick"), st.sampled_from([0, 0.001, 0.5, 1, 7.25, 15, 59.999, 61, 400,
                                                3601, 86_400, 8 * 86_400])),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, max_size=60), start=st.floats(0, 86_400 * 30))
def test_sqlite_matches_memory(tmp_path_factory, ops, start):
    """Random admit/settle/release/clock sequences: same outcomes, headers, state, spend."""
    path = tmp_path_factory.mktemp("diff") / "limits.db"
    mem = MemoryStore(lease_ttl=300, prune_every=7, retain=3000)
    sql = SQLiteStore(path, lease_ttl=300, prune_every=7, retain=3000)
    try:
        _run_pair(mem, sql, ops, T0 + start)
    finally:
        sql.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, max_size=60), start=st.floats(0, 86_400 * 30))
def test_redis_matches_memory(redis_url, ops, start):
    """The same random sequences against RedisStore (the Lua scripts + decide()).

    ``retain`` is out of reach here: when a settle comes later than ``retain`` after its lease
    expired, MemoryStore ignores it only once a prune (every ``prune_every`` calls) dropped the
    ticket, while Redis expires ticket keys by its own clock, not the fake one."""
    import redis
    redis.Redis.from_url(redis_url).flushall()
    mem = MemoryStore(lease_ttl=300, prune_every=7, retain=10**9)
    red = RedisStore(redis_url, lease_ttl=300, retain=10**9)
    _run_pair(mem, red, ops, T0 + start)
    assert red.mismatches == 0


def _run_pair(mem, sql, ops, now):
    """Apply ops to both stores, comparing every outcome, state and spend."""
    tickets: list[tuple[str | None, str | None]] = []
    for step in ops:
        kind = step[0]
        if kind == "tick":
            now += step[1]
        elif kind == "admit":
            _, subj, est, reserve = step
            budgets = [BUDGETS[k] for k in SUBJECTS[subj]]
            pair = []
            outs = []
            for s in (mem, sql):
                try:
                    a = s.admit(subj, LIMITS, budgets, est, Decimal(reserve), now)
                    outs.append(("ok", a.headers, a.budget_warning))
                    pair.append(a.ticket)
                except Denied as d:
                    outs.append(("denied", d.reason, d.message, d.retry_after, d.headers,
                                 d.scope))
                    pair.append(None)
            assert outs[0] == outs[1], (step, now)
            tickets.append(tuple(pair))
        elif tickets:
            i = step[1] % len(tickets)
            for s, t in zip((mem, sql), tickets[i]):
                if t is None:
                    continue
                if kind == "settle":
                    s.settle(t, step[2], Decimal(step[3]), now)
                else:
                    s.release(t, now)
        for subj, keys in SUBJECTS.items():
            budgets = [BUDGETS[k] for k in keys]
            assert mem.state(subj, LIMITS, budgets, now) == sql.state(subj, LIMITS, budgets, now)
        for b in BUDGETS.values():
            assert mem.spend(b.scope, b.period, now) == sql.spend(b.scope, b.period, now)
    return now
