"""Usage-store faults end to end: the usage DB made read-only, then the disk "full", under the real
app (gunicorn + 2 gevent workers) and the real fault upstream.

How the faults are made real for the running workers (we run as root, so chmod stops nothing):
  * read-only: ``chattr +i`` on ``gw.db`` and ``gw.db-wal`` (ext4's immutable flag stops root
    too, on descriptors already open: writes fail with EPERM, SQLite: "disk I/O error").
    ``gw.db-shm`` is left alone: it is mmap'ed, and a write fault on it would be SIGBUS.
  * disk full: RLIMIT_FSIZE lowered to 1 byte on both worker processes (``prlimit``), so every
    write to any file past offset 0 fails with EFBIG -- the usage DB, its WAL, the counter store,
    the response cache: all the disk is "full" for the workers. CPython ignores SIGXFSZ, so the
    workers live on and SQLite reports the failed write ("disk I/O error" / "database or disk
    is full" for a short write). The workers' stdout/stderr is a pipe here (read by the test),
    so their log lines still get out.

The contract checked for each: while writes fail every chat request is still served (200, streams
to [DONE]); no usage row of theirs is written meanwhile (the fault is effective); the failures
are logged without the SQL, its parameters or any key/owner, and counted
(gateway_usage_write_failures_total up, gateway_usage_pending holding them); once writes work
again every kept record lands exactly once: rows == responses, and the loss equals the counted
drops (gateway_usage_dropped_total) exactly -- zero here, and a bounded backlog
(GATEWAY_USAGE_MAX_PENDING=4) in the last test, where drops do happen.
"""
from __future__ import annotations

import json
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from spend_harness import _base_env, pinned_connections, start_gateway
from tests.support.processes import migrate_and_admin_key, start_upstream, stop_group, wait_until

HERE = Path(__file__).resolve().parent
OWNER = "canary-owner@example.org"
CANARY = "canary-prompt-5f1e"


class PipedLog:
    """A child's stdout+stderr read through a pipe (RLIMIT_FSIZE does not apply to pipes)."""

    def __init__(self, proc: subprocess.Popen, path: Path):
        self.proc, self.path, self.lines = proc, path, []
        self._fh = open(path, "w")
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            self._fh.write(line)
            self._fh.flush()

    def text(self, start: int = 0) -> str:
        return "".join(self.lines[start:])


def metric(gw, name: str) -> float:
    text = requests.get(f"{gw.base_url}/metrics", timeout=5).text
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else 0.0


def start_stack(tmp: Path, **extra_env):
    upstream, up_url = start_upstream(HERE / "fault_upstream.py", tmp / "fault_upstream.log",
                                      what="fault upstream")
    instance = tmp / "gw"
    instance.mkdir()
    env = _base_env(instance)
    env.update({"GATEWAY_WORKERS": "2", "GATEWAY_USAGE_FLUSH_INTERVAL": "0.2", **extra_env})
    admin_key = migrate_and_admin_key(env, "store-admin")
    gw = start_gateway(instance, env, admin_key, tmp / "gunicorn.log", workers=2,
                       args=("--graceful-timeout", "10"), stdout=subprocess.PIPE, wait=False)
    gw.log, gw.upstream = PipedLog(gw.proc, gw.log_path), upstream
    gw.wait_serving()
    gw.wait_workers(2)
    prov = gw.admin("POST", "/providers", {"name": "faulty", "type": "openai-compatible",
                                           "api_base": f"{up_url}/v1", "api_key": "sk-fault-upstream-secret",
                                           "connect_timeout": 1.0, "read_timeout": 5.0})
    for b in ("ok", "ok-stream"):
        gw.admin("POST", "/models", {"provider_id": prov["id"], "model_id": b, "name": f"s-{b}",
                                     "input_price_per_mtok": 1, "output_price_per_mtok": 2})
    created = gw.admin("POST", "/keys", {"name": "store-faults", "scopes": ["chat", "models"], "owner": OWNER})
    gw.key = created["key"]
    wait_until(lambda: all(requests.get(f"{gw.base_url}/v1/key/info", timeout=5,
                                        headers=gw.auth(gw.key)).status_code == 200 for _ in range(6)),
               10, 0.1, "the key to be served")
    return gw


