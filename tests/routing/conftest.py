"""Fixtures for the routing tests: a fake clock and both breaker stores (parametrised)."""
from __future__ import annotations

import pytest
from routing_support import Clock

from app.routing import Breaker, MemoryBreakerStore, SQLiteBreakerStore


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def make_breaker(request, tmp_path):
    """Build a Breaker over a store of the parametrised kind (policy options passed through).

    SQLite stores built by one test share one file (like the workers of one host) unless
    ``path`` is given; ``read_ttl`` defaults to 0 here so each read sees the file.
    """
    made = []

    def build(store=None, read_ttl=0.0, path=None, **policy):
        if store is None:
            if request.param == "memory":
                store = MemoryBreakerStore()
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
