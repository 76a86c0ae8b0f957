"""RedisBreakerStore: breaker rows in Redis, shared by every worker of every gateway host.

Same semantics as :class:`~app.routing.sqlite.SQLiteBreakerStore` (the policy stays in the pure
functions of :mod:`.breaker`; this only reads and writes rows):

    * ``get`` is one GET, answered from a per-process read cache for ``read_ttl`` seconds of the
      caller's clock unless ``fresh`` (the SQLite store's staleness rules, word for word).
    * ``modify`` is an optimistic transaction in ONE round trip when nothing changed meanwhile:
      ``fn`` runs in Python on the last value this process saw of the row (no row if it never
      saw one: the common case), then one Lua script checks that this is still the stored value
      and writes the new row (or, for a decision that writes nothing, only checks); when
      another worker changed it, the script returns the stored value instead and ``fn`` runs
      again on that (two round trips). So a decision is never made on a stale row, and when N
      workers reach a half-open breaker at once exactly one takes the probe (the others' check
      fails, they re-decide on the row with the probe out).
    * A row that is back to closed-and-clean is deleted (no key means closed, as no row does).

Keys: ``gw:breaker:<dep_id>`` (the row as JSON) and ``gw:breaker:ids`` (a set of the ids with a
row, for :meth:`all`; ids whose key expired are dropped from it when read). Every row key
expires ``keep_s`` (1 day) after the last instant it refers to (``open_until`` /
``probe_until``) or after its last write, whichever is later; a ``disabled`` row after
``keep_disabled_s`` (30 days). So an idle deployment's failure count is forgotten after a day
(the SQLite store keeps it forever; a day is far beyond the 60 s error-rate window).

Redis unavailable: the store falls back to a per-process :class:`MemoryBreakerStore` (this
worker's own breaker, as with no shared store at all) and probes Redis again at most every
``retry_every`` (1) second; the first operation that succeeds switches back and the local rows
are dropped (Redis holds the shared truth again). Failures are counted in
``gateway_redis_failures_total{store="breaker"}`` and ``gateway_redis_up{store="breaker"}``.

No Flask here; ``redis`` is a client or a callable returning the process's client.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from typing import Callable

from app.redisguard import Guard

from .breaker import CLOSED, BreakerRow, BreakerStore, MemoryBreakerStore

log = logging.getLogger(__name__)

# KEYS: row key, ids set. ARGV: dep_id, "1" if a row is expected (then ARGV[3] is it),
# mode ("verify" | "set" | "delete"), new value, px.
# Returns {1} when the stored value was the expected one (and the write, if any, is done),
# else {0, the current value or false}.
_CAS = r"""
local cur = redis.call('GET', KEYS[1])
local expected = ARGV[2] == '1' and ARGV[3] or false
if cur ~= expected then return {0, cur} end
if ARGV[4] == 'set' then
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
  redis.call('SADD', KEYS[2], ARGV[1])
