"""Under gevent monkey-patching (the gunicorn worker class): greenlets share one cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import json, sys, gevent
from app.cache import ResponseCache, SQLiteStore

T0 = 1_772_445_600.0
cache = ResponseCache(SQLiteStore(sys.argv[1]))
resp = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}]}

# every first-wave request looks the cache up before any of them stores its answer, however
# gevent interleaves the start of 100 greenlets with their timers on a slow machine
import gevent.event
first_wave = {"missed": 0, "all_looked": gevent.event.Event()}

def request(i):
    key = f"k{i % 50}"
    hit = cache.get(key, T0 + i / 1000)
    if hit is None:
        first_wave["missed"] += 1
        if first_wave["missed"] >= 100:
            first_wave["all_looked"].set()
        first_wave["all_looked"].wait(10)
        gevent.sleep(0.001)                       # the upstream call: other greenlets run
        cache.put(key, resp, model="m", key_id=None, ttl=60, now=T0 + i / 1000)
        return "miss"
    return "hit"

jobs = []
for wave in range(4):                             # 100 concurrent requests, four times
    batch = [gevent.spawn(request, wave * 100 + i) for i in range(100)]
    gevent.joinall(batch, raise_error=True)
    jobs += batch
out = {}
for j in jobs:
    out[j.value] = out.get(j.value, 0) + 1
s = cache.stats()
print(json.dumps({"out": out, "pool": len(cache.store._pool), "hits": s["hits"],
                  "misses": s["misses"], "entries": s["entries"]}))
"""


def test_greenlets_share_a_small_pool(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "cache.db")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["out"]["hit"] + res["out"]["miss"] == 400
    assert res["out"]["miss"] == 100 and res["out"]["hit"] == 300  # first wave: 2 per key
    assert (res["hits"], res["misses"]) == (res["out"]["hit"], res["out"]["miss"])
    assert res["entries"] == 50
    assert res["pool"] == 1            # no call yields inside a transaction: one connection
