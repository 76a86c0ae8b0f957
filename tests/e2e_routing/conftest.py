"""Fixtures: two real fake upstreams (../shared/bench/fake_upstream.py) behind one model group
`pool`, and the gateway under gunicorn with 2 gevent workers."""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

# BIN, ROOT, free_port, wait_port: also imported from here by test_redis_two_hosts.py
from tests.support.processes import (BIN, ROOT, Gunicorn, free_port, migrate_and_admin_key,  # noqa: F401
                                     start_process, stop_all, wait_port)

FAKE = ROOT.parent / "shared" / "bench" / "fake_upstream.py"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def start_fake(port: int, *args: str):
    """shared/bench/fake_upstream.py on `port`, output discarded, in pytest's own session (so
    a test can kill it alone); wait_port(port) before use."""
    return start_process([sys.executable, str(FAKE), "--port", str(port), *args], new_session=False)


def start_hosts(envs: list[dict], workers: int = 2) -> list[Gunicorn]:
    """One gunicorn per env (output discarded, not in a session of their own); wait_port each."""
    return [Gunicorn(env, workers=workers, new_session=False).start() for env in envs]


@pytest.fixture(scope="module")
def stack():
    tmp = Path(tempfile.mkdtemp(prefix="gw-failover-"))
    env = {**os.environ, "GATEWAY_INSTANCE_PATH": str(tmp), "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
           "GATEWAY_HEALTH_INTERVAL": "0", "GATEWAY_CACHE_TTL": "0.2", "GATEWAY_USAGE_FLUSH_INTERVAL": "0.2"}
    ports = [free_port(), free_port()]
    # 30 ms of upstream latency so requests are in flight at the kill
    procs = [start_fake(port, "--latency-ms", "30") for port in ports]
    try:
        admin = migrate_and_admin_key(env, "admin")
        (server,) = start_hosts([env])
        procs.append(server.proc)
        gw_port = server.port
        for port in ports + [gw_port]:
            wait_port(port)
        base = f"http://127.0.0.1:{gw_port}"
        h = {"Authorization": f"Bearer {admin}"}
        assert requests.put(f"{base}/api/admin/groups/pool", headers=h,
                            json={"strategy": "weighted", "retries": 2}).status_code == 201
        deps = []
        for i, port in enumerate(ports):
            pid = requests.post(f"{base}/api/admin/providers", headers=h, json={
                "name": f"up{i}", "type": "openai-compatible", "api_base": f"http://127.0.0.1:{port}/v1",
                "api_key": "sk-fake", "read_timeout": 5}).json()["id"]
            deps.append(requests.post(f"{base}/api/admin/models", headers=h, json={
                "provider_id": pid, "model_id": "fake-model", "name": "pool", "weight": 1}).json()["id"])
        key = requests.post(f"{base}/api/admin/keys", headers=h, json={"name": "load"}).json()["key"]
        # the new key must be known to both workers before the load starts (see closing note:
        # an occasional 401 right after creation was seen under CI load)
        end = time.time() + 10
        ok = 0
        while time.time() < end and ok < 6:
            r = requests.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}",
                                                          "Connection": "close"})
            ok = ok + 1 if r.status_code == 200 else 0
            time.sleep(0.05)
        yield {"base": base, "key": key, "admin": h, "upstreams": procs[:2], "deps": deps, "db": tmp / "gw.db"}
    finally:
        stop_all(procs, signal.SIGTERM, 10, group=False)


