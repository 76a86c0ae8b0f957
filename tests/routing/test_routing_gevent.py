"""Under gevent monkey-patching (the gunicorn worker class): greenlets share one store."""
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
from app.routing import Breaker, SQLiteBreakerStore

T0 = 1_772_445_600.0
store = SQLiteBreakerStore(sys.argv[1])
breaker = Breaker(store, fail_open=False)
for _ in range(5):
    breaker.record(1, "server_error", T0)

def request(i):
    if not breaker.allow(1, T0 + 30):
        return "refused"
    gevent.sleep(0.01)                  # the upstream call: other greenlets run meanwhile
    breaker.record(1, "ok", T0 + 30.5)
    return "probe"

jobs = [gevent.spawn(request, i) for i in range(200)]
gevent.joinall(jobs, raise_error=True)
counts = {}
for j in jobs:
    counts[j.value] = counts.get(j.value, 0) + 1
print(json.dumps({"counts": counts, "pool": len(store._pool),
                  "state": breaker.state(1, T0 + 31)["state"]}))
"""


def test_greenlets_take_one_probe_and_share_a_small_pool(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "breakers.db")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["counts"] == {"probe": 1, "refused": 199}
    assert res["pool"] == 1                        # a transaction never yields
    assert res["state"] == "closed"
