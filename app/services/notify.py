"""Config-change notifications over Redis pub/sub (when GATEWAY_REDIS_URL is set).

Publishing: :func:`app.services.state.bump` notes the new config version on the DB session;
once that session's transaction COMMITS (SQLAlchemy ``after_commit``), the version is
published on the channel ``gw:config``. A rolled-back change publishes nothing (the note is
dropped on rollback). A failed publish is logged and counted
(``gateway_redis_failures_total{store="pubsub"}``), never raised: the change is committed, and
the polling below still spreads it.

Listening: every process runs ONE subscriber, a daemon thread (a greenlet under gevent's
monkey-patching), started lazily by the first :func:`app.services.runtime.cache` call of the
process (the first request), never at import or in the app factory, and started again in a
forked child (keyed by the process id). On a message it marks the process's RuntimeCaches
stale, so the very next request re-reads the config version and reloads. It reconnects with a
backoff (0.1 s doubling to 2 s) when Redis goes away, and marks the caches stale on every
(re)subscription, since messages sent while it was disconnected are lost.

The RuntimeCache's polling every CACHE_TTL_SECONDS stays as the fallback: a lost message or a
Redis outage still converges within that time.
"""
from __future__ import annotations

import logging
import os
import threading
import weakref

from app.redisguard import Guard

log = logging.getLogger(__name__)

CHANNEL = "gw:config"
_INFO_KEY = "gw_config_publish"          # session.info: (redis url, new version)


# --- publishing ---------------------------------------------------------------------------------
def note(session, url: str, version: int) -> None:
    """Publish ``version`` on ``url`` once ``session``'s transaction commits."""
    session.info[_INFO_KEY] = (url, int(version))


def _after_commit(session) -> None:
    pending = session.info.pop(_INFO_KEY, None)
    if pending is not None:
        publish(*pending)


def _after_rollback(session) -> None:
    session.info.pop(_INFO_KEY, None)


def publish(url: str, version: int) -> bool:
    from app import metrics, redisconn
    try:
        redisconn.client(url).publish(CHANNEL, str(int(version)))
        return True
    except Exception as exc:        # noqa: BLE001 - the commit happened; polling catches up
        log.warning("config change %s not published (polling will spread it): %s", version, exc)
        try:
            metrics.REDIS_FAILURES.labels("pubsub").inc()
        except Exception:           # noqa: BLE001
            pass
        return False


def install() -> None:
    """Listen to every SQLAlchemy session's commits and rollbacks (idempotent)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)


# --- listening ----------------------------------------------------------------------------------
class Subscriber:
    """One per (process, Redis URL); notifies every registered RuntimeCache."""

    backoff_min, backoff_max = 0.1, 2.0

    def __init__(self, url: str):
        self.url = url
        self.pid = os.getpid()
        self.caches: weakref.WeakSet = weakref.WeakSet()
        self.guard = Guard("pubsub", meanwhile="config changes are picked up by polling")
        self.connected = threading.Event()        # subscribed right now (for tests, health)
        self.received = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, rc) -> None:
        self.caches.add(rc)

    def ensure_running(self) -> None:
        with self._lock:
            if self.thread is None or not self.thread.is_alive():
                self._stop.clear()
                self.thread = threading.Thread(target=self._run, name="gw-config-subscriber",
                                               daemon=True)
                self.thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        t = self.thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _notify(self, version: int | None) -> None:
        for rc in list(self.caches):
            try:
                rc.mark_stale(version)
            except Exception:       # noqa: BLE001 - one broken cache must not stop the others
                log.exception("config notification: mark_stale failed")

    def _run(self) -> None:
        from app import redisconn
        delay = self.backoff_min
        while not self._stop.is_set():
            r = ps = None
            try:
                r = redisconn.pubsub_client(self.url)
                ps = r.pubsub()
                ps.subscribe(CHANNEL)
                while not self._stop.is_set():
                    msg = ps.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        self.guard.ok()
                        self.connected.set()
                        delay = self.backoff_min
                        self._notify(None)          # anything sent while we were away is lost
                    elif msg["type"] == "message":
                        self.received += 1
                        try:
                            version = int(msg["data"])
                        except (TypeError, ValueError):
                            version = None
                        self._notify(version)
            except Exception as exc:        # noqa: BLE001 - reconnect whatever went wrong
                self.connected.clear()
                if not self._stop.is_set():
                    self.guard.failed(exc)
            finally:
                self.connected.clear()
                for closing in (ps, r):
                    try:
                        if closing is not None:
                            closing.close()
                    except Exception:       # noqa: BLE001
                        pass
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max)


_lock = threading.Lock()
_subscribers: dict[tuple[int, str], Subscriber] = {}


def listen(url: str, rc) -> Subscriber:
    """Register ``rc`` with this process's subscriber for ``url`` (started if not running)."""
    key = (os.getpid(), url)
    with _lock:
        sub = _subscribers.get(key)
        if sub is None:
            for stale in [k for k in _subscribers if k[0] != key[0]]:    # a forked parent's
                del _subscribers[stale]
            sub = _subscribers[key] = Subscriber(url)
    sub.add(rc)
    sub.ensure_running()
    return sub


def subscriber(url: str) -> Subscriber | None:
    return _subscribers.get((os.getpid(), url))


def stop_all() -> None:
    """Stop this process's subscribers (tests)."""
    with _lock:
        subs = [s for k, s in _subscribers.items() if k[0] == os.getpid()]
        _subscribers.clear()
    for s in subs:
        s.stop()
