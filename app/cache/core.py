"""ResponseCache: TTL + LRU bookkeeping, counters and batching in front of a store.

The store (:class:`~app.cache.memory.MemoryStore`, :class:`~app.cache.sqlite.SQLiteStore`, or
:class:`~app.cache.redis.RedisCacheStore` shared by several hosts) keeps records (the response as compact JSON bytes plus metadata) and does every write that must
be atomic across workers in one transaction: a put with its evictions, a clear, a flush.

What a call costs
    * ``get``: one store read (SQLiteStore: an in-process LRU answers hot keys without reading
      the row). The hit/miss counters and the access time that drives LRU eviction are NOT
      written per call: they are batched in process (:class:`Pending`) and written in one
      transaction every ``flush_every`` calls or ``flush_interval`` seconds (and before any put,
      which carries them in its own transaction, and in :meth:`ResponseCache.stats`). So across
      workers the LRU order and the counters lag by at most that much; an entry read by
      another worker within the last second may be evicted as if it had not been.
    * ``put``: one IMMEDIATE transaction: pending counters, the row, and the LRU evictions that
      keep the total under ``max_bytes`` (expired entries go first).
    * An expired entry is a miss; its row is deleted lazily, in the next flush (only if it is
      still the same version: a fresh put of the key in between is kept).

Entries are returned as fresh objects parsed from the stored bytes: a caller may rewrite the
``id``/``usage`` of the response it sends without touching the stored copy.
"""
from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from app.providers.common import dumps, loads

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """One stored entry as the stores keep it (``body`` = the response as JSON bytes)."""
    key: str
    model: str
    key_id: int | None
    created: float
    expires: float
    size: int
    body: bytes


@dataclass
class Entry:
    key: str
    model: str
    key_id: int | None
    created: float
    expires: float
    size: int
    response: dict
    usage: dict


@dataclass
class Pending:
    """What a process has counted or seen since its last flush."""
    touches: dict[str, float] = field(default_factory=dict)   # key -> last access
    expired: dict[str, float] = field(default_factory=dict)   # key -> expires of the version seen
    hits: int = 0
    misses: int = 0

    def __bool__(self) -> bool:
        return bool(self.touches or self.expired or self.hits or self.misses)

    def merge(self, other: "Pending") -> None:
        """Fold ``other`` (a batch whose write failed) back in."""
        for k, t in other.touches.items():
            if t > self.touches.get(k, float("-inf")):
                self.touches[k] = t
        for k, e in other.expired.items():
            self.expired.setdefault(k, e)
        self.hits += other.hits
        self.misses += other.misses


class StoreError(Exception):
    """A store that is not SQLite could not answer (e.g. Redis is down): the ResponseCache
    treats it as a miss / a skipped write, like a SQLite error. The store logs the outage."""


class Store:
    """The store interface (every implementation)."""

    def get(self, key: str) -> Record | None: raise NotImplementedError
    def put(self, rec: Record, *, atime: float, max_bytes: int, now: float,
            pending: Pending | None = None) -> int: raise NotImplementedError
    def flush(self, pending: Pending) -> None: raise NotImplementedError
    def clear(self, model: str | None = None, key_id: int | None = None,
              pattern: str | None = None) -> int: raise NotImplementedError
    def counters(self) -> dict[str, int]: raise NotImplementedError
    def close(self) -> None: pass


def storable(response: Any) -> bool:
    """A complete chat.completion: a dict with choices, each with a finish_reason."""
    if not isinstance(response, dict) or response.get("error") is not None:
        return False
    choices = response.get("choices")
    return (isinstance(choices, list) and bool(choices)
            and all(isinstance(c, dict) and c.get("finish_reason") is not None for c in choices))


def _flush_at_exit(ref) -> None:
    cache = ref()
    if cache is not None:
        try:
            cache.flush()
        except Exception:                # noqa: BLE001 - exiting anyway
            pass


