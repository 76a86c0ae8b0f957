"""FailoverStore: a shared store (Redis) and what to do while it does not answer.

``failure="open"`` (the default): during an outage every call goes to a per-process
:class:`~app.limits.memory.MemoryStore` with the same limits and budgets, so each worker still
enforces them **per process during the outage** (N workers let up to N times a limit through,
and budgets start from zero locally); requests keep flowing. ``failure="closed"``:
:meth:`admit` raises :class:`StoreUnavailable` and the caller refuses the request (503).

* The outage state machine is :class:`app.redisguard.Guard` (shared with the cache, breaker and
  notification stores): one warning when an outage starts (never the URL, which may carry a
  password), the shared store left alone for ``probe_every`` seconds then probed by one caller
  (the others go straight to the fallback), one line when it answers again.
* ``on_error(exc)`` is called for every failed call and ``on_state(up)`` on each change (the
  metrics ``gateway_redis_failures_total{store}`` / ``gateway_redis_up{store}`` by default).
* Tickets handed out by the fallback start with ``local:``; their settle/release go to the
  fallback, whatever the shared store's state by then. Settles and releases of shared-store
  tickets that fail are kept (up to ``backlog``) and replayed once the store answers again;
  past that, the oldest are dropped and their leases and reservations expire on their own.
* :meth:`state` and :meth:`spend` during an outage raise :class:`StoreUnavailable` in both
  modes: the local counters are not the shared ones, so they are not shown as such.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from decimal import Decimal
from typing import Callable, Sequence

from app.redisguard import Guard, describe  # noqa: F401  (describe: re-exported)

from . import core
from .core import Admission, Budget, Limits
from .memory import MemoryStore

log = logging.getLogger(__name__)

LOCAL = "local:"


class StoreUnavailable(Exception):
    """The shared counter store does not answer (and the policy is not to guess)."""


class _Down(Exception):
    pass


def _default_errors() -> tuple[type[BaseException], ...]:
    import redis
    return (redis.exceptions.RedisError, OSError)


class FailoverStore(core.Store):
    def __init__(self, primary: core.Store, *, failure: str = "open",
                 fallback: core.Store | None = None, lease_ttl: float = 900.0,
                 strict_tokens: bool = False, probe_every: float = 1.0, name: str = "limits",
                 errors: tuple[type[BaseException], ...] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 on_state: Callable[[bool], None] | None = None, backlog: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        if failure not in ("open", "closed"):
            raise ValueError(f"failure must be 'open' or 'closed', not {failure!r}")
        self.primary = primary
        self.failure = failure
        self.fallback = fallback or MemoryStore(lease_ttl=lease_ttl, strict_tokens=strict_tokens)
        self.name = name
        self.errors = errors or _default_errors()
        self.backlog: deque = deque(maxlen=backlog)
        self.dropped = 0
        self._lock = threading.Lock()
        self.guard = Guard(name, probe_every, clock, logger=log,
                           meanwhile="limits are enforced per process" if failure == "open"
                           else "requests are refused", restored="shared limits restored",
                           on_error=on_error, on_state=on_state)

    @property
    def down(self) -> bool:
        return self.guard.down

    def _primary(self, op, *args):
        """``op(*args)`` on the shared store, or :class:`_Down` (outage, not probing now)."""
        if not self.guard.available():
            raise _Down
        try:
            if self.backlog:            # what failed earlier goes first
                self._replay()
            result = op(*args)
        except self.errors as exc:
            self.guard.failed(exc)
            raise _Down from exc
        except core.Denied:         # a refusal is an answer: the store is up
            self.guard.ok()
            raise
        self.guard.ok()
        return result

    def _replay(self) -> None:
        with self._lock:
            items = list(self.backlog)
            self.backlog.clear()
        try:
            self.primary.settle_many(items)
        except BaseException:
            with self._lock:            # back in front of whatever was deferred meanwhile
                room = self.backlog.maxlen - len(self.backlog)
                self.dropped += max(0, len(items) - room)
                self.backlog.extendleft(reversed(items[len(items) - room:] if room else []))
            raise

    def _defer(self, items) -> None:
        with self._lock:
            self.dropped += max(0, len(self.backlog) + len(items) - self.backlog.maxlen)
            self.backlog.extend(items)

    # --- the API --------------------------------------------------------------------------------
    def admit(self, subject: str, limits: Limits, budgets: Sequence[Budget], est_tokens: int,
              reserve_usd: Decimal, now: float) -> Admission:
        try:
            return self._primary(self.primary.admit, subject, limits, budgets, est_tokens,
                                 reserve_usd, now)
        except _Down:
            if self.failure == "closed":
                raise StoreUnavailable(f"the {self.name} store is unavailable") from None
        adm = self.fallback.admit(subject, limits, budgets, est_tokens, reserve_usd, now)
        adm.ticket = LOCAL + adm.ticket
        return adm

    def settle(self, ticket: str, tokens: int, cost_usd: Decimal, now: float) -> None:
        self.settle_many([(ticket, tokens, cost_usd, now, True)])

    def release(self, ticket: str, now: float) -> None:
        self.settle_many([(ticket, 0, core.ZERO, now, False)])

    def settle_many(self, items: Sequence[tuple[str, int, Decimal, float, bool]]) -> None:
        local, shared = [], []
        for item in items:
            t = item[0]
            if isinstance(t, str) and t.startswith(LOCAL):
                local.append((t[len(LOCAL):], *item[1:]))
            else:
                shared.append(tuple(item))
        if local:
            self.fallback.settle_many(local)
        if shared:
            try:
                self._primary(self.primary.settle_many, shared)
            except _Down:
                self._defer(shared)

    def state(self, subject: str, limits: Limits, budgets: Sequence[Budget], now: float) -> dict:
        try:
            return self._primary(self.primary.state, subject, limits, budgets, now)
        except _Down:
            raise StoreUnavailable(f"the {self.name} store is unavailable") from None

    def spend(self, scope: str, period: str, now: float) -> Decimal:
        try:
            return self._primary(self.primary.spend, scope, period, now)
        except _Down:
            raise StoreUnavailable(f"the {self.name} store is unavailable") from None

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()
