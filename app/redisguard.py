"""Per-process Redis health for one store, with the shared metrics (no Flask).

A store asks :meth:`Guard.available` before it talks to Redis. After a failure Redis is left
alone for ``retry_every`` seconds (the store uses its fallback: a cache miss, the local
breaker store), then the next operation probes it again; so an outage costs each worker at
most one timed-out command per ``retry_every``, not one per request.

``gateway_redis_failures_total{store}`` counts the failed operations (not the skipped ones);
``gateway_redis_up{store}`` is 1 after a success, 0 after a failure. Transitions are logged
once (warning when Redis goes away, info when it is back).
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class Guard:
    def __init__(self, store: str, retry_every: float = 1.0, clock=time.monotonic):
        self.store = store
        self.retry_every = float(retry_every)
        self.clock = clock
        self._retry_at = 0.0            # 0: up (or never tried)
        self._up: bool | None = None
        self._lock = threading.Lock()

    @property
    def up(self) -> bool | None:
        return self._up

    def available(self) -> bool:
        """False while a recent failure says Redis is down (until the next probe is due)."""
        return not self._retry_at or self.clock() >= self._retry_at

    def failed(self, exc: BaseException | None = None) -> None:
        from app import metrics
        try:
            metrics.REDIS_FAILURES.labels(self.store).inc()
        except Exception:       # noqa: BLE001 - metrics never break the fallback
            pass
        with self._lock:
            self._retry_at = self.clock() + self.retry_every
            was, self._up = self._up, False
        if was is not False:
            log.warning("redis (%s) unavailable, using the fallback: %s", self.store, exc)
            self._gauge(0)

    def ok(self) -> None:
        if self._up is True and not self._retry_at:
            return
        with self._lock:
            self._retry_at = 0.0
            was, self._up = self._up, True
        if was is False:
            log.info("redis (%s) is back", self.store)
        self._gauge(1)

    def _gauge(self, value: int) -> None:
        from app import metrics
        try:
            metrics.REDIS_UP.labels(self.store).set(value)
        except Exception:       # noqa: BLE001
            pass
