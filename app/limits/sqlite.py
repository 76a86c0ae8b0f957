"""SQLiteStore: the counters in their own SQLite file, exact across the processes of one host.

Why this shape
    * Every :meth:`admit`, :meth:`settle` and :meth:`release` is ONE ``BEGIN IMMEDIATE``
      transaction. IMMEDIATE takes the database's single write lock before the first read, so
      the read-check-write of an admission is serialised across every process and thread that
      opens the file: N parallel admissions against room for k let exactly k through, and a
      refused request writes nothing. WAL mode lets :meth:`state` read without blocking them.
    * ``synchronous=NORMAL``: a commit is durable against a crashed or restarted process (the
      WAL is in the OS page cache); only a power cut can lose the last few ms of counters.
    * Lock waits are retried in Python (``time.sleep`` with a short jittered backoff, up to
      ``busy_timeout`` seconds) rather than in SQLite's C busy handler: under gevent
      monkey-patching that sleep yields to the worker's other greenlets, where the C handler
      would freeze the whole worker for 1-100 ms. A transaction never yields (no I/O in it), so
      greenlets sharing a process cannot interleave inside one.
    * Connections come from a small per-process pool (a list; ``pop``/``append`` are atomic), so
      any number of threads or greenlets can call in; a connection is used by one caller at a
      time (``check_same_thread=False`` lets it move between threads). A thread-local would give
      every greenlet its own connection under gevent; a pool reuses a handful. After ``fork``
      (``os.register_at_fork``) the child drops the pool: the parent's connections are never
      used, nor closed, in the child.
    * Tables are created with ``CREATE TABLE IF NOT EXISTS`` on first use: this file is a
      counter store, not part of the app's migrated schema; deleting it resets the counters.

Tables (every instant in integer µs since the epoch, money as decimal TEXT)
    ``rl_gcra(subject, win, tat)``                    one TAT per subject and request window
    ``rl_tokens(subject, win, bucket, tokens)``       tpm per-second / tpd per-minute buckets
    ``rl_ticket(subject, expires_at, id, est, tpm_bucket, tpd_bucket, amount, budgets, held)``
        one row per admission: the concurrency lease (counted by a range scan of the primary
        key), the token pre-charge, and the reservation of ``amount`` on every budget listed
        in ``budgets`` (all of a ticket's reservations expire with its lease, together). The
        ticket handed out is ``"<expires_at>.<id>.<subject>"``, the row's primary key.
    ``rl_budget(scope, period, start, spent, reserved, next_exp)``
        ``next_exp`` is a lower bound of the expiries of the reservations ``reserved`` holds:
        only once ``now`` passes it does an admission look for expired leases (a scan of
        ``rl_ticket``) and take their reservations off ``reserved``. So a crashed worker's
        reservations stop counting as soon as their lease expires, at no cost per request.

Each admission writes about five pages (GCRA cell, token bucket, ticket, budget rows); with the
reservations in the ticket row instead of a table with its own indexes, an admission commits
in roughly half the WAL frames.

Housekeeping runs inside an admission transaction every ``prune_every`` admissions (per
process): token buckets that left their window, GCRA cells back at rest, expired leases'
reservations, and tickets ``retain`` seconds past their expiry (a request settling after its
lease expired but within ``retain`` is still charged to its budgets).
"""
from __future__ import annotations

import json
import os
import sqlite3
from decimal import Decimal
from typing import Sequence

