"""SQLiteStore: cached responses in their own SQLite file, shared by the workers of a host.

Same shape as ``app/limits/sqlite.py``:
    * WAL, ``synchronous=NORMAL``; every write (put + its evictions, flush, clear) is ONE
      ``BEGIN IMMEDIATE`` transaction, so the byte total and the LRU evictions stay exact with
      any number of writers; reads never wait for writers.
    * Lock waits retried in Python with a short jittered backoff (``time.sleep`` yields under
      gevent) instead of SQLite's C busy handler, which would freeze a gevent worker.
    * A small per-process pool of connections; after ``fork`` the child drops the parent's
      connections (and its in-process LRU) without using or closing them.
    * Tables created on first use; deleting the file empties the cache.

Tables
    ``cache_entry(id, key UNIQUE, model, key_id, created, expires, atime, size, body)``:
        ``body`` is the response as compact JSON; ``atime`` the last access (batched).
        Indexes on ``(atime, size)`` (LRU eviction, covering), ``expires``, ``model``,
        ``key_id``.
    ``cache_meta(name, value)``: ``entries``/``bytes`` kept exact in the write transactions
        (no scan per put), the shared counters ``hits``/``misses``/``evictions``/``expired``,
        and ``gen``, bumped by every clear and by a put that replaces a live entry.

In-process LRU (``local_entries`` records, ``local_bytes`` bytes) in front of the file: a hit on
a hot key reads ``PRAGMA data_version`` (which changes only when another connection committed)
instead of the row; when it changed, one read of ``gen`` tells whether another worker cleared
or replaced entries, and if so the local LRU is dropped. So a clear or a refresh made by any
worker is seen by every worker on its next lookup. (LRU evictions and lazy expiry deletions by
other workers do not bump ``gen``: a locally kept copy of an evicted entry is still a correct
answer until it expires.)
"""
from __future__ import annotations

import fnmatch
import os
import sqlite3
import threading
from collections import OrderedDict

from ..sqlitefile import Connection, SQLiteFile
from .core import Pending, Record, Store

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entry (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, model TEXT NOT NULL, key_id INTEGER,
    created REAL NOT NULL, expires REAL NOT NULL, atime REAL NOT NULL, size INTEGER NOT NULL,
    body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS cache_entry_atime ON cache_entry (atime, size);
CREATE INDEX IF NOT EXISTS cache_entry_expires ON cache_entry (expires);
CREATE INDEX IF NOT EXISTS cache_entry_model ON cache_entry (model);
CREATE INDEX IF NOT EXISTS cache_entry_key_id ON cache_entry (key_id);
CREATE TABLE IF NOT EXISTS cache_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)
    WITHOUT ROWID;
INSERT OR IGNORE INTO cache_meta (name, value) VALUES ('schema', 1), ('entries', 0),
    ('bytes', 0), ('gen', 0), ('hits', 0), ('misses', 0), ('evictions', 0), ('expired', 0);
