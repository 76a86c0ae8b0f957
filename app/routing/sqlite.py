"""SQLiteBreakerStore: breaker rows in a SQLite file, shared by the processes of one host.

The same approach as :class:`app.limits.sqlite.SQLiteStore`:

    * Every state change (:meth:`modify`: a recorded outcome, taking the half-open probe slot)
      is ONE ``BEGIN IMMEDIATE`` transaction: the read-decide-write is serialised across every
      process and thread using the file, so when N workers reach a half-open breaker at the
      same instant exactly one takes the probe. WAL mode lets reads proceed meanwhile;
      ``synchronous=NORMAL`` (durable against a crashed process, not a power cut).
    * Lock waits are retried in Python (``time.sleep`` with a jittered backoff, up to
      ``busy_timeout`` seconds), not in SQLite's C busy handler: under gevent the sleep yields
      to the worker's other greenlets instead of freezing the worker. A transaction never
      yields (no I/O inside), so greenlets cannot interleave inside one.
    * Connections come from a small per-process pool; after ``fork`` the child drops the
      parent's connections (never using nor closing them) and its read cache.
    * The table is created on first use (``CREATE TABLE IF NOT EXISTS``); the schema version is
      kept in ``rb_meta`` (not ``PRAGMA user_version``), so the table can share a file with the
      limits store. Deleting the file closes every breaker.

Read cache and its staleness
    :meth:`get` (the hot path: :meth:`Breaker.allow` on a closed breaker, and
    :func:`~app.routing.order`) serves a row read up to ``read_ttl`` (0.5 s) earlier by this
    process, measured on the caller's ``now``; writes always go to the file and refresh the
    cache. So a worker may, for up to ``read_ttl`` after another worker changed a breaker:
    keep sending requests to a deployment that was just opened (their outcomes are ignored
    while it is open), keep refusing one that was just reset or closed by a probe, or see a
    probe as still out. It can never take a second probe: a half-open breaker is always
    decided in a transaction. ``read_ttl=0`` reads the file on every call.

Table ``rb_breaker(dep_id, state, consecutive, open_until, cooldown, probe_until, reason,
opened_at, win, tripped)``: one row per deployment that is not closed-and-clean (``win`` is the
error-rate window as JSON ``[[bucket, requests, failures], ...]``); instants are REAL epoch
seconds (nothing accumulates on them, so floats are exact enough).
"""
from __future__ import annotations

import json
import os
import sqlite3

from ..sqlitefile import SQLiteFile
from .breaker import CLOSED, BreakerRow, BreakerStore

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rb_breaker (
    dep_id INTEGER PRIMARY KEY, state TEXT NOT NULL, consecutive INTEGER NOT NULL,
    open_until REAL, cooldown REAL, probe_until REAL, reason TEXT, opened_at REAL,
    win TEXT NOT NULL, tripped INTEGER NOT NULL);
"""
_COLUMNS = ("state, consecutive, open_until, cooldown, probe_until, reason, opened_at, win,"
            " tripped")
_SELECT = f"SELECT {_COLUMNS} FROM rb_breaker WHERE dep_id=?"  # nosec B608 # _COLUMNS is a module constant; dep_id is bound
_UPSERT = (f"INSERT INTO rb_breaker (dep_id, {_COLUMNS})"  # nosec B608 # module constants only; values are bound
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
           " ON CONFLICT (dep_id) DO UPDATE SET state=excluded.state,"
           " consecutive=excluded.consecutive, open_until=excluded.open_until,"
           " cooldown=excluded.cooldown, probe_until=excluded.probe_until,"
           " reason=excluded.reason, opened_at=excluded.opened_at, win=excluded.win,"
           " tripped=excluded.tripped")

def _decode(r) -> BreakerRow | None:
    if r is None:
        return None
    return BreakerRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                      tuple(tuple(b) for b in json.loads(r[7])), bool(r[8]))


def _encode(dep_id: int, row: BreakerRow) -> tuple:
    return (dep_id, row.state, row.consecutive, row.open_until, row.cooldown, row.probe_until,
            row.reason, row.opened_at, json.dumps(row.window, separators=(",", ":")),
            int(row.tripped))


class SQLiteBreakerStore(SQLiteFile, BreakerStore):
    """Breaker rows in the SQLite file at ``path`` (created if missing)."""

    _pragmas = ("synchronous=NORMAL",)
    _memory_error = ("SQLiteBreakerStore needs a file shared by the processes;"
                     " use MemoryBreakerStore")

    def __init__(self, path: str | os.PathLike, *, read_ttl: float = 0.5,
                 busy_timeout: float = 10.0, max_idle: int = 8):
        super().__init__(path, busy_timeout=busy_timeout, max_idle=max_idle)
        self.read_ttl = float(read_ttl)
        self._cache: dict[int, tuple[float, BreakerRow | None]] = {}

    # --- schema and fork (connections, retries, transactions: app/sqlitefile.py) ----------------
    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            row = conn.execute("SELECT value FROM rb_meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO rb_meta (key, value) VALUES ('schema', ?)",
                             (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise RuntimeError(f"breaker store schema {row[0]}, this code knows "
                                   f"{SCHEMA_VERSION}; drop the rb_* tables to start afresh")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _reset_after_fork(self) -> None:
        """In a forked child: drop the read cache (the parent's reads)."""
        self._cache = {}

    # --- the store API --------------------------------------------------------------------------
    def get(self, dep_id: int, now: float, fresh: bool = False) -> BreakerRow | None:
        if not fresh:
            hit = self._cache.get(dep_id)
            if hit is not None and now - hit[0] < self.read_ttl:
                return hit[1]
        conn = self._acquire()              # one SELECT: its own consistent snapshot
        try:
            row = _decode(self._retry(lambda: conn.execute(_SELECT, (dep_id,)).fetchone()))
        finally:
            self._give_back(conn)
        self._cache[dep_id] = (now, row)
        return row

    def modify(self, dep_id: int, fn, now: float):
        def txn(c):
            current = _decode(c.execute(_SELECT, (dep_id,)).fetchone())
            new, result = fn(current)
            if new is not None:
                if new == CLOSED:
                    c.execute("DELETE FROM rb_breaker WHERE dep_id=?", (dep_id,))
                    new = None
                else:
                    c.execute(_UPSERT, _encode(dep_id, new))
                current = new
            return current, result

        row, result = self._transaction(txn)
        self._cache[dep_id] = (now, row)
        return result

    def delete(self, dep_id: int) -> None:
        self._transaction(lambda c: c.execute("DELETE FROM rb_breaker WHERE dep_id=?",
                                              (dep_id,)))
        self._cache.pop(dep_id, None)

    def all(self) -> dict[int, BreakerRow]:
        def txn(c):
            return {r[0]: _decode(r[1:]) for r in
                    c.execute(f"SELECT dep_id, {_COLUMNS} FROM rb_breaker ORDER BY dep_id")}  # nosec B608 # module constant columns, no input
        return self._transaction(txn, write=False)
