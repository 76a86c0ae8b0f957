"""Fixtures for the response-cache tests: both stores (parametrised) and a fake clock."""
from __future__ import annotations

import pytest
from cache_support import Clock

from app.cache import MemoryStore, SQLiteStore


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request, tmp_path):
    """Build a store of the parametrised kind (SQLite options passed through)."""
    made = []

    def build(**options):
        if request.param == "memory":
            store = MemoryStore()
        else:
            store = SQLiteStore(tmp_path / f"cache{len(made)}.db", **options)
        made.append(store)
        return store

    yield build
    for s in made:
        s.close()
