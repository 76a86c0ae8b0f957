"""The config subscriber: one per process, started again in a forked child, reconnecting after
a Redis outage (and marking the caches stale then, since messages were lost meanwhile)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]

FORK = r"""
import os, sys, time
from app.services import notify

class R:
    def __init__(self):
        self.marks = []
    def mark_stale(self, version=None):
        self.marks.append(version)

def wait(pred, timeout=5):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.01)
    return pred()

url = sys.argv[1]
rc = R()
parent_sub = notify.listen(url, rc)
assert wait(parent_sub.connected.is_set)
pid = os.fork()
if pid == 0:
    ok = not parent_sub.thread.is_alive()            # threads do not survive a fork
    sub = notify.listen(url, rc)                      # what runtime.cache() does on a new pid
    ok = ok and sub is not parent_sub and sub.pid == os.getpid()
    ok = ok and wait(sub.connected.is_set)
    notify.publish(url, 7)
    ok = ok and wait(lambda: 7 in rc.marks)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert wait(lambda: 7 in rc.marks)                    # the parent heard it too
print("ok")
"""


def test_a_forked_child_runs_its_own_subscriber(redis_url):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", FORK, redis_url], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_subscriber_reconnects_after_an_outage(tmp_path):
    from app import metrics
    from app.services import notify
    from tests.support.servers import redis_server

    class R:
        def __init__(self):
            self.marks = []

        def mark_stale(self, version=None):
            self.marks.append(version)

    def wait(pred, timeout=10):
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline:
            time.sleep(0.01)
        return pred()

    with redis_server(tmp_path) as server:
        rc = R()
        sub = notify.listen(server.url, rc)
        try:
            assert wait(sub.connected.is_set)
            assert rc.marks == [None]                          # subscribed: re-validate once
            before = metrics.REDIS_FAILURES.labels("pubsub")._value.get()
            server.kill()
            assert wait(lambda: not sub.connected.is_set())
            assert wait(lambda: metrics.REDIS_FAILURES.labels("pubsub")._value.get() > before)
            # (the failure is counted a moment before the gauge drops: wait for both)
            assert wait(lambda: metrics.REDIS_UP.labels("pubsub")._value.get() == 0)
            assert notify.publish(server.url, 5) is False      # logged and counted, not raised
            server.start()
            assert wait(sub.connected.is_set)
            assert rc.marks == [None, None]                    # missed messages: re-validate
            assert wait(lambda: metrics.REDIS_UP.labels("pubsub")._value.get() == 1)
            assert notify.publish(server.url, 6)
            assert wait(lambda: rc.marks[-1] == 6)
        finally:
            notify.stop_all()
        assert not sub.thread.is_alive()