"""
_COUNTERS = ("entries", "bytes", "hits", "misses", "evictions", "expired")
_SELECT = ("SELECT key, model, key_id, created, expires, size, body FROM cache_entry"
           " WHERE key=?")
_BUMP = "UPDATE cache_meta SET value=value+? WHERE name=?"


class _Connection(Connection):
    data_version = None     # the last PRAGMA data_version this connection reported


class SQLiteStore(SQLiteFile, Store):
    """Cached responses in the SQLite file at ``path`` (created if missing)."""

    _connection_class = _Connection
    _memory_error = "SQLiteStore needs a file shared by the processes; use MemoryStore"

    def __init__(self, path: str | os.PathLike, *, busy_timeout: float = 5.0,
                 max_idle: int = 8, local_entries: int = 1000,
                 local_bytes: int = 32 * 1024 * 1024, prune_every: int = 256):
        super().__init__(path, busy_timeout=busy_timeout, max_idle=max_idle)
        self.local_entries = max(0, int(local_entries))
        self.local_bytes = max(0, int(local_bytes))
        self.prune_every = max(1, int(prune_every))
        self._llock = threading.Lock()
        self._local: OrderedDict[str, Record] = OrderedDict()
        self._local_size = 0
        self._gen: int | None = None
        self._puts = 0

    # --- schema and fork (connections, retries, transactions: app/sqlitefile.py) ----------------
    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            has = conn.execute("SELECT 1 FROM sqlite_master WHERE name='cache_meta'").fetchone()
            if has:
                row = conn.execute("SELECT value FROM cache_meta WHERE name='schema'").fetchone()
                if row is not None and row[0] != SCHEMA_VERSION:
                    raise RuntimeError(f"{conn!r}: response cache schema {row[0]}, this code "
                                       f"knows {SCHEMA_VERSION}; move the file away")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _reset_after_fork(self) -> None:
        """In a forked child: drop the in-process LRU (and its lock) and the put count."""
        self._llock = threading.Lock()
        self._local = OrderedDict()
        self._local_size = 0
        self._gen = None
        self._puts = 0

    # --- the in-process LRU ---------------------------------------------------------------------
    def _set_gen(self, gen: int) -> None:
        """Drop the local copies when ``gen`` moved (a clear or a replace somewhere)."""
        with self._llock:
            if gen != self._gen:
                self._local.clear()
                self._local_size = 0
                self._gen = gen

    def _remember(self, rec: Record, gen: int | None) -> None:
        if not self.local_entries or rec.size > self.local_bytes // 4:
            return
        with self._llock:
            if gen != self._gen:                 # cleared while we read: the row may be stale
                return
            old = self._local.pop(rec.key, None)
            if old is not None:
                self._local_size -= old.size
            self._local[rec.key] = rec
            self._local_size += rec.size
            while (len(self._local) > self.local_entries
                   or self._local_size > self.local_bytes):
                _, dropped = self._local.popitem(last=False)
                self._local_size -= dropped.size

    def _forget(self, keys) -> None:
        with self._llock:
            for key in keys:
                old = self._local.pop(key, None)
                if old is not None:
                    self._local_size -= old.size

    # --- the Store API ----------------------------------------------------------------------------
    def get(self, key: str) -> Record | None:
        """The record for ``key`` (expired or not), None if absent. One read."""
        conn = self._acquire()
        try:
            def read():
                dv = conn.execute("PRAGMA data_version").fetchone()[0]
                if dv != conn.data_version:
                    gen = conn.execute("SELECT value FROM cache_meta WHERE name='gen'"
                                       ).fetchone()[0]
                    self._set_gen(gen)
                    conn.data_version = dv
                gen = self._gen
                with self._llock:
                    rec = self._local.get(key)
                    if rec is not None:
                        self._local.move_to_end(key)
                        return rec, gen, True
                row = conn.execute(_SELECT, (key,)).fetchone()
                return (None if row is None else Record(*row)), gen, False
            rec, gen, local = self._retry(read)
        finally:
            self._give_back(conn)
        if rec is not None and not local:
            self._remember(rec, gen)
        return rec

    @staticmethod
    def _meta(c) -> dict[str, int]:
        return dict(c.execute("SELECT name, value FROM cache_meta"))

    @staticmethod
    def _drop(c, rows) -> tuple[int, int]:
        """Delete rows given as (id, size, ...); their count and bytes."""
        if not rows:
            return 0, 0
        c.executemany("DELETE FROM cache_entry WHERE id=?", [(r[0],) for r in rows])
        return len(rows), sum(r[1] for r in rows)

    def _apply(self, c, p: Pending, delta: dict[str, int]) -> list[str]:
        """Write a batch inside a transaction; adds to ``delta``; the keys it deleted."""
        if p.touches:
            c.executemany("UPDATE cache_entry SET atime=? WHERE key=? AND atime<?",
                          [(t, k, t) for k, t in p.touches.items()])
        gone = []
        for key, expires in p.expired.items():
            row = c.execute("SELECT id, size FROM cache_entry WHERE key=? AND expires=?",
                            (key, expires)).fetchone()
            if row is not None:
                n, b = self._drop(c, [row])
                delta["entries"] -= n
                delta["bytes"] -= b
                delta["expired"] += n
                gone.append(key)
        delta["hits"] += p.hits
        delta["misses"] += p.misses
        return gone

    @staticmethod
    def _write_delta(c, delta: dict[str, int]) -> None:
        c.executemany(_BUMP, [(v, k) for k, v in delta.items() if v])

    def flush(self, pending: Pending) -> None:
        def txn(c):
            delta = dict.fromkeys(_COUNTERS, 0)
            gone = self._apply(c, pending, delta)
            self._write_delta(c, delta)
            return gone
        self._forget(self._transaction(txn))

    def put(self, rec: Record, *, atime: float, max_bytes: int, now: float,
            pending: Pending | None = None) -> int:
        """Insert or replace ``rec``, then evict (expired first, then LRU) down to max_bytes."""
        self._puts += 1
        prune = self._puts % self.prune_every == 0

        def txn(c):
            delta = dict.fromkeys(_COUNTERS, 0)
            gone = self._apply(c, pending, delta) if pending else []
            if self._gen is None:
                self._set_gen(c.execute("SELECT value FROM cache_meta WHERE name='gen'"
                                        ).fetchone()[0])
            old = c.execute("SELECT id, size, expires FROM cache_entry WHERE key=?",
                            (rec.key,)).fetchone()
            if old is not None:
                self._drop(c, [old])
                delta["entries"] -= 1
                delta["bytes"] -= old[1]
            c.execute("INSERT INTO cache_entry (key, model, key_id, created, expires, atime,"
                      " size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (rec.key, rec.model, rec.key_id, rec.created, rec.expires, atime,
                       rec.size, rec.body))
            delta["entries"] += 1
            delta["bytes"] += rec.size
            total = self._meta(c)["bytes"] + delta["bytes"]
            if total > max_bytes or prune:
                rows = c.execute(
                    "SELECT id, size, key FROM cache_entry WHERE expires<=? AND key<>?"  # nosec B608 # constant SQL, only a literal LIMIT is appended; values are bound
                    + ("" if total > max_bytes else " LIMIT 512"), (now, rec.key)).fetchall()
                n, b = self._drop(c, rows)
                gone.extend(r[2] for r in rows)
                total -= b
                delta["entries"] -= n
                delta["bytes"] -= b
                delta["expired"] += n
            while total > max_bytes:
                batch = c.execute("SELECT id, size, key FROM cache_entry WHERE key<>?"
                                  " ORDER BY atime, id LIMIT 64", (rec.key,)).fetchall()
                if not batch:
                    break
                doomed = []
                for row in batch:
                    if total <= max_bytes:
                        break
                    doomed.append(row)
                    total -= row[1]
                n, b = self._drop(c, doomed)
                gone.extend(r[2] for r in doomed)
                delta["entries"] -= n
                delta["bytes"] -= b
                delta["evictions"] += n
            self._write_delta(c, delta)
            gen = None
            if old is not None and old[2] > now:    # a live entry replaced: others must re-read
                c.execute(_BUMP, (1, "gen"))
                gen = c.execute("SELECT value FROM cache_meta WHERE name='gen'").fetchone()[0]
            return gone, gen, delta["evictions"]

        gone, gen, evicted = self._transaction(txn)
        self._forget(gone)
        if gen is not None:
            self._set_gen(gen)
        else:
            self._forget([rec.key])
        self._remember(rec, gen if gen is not None else self._gen)
        return evicted

    def clear(self, model: str | None = None, key_id: int | None = None,
              pattern: str | None = None) -> int:
        def txn(c):
            where, args = [], []
            if model is not None:
                where.append("model=?")
                args.append(model)
            if key_id is not None:
                where.append("key_id=?")
                args.append(key_id)
            if pattern is not None:
                models = [m for (m,) in c.execute("SELECT DISTINCT model FROM cache_entry")
                          if fnmatch.fnmatchcase(m, pattern)]
                if not models:
                    return 0, None
                where.append(f"model IN ({','.join('?' * len(models))})")
                args.extend(models)
            sql = " WHERE " + " AND ".join(where) if where else ""
            n, b = c.execute(f"SELECT COUNT(*), TOTAL(size) FROM cache_entry{sql}",  # nosec B608 # WHERE built from constant fragments and "?" placeholders; values are bound
                             args).fetchone()
            if not n:
                return 0, None
            c.execute(f"DELETE FROM cache_entry{sql}", args)  # nosec B608 # same constant WHERE with bound values as the count above
            self._write_delta(c, {"entries": -n, "bytes": -int(b)})
            c.execute(_BUMP, (1, "gen"))
            return n, c.execute("SELECT value FROM cache_meta WHERE name='gen'").fetchone()[0]

        n, gen = self._transaction(txn)
        if gen is not None:
            self._set_gen(gen)
        return n

    def counters(self) -> dict[str, int]:
        meta = self._transaction(self._meta, write=False)
        return {k: int(meta.get(k, 0)) for k in _COUNTERS}

    # --- for tests and diagnostics --------------------------------------------------------------
    def atime(self, key: str) -> float | None:
        row = self._transaction(lambda c: c.execute(
            "SELECT atime FROM cache_entry WHERE key=?", (key,)).fetchone(), write=False)
        return None if row is None else row[0]

    def check(self) -> dict[str, int]:
        """Counted vs actual ``entries``/``bytes`` (they must agree)."""
        def txn(c):
            n, b = c.execute("SELECT COUNT(*), TOTAL(size) FROM cache_entry").fetchone()
            meta = self._meta(c)
            return {"entries": meta["entries"], "bytes": meta["bytes"],
                    "rows": n, "row_bytes": int(b)}
        return self._transaction(txn, write=False)