def stop_stack(gw):
    for p in gw.workers():  # whatever a test left behind: let the exit flush write
        try:
            resource.prlimit(p, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except OSError:
            pass
    subprocess.run(["chattr", "-i", str(gw.db_path), f"{gw.db_path}-wal"], capture_output=True)
    stop_group(gw.proc, signal.SIGINT, 15)
    stop_group(gw.upstream, signal.SIGTERM, 5)


@pytest.fixture(scope="module")
def store_gw(tmp_path_factory):
    gw = start_stack(tmp_path_factory.mktemp("e2e_store_faults"))
    try:
        yield gw
    finally:
        stop_stack(gw)


def call(gw, i: int) -> tuple[str, str]:
    """One request of a mixed sequence (non-stream / stream); returns (request id, kind), asserting
    the client got a complete, successful answer."""
    stream = i % 2 == 1
    body = {"model": "s-ok-stream" if stream else "s-ok", "stream": stream, "user": OWNER,
            "messages": [{"role": "user", "content": f"{CANARY} {i} {time.time()}"}]}
    r = requests.post(f"{gw.base_url}/v1/chat/completions", json=body, stream=stream, timeout=20,
                      headers={**gw.auth(gw.key), "Connection": "close"})
    assert r.status_code == 200, (r.status_code, r.text[:500])
    if stream:
        lines = [l for l in r.iter_lines() if l.startswith(b"data: ")]
        assert lines[-1] == b"data: [DONE]", lines[-3:]
        assert not any(b'"error"' in l for l in lines), lines
    else:
        assert r.json()["choices"][0]["message"]["content"] == "fine"
    return r.headers["x-request-id"], "stream" if stream else "chat"


def rows_for(gw, rids) -> dict[str, int]:
    got = gw.rows_by_request_id()
    return {rid: got.get(rid, 0) for rid in rids}


def warm(gw) -> None:
    """Both kinds of request on a connection pinned to each worker: every worker's usage writer,
    response cache and metric files exist before the fault (creating them is not what is tested)."""
    rids = []
    conns = pinned_connections(gw, {pid: 1 for pid in gw.workers()})
    for i, (pid, (conn,)) in enumerate(sorted(conns.items())):
        for stream in (False, True):
            body = {"model": "s-ok-stream" if stream else "s-ok", "stream": stream,
                    "messages": [{"role": "user", "content": f"warm {pid} {stream} {time.time()}"}]}
            conn.conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                              headers={**gw.auth(gw.key), "Content-Type": "application/json"})
            resp = conn.conn.getresponse()
            resp.read()
            assert resp.status == 200
            rids.append(resp.getheader("x-request-id"))
        conn.close()
    wait_until(lambda: all(n == 1 for n in rows_for(gw, rids).values()), 10, 0.1, "warm-up rows")


def check_log(chunk: str, gw) -> None:
    assert "not written" in chunk, chunk[-3000:]
    assert "keeping it for retry" in chunk
    for secret in (gw.key, gw.admin_key, "sk-fault-upstream-secret", OWNER, CANARY):
        assert secret not in chunk, f"{secret!r} in the log"
    for sql in ("INSERT INTO", "[parameters:", "[SQL:"):
        assert sql not in chunk, f"{sql!r}: the statement reached the log"


