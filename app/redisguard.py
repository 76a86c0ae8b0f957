"""Guard: the one outage state machine of every Redis-backed store, per process (no Flask).

A store asks :meth:`Guard.available` before it talks to Redis and reports the outcome with
:meth:`Guard.ok` or :meth:`Guard.failed`:

* An outage starts with the first failure: one warning is logged (the exception's type and text,
  with any ``user:password@`` of a URL removed) naming what the store does meanwhile.
* While it lasts Redis is left alone for ``retry_every`` seconds (the store uses its fallback:
  local limits, a cache miss, the local breaker state), then **one** caller of the process
  probes it (the others keep using the fallback); so an outage costs each worker at most one
  timed-out command per ``retry_every``, not one per request.
* The first success ends it (one warning that the store answers again).

Metrics, unless callbacks are given instead: ``gateway_redis_failures_total{store}`` counts the
failed operations (not the skipped ones); ``gateway_redis_up{store}`` is 1 after a success, 0
after a failure.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

_CREDENTIALS = re.compile(r"(\w+://)[^@/\s]*@")


def describe(exc: BaseException | None) -> str:
    """``ConnectionError: Error 111 connecting to ...`` with any ``user:password@`` removed."""
    if exc is None:
        return "no answer"
    text = _CREDENTIALS.sub(r"\1***@", str(exc))
    return f"{type(exc).__name__}: {text}"[:300]


class Guard:
    def __init__(self, store: str, retry_every: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 *, meanwhile: str = "using the fallback", restored: str = "",
                 on_error: Callable[[BaseException | None], None] | None = None,
                 on_state: Callable[[bool], None] | None = None,
                 logger: logging.Logger | None = None):
        self.store = store
        self.retry_every = float(retry_every)
        self.clock = clock
        self.meanwhile = meanwhile
        self.restored = restored
        self.on_error = on_error or self._count_failure
        self.on_state = on_state or self._gauge
        self.log = logger or log
        self._retry_at = 0.0            # 0: up (or never tried)
        self._up: bool | None = None
        self._lock = threading.Lock()

    @property
    def up(self) -> bool | None:
        """True after a success, False during an outage, None before the first call."""
        return self._up

    @property
    def down(self) -> bool:
        return self._up is False

    def available(self) -> bool:
        """True when Redis may be called now: it is up, or this caller is the one to probe it."""
        if not self._retry_at:
            return True
        with self._lock:
            now = self.clock()
            if not self._retry_at:
                return True
            if now < self._retry_at:
                return False
            self._retry_at = now + self.retry_every       # this caller probes; the others wait
            return True

    def failed(self, exc: BaseException | None = None) -> None:
        try:
            self.on_error(exc)
        except Exception:       # noqa: BLE001 - metrics never break the fallback
            pass
        with self._lock:
            self._retry_at = self.clock() + self.retry_every
            was, self._up = self._up, False
        if was is not False:
            self.log.warning("%s store unreachable (%s); %s until it answers again", self.store,
                             describe(exc), self.meanwhile)
            self._report(False)

    def ok(self) -> None:
        if self._up is True and not self._retry_at:
            return
        with self._lock:
            self._retry_at = 0.0
            was, self._up = self._up, True
        if was is False:
            self.log.warning("%s store answers again%s", self.store,
                             f"; {self.restored}" if self.restored else "")
        self._report(True)

    def _report(self, up: bool) -> None:
        try:
            self.on_state(up)
        except Exception:       # noqa: BLE001
            pass

    def _count_failure(self, _exc: BaseException | None) -> None:
        from app import metrics
        metrics.REDIS_FAILURES.labels(self.store).inc()

    def _gauge(self, up: bool) -> None:
        from app import metrics
        metrics.REDIS_UP.labels(self.store).set(1 if up else 0)
