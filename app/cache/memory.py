"""MemoryStore: the SQLiteStore semantics in a dict under one lock.

Single process only (tests, development): nothing survives a restart, nothing is shared.
"""
from __future__ import annotations

import fnmatch
import threading

from .core import Pending, Record, Store


class MemoryStore(Store):
    def __init__(self):
        self._lock = threading.RLock()
        self._rows: dict[str, Record] = {}
        self._atime: dict[str, float] = {}
        self._seq: dict[str, int] = {}         # insertion order: the LRU tie-break (as row ids)
        self._next = 0
        self._c = dict.fromkeys(("entries", "bytes", "hits", "misses", "evictions", "expired"), 0)

    def get(self, key: str) -> Record | None:
        return self._rows.get(key)

    def _drop(self, key: str) -> Record:
        rec = self._rows.pop(key)
        self._atime.pop(key, None)
        self._seq.pop(key, None)
        self._c["entries"] -= 1
        self._c["bytes"] -= rec.size
        return rec

    def _apply(self, p: Pending) -> None:
        for key, t in p.touches.items():
            if key in self._rows and t > self._atime[key]:
                self._atime[key] = t
        for key, expires in p.expired.items():
            rec = self._rows.get(key)
            if rec is not None and rec.expires == expires:
                self._drop(key)
                self._c["expired"] += 1
        self._c["hits"] += p.hits
        self._c["misses"] += p.misses

    def flush(self, pending: Pending) -> None:
        with self._lock:
            self._apply(pending)

    def put(self, rec: Record, *, atime: float, max_bytes: int, now: float,
            pending: Pending | None = None) -> int:
        with self._lock:
            if pending:
                self._apply(pending)
            if rec.key in self._rows:
                self._drop(rec.key)
            self._rows[rec.key] = rec
            self._atime[rec.key] = atime
            self._next += 1
            self._seq[rec.key] = self._next
            self._c["entries"] += 1
            self._c["bytes"] += rec.size
            evicted = 0
            if self._c["bytes"] > max_bytes:
                for key in [k for k, r in self._rows.items() if r.expires <= now and k != rec.key]:
                    self._drop(key)
                    self._c["expired"] += 1
            if self._c["bytes"] > max_bytes:
                order = sorted((t, self._seq[k], k) for k, t in self._atime.items()
                               if k != rec.key)
                for _, _, key in order:
                    if self._c["bytes"] <= max_bytes:
                        break
                    self._drop(key)
                    evicted += 1
            self._c["evictions"] += evicted
            return evicted

    def clear(self, model: str | None = None, key_id: int | None = None,
              pattern: str | None = None) -> int:
        with self._lock:
            doomed = [k for k, r in self._rows.items()
                      if (model is None or r.model == model)
                      and (key_id is None or r.key_id == key_id)
                      and (pattern is None or fnmatch.fnmatchcase(r.model, pattern))]
            for key in doomed:
                self._drop(key)
            return len(doomed)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._c)

    def atime(self, key: str) -> float | None:
        """The recorded last access of ``key`` (for tests)."""
        return self._atime.get(key)
