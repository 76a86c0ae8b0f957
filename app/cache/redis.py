"""RedisCacheStore: the SQLiteStore semantics in Redis, shared by every gateway host.

Used instead of :class:`~app.cache.sqlite.SQLiteStore` when ``GATEWAY_REDIS_URL`` is set.

Keys (all under ``gw:cache:``; ``prefix`` to change it)
    ``gw:cache:e:<key>``  the entry: a string ``<header JSON>\\n<body bytes>`` (header
        ``[model, key_id, created, expires, size]``; the body is the response's JSON bytes,
        kept byte for byte), written with ``SET ... PX`` = the entry's ttl plus ``grace_ms``,
        so Redis reclaims it by itself even if nobody reads or evicts it.
    ``gw:cache:idx``      hash key -> ``"<size> <expires> <[model, key_id] JSON>"``: what
        clear, eviction and the byte accounting need without reading the bodies.
    ``gw:cache:lru``      sorted set key -> last access (batched, like the SQLite ``atime``).
    ``gw:cache:exp``      sorted set key -> expires (expired entries are evicted first).
    ``gw:cache:meta``     hash of the shared counters: ``entries``, ``bytes``, ``hits``,
        ``misses``, ``evictions``, ``expired``.

Every write that must be atomic across workers and hosts (a put with its pending counters and
its evictions, a flush, a clear batch) is ONE Lua script, so one round trip; a get is one GET.

Size cap: ``max_bytes`` (``GATEWAY_CACHE_MAX_MB``) is honoured exactly as in the SQLite store:
the put script evicts expired entries first, then the least recently used, until the counted
body bytes fit. Redis's own per-key overhead is not counted. Redis ``maxmemory`` is only a
safety net: use a ``volatile-*`` policy (entries have TTLs, the index and counters do not) or
``noeviction``; with ``allkeys-*`` Redis may drop the index and the counters drift.

Expiry: the caller's clock decides (a record past ``expires`` is a miss and its row is deleted
lazily, counted as ``expired``), exactly as with the other stores; the Redis TTL is a backstop.
An entry Redis expired by itself is a plain miss; its index row is reclaimed by the next
eviction or prune, and counts as ``entries``/``bytes`` until then (as an expired SQLite row
does until it is deleted).

No in-process copy of the entries (the SQLite store's local LRU): a hit is one GET.

Errors: every Redis failure becomes :class:`~app.cache.core.StoreError` (the ResponseCache
answers a miss / skips the write and counts it) and, for ``retry_every`` seconds, operations
fail fast without touching Redis (:class:`app.redisguard.Guard`, store ``"cache"``).

LRU ties (equal access times) are broken by key order, not insertion order as in SQLite.

Needs Redis >= 6.2 (``ZADD ... XX GT``). Scripts touch entry keys they build from the prefix,
so this is for a single Redis (or a replicated primary), not Redis Cluster.
"""
from __future__ import annotations

import fnmatch
import json
import math
from typing import Callable

from app.redisguard import Guard

from .core import Pending, Record, Store, StoreError

_COUNTERS = ("entries", "bytes", "hits", "misses", "evictions", "expired")

_LUA_COMMON = r"""
local P = ARGV[1]
local IDX, LRU, EXP, META = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local d = {entries = 0, bytes = 0, hits = 0, misses = 0, evictions = 0, expired = 0}

local function drop(key)
  local v = redis.call('HGET', IDX, key)
  if not v then return false end
  local size = tonumber(string.match(v, '^(%d+) '))
  redis.call('UNLINK', P .. 'e:' .. key)
  redis.call('HDEL', IDX, key)
  redis.call('ZREM', LRU, key)
  redis.call('ZREM', EXP, key)
  d.entries = d.entries - 1
  d.bytes = d.bytes - size
  return size
end

local function apply(pending)
  if pending == '' then return end
  local p = cjson.decode(pending)
  for _, t in ipairs(p.t) do
    redis.call('ZADD', LRU, 'XX', 'GT', t[2], t[1])
  end
  for _, x in ipairs(p.x) do
    local v = redis.call('HGET', IDX, x[1])
    if v and string.match(v, '^%d+ (%S+) ') == x[2] then
      drop(x[1])
      d.expired = d.expired + 1
    end
  end
  d.hits = d.hits + p.h
  d.misses = d.misses + p.m
end

local function write_delta()
  for _, name in ipairs({'entries', 'bytes', 'hits', 'misses', 'evictions', 'expired'}) do
    if d[name] ~= 0 then redis.call('HINCRBY', META, name, d[name]) end
  end
end
"""

