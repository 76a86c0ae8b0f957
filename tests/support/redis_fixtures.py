"""Pytest fixtures for a throwaway Redis (one server per test session, emptied per test).

    from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401

Tests using them skip when redis-server is not installed.
"""
from __future__ import annotations

import pytest

from tests.support.servers import redis_server


@pytest.fixture(scope="session")
def redis_server_session(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server_session):
    """The session's Redis, running and empty."""
    server = redis_server_session
    if server.proc is None or server.proc.poll() is not None:   # a test killed it
        server.start()
    server.flush()
    yield server.url
