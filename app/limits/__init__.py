"""Counters behind per-key rate limits, concurrency caps and budgets (pure Python, no Flask).

The caller passes the store location, the limits and budgets that apply, and the clock::

    store = make_store("sqlite:////var/lib/gateway/limits.db")
    try:
        adm = store.admit("key:12", Limits(rpm=60, tpm=100_000, concurrency=4),
                          [Budget("key:12", Decimal("10"), "month"),
                           Budget("team:research", Decimal("500"), "month")],
                          est_tokens=1200, reserve_usd=Decimal("0.05"), now=time.time())
    except Denied as d:
        ...  # 429 (402 for a budget) with d.message, d.headers
    ...
    store.settle(adm.ticket, tokens=830, cost_usd=Decimal("0.0123"), now=time.time())
    # or store.release(adm.ticket, now=time.time()) when the request failed before costing anything

``subject`` is the rate-limit identity ("key:12", or "model:5" / "provider:2" for global
limits: call ``admit`` once per subject). Budgets are separate scopes, so one team budget spans
several keys. Every admission is one atomic step: it checks every limit and every budget and
only then records the request, a concurrency lease, the token pre-charge and a reservation on
every budget; a refused request records nothing.

Algorithms
    * Requests (rpm/rph/rpd): GCRA, one theoretical arrival time (TAT) per subject and window.
      A burst of up to ``limit`` is allowed, then one request per ``window/limit``: never 2x the
      limit across a window boundary, unlike fixed windows, and O(1) storage, unlike a log.
    * Tokens (tpm/tpd): a sliding window summed over buckets (1 s for tpm, 1 min for tpd). The
      admission pre-charges ``est_tokens``; settle swaps that for the real count. A request is
      refused when the window already holds ``>= limit`` tokens (``strict_tokens=True``: when
      ``used + est_tokens > limit``, OpenAI style, which can starve large requests). GCRA does not
      fit tokens: the real count is only known afterwards and must be able to go down.
    * Concurrency: one lease per admission, counted while unexpired; a lease expires after
      ``lease_ttl`` (900 s) so a SIGKILLed worker's requests cannot block a key forever.
    * Budgets: per (scope, period, period start) the settled ``spent`` and the ``reserved``
      total, exact decimals (never floats). Each admission's reservation (its amount and the
      budgets it holds it on) expires with the admission's lease, so a crashed worker's
      reservation is taken off ``reserved`` lazily once the lease expires. Hard limit: refused
      when ``spent + reserved + reserve_usd > amount``. The real cost is charged to the period
      the request was admitted in (the one its reservation was checked against).

Errors other than :class:`Denied`: ``ValueError`` for bad input (negative or NaN amounts, an
unknown period, the same budget twice); ``sqlite3.OperationalError`` if the file stays locked
beyond ``busy_timeout`` (10 s), ``redis.exceptions.RedisError`` when Redis does not answer — the
caller decides whether to fail open or closed (for Redis: :class:`FailoverStore`).

Stores: :class:`SQLiteStore` (a WAL file, exact across the processes of a host, one IMMEDIATE
transaction per call), :class:`RedisStore` (exact across hosts, one Lua script per call; money as
integer pico-dollars) and :class:`MemoryStore` (one process; tests and reference).
:class:`FailoverStore` wraps a RedisStore with what to do while Redis is down (a per-process
MemoryStore, or :class:`StoreUnavailable`).
"""
from __future__ import annotations

from .core import (Admission, Budget, Denied, Limits, Store, fmt_duration, period_end,
                   period_start)
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["Limits", "Budget", "Admission", "Denied", "Store", "SQLiteStore", "MemoryStore",
           "RedisStore", "FailoverStore", "StoreUnavailable", "make_store", "fmt_duration",
           "period_start", "period_end"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def __getattr__(name):
    # redis-py is only imported by deployments that use Redis
    if name == "RedisStore":
        from .redis import RedisStore
        return RedisStore
    if name in ("FailoverStore", "StoreUnavailable"):
        from . import failover
        return getattr(failover, name)
    raise AttributeError(name)


def make_store(url_or_path: str, **options) -> Store:
    """A store from a URL or a path.

    ``sqlite:///relative/path`` and ``sqlite:////absolute/path`` (SQLAlchemy's spelling) or a
    bare path: :class:`SQLiteStore`; ``memory://``: :class:`MemoryStore`; ``redis://``,
    ``rediss://`` or ``unix://`` (redis-py's URLs): :class:`RedisStore` on this process's shared
    client (``app.redisconn``). ``options`` go to the constructor (``lease_ttl``,
    ``strict_tokens``, ...).
    """
    target = str(url_or_path).strip()
    if target.startswith("memory:"):
        return MemoryStore(**options)
    if target.startswith(REDIS_SCHEMES):
        from .redis import RedisStore
        return RedisStore(target, **options)
    if target.startswith("sqlite:///"):
        return SQLiteStore(target[len("sqlite:///"):], **options)
    if target.startswith(("sqlite:", "redis:", "rediss:", "unix:")) or "://" in target:
        raise ValueError(f"unsupported limits store {target!r}: use sqlite:///path, a path, "
                         f"redis://host:port/db, or memory://")
    return SQLiteStore(target, **options)
