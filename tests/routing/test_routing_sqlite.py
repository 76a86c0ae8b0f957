"""SQLiteBreakerStore specifics: the read cache and its staleness, rows, sharing a file."""
from __future__ import annotations

import sqlite3
from decimal import Decimal

from routing_support import T0

from app.limits import Limits, SQLiteStore
from app.routing import Breaker, SQLiteBreakerStore


def two_workers(tmp_path, read_ttl=0.5):
    """Two breakers on one file, as two gunicorn workers would have."""
    path = tmp_path / "breakers.db"
    return (Breaker(SQLiteBreakerStore(path, read_ttl=read_ttl), fail_open=False),
            Breaker(SQLiteBreakerStore(path, read_ttl=read_ttl), fail_open=False))


def test_state_changes_are_seen_by_the_other_worker_within_read_ttl(tmp_path):
    a, b = two_workers(tmp_path)
    assert b.allow(1, T0)                          # b caches "closed" at T0
    for _ in range(5):
        a.record(1, "server_error", T0 + 0.1)
    assert not a.allow(1, T0 + 0.1)                # the writer sees its own change at once
    assert b.allow(1, T0 + 0.4)                    # stale: b's cached read is 0.4 s old
    assert b.blocked(1, T0 + 0.4) is False
    assert not b.allow(1, T0 + 0.5)                # read_ttl passed: b reads the file
    assert b.state(1, T0 + 0.1)["state"] == "open"  # state() always reads the file


def test_a_reset_is_seen_within_read_ttl(tmp_path):
    a, b = two_workers(tmp_path)
    a.record(1, "auth", T0)
    assert not b.allow(1, T0)
    a.reset(1)
    assert not b.allow(1, T0 + 0.49)               # cached "disabled"
    assert b.allow(1, T0 + 0.5)


def test_half_open_is_never_decided_from_the_cache(tmp_path):
    a, b = two_workers(tmp_path, read_ttl=3600)    # even with a huge read_ttl
    for _ in range(5):
        a.record(1, "server_error", T0)
    assert not a.allow(1, T0 + 1) and not b.allow(1, T0 + 1)       # both cache "open"
    assert [a.allow(1, T0 + 30), b.allow(1, T0 + 30)] == [True, False]
    assert not a.allow(1, T0 + 30)


def test_read_ttl_zero_reads_the_file_every_time(tmp_path):
    a, b = two_workers(tmp_path, read_ttl=0)
    assert b.allow(1, T0)
    for _ in range(5):
        a.record(1, "server_error", T0)
    assert not b.allow(1, T0)


def test_closed_and_clean_deployments_have_no_row(tmp_path):
    path = tmp_path / "breakers.db"
    b = Breaker(SQLiteBreakerStore(path), fail_open=False)
    for _ in range(5):
        b.record(1, "server_error", T0)
    b.record(2, "ok", T0)                          # a row: the window counts it
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT dep_id FROM rb_breaker ORDER BY 1")] == [1, 2]
    assert b.allow(1, T0 + 30)
    b.record(1, "ok", T0 + 30)
    b.reset(2)
    assert conn.execute("SELECT COUNT(*) FROM rb_breaker").fetchone()[0] == 0
    conn.close()


def test_shares_a_file_with_the_limits_store(tmp_path):
    path = tmp_path / "gateway-state.db"
    limits = SQLiteStore(path)
    limits.admit("key:1", Limits(rpm=10), [], 0, Decimal(0), T0)
    b = Breaker(SQLiteBreakerStore(path), fail_open=False)
    b.record(1, "auth", T0)
    limits2 = SQLiteStore(path)                    # the limits schema check still passes
    limits2.admit("key:1", Limits(rpm=10), [], 0, Decimal(0), T0)
    assert Breaker(SQLiteBreakerStore(path)).state(1, T0)["state"] == "disabled"


def test_a_locked_file_fails_open(tmp_path):
    path = tmp_path / "breakers.db"
    store = SQLiteBreakerStore(path, busy_timeout=0.05, read_ttl=0)
    b = Breaker(store)
    b.record(1, "auth", T0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert b.record(1, "ok", T0) == "unknown"  # dropped, logged
        strict = Breaker(store, fail_open=False)
        try:
            strict.record(1, "ok", T0)
        except sqlite3.OperationalError:
            pass
        else:
            raise AssertionError("expected the lock to surface")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert b.state(1, T0)["state"] == "disabled"
