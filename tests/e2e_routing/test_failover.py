"""Two real fake upstreams behind one model group; one is killed in the middle of a load run.

The client (official openai SDK, no retries of its own) must see no error at all: requests in
flight on the killed upstream fail over before their first byte reached the client, later ones
skip it once its breaker opens. Runs the real app under gunicorn + gevent.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import requests

FAKE = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "fake_upstream.py"
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not FAKE.exists(), reason="needs ../shared/bench/fake_upstream.py")]


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
    assert len(before) > 20 and len(after) > 20, (len(before), len(after))  # load really ran
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
