"""Fixtures for the response-cache tests: every store (parametrised) and a fake clock."""
from __future__ import annotations

import pytest
from cache_support import Clock

from app.cache import MemoryStore, SQLiteStore
from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request, tmp_path):
    """Build a store of the parametrised kind (SQLite options passed through; each Redis store
    built by a test has a prefix of its own, as each SQLite store has its own file)."""
    made = []

    def build(**options):
        if request.param == "memory":
            store = MemoryStore()
        elif request.param == "redis":
            from app.cache.redis import RedisCacheStore
            from app.redisconn import client
            url = request.getfixturevalue("redis_url")
            store = RedisCacheStore(client(url), prefix=f"gw:cache:t{len(made)}:")
        else:
            store = SQLiteStore(tmp_path / f"cache{len(made)}.db", **options)
        made.append(store)
        return store

    yield build
    for s in made:
        s.close()
