"""One Redis client per process for the scale-out stores (limits, response cache, breaker state,
config notifications), from ``GATEWAY_REDIS_URL``.

redis-py's connection pool is made of plain sockets, so under gevent's monkey-patching every
command yields to other greenlets instead of blocking the worker. A forked child never reuses
its parent's connections: the pool is keyed by the process id.

The pool is a ``BlockingConnectionPool`` of ``GATEWAY_REDIS_MAX_CONNECTIONS`` (64) sockets: when
more greenlets than that call at once, the others wait (up to the socket timeout) for a free
connection. redis-py's plain pool would instead raise ``MaxConnectionsError`` (a
``ConnectionError``, i.e. "Redis is down") past its default cap of 100 — ``max_connections=None``
does not lift it.
"""
from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_clients: dict[tuple[int, str], object] = {}

#: seconds; a Redis that does not answer within this is treated as down (the caller decides
#: whether that fails open or closed), so an outage never hangs a request for long
SOCKET_TIMEOUT = float(os.environ.get("GATEWAY_REDIS_TIMEOUT", "0.5"))
#: sockets per process; callers beyond it wait for one (at most SOCKET_TIMEOUT)
MAX_CONNECTIONS = int(os.environ.get("GATEWAY_REDIS_MAX_CONNECTIONS", "64"))


def client(url: str):
    """The shared ``redis.Redis`` for ``url`` in this process (created on first use)."""
    key = (os.getpid(), url)
    found = _clients.get(key)
    if found is not None:
        return found
    import redis
    with _lock:
        found = _clients.get(key)
        if found is None:
            pool = redis.BlockingConnectionPool.from_url(
                url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
                health_check_interval=30, max_connections=MAX_CONNECTIONS,
                timeout=SOCKET_TIMEOUT, decode_responses=False)
            found = _clients[key] = redis.Redis(connection_pool=pool)
        return found


def app_client(app=None):
    """The client for the app's ``REDIS_URL``, or None when Redis is not configured."""
    if app is None:
        from flask import current_app
        app = current_app
    url = app.config.get("REDIS_URL")
    return client(url) if url else None


def pubsub_client(url: str):
    """A separate client for a blocking subscriber (no read timeout on the subscription)."""
    import redis
    return redis.Redis.from_url(url, socket_connect_timeout=SOCKET_TIMEOUT,
                                socket_timeout=None, socket_keepalive=True,
                                health_check_interval=10)
