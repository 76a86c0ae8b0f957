"""Fixtures for the counter-store tests: both stores (parametrised) and a fake clock."""
from __future__ import annotations

import pytest
from limits_support import Clock

from app.limits import MemoryStore, SQLiteStore


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def make(request, tmp_path):
    """Build a store of the parametrised kind (constructor options passed through)."""
    made = []

    def build(**options):
        if request.param == "memory":
            store = MemoryStore(**options)
        else:
            store = SQLiteStore(tmp_path / f"limits{len(made)}.db", **options)
        made.append(store)
        return store

    yield build
    for s in made:
        s.close()


@pytest.fixture
def store(make):
    return make()