# ARGV: prefix, pending
_FLUSH = _LUA_COMMON + r"""
apply(ARGV[2])
write_delta()
return 0
"""

# ARGV: prefix, pending, key, value, px, idx value, atime, expires, max_bytes, now, prune
_PUT = _LUA_COMMON + r"""
apply(ARGV[2])
local key = ARGV[3]
local size = tonumber(string.match(ARGV[6], '^(%d+) '))
local max_bytes, now = tonumber(ARGV[9]), ARGV[10]
drop(key)
redis.call('SET', P .. 'e:' .. key, ARGV[4], 'PX', ARGV[5])
redis.call('HSET', IDX, key, ARGV[6])
redis.call('ZADD', LRU, ARGV[7], key)
redis.call('ZADD', EXP, ARGV[8], key)
d.entries = d.entries + 1
d.bytes = d.bytes + size
local total = tonumber(redis.call('HGET', META, 'bytes') or '0') + d.bytes
if total > max_bytes or ARGV[11] == '1' then
  local rows
  if total > max_bytes then
    rows = redis.call('ZRANGEBYSCORE', EXP, '-inf', now)
  else
    rows = redis.call('ZRANGEBYSCORE', EXP, '-inf', now, 'LIMIT', 0, 512)
  end
  for _, k in ipairs(rows) do
    if k ~= key then
      local s = drop(k)
      if s then
        total = total - s
        d.expired = d.expired + 1
      end
    end
  end
end
while total > max_bytes do
  local batch = redis.call('ZRANGE', LRU, 0, 64)
  local progressed = false
  for _, k in ipairs(batch) do
    if total <= max_bytes then break end
    if k ~= key then
      local s = drop(k)
      if s then
        total = total - s
        d.evictions = d.evictions + 1
        progressed = true
      end
    end
  end
  if not progressed then break end
end
write_delta()
return d.evictions
"""

# ARGV: prefix, then (key, idx value) pairs: drop each still unchanged
_CLEAR = _LUA_COMMON + r"""
local n = 0
for i = 2, #ARGV, 2 do
  if redis.call('HGET', IDX, ARGV[i]) == ARGV[i + 1] then
    drop(ARGV[i])
    n = n + 1
  end
end
write_delta()
return n
"""


def _num(x: float) -> str:
    """A float as Redis and the scripts compare it (repr round-trips exactly)."""
    return repr(float(x))


def _pending_json(p: Pending | None) -> str:
    if not p:
        return ""
    return json.dumps({"t": [[k, _num(t)] for k, t in p.touches.items()],
                       "x": [[k, _num(e)] for k, e in p.expired.items()],
                       "h": p.hits, "m": p.misses}, separators=(",", ":"))


