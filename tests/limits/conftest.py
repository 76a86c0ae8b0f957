"""Fixtures for the counter-store tests: every store (parametrised) and a fake clock.

The "redis" stores share one redis-server for the session (tests/support/servers.py), flushed
before each test; they are skipped, with the reason, when redis-server is not installed.
"""
from __future__ import annotations

import pytest

from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401
from limits_support import Clock

from app.limits import MemoryStore, SQLiteStore


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make(request, tmp_path):
    """Build a store of the parametrised kind (constructor options passed through)."""
    made = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def build(**options):
        if request.param == "memory":
            store = MemoryStore(**options)
        elif request.param == "sqlite":
            store = SQLiteStore(tmp_path / f"limits{len(made)}.db", **options)
        else:
            from app.limits import RedisStore
            store = RedisStore(url, prefix=f"t{len(made)}:", **options)
        made.append(store)
        return store

    yield build
    for s in made:
        s.close()
        # the script and decide() never disagreed on a verdict
        assert getattr(s, "mismatches", 0) == 0


@pytest.fixture
def store(make):
    return make()
