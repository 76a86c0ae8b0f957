"""SQLiteFile: the connection plumbing shared by the multi-process SQLite stores.

:class:`app.limits.sqlite.SQLiteStore`, :class:`app.routing.sqlite.SQLiteBreakerStore` and
:class:`app.cache.sqlite.SQLiteStore` each keep their state in a SQLite file that every worker
process of a host opens. This base gives them the same connection handling:

    * WAL mode (readers never wait for the writer) and ``synchronous=NORMAL`` (a commit is
      durable against a crashed or restarted process; only a power cut can lose the last few
      ms), plus whatever else :attr:`SQLiteFile._pragmas` lists (``temp_store=MEMORY`` by
      default).
    * Lock waits are retried in Python (``time.sleep`` with a short jittered backoff, up to
      ``busy_timeout`` seconds) rather than in SQLite's C busy handler (connections are opened
      with ``timeout=0``): under gevent monkey-patching that sleep yields to the worker's other
      greenlets, where the C handler would freeze the whole worker for 1-100 ms. A transaction
      never yields (no I/O in it), so greenlets sharing a process cannot interleave inside one.
    * Connections come from a small per-process pool (a list; ``pop``/``append`` are atomic), so
      any number of threads or greenlets can call in; a connection is used by one caller at a
      time (``check_same_thread=False`` lets it move between threads). A thread-local would give
      every greenlet its own connection under gevent; a pool reuses a handful.
    * After ``fork`` (``os.register_at_fork``, holding the store by a weakref) the child drops
      the pool and bumps the store's generation: the parent's connections are never used, nor
      closed, in the child (they are kept referenced in ``_FORK_ORPHANS``, so their finalizers
      do not run either), and a connection of an older generation is closed rather than pooled.
    * The schema is created on first use, once per process, by the store's
      :meth:`SQLiteFile._create_schema`.

No Flask here: the stores are usable outside the app.
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from typing import Callable, TypeVar

T = TypeVar("T")

_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_FORK_ORPHANS: list = []   # connections inherited across fork: kept referenced, never closed


class Connection(sqlite3.Connection):
    """A pooled connection; stores needing per-connection state subclass it."""
    generation = 0      # the store's fork generation the connection was opened in


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` is a lock wait (SQLITE_BUSY / SQLITE_LOCKED), worth retrying."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _BUSY_CODES
    text = str(exc)
    return "locked" in text or "busy" in text


class SQLiteFile:
    """A SQLite file shared by processes: pooled connections, retried lock waits, fork safety.

    Subclasses implement :meth:`_create_schema` and may override the hooks
    :meth:`_after_connect` (every new connection) and :meth:`_reset_after_fork` (process-local
    state to drop in a forked child), and the class attributes below.
    """

    #: The connection class (``sqlite3.connect(factory=...)``); a subclass of :class:`Connection`.
    _connection_class: type[Connection] = Connection
    #: ``cached_statements`` of every connection.
    _cached_statements = 64
    #: Run on every new connection after ``journal_mode=WAL`` (which is retried while locked).
    _pragmas: tuple[str, ...] = ("synchronous=NORMAL", "temp_store=MEMORY")
    #: The ValueError message for an in-memory path (which the processes cannot share).
    _memory_error = "needs a file shared by the processes"

    def __init__(self, path: str | os.PathLike, *, busy_timeout: float = 10.0,
                 max_idle: int = 8):
        self.path = os.fspath(path)
        if self.path in ("", ":memory:") or self.path.startswith("file::memory:"):
            raise ValueError(self._memory_error)
        self.busy_timeout = float(busy_timeout)
        self.max_idle = max_idle
        self._pool: list[Connection] = []
        self._generation = 0
        self._schema_ready = False
        self._init_lock = threading.Lock()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._after_fork())

    # --- hooks ----------------------------------------------------------------------------------
    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create (or check) the store's tables; called once per process, retried while locked.

        Runs its own transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on error).
        """
        raise NotImplementedError

    def _after_connect(self, conn: sqlite3.Connection) -> None:
        """Extra setup of a new connection (after the pragmas and the schema). No-op here."""

    def _reset_after_fork(self) -> None:
        """In a forked child: drop the store's own process-local state. No-op here."""

    # --- connections ----------------------------------------------------------------------------
    def _connect(self) -> Connection:
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None,
                               factory=self._connection_class, check_same_thread=False,
                               cached_statements=self._cached_statements)
        try:
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            for pragma in self._pragmas:
                conn.execute(f"PRAGMA {pragma}")
            if not self._schema_ready:
                with self._init_lock:
                    if not self._schema_ready:
                        self._retry(lambda: self._create_schema(conn))
                        self._schema_ready = True
            self._after_connect(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _after_fork(self) -> None:
        """In a forked child: the parent's connections must not be used (nor closed) here."""
        _FORK_ORPHANS.extend(self._pool)
        self._pool = []
        self._generation += 1
        self._init_lock = threading.Lock()
        self._reset_after_fork()

    def _acquire(self) -> Connection:
        try:
            return self._pool.pop()
        except IndexError:
            conn = self._connect()
            conn.generation = self._generation
            return conn

    def _give_back(self, conn: Connection) -> None:
        if (conn.in_transaction or len(self._pool) >= self.max_idle
                or conn.generation != self._generation):
            try:
                conn.close()
            except sqlite3.Error:
                pass
            return
        self._pool.append(conn)

    def close(self) -> None:
        """Close the idle connections of this process (the store stays usable)."""
        pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    # --- transactions ---------------------------------------------------------------------------
    def _retry(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried with a jittered backoff while the database is locked."""
        deadline = None
        delay = 0.0002
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.busy_timeout
                elif now >= deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.01)

    def _transaction(self, fn: Callable[[Connection], T], write: bool = True) -> T:
        """Run ``fn(conn)`` in one transaction (IMMEDIATE when writing), retrying lock waits."""
        conn = self._acquire()
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"

        def attempt():
            conn.execute(begin)
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        try:
            return self._retry(attempt)
        finally:
            self._give_back(conn)
