"""Helpers for the counter-store tests: UTC instants, a fake clock, decimals, a gevent burst."""
from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path


def utc(y, mo, d, h=0, mi=0, s=0.0) -> float:
    """Epoch seconds of a UTC wall-clock time (the fake clock's readings)."""
    return calendar.timegm((y, mo, d, h, mi, 0)) + s


# Monday 2026-03-02 10:00:00 UTC: a minute boundary, mid-week, mid-month.
T0 = utc(2026, 3, 2, 10, 0, 0)


def D(x) -> Decimal:
    return Decimal(str(x))


class Clock:
    """A fake clock: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


ROOT = Path(__file__).resolve().parents[2]

# 200 admissions at one instant under gevent monkey-patching (the gunicorn worker class), each
# holding its slot and reservation until every one has been decided, then settling
_GEVENT_BURST = r"""
from gevent import monkey
monkey.patch_all()
import json, sys, gevent, gevent.event
from decimal import Decimal
from app.limits import Budget, Denied, Limits, STORE_CLASS

store = STORE_CLASS(sys.argv[1])
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
print(json.dumps({"reasons": reasons, "pool": len(getattr(store, "_pool", ())),
                  "spent": str(store.spend("key:1", "day", T0))}))
"""


def gevent_burst(store_class: str, target: str) -> dict:
    """Run the burst in a fresh interpreter against ``app.limits.<store_class>(target)``:
    ``{"reasons": {...}, "pool": <pooled connections, 0 without a pool>, "spent": "..."}``."""
    out = subprocess.run([sys.executable, "-c", _GEVENT_BURST.replace("STORE_CLASS", store_class), target],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
