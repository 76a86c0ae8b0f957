"""Two real gateway hosts (gunicorn, 2 gevent workers each, instance folders of their own) on
one DB file and one Redis, GATEWAY_CACHE_TTL=30: a model disabled through host A's API is
refused by every worker of host B within a second; a response cached through A is a hit on B;
a breaker opened by A's traffic is open on B."""
from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.e2e_routing.conftest import FAKE, free_port, start_fake, start_hosts, wait_port
from tests.support.processes import migrate_and_admin_key, stop_all
from tests.support.servers import redis_server

MSG = [{"role": "user", "content": "hi"}]
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not FAKE.exists(), reason="needs ../shared/bench/fake_upstream.py")]


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    tmp = Path(tempfile.mkdtemp(prefix="gw-two-hosts-"))
    with redis_server(tmp_path_factory.mktemp("redis")) as redis:
        base_env = {**os.environ, "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
                    "GATEWAY_SECRET_KEY": "two-hosts", "GATEWAY_HEALTH_INTERVAL": "0",
                    "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                    "GATEWAY_CACHE_TTL": "30", "GATEWAY_USAGE_FLUSH_INTERVAL": "0.2",
                    "GATEWAY_REDIS_URL": redis.url}
        envs = []
        for name in ("a", "b"):
            (tmp / name).mkdir()
            envs.append({**base_env, "GATEWAY_INSTANCE_PATH": str(tmp / name)})
        up_port = free_port()
        procs = [start_fake(up_port)]
        try:
            admin = migrate_and_admin_key(envs[0], "admin")
            hosts = start_hosts(envs)
            procs += [h.proc for h in hosts]
            for port in [up_port] + [h.port for h in hosts]:
                wait_port(port)
            yield {"a": hosts[0].url, "b": hosts[1].url, "admin": {"Authorization": f"Bearer {admin}"},
                   "up_port": up_port, "redis": redis}
        finally:
            stop_all(procs, signal.SIGTERM, 10, group=False)


def chat(base, key, model, **extra):
    return requests.post(f"{base}/v1/chat/completions",
                         headers={"Authorization": f"Bearer {key}", "Connection": "close"},
                         json={"model": model, "messages": MSG, **extra}, timeout=10)


def test_config_cache_and_breakers_are_shared(two_hosts):
    a, b, h = two_hosts["a"], two_hosts["b"], two_hosts["admin"]
    pid = requests.post(f"{a}/api/admin/providers", headers=h, json={
        "name": "up", "type": "openai-compatible", "api_key": "sk-fake",
        "api_base": f"http://127.0.0.1:{two_hosts['up_port']}/v1"}).json()["id"]
    model = requests.post(f"{a}/api/admin/models", headers=h, json={
        "provider_id": pid, "model_id": "fake-model", "name": "shared"}).json()["id"]
    key = requests.post(f"{a}/api/admin/keys", headers=h, json={"name": "load"}).json()["key"]
    for _ in range(8):                       # both of B's workers load their snapshot (30 s)
        assert chat(b, key, "shared").status_code == 200
    time.sleep(0.5)                          # their subscribers are up

    # a response cached through A is a hit on B
    first = chat(a, key, "shared", temperature=0, user="cache-probe")
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert chat(b, key, "shared", temperature=0, user="cache-probe").headers["x-cache"] == "HIT"

    # disabled through A: every worker of B refuses within a second (its poll is 30 s away)
    assert requests.patch(f"{a}/api/admin/models/{model}", headers=h,
                          json={"enabled": False}).status_code == 200
    t = time.monotonic()
    refused = 0
    while refused < 8 and time.monotonic() - t < 1.0:
        r = chat(b, key, "shared")
        refused = refused + 1 if r.status_code == 404 else 0
    assert refused == 8, f"still served {time.monotonic() - t:.2f} s after the change"
    assert r.json()["error"]["code"] == "model_not_found"

    # a breaker opened by A's traffic (a dead upstream) is open on B
    dead = requests.post(f"{a}/api/admin/providers", headers=h, json={
        "name": "dead", "type": "openai-compatible", "api_key": "sk-fake",
        "api_base": f"http://127.0.0.1:{free_port()}/v1", "connect_timeout": 0.5}).json()["id"]
    dead_model = requests.post(f"{a}/api/admin/models", headers=h, json={
        "provider_id": dead, "model_id": "fake-model", "name": "dead"}).json()["id"]
    time.sleep(0.2)
    for _ in range(5):
        assert chat(a, key, "dead").status_code >= 500
    scrape = requests.get(f"{b}/metrics", timeout=10)          # B reads the breakers
    assert scrape.status_code == 200
    line = f'gateway_breaker_open{{deployment="{dead_model}",state="open"}} 1.0'
    assert line in scrape.text, [x for x in scrape.text.splitlines() if "breaker" in x]
    assert 'gateway_redis_up{store="cache"} 1.0' in scrape.text
