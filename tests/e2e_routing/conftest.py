"""Fixtures: two real fake upstreams (../shared/bench/fake_upstream.py) behind one model group
`pool`, and the gateway under gunicorn with 2 gevent workers."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT.parent / "shared" / "bench" / "fake_upstream.py"
BIN = Path(sys.executable).parent
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15) -> None:
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


@pytest.fixture(scope="module")
def stack():
    tmp = Path(tempfile.mkdtemp(prefix="gw-failover-"))
    env = {**os.environ, "GATEWAY_INSTANCE_PATH": str(tmp), "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
           "GATEWAY_HEALTH_INTERVAL": "0", "GATEWAY_CACHE_TTL": "0.2", "GATEWAY_USAGE_FLUSH_INTERVAL": "0.2"}
    procs = []
    ports = [free_port(), free_port()]
    for port in ports:  # 30 ms of upstream latency so requests are in flight at the kill
        procs.append(subprocess.Popen([sys.executable, str(FAKE), "--port", str(port), "--latency-ms", "30"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    admin = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "create-key", "--name", "admin", "--scopes",
                            "admin"], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.strip()
    gw_port = free_port()
    gw = subprocess.Popen([str(BIN / "gunicorn"), "-k", "gevent", "-w", "2", "-b", f"127.0.0.1:{gw_port}", "wsgi:app"],
                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(gw)
    try:
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
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