class ResponseCache:
    def __init__(self, store: Store, default_ttl: float = 3600,
                 max_bytes: int = 256 * 1024 * 1024, max_entry_bytes: int = 1024 * 1024, *,
                 flush_every: int = 64, flush_interval: float = 1.0):
        self.store = store
        self.default_ttl = float(default_ttl)
        self.max_bytes = int(max_bytes)
        self.max_entry_bytes = int(max_entry_bytes)
        self.flush_every = max(1, int(flush_every))
        self.flush_interval = float(flush_interval)
        self._lock = threading.Lock()
        self._pending = Pending()
        self._ops = 0
        self._last_flush: float | None = None
        self._local = {"hits": 0, "misses": 0, "puts": 0, "refused": 0, "errors": 0}
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (c := ref()) is not None and c._after_fork())
        atexit.register(_flush_at_exit, ref)

    def _after_fork(self) -> None:
        """The parent flushes what it counted; the child starts from zero."""
        self._lock = threading.Lock()
        self._pending = Pending()
        self._ops = 0
        self._last_flush = None
        self._local = dict.fromkeys(self._local, 0)

    # --- reads ----------------------------------------------------------------------------------
    def get(self, key: str, now: float) -> Entry | None:
        """The live entry for ``key``, or None (a miss; expired entries are misses)."""
        try:
            rec = self.store.get(key)
        except StoreError:
            self._local["errors"] += 1
            return None
        except sqlite3.Error:
            log.warning("response cache: lookup failed", exc_info=True)
            self._local["errors"] += 1
            return None
        entry = None
        if rec is not None and rec.expires > now:
            try:
                response = loads(rec.body)
                entry = Entry(rec.key, rec.model, rec.key_id, rec.created, rec.expires,
                              rec.size, response, response.get("usage") or {})
            except (ValueError, AttributeError):      # removed with the expired ones
                log.warning("response cache: unreadable entry %s dropped", key)
        with self._lock:
            p = self._pending
            if entry is not None:
                p.hits += 1
                self._local["hits"] += 1
                if now > p.touches.get(key, float("-inf")):
                    p.touches[key] = now
            else:
                p.misses += 1
                self._local["misses"] += 1
                if rec is not None:
                    p.expired[key] = rec.expires
            self._ops += 1
            if self._last_flush is None:
                self._last_flush = now
            due = (self._ops >= self.flush_every
                   or abs(now - self._last_flush) >= self.flush_interval)
        if due:
            self._flush(now, quiet=True)
        return entry

    # --- writes ---------------------------------------------------------------------------------
    def _take(self, now: float | None) -> Pending:
        with self._lock:
            p, self._pending = self._pending, Pending()
            self._ops = 0
            if now is not None:
                self._last_flush = now
            return p

    def _give_back(self, p: Pending) -> None:
        with self._lock:
            p.merge(self._pending)
            if len(p.touches) > 100_000:     # the store is unreachable for long: keep counting
                p.touches.clear()
            self._pending = p

    def _flush(self, now: float | None, quiet: bool) -> None:
        p = self._take(now)
        if not p:
            return
        try:
            self.store.flush(p)
        except (sqlite3.Error, StoreError):
            self._give_back(p)
            self._local["errors"] += 1
            if not quiet:
                raise
            log.warning("response cache: flush failed (kept for the next one)", exc_info=True)

    def flush(self) -> None:
        """Write this process's pending counters, access times and expiries now."""
        self._flush(None, quiet=False)

    def put(self, key: str, response: dict, *, model: str, key_id: int | None,
            ttl: float | None, now: float) -> bool:
        """Store ``response`` under ``key`` for ``ttl`` seconds (None: ``default_ttl``).

        False (nothing stored) for an incomplete response (no choices, a choice without
        finish_reason), a ttl <= 0, a body over ``max_entry_bytes``, or a store error.
        """
        ttl = self.default_ttl if ttl is None else float(ttl)
        if ttl <= 0 or not storable(response):
            self._local["refused"] += 1
            return False
        body = dumps(response)
        size = len(body)
        if size > self.max_entry_bytes or size > self.max_bytes:
            self._local["refused"] += 1
            return False
        rec = Record(key, model, key_id, now, now + ttl, size, body)
        p = self._take(None)
        try:
            self.store.put(rec, atime=now, max_bytes=self.max_bytes, now=now, pending=p or None)
        except StoreError:
            self._give_back(p)
            self._local["errors"] += 1
            return False
        except sqlite3.Error:
            self._give_back(p)
            self._local["errors"] += 1
            log.warning("response cache: store failed", exc_info=True)
            return False
        self._local["puts"] += 1
        return True

    def clear(self, *, model: str | None = None, key_id: int | None = None,
              pattern: str | None = None) -> int:
        """Delete the entries matching every filter given (none: everything); their count.

        ``pattern`` is a glob on the model name (``fnmatch`` case-sensitive: ``*``, ``?``,
        ``[seq]``, ``[!seq]``).
        """
        return self.store.clear(model=model, key_id=key_id, pattern=pattern)

    def stats(self) -> dict:
        """Totals across every worker that shares the store (after flushing this process)."""
        self.flush()
        c = self.store.counters()
        looked = c["hits"] + c["misses"]
        return {
            "entries": c["entries"], "bytes": c["bytes"], "max_bytes": self.max_bytes,
            "hits": c["hits"], "misses": c["misses"],
            "hit_rate": c["hits"] / looked if looked else 0.0,
            "evictions": c["evictions"], "expired": c["expired"],
            "process": dict(self._local),
        }
