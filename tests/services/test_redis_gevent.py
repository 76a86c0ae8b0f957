"""Under gevent monkey-patching (the gunicorn worker class): the Redis stores and the config
subscriber share one worker without blocking it (the subscriber is a greenlet; Redis calls
yield), and the subscriber comes back after an outage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import json, sys, threading, time, gevent
from app.cache import ResponseCache
from app.cache.redis import RedisCacheStore
from app.redisconn import client
from app.routing import Breaker
from app.routing.redis import RedisBreakerStore
from app.services import notify

url = sys.argv[1]
T0 = 1_772_445_600.0
cache = ResponseCache(RedisCacheStore(client(url)))
breaker = Breaker(RedisBreakerStore(client(url), read_ttl=0), fail_open=False,
                  failure_threshold=10_000, min_requests=10_000)
resp = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}]}

class FakeRuntime:
    def __init__(self):
        self.marks = []
    def mark_stale(self, version=None):
        self.marks.append(version)

rc = FakeRuntime()
sub = notify.listen(url, rc)
assert isinstance(sub.thread, threading.Thread)
deadline = time.monotonic() + 5
while not sub.connected.is_set() and time.monotonic() < deadline:
    gevent.sleep(0.01)

def request(i):
    key = f"k{i % 50}"
    hit = cache.get(key, T0 + i / 1000)
    breaker.record(1, "server_error", T0)
    if hit is None:
        gevent.sleep(0.001)
        cache.put(key, resp, model="m", key_id=None, ttl=60, now=T0 + i / 1000)
        return "miss"
    return "hit"

ticks = []
def ticker():                                   # the worker's loop keeps running meanwhile
    for _ in range(20):
        ticks.append(time.monotonic())
        gevent.sleep(0.005)
t = gevent.spawn(ticker)
jobs = []
for wave in range(4):
    batch = [gevent.spawn(request, wave * 100 + i) for i in range(100)]
    gevent.joinall(batch, raise_error=True)
    jobs += batch
t.join()
for v in (41, 42):
    notify.publish(url, v)
deadline = time.monotonic() + 5
while [m for m in rc.marks if m is not None] != [41, 42] and time.monotonic() < deadline:
    gevent.sleep(0.01)
out = {}
for j in jobs:
    out[j.value] = out.get(j.value, 0) + 1
s = cache.stats()
print(json.dumps({"out": out, "hits": s["hits"], "misses": s["misses"], "entries": s["entries"],
                  "fails": breaker.state(1, T0)["consecutive_failures"],
                  "marks": [m for m in rc.marks if m is not None], "ticks": len(ticks)}))
"""


def test_stores_and_subscriber_under_gevent(redis_url):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT, redis_url], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["out"]["hit"] + res["out"]["miss"] == 400
    # first wave: each key asked twice; Redis reads yield, so the second ask may already hit
    assert 50 <= res["out"]["miss"] <= 100
    assert (res["hits"], res["misses"]) == (res["out"]["hit"], res["out"]["miss"])
    assert res["entries"] == 50
    assert res["fails"] == 400                  # every concurrent CAS write counted once
    assert res["marks"] == [41, 42]
    assert res["ticks"] == 20
