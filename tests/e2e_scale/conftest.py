"""Two gateway hosts sharing PostgreSQL and Redis (the Scale-out issue's proof).

What runs (all real processes on loopback):
  * a throwaway PostgreSQL cluster and a throwaway redis-server (tests/support/servers.py);
  * the e2e suite's fake upstream (tests/e2e/fake_provider.py): every non-stream chat answers
    19 prompt + 10 completion tokens, so with the spend harness's 60-character prompt and
    max_tokens=10 a request's budget reservation equals its real cost;
  * two gateway "hosts": separate gunicorn masters on different ports, 2 gevent workers each,
    both with GATEWAY_DATABASE_URL = the PostgreSQL database and GATEWAY_REDIS_URL = the Redis.

The config cache TTL is long (GATEWAY_CACHE_TTL=30): a change made on one host can reach the
other within a second only through the Redis notification, never through polling.
"""
from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SPEND = ROOT / "tests" / "e2e_spend"
for p in (str(SPEND), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

from spend_harness import IN_PRICE, OUT_PRICE, Gateway, fake_provider, fp, start_gateway  # noqa: E402
from tests.support.processes import clean_env, migrate_and_admin_key, wait_until  # noqa: E402
from tests.support.servers import postgres_server, redis_server  # noqa: E402

MODELS = {"scale-chat": "gpt-4o-mini"}
FERNET = "Yk5rPz3m0sV8x1Jq6Qd2Wc7Tn4Hb9Lf0Ae5Rg3Ku1Zo="  # a fixed test key: 32 url-safe bytes


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def scale_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e_scale")


@pytest.fixture(scope="session")
def pg(scale_tmp):
    with postgres_server(scale_tmp) as server:
        yield server


@pytest.fixture(scope="session")
def redis_srv(scale_tmp):
    with redis_server(scale_tmp) as server:
        yield server


@pytest.fixture(scope="session")
def scale_fake(scale_tmp) -> str:
    """The fake upstream process; yields its base URL."""
    with fake_provider(scale_tmp) as url:
        yield url


def host_env(instance: Path, db_url: str, redis_url: str) -> dict:
    return clean_env(GATEWAY_INSTANCE_PATH=str(instance), GATEWAY_DATABASE_URL=db_url,
                     GATEWAY_REDIS_URL=redis_url, GATEWAY_CACHE_TTL="30",
                     GATEWAY_USAGE_FLUSH_INTERVAL="0.1", GATEWAY_HEALTH_INTERVAL="0",
                     # every host shares the session and encryption keys (docs/deploy.md)
                     GATEWAY_SECRET_KEY="scale-secret", GATEWAY_ENCRYPTION_KEYS=FERNET,
                     GATEWAY_LOG_LEVEL="info", PYTHONUNBUFFERED="1")


class Hosts:
    """Two gateway hosts (A, B) on one database and one Redis."""

    def __init__(self, a: Gateway, b: Gateway, pg, redis_srv, db_url: str):
        self.a, self.b, self.pg, self.redis, self.db_url = a, b, pg, redis_srv, db_url

    def query(self, sql: str, params=()) -> list[tuple]:
        import psycopg
        url = self.db_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            return conn.execute(sql, params).fetchall()

    def make_key(self, name: str, limits: dict | None = None, budget: dict | None = None):
        """(id, raw): created on A, usable on every worker of both hosts."""
        body = {"name": name, "scopes": ["chat", "models"]}
        if limits:
            body["limits"] = limits
        if budget:
            body["budget"] = budget
        created = self.a.admin("POST", "/keys", body)
        raw = created["key"]

        def everywhere():
            return all(requests.get(f"{gw.base_url}/v1/key/info", timeout=5,
                                    headers=gw.auth(raw)).status_code == 200
                       for gw in (self.a, self.b) for _ in range(6))
        wait_until(everywhere, 10, 0.1, f"key {name} on both hosts")
        return created["id"], raw


@pytest.fixture(scope="session")
def hosts(scale_tmp, pg, redis_srv, scale_fake) -> Hosts:
    db_url = pg.url
    template = scale_tmp / "instance-template"
    template.mkdir()
    admin_key = migrate_and_admin_key(host_env(template, db_url, redis_srv.url), "scale-admin")
    gateways = []
    for name in ("a", "b"):  # both boot at once; waited for below
        instance = scale_tmp / f"host-{name}"  # each host has its own local folder (secrets given)
        shutil.copytree(template, instance)
        henv = host_env(instance, db_url, redis_srv.url)
        henv["GATEWAY_WORKERS"] = "2"
        gateways.append(start_gateway(instance, henv, admin_key, scale_tmp / f"gunicorn-{name}.log",
                                      workers=2, wait=False))
    try:
        for gw in gateways:
            gw.wait_serving(60)
            gw.wait_workers(2)
        a, b = gateways
        prov = a.admin("POST", "/providers", {
            "name": "scale-fake", "type": "openai-compatible", "api_base": f"{scale_fake}/v1",
            "api_key": fp.OPENAI_KEY, "connect_timeout": 2.0, "read_timeout": 10.0})
        for public, upstream in MODELS.items():
            a.admin("POST", "/models", {"provider_id": prov["id"], "model_id": upstream,
                                        "name": public, "kind": "chat",
                                        "input_price_per_mtok": IN_PRICE,
                                        "output_price_per_mtok": OUT_PRICE})
        yield Hosts(a, b, pg, redis_srv, db_url)
    finally:
        for gw in gateways:
            gw.stop(signal.SIGINT, 15)
