"""Fixtures for the routing tests: a fake clock and every breaker store (parametrised)."""
from __future__ import annotations

import pytest
from routing_support import Clock

from app.routing import Breaker, MemoryBreakerStore, SQLiteBreakerStore
from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_breaker(request, tmp_path):
    """Build a Breaker over a store of the parametrised kind (policy options passed through).

    SQLite stores built by one test share one file (like the workers of one host) unless
    ``path`` is given; ``read_ttl`` defaults to 0 here so each read sees the file. Redis
    stores built by one test share one Redis (like the hosts of one deployment), with a key
    prefix of their own when ``path`` is given.
    """
    made = []

    def build(store=None, read_ttl=0.0, path=None, **policy):
        if store is None:
            if request.param == "memory":
                store = MemoryBreakerStore()
            elif request.param == "redis":
                from app.redisconn import client
                from app.routing.redis import RedisBreakerStore
                prefix = f"gw:breaker:{abs(hash(str(path)))}:" if path else "gw:breaker:"
                store = RedisBreakerStore(client(request.getfixturevalue("redis_url")),
                                          prefix=prefix, read_ttl=read_ttl)
                made.append(store)
            else:
                store = SQLiteBreakerStore(path or tmp_path / "breakers.db", read_ttl=read_ttl)
                made.append(store)
        return Breaker(store, fail_open=False, **policy)

    yield build
    for s in made:
        s.close()


@pytest.fixture
def breaker(make_breaker):
    return make_breaker()