class RedisCacheStore(Store):
    """Cached responses in Redis (``redis``: a client, or a callable returning the process's
    client, e.g. ``lambda: app.redisconn.client(url)``)."""

    def __init__(self, redis, *, prefix: str = "gw:cache:", grace_ms: int = 1000,
                 prune_every: int = 256, retry_every: float = 1.0,
                 guard: Guard | None = None):
        self._redis: Callable = redis if callable(redis) and not hasattr(redis, "execute_command") \
            else (lambda: redis)
        self.prefix = prefix
        self.grace_ms = int(grace_ms)
        self.prune_every = max(1, int(prune_every))
        self.guard = guard or Guard("cache", retry_every, meanwhile="lookups miss and nothing is stored")
        self._keys = [prefix + "idx", prefix + "lru", prefix + "exp", prefix + "meta"]
        self._puts = 0
        from redis.commands.core import Script
        self._flush_script = Script(None, _FLUSH.encode())
        self._put_script = Script(None, _PUT.encode())
        self._clear_script = Script(None, _CLEAR.encode())

    # --- plumbing -------------------------------------------------------------------------------
    def _call(self, fn):
        import redis as redis_py
        if not self.guard.available():
            raise StoreError("redis unavailable (retrying shortly)")
        try:
            result = fn(self._redis())
        except redis_py.RedisError as exc:
            self.guard.failed(exc)
            raise StoreError(f"redis: {exc}") from exc
        self.guard.ok()
        return result

    def _run(self, script, *args):
        return self._call(lambda r: script(keys=self._keys, args=[self.prefix, *args], client=r))

    @staticmethod
    def _idx_value(rec: Record) -> str:
        return f"{rec.size} {_num(rec.expires)} " + json.dumps([rec.model, rec.key_id],
                                                                separators=(",", ":"))

    # --- the Store API --------------------------------------------------------------------------
    def get(self, key: str) -> Record | None:
        raw = self._call(lambda r: r.get(self.prefix + "e:" + key))
        if raw is None:
            return None
        header, _, body = raw.partition(b"\n")
        try:
            model, key_id, created, expires, size = json.loads(header)
        except ValueError:
            return Record(key, "", None, 0.0, 0.0, len(body), body)    # unreadable: expired
        return Record(key, model, key_id, float(created), float(expires), int(size), body)

    def flush(self, pending: Pending) -> None:
        if pending:
            self._run(self._flush_script, _pending_json(pending))

    def put(self, rec: Record, *, atime: float, max_bytes: int, now: float,
            pending: Pending | None = None) -> int:
        self._puts += 1
        prune = self._puts % self.prune_every == 0
        header = json.dumps([rec.model, rec.key_id, rec.created, rec.expires, rec.size],
                            separators=(",", ":")).encode()
        px = max(1, math.ceil((rec.expires - now) * 1000)) + self.grace_ms
        return int(self._run(self._put_script, _pending_json(pending), rec.key,
                             header + b"\n" + rec.body, px, self._idx_value(rec), _num(atime),
                             _num(rec.expires), int(max_bytes), _num(now),
                             "1" if prune else "0"))

    def clear(self, model: str | None = None, key_id: int | None = None,
              pattern: str | None = None) -> int:
        """Scans the index in batches (HSCAN) and drops the matching entries, each batch one
        script that skips an entry replaced meanwhile. Not one snapshot: entries put while the
        clear runs may or may not be removed (as with a clear just before or after them)."""
        def scan(r):
            removed, cursor = 0, 0
            while True:
                cursor, rows = r.hscan(self._keys[0], cursor, count=1000)
                doomed = []
                for k, v in rows.items():
                    try:
                        m, kid = json.loads(v.split(b" ", 2)[2])
                    except (ValueError, IndexError):
                        m, kid = None, None
                    if ((model is None or m == model) and (key_id is None or kid == key_id)
                            and (pattern is None or (isinstance(m, str)
                                                     and fnmatch.fnmatchcase(m, pattern)))):
                        doomed += [k, v]
                if doomed:
                    removed += int(self._clear_script(keys=self._keys,
                                                      args=[self.prefix, *doomed], client=r))
                if not cursor:
                    return removed
        return self._call(scan)

    def counters(self) -> dict[str, int]:
        values = self._call(lambda r: r.hmget(self._keys[3], _COUNTERS))
        return {k: int(v or 0) for k, v in zip(_COUNTERS, values)}

    # --- for tests and diagnostics --------------------------------------------------------------
    def atime(self, key: str) -> float | None:
        return self._call(lambda r: r.zscore(self._keys[1], key))

    def check(self) -> dict[str, int]:
        """Counted vs indexed ``entries``/``bytes`` (they must agree)."""
        def read(r):
            rows = r.hvals(self._keys[0])
            meta = r.hmget(self._keys[3], ("entries", "bytes"))
            return {"entries": int(meta[0] or 0), "bytes": int(meta[1] or 0), "rows": len(rows),
                    "row_bytes": sum(int(v.split(b" ", 1)[0]) for v in rows)}
        return self._call(read)
