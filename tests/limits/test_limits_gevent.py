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
import json, sys, gevent, gevent.event
from decimal import Decimal
from app.limits import Budget, Denied, Limits, SQLiteStore

store = SQLiteStore(sys.argv[1])
T0 = 1_772_445_600.0
budget = Budget("key:1", Decimal("0.30"), "day")
lim = Limits(rpm=1000, concurrency=50)
decided = [0]
upstream_done = gevent.event.Event()

def request(i):
    try:
        a = store.admit("key:1", lim, [budget], 5, Decimal("0.01"), T0)
    except Denied as d:
        return d.reason
    finally:
        decided[0] += 1
    upstream_done.wait()               # the upstream call: other greenlets run meanwhile
    store.settle(a.ticket, 4, Decimal("0.005"), T0 + 1)
    return "ok"

jobs = [gevent.spawn(request, i) for i in range(200)]
while decided[0] < 200:
    gevent.sleep(0.001)
upstream_done.set()
gevent.joinall(jobs, raise_error=True)
reasons = {}
for j in jobs:
    reasons[j.value] = reasons.get(j.value, 0) + 1
print(json.dumps({"reasons": reasons, "pool": len(store._pool),
                  "spent": str(store.spend("key:1", "day", T0))}))
"""


def test_greenlets_share_a_small_pool(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "limits.db")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # 200 requests at the same instant: 30 reservations of $0.01 fit the $0.30 budget; a
    # transaction never yields, so the greenlets needed a single connection between them
    assert res["reasons"] == {"ok": 30, "budget": 170}
    assert res["pool"] == 1
    assert res["spent"] == "0.150"