elseif ARGV[4] == 'delete' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[1])
end
return {1}
"""

def _encode(row: BreakerRow) -> bytes:
    return json.dumps([row.state, row.consecutive, row.open_until, row.cooldown,
                       row.probe_until, row.reason, row.opened_at, row.window, int(row.tripped)],
                      separators=(",", ":")).encode()


def _decode(raw: bytes | None) -> BreakerRow | None:
    if raw is None:
        return None
    r = json.loads(raw)
    return BreakerRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                      tuple(tuple(b) for b in r[7]), bool(r[8]))


class RedisBreakerStore(BreakerStore):
    max_attempts = 64       # CAS conflicts before giving up (Breaker then fails open)

    def __init__(self, redis, *, prefix: str = "gw:breaker:", read_ttl: float = 0.5,
                 keep_s: float = 86400.0, keep_disabled_s: float = 30 * 86400.0,
                 retry_every: float = 1.0, guard: Guard | None = None):
        self._redis: Callable = redis if callable(redis) and not hasattr(redis, "execute_command") \
            else (lambda: redis)
        self.prefix = prefix
        self.read_ttl = float(read_ttl)
        self.keep_s = float(keep_s)
        self.keep_disabled_s = float(keep_disabled_s)
        self.guard = guard or Guard("breaker", retry_every, meanwhile="breaker state is kept per process",
                                     restored="breaker state is shared again")
        self.local = MemoryBreakerStore()       # the fallback while Redis is unavailable
        self._cache: dict[int, tuple[float, BreakerRow | None]] = {}
        self._raw: dict[int, bytes | None] = {}     # the last stored value seen, per dep_id
        from redis.commands.core import Script
        self._cas = Script(None, _CAS.encode())
        self._modify_lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------------------------
    def _key(self, dep_id: int) -> str:
        return f"{self.prefix}{int(dep_id)}"

    def _px(self, row: BreakerRow, now: float) -> int:
        if row.state == "disabled":
            return max(1, math.ceil(self.keep_disabled_s * 1000))
        horizon = max(now, row.open_until or now, row.probe_until or now)
        return max(1, math.ceil((horizon - now + self.keep_s) * 1000))

    def _redis_or_none(self):
        """The client, or None while Redis is known to be down (use the local store)."""
        return self._redis() if self.guard.available() else None

    def _with_fallback(self, op, fallback):
        import redis as redis_py
        r = self._redis_or_none()
        if r is not None:
            try:
                result = op(r)
            except redis_py.RedisError as exc:
                self.guard.failed(exc)
                self._cache.clear()
                self._raw.clear()
            else:
                if self.guard.up is False:          # back: Redis is the truth again
                    self.local = MemoryBreakerStore()
                self.guard.ok()
                return result
        return fallback()

    # --- the store API --------------------------------------------------------------------------
    def get(self, dep_id: int, now: float, fresh: bool = False) -> BreakerRow | None:
        if not fresh and self.guard.up is not False:
            hit = self._cache.get(dep_id)
            if hit is not None and now - hit[0] < self.read_ttl:
                return hit[1]

        def op(r):
            return self._remember(dep_id, now, r.get(self._key(dep_id)))
        return self._with_fallback(op, lambda: self.local.get(dep_id, now, fresh))

    def _remember(self, dep_id: int, now: float, raw: bytes | None) -> BreakerRow | None:
        row = _decode(raw)
        self._raw[dep_id] = raw
        self._cache[dep_id] = (now, row)
        return row

    def modify(self, dep_id: int, fn, now: float):
        key, ids = self._key(dep_id), self.prefix + "ids"

        def op(r):
            # one change at a time per process (a greenlet-aware lock under gevent): hundreds of
            # greenlets racing each other would lose the compare-and-set to one another on
            # every round trip; races are then only between processes, which are few
            with self._modify_lock:
                return attempt(r)

        def attempt(r):
            # decide on the last value this process saw (none: no row, the common case), then
            # one script checks that it still is the stored value and writes; when it is not,
            # the script returns the stored value and we decide again on that
            raw = self._raw.get(dep_id)
            for _ in range(self.max_attempts):
                current = _decode(raw)
                new, result = fn(current)
                if new is None:
                    mode, value, px, after = "verify", b"", 0, raw
                elif new == CLOSED:
                    mode, value, px, after = "delete", b"", 0, None
                else:
                    value = _encode(new)
                    mode, px, after = "set", self._px(new, now), value
                done = self._cas(keys=[key, ids],
                                 args=[int(dep_id), "0" if raw is None else "1",
                                       b"" if raw is None else raw, mode, value, px], client=r)
                if int(done[0]) == 1:
                    self._remember(dep_id, now, after)
                    return result
                raw = done[1] if len(done) > 1 and done[1] else None    # lost a race: redo
            raise RuntimeError(f"breaker {dep_id}: {self.max_attempts} write conflicts in a row")
        return self._with_fallback(op, lambda: self.local.modify(dep_id, fn, now))

    def delete(self, dep_id: int) -> None:
        def op(r):
            pipe = r.pipeline(transaction=True)
            pipe.delete(self._key(dep_id))
            pipe.srem(self.prefix + "ids", int(dep_id))
            pipe.execute()
        self._cache.pop(dep_id, None)
        self._raw.pop(dep_id, None)
        self._with_fallback(op, lambda: None)
        self.local.delete(dep_id)       # also while falling back (and harmless otherwise)

    def all(self) -> dict[int, BreakerRow]:
        def op(r):
            ids = sorted(int(i) for i in r.smembers(self.prefix + "ids"))
            if not ids:
                return {}
            values = r.mget([self._key(i) for i in ids])
            gone = [i for i, v in zip(ids, values) if v is None]
            if gone:
                r.srem(self.prefix + "ids", *gone)
            return {i: _decode(v) for i, v in zip(ids, values) if v is not None}
        return self._with_fallback(op, lambda: dict(sorted(self.local.all().items())))

    def close(self) -> None:
        self._cache.clear()
        self._raw.clear()
