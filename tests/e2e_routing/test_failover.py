"""Two real fake upstreams behind one model group; one is killed in the middle of a load run.

The client (official openai SDK, no retries of its own) must see no error at all: requests in
flight on the killed upstream fail over before their first byte reached the client, later ones
skip it once its breaker opens. Runs the real app under gunicorn + gevent.
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT.parent / "shared" / "bench" / "fake_upstream.py"
BIN = Path(sys.executable).parent
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not FAKE.exists(), reason="needs ../shared/bench/fake_upstream.py")]


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


def test_killing_one_upstream_mid_load_is_invisible_to_clients(stack):
    import openai
    client = openai.OpenAI(base_url=stack["base"] + "/v1", api_key=stack["key"], max_retries=0, timeout=10)
    results, lock, stop = [], threading.Lock(), threading.Event()

    def worker():
        while not stop.is_set():
            try:
                r = client.chat.completions.with_raw_response.create(
                    model="pool", messages=[{"role": "user", "content": "hello"}])
                outcome = (r.http_response.status_code, r.headers.get("x-gateway-attempts", ""))
            except Exception as exc:  # any error reaching the client fails the test
                outcome = (type(exc).__name__, str(exc)[:200])
            with lock:
                results.append((time.time(), outcome))

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    victim = stack["upstreams"][0]
    t_kill = time.time()
    victim.kill()
    time.sleep(2.5)
    stop.set()
    for t in threads:
        t.join(20)

    errors = [o for _, o in results if o[0] != 200]
    after = [o for t, o in results if t > t_kill + 0.5]
    before = [o for t, o in results if t < t_kill]
    print(f"\n[failover] {len(results)} requests, {len(before)} before the kill, {len(after)} 0.5 s+ after; "
          f"fallbacks seen: {sum(1 for _, o in results if ';' in o[1])}")
    assert not errors, errors[:5]
    assert len(before) > 50 and len(after) > 50
    assert any("up0" in o[1] for o in before) and any("up1" in o[1] for o in before)  # both served
    assert any(";" in o[1] for _, o in results)  # some requests failed over
    assert all(o[1].endswith("=200") and o[1].split(";")[-1].startswith("up1") for o in after)
    # the breaker opened: after the first few failures, up0 is no longer tried first
    tried_dead = [o for o in after if o[1].startswith("up0")]
    assert len(tried_dead) <= 10, len(tried_dead)
    state = requests.get(f"{stack['base']}/api/admin/groups/pool", headers=stack["admin"]).json()
    breakers = {d["provider"]: d["breaker"]["state"] for d in state["deployments"]}
    assert breakers["up0"] in ("open", "half-open") and breakers["up1"] == "closed"
    time.sleep(0.5)
    con = sqlite3.connect(stack["db"])
    failed_over = con.execute("SELECT COUNT(*) FROM usage_records WHERE attempts LIKE 'up0/%;up1/%=200'").fetchone()[0]
    con.close()
    assert failed_over >= 1