from ..sqlitefile import SQLiteFile
from . import core
from .core import (US, Admission, Budget, BudgetView, Denied, Limits, Plan, TokenView,
                   token_bucket, token_floor)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rl_gcra (
    subject TEXT NOT NULL, win TEXT NOT NULL, tat INTEGER NOT NULL,
    PRIMARY KEY (subject, win)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rl_tokens (
    subject TEXT NOT NULL, win TEXT NOT NULL, bucket INTEGER NOT NULL, tokens INTEGER NOT NULL,
    PRIMARY KEY (subject, win, bucket)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rl_tokens_age ON rl_tokens (win, bucket);
CREATE TABLE IF NOT EXISTS rl_ticket (
    subject TEXT NOT NULL, expires_at INTEGER NOT NULL, id TEXT NOT NULL,
    est INTEGER NOT NULL, tpm_bucket INTEGER, tpd_bucket INTEGER,
    amount TEXT NOT NULL, budgets TEXT, held INTEGER NOT NULL,
    PRIMARY KEY (subject, expires_at, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rl_budget (
    scope TEXT NOT NULL, period TEXT NOT NULL, start INTEGER NOT NULL,
    spent TEXT NOT NULL, reserved TEXT NOT NULL, next_exp INTEGER,
    PRIMARY KEY (scope, period, start)) WITHOUT ROWID;
"""

_ADD_TOKENS = ("INSERT INTO rl_tokens (subject, win, bucket, tokens) VALUES (?, ?, ?, ?)"
               " ON CONFLICT (subject, win, bucket) DO UPDATE SET tokens=tokens+excluded.tokens")


def _text(d: Decimal) -> str:
    """Money as plain decimal TEXT (``0.00000001``, never ``1E-8``): exact and readable."""
    return format(d, "f")


def _ticket_key(ticket: str) -> tuple[str, int, str] | None:
    """The rl_ticket primary key (subject, expires_at, id) from a ticket, None if malformed."""
    try:
        exp, rid, subject = str(ticket).split(".", 2)
        return subject, int(exp), rid
    except (ValueError, TypeError):
        return None


class SQLiteStore(SQLiteFile, core.Store):
    """Counters in the SQLite file at ``path`` (created if missing)."""

    _cached_statements = 256
    _memory_error = "SQLiteStore needs a file shared by the processes; use MemoryStore"

    def __init__(self, path: str | os.PathLike, *, lease_ttl: float = 900.0,
                 busy_timeout: float = 10.0, prune_every: int = 200, retain: float = 86400.0,
                 strict_tokens: bool = False, max_idle: int = 16):
        super().__init__(path, busy_timeout=busy_timeout, max_idle=max_idle)
        self.lease_us = int(lease_ttl * US)
        self.prune_every = max(1, int(prune_every))
        self.retain_us = int(retain * US)
        self.strict_tokens = strict_tokens
        self._calls = 0

    # --- schema (connections, retries and transactions: app/sqlitefile.py) -----------------------
    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise RuntimeError(f"{conn!r}: limits store schema {version}, this code knows "
                                   f"{SCHEMA_VERSION}; move the file away to start afresh")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # --- reads shared by admit and state ---------------------------------------------------------
    @staticmethod
    def _tats(c, subject, limits: Limits) -> dict[str, int]:
        if limits.rpm is None and limits.rph is None and limits.rpd is None:
            return {}
        return dict(c.execute("SELECT win, tat FROM rl_gcra WHERE subject=?", (subject,)))

    @staticmethod
    def _token_views(c, subject, limits: Limits, now_us: int) -> list[TokenView]:
        views = []
        for name, limit, window_s, bucket_s, words in core.token_specs(limits):
            used, newest = c.execute(
                "SELECT TOTAL(tokens), MAX(CASE WHEN tokens > 0 THEN bucket END) FROM rl_tokens"
                " WHERE subject=? AND win=? AND bucket>?",
                (subject, name, token_floor(now_us, window_s, bucket_s))).fetchone()
            views.append(TokenView(name, limit, window_s, bucket_s, words, int(used), newest))
        return views

    @staticmethod
    def _in_flight(c, subject, now_us) -> int:
        return c.execute("SELECT COUNT(*) FROM rl_ticket WHERE subject=? AND expires_at>?",
                         (subject, now_us)).fetchone()[0]

    _BUDGET_ROW = ("SELECT spent, reserved, next_exp FROM rl_budget"
                   " WHERE scope=? AND period=? AND start=?")

    def _budget_view(self, c, b: Budget, start: int, now_us: int,
                     write: bool) -> tuple[BudgetView, int | None]:
        """The budget with expired leases' reservations taken off, and its ``next_exp``."""
        key = (b.scope, b.period, start)
        row = c.execute(self._BUDGET_ROW, key).fetchone()
        if row is None:
            return BudgetView(b, start, core.ZERO, core.ZERO), None
        if row[2] is not None and row[2] <= now_us:
            if write:
                self._expire_leases(c, now_us)
                row = c.execute(self._BUDGET_ROW, key).fetchone()
            else:                  # read only: subtract what expiry would take off
                reserved = Decimal(row[1])
                for amount, budgets in c.execute(
                        "SELECT amount, budgets FROM rl_ticket WHERE held=1 AND expires_at<=?",
                        (now_us,)):
                    if budgets and list(key) in json.loads(budgets):
                        reserved -= Decimal(amount)
                return BudgetView(b, start, Decimal(row[0]), reserved), row[2]
        return BudgetView(b, start, Decimal(row[0]), Decimal(row[1])), row[2]

    @staticmethod
    def _expire_leases(c, now_us: int) -> None:
        """Take every expired lease's reservations off their budgets (a scan of rl_ticket)."""
        expired = c.execute("SELECT amount, budgets FROM rl_ticket WHERE held=1 AND expires_at<=?",
                            (now_us,)).fetchall()
        if expired:
            c.execute("UPDATE rl_ticket SET held=0 WHERE held=1 AND expires_at<=?", (now_us,))
            totals: dict[tuple, Decimal] = {}
            for amount, budgets in expired:
                for scope, period, start in json.loads(budgets) if budgets else ():
                    key = (scope, period, start)
                    totals[key] = totals.get(key, core.ZERO) + Decimal(amount)
            for key, amount in totals.items():
                (reserved,) = c.execute("SELECT reserved FROM rl_budget WHERE scope=? AND period=?"
                                        " AND start=?", key).fetchone()
                c.execute("UPDATE rl_budget SET reserved=? WHERE scope=? AND period=? AND start=?",
                          (_text(Decimal(reserved) - amount), *key))
        # Every reservation still held expires after the earliest held lease: a valid new bound.
        (nxt,) = c.execute("SELECT MIN(expires_at) FROM rl_ticket WHERE held=1").fetchone()
        c.execute("UPDATE rl_budget SET next_exp=? WHERE next_exp<=?", (nxt, now_us))

    # --- the API --------------------------------------------------------------------------------
    def admit(self, subject: str, limits: Limits, budgets: Sequence[Budget], est_tokens: int,
              reserve_usd: Decimal, now: float) -> Admission:
        """Check every limit and budget and record the admission, in one IMMEDIATE transaction."""
        now_us = core.to_us(now)
        est = core.count(est_tokens, "est_tokens")
        reserve = core.money(reserve_usd)
        core.check_budgets(budgets)
        starts = [(b, core.period_start(b.period, now)) for b in budgets]
        expires = now_us + self.lease_us
        rid = core.new_ticket()
        ticket = f"{expires}.{rid}.{subject}"
        self._calls += 1
        prune = self._calls % self.prune_every == 0

        def txn(c):
            if prune:
                self._prune(c, now_us)
            tats = self._tats(c, subject, limits)
            tokens = self._token_views(c, subject, limits, now_us)
            in_flight = (self._in_flight(c, subject, now_us)
                         if limits.concurrency is not None else 0)
            views, nexts = [], []
            for b, start in starts:
                view, nxt = self._budget_view(c, b, start, now_us, True)
                views.append(view)
                nexts.append(nxt)

            def rows(v: TokenView):
                return c.execute("SELECT bucket, tokens FROM rl_tokens WHERE subject=? AND win=?"
                                 " AND bucket>? ORDER BY bucket",
                                 (subject, v.name, token_floor(now_us, v.window_s, v.bucket_s))
                                 ).fetchall()
            plan = core.decide(subject, limits, now_us, est, reserve, tats, tokens, in_flight,
                               views, rows, ticket, self.strict_tokens)
            if isinstance(plan, Denied):
                return plan            # commit the lazy expiry, write nothing else
            self._write(c, subject, plan, nexts, now_us, est, reserve, expires, rid)
            return plan.admission

        result = self._transaction(txn)
        if isinstance(result, Denied):
            raise result
        return result

    @staticmethod
    def _write(c, subject: str, plan: Plan, nexts: list, now_us: int, est: int,
               reserve: Decimal, expires: int, rid: str) -> None:
        if plan.new_tats:
            c.executemany("INSERT INTO rl_gcra (subject, win, tat) VALUES (?, ?, ?)"
                          " ON CONFLICT (subject, win) DO UPDATE SET tat=excluded.tat",
                          [(subject, name, tat) for name, tat in plan.new_tats.items()])
        buckets = {"tpm": None, "tpd": None}
        for v in plan.token_windows:
            buckets[v.name] = token_bucket(now_us, v.bucket_s)
        if est and plan.token_windows:
            c.executemany(_ADD_TOKENS, [(subject, v.name, buckets[v.name], est)
                                        for v in plan.token_windows])
        amount = _text(reserve)
        keys = [[v.budget.scope, v.budget.period, v.start] for v in plan.budgets]
        c.execute("INSERT INTO rl_ticket (subject, expires_at, id, est, tpm_bucket, tpd_bucket,"
                  " amount, budgets, held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                  (subject, expires, rid, est, buckets["tpm"], buckets["tpd"], amount,
                   json.dumps(keys) if keys else None))
        if plan.budgets:
            c.executemany(
                "INSERT INTO rl_budget (scope, period, start, spent, reserved, next_exp)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, period, start) DO UPDATE"
                " SET reserved=excluded.reserved, next_exp=excluded.next_exp",
                [(v.budget.scope, v.budget.period, v.start, _text(v.spent),
                  _text(v.reserved + reserve), expires if nxt is None else min(nxt, expires))
                 for v, nxt in zip(plan.budgets, nexts)])

    def settle(self, ticket: str, tokens: int, cost_usd: Decimal, now: float) -> None:
        """Swap the pre-charge for ``tokens``, every reservation for ``cost_usd``; end the lease.

        The real tokens are counted in the bucket of ``now`` (when they became known), the
        pre-charge is taken out of its admission bucket (a no-op once that bucket has left the
        window). The cost goes to the budget period the request was admitted in, the one its
        reservation was checked against. Idempotent: a second call finds no ticket.
        """
        self._finish(ticket, core.count(tokens, "tokens"), core.money(cost_usd), now, True)

    def release(self, ticket: str, now: float) -> None:
        """Drop the reservations, the pre-charge and the lease (the request still counts).

        For a request that failed before costing anything. Idempotent.
        """
        self._finish(ticket, 0, core.ZERO, now, False)

    def _finish(self, ticket: str, tokens: int, cost: Decimal, now: float, settled: bool) -> None:
        self._transaction(lambda c: self._finish_in(c, ticket, tokens, cost, now, settled))

    def settle_many(self, items: Sequence[tuple[str, int, Decimal, float, bool]]) -> None:
        """Settle (``settled=True``) or release several tickets in ONE transaction.

        Items are ``(ticket, tokens, cost_usd, now, settled)``; the gateway batches the end of
        its requests through this so the request path pays a single store round trip (admit).
        """
        items = [(t, core.count(tok, "tokens"), core.money(cost), now, settled)
                 for t, tok, cost, now, settled in items]
        if not items:
            return

        def txn(c):
            for item in items:
                self._finish_in(c, *item)
        self._transaction(txn)

    def _finish_in(self, c, ticket: str, tokens: int, cost: Decimal, now: float,
                   settled: bool) -> None:
        now_us = core.to_us(now)
        key = _ticket_key(ticket)
        if key is None:
            return
        row = c.execute("SELECT est, tpm_bucket, tpd_bucket, amount, budgets, held"
                        " FROM rl_ticket WHERE subject=? AND expires_at=? AND id=?",
                        key).fetchone()
        if row is None:
            return
        subject = key[0]
        est, tpm_b, tpd_b, amount, budgets, held = row
        c.execute("DELETE FROM rl_ticket WHERE subject=? AND expires_at=? AND id=?", key)
        for name, bucket_s, old in (("tpm", 1, tpm_b), ("tpd", 60, tpd_b)):
            if old is None:
                continue
            cur = token_bucket(now_us, bucket_s)
            if cur != old and est:
                c.execute("UPDATE rl_tokens SET tokens=tokens-? WHERE subject=? AND win=?"
                          " AND bucket=?", (est, subject, name, old))
            delta = tokens - est if cur == old else tokens
            if delta:
                c.execute(_ADD_TOKENS, (subject, name, cur, delta))
        if not budgets or not (held or (settled and cost)):
            return
        amount = Decimal(amount)
        for bkey in json.loads(budgets):
            spent, reserved = c.execute("SELECT spent, reserved FROM rl_budget WHERE scope=?"
                                        " AND period=? AND start=?", bkey).fetchone()
            spent, reserved = Decimal(spent), Decimal(reserved)
            if held:
                reserved -= amount
            if settled:
                spent += cost
            c.execute("UPDATE rl_budget SET spent=?, reserved=? WHERE scope=? AND period=?"
                      " AND start=?", (_text(spent), _text(reserved), *bkey))

    def state(self, subject: str, limits: Limits, budgets: Sequence[Budget], now: float) -> dict:
        """Limits, in-flight count and budgets as of ``now`` (a read-only snapshot)."""
        now_us = core.to_us(now)
        core.check_budgets(budgets)
        starts = [(b, core.period_start(b.period, now)) for b in budgets]

        def txn(c):
            tats = self._tats(c, subject, limits)
            tokens = self._token_views(c, subject, limits, now_us)
            in_flight = self._in_flight(c, subject, now_us)
            views = [self._budget_view(c, b, start, now_us, False)[0] for b, start in starts]
            return core.state_dict(subject, limits, now_us, tats, tokens, in_flight, views)

        return self._transaction(txn, write=False)

    def spend(self, scope: str, period: str, now: float) -> Decimal:
        """Settled spend of ``scope`` in the ``period`` containing ``now``."""
        start = core.period_start(period, now)

        def txn(c):
            row = c.execute("SELECT spent FROM rl_budget WHERE scope=? AND period=? AND start=?",
                            (scope, period, start)).fetchone()
            return Decimal(row[0]) if row else core.ZERO

        return self._transaction(txn, write=False)

    # --- housekeeping ---------------------------------------------------------------------------
    def _prune(self, c, now_us: int) -> None:
        c.execute("DELETE FROM rl_gcra WHERE tat<?", (now_us,))
        for name, window_s, bucket_s, _ in core.TOKEN_WINDOWS:
            c.execute("DELETE FROM rl_tokens WHERE win=? AND bucket<=?",
                      (name, token_floor(now_us, window_s, bucket_s)))
        self._expire_leases(c, now_us)
        c.execute("DELETE FROM rl_ticket WHERE expires_at<?", (now_us - self.retain_us,))

    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests and diagnostics)."""
        def txn(c):
            return {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # nosec B608 # t comes from the constant tuple of table names below
                    for t in ("rl_gcra", "rl_tokens", "rl_ticket", "rl_budget")}
        return self._transaction(txn, write=False)