def run_fault(gw, apply, lift, n: int = 30) -> dict:
    warm(gw)
    fail0 = metric(gw, "gateway_usage_write_failures_total")
    drop0 = metric(gw, "gateway_usage_dropped_total")
    pend0 = metric(gw, "gateway_usage_pending")
    mark = len(gw.log.lines)
    apply()
    try:
        rids = [call(gw, i)[0] for i in range(n)]
        time.sleep(1.0)  # several flush rounds (every 0.2 s), all refused
        written_meanwhile = sum(rows_for(gw, rids).values())
        failures = metric(gw, "gateway_usage_write_failures_total") - fail0
        pending = metric(gw, "gateway_usage_pending") - pend0
        log_during = gw.log.text(mark)
    finally:
        lift()
    assert written_meanwhile == 0, "the fault did not stop the writes"
    assert failures >= 2, failures
    assert pending == n, pending
    check_log(log_during, gw)
    wait_until(lambda: sum(rows_for(gw, rids).values()) >= n, 15, 0.1, "the kept records to land")
    time.sleep(0.5)
    counts = rows_for(gw, rids)
    dropped = metric(gw, "gateway_usage_dropped_total") - drop0
    assert dropped == 0
    assert all(c == 1 for c in counts.values()), {r: c for r, c in counts.items() if c != 1}
    assert metric(gw, "gateway_usage_pending") - pend0 == 0
    rows = gw.query(f"SELECT status_code, stream, owner FROM usage_records WHERE request_id IN "
                    f"({','.join('?' * len(rids))})", rids)
    assert len(rows) == n and {r["status_code"] for r in rows} == {200}
    assert sum(r["stream"] for r in rows) == n // 2 and {r["owner"] for r in rows} == {OWNER}
    errs = sorted({line.split("not written (", 1)[1].split(")", 1)[0]
                   for line in log_during.splitlines() if "not written (" in line})
    print(f"\n[store-fault] {n} requests served 200 while writes failed; {failures:.0f} refused "
          f"batches counted; errors logged: {errs}; {n} rows landed after, 0 dropped")
    return {"failures": failures, "errors": errs}


def test_usage_db_read_only(store_gw):
    gw = store_gw
    files = [str(gw.db_path), f"{gw.db_path}-wal"]
    probe = subprocess.run(["chattr", "+i", *files], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"chattr +i not available here: {probe.stderr.strip()}")
    subprocess.run(["chattr", "-i", *files], check=True)
    got = run_fault(gw, lambda: subprocess.run(["chattr", "+i", *files], check=True),
                    lambda: subprocess.run(["chattr", "-i", *files], check=True))
    assert any("disk I/O error" in e or "readonly" in e for e in got["errors"]), got


def _fsize(gw, limit):
    def do():
        for pid in gw.workers():
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return do


def test_disk_full_for_the_workers(store_gw):
    gw = store_gw
    try:
        resource.prlimit(gw.workers()[0], resource.RLIMIT_FSIZE)
    except (OSError, AttributeError) as exc:
        pytest.skip(f"prlimit on another process is not available: {exc}")
    workers = gw.workers()
    got = run_fault(gw, _fsize(gw, 1), _fsize(gw, resource.RLIM_INFINITY))
    assert any("disk I/O error" in e or "disk is full" in e for e in got["errors"]), got
    assert gw.workers() == workers, "a worker died of the full disk"


def test_bounded_backlog_loses_exactly_the_counted_drops(tmp_path_factory):
    """GATEWAY_USAGE_MAX_PENDING=4 per worker, 30 requests while the disk is full: each worker keeps
    its newest 4 and drops (counts, logs) the rest; once writes work again exactly the kept ones
    land: responses == rows + counted drops, with drops > 0."""
    gw = start_stack(tmp_path_factory.mktemp("e2e_store_backlog"), GATEWAY_USAGE_MAX_PENDING="4")
    try:
        warm(gw)
        drop0 = metric(gw, "gateway_usage_dropped_total")
        mark = len(gw.log.lines)
        _fsize(gw, 1)()
        try:
            rids = [call(gw, i)[0] for i in range(30)]
            time.sleep(0.6)
            pending = metric(gw, "gateway_usage_pending")
            dropped = metric(gw, "gateway_usage_dropped_total") - drop0
        finally:
            _fsize(gw, resource.RLIM_INFINITY)()
        assert pending <= 8, pending
        assert dropped == 30 - pending, (dropped, pending)
        wait_until(lambda: sum(rows_for(gw, rids).values()) >= pending, 15, 0.1, "the kept records")
        time.sleep(0.6)
        counts = rows_for(gw, rids)
        landed = sum(counts.values())
        assert all(c <= 1 for c in counts.values())
        assert landed + dropped == 30 and dropped > 0, (landed, dropped)
        chunk = gw.log.text(mark)
        assert "usage writer backlog full" in chunk and "dropped so far" in chunk
        check_log(chunk, gw)
        print(f"\n[store-backlog] 30 requests served while the disk was full; {landed:.0f} rows landed "
              f"after, {dropped:.0f} counted as dropped (landed + dropped == 30)")
    finally:
        stop_stack(gw)
