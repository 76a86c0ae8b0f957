"""Faults end to end: each upstream, client and store failure against the real app (gunicorn + 2
gevent workers) and a real misbehaving upstream process. Each must give the documented
OpenAI-shaped error, exactly one usage row, and leave no stuck stream, leaked socket or dead
worker behind (checked at the end against the baseline taken at the start).
"""
from __future__ import annotations

import json
import os
import resource
import socket
import sqlite3
import threading
import time

import pytest
import requests

from faults_env import DEADLINE, MAX_UPSTREAM
from spend_harness import wait_until

STATE: dict = {}


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric(gw, name: str) -> float:
    text = requests.get(f"{gw.base_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def chat(gw, model: str, stream: bool = False, timeout: float = 30, **kw):
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    return requests.post(f"{gw.base_url}/v1/chat/completions", json=body, stream=stream, timeout=timeout,
                         headers={"Authorization": f"Bearer {gw.key}"}, **kw)


def row(gw, rid: str) -> dict:
    rows = wait_until(lambda: gw.query("SELECT * FROM usage_records WHERE request_id = ?", (rid,)), 10, 0.1,
                      f"usage row {rid}")
    time.sleep(0.2)
    rows = gw.query("SELECT * FROM usage_records WHERE request_id = ?", (rid,))
    assert len(rows) == 1, rows
    return rows[0]


def sse_events(resp) -> list:
    out = []
    for line in resp.iter_lines():
        if line.startswith(b"data: "):
            data = line[6:]
            out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def test_baseline(faults):
    for _ in range(6):  # warm both workers (fresh connections spread over them)
        assert chat(faults, "f-ok").status_code == 200
    time.sleep(0.5)
    STATE["workers"] = faults.workers()
    STATE["fds"] = {pid: fds(pid) for pid in STATE["workers"]}
    assert metric(faults, "gateway_streams_in_flight") == 0


@pytest.mark.parametrize("model,status,code", [
    ("net-refused", 502, "upstream_unreachable"),
    ("net-dns", 502, "upstream_unreachable"),
    ("f-http-500", 502, "upstream_error"),
    ("f-malformed", 502, "malformed_response"),
    ("f-truncated", 502, "malformed_response"),
    ("f-slow-first-byte", 504, "upstream_timeout"),
    ("f-hang", 504, "upstream_timeout"),
    ("f-never-close", 504, "upstream_timeout"),
    ("f-huge", 502, "malformed_response"),
])
def test_upstream_failure_is_an_openai_error_with_one_usage_row(faults, model, status, code):
    started = time.monotonic()
    r = chat(faults, model)
    elapsed = time.monotonic() - started
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "sk-fault" not in r.text
    assert elapsed < DEADLINE + 2  # bounded by the read timeout / the deadline
    rec = row(faults, r.headers["x-request-id"])
    assert rec["status_code"] == status and rec["error_class"] and float(rec["cost_usd"] or 0) == 0


def test_huge_body_names_the_cap(faults):
    r = chat(faults, "f-huge")
    assert r.status_code == 502 and str(MAX_UPSTREAM) in r.json()["error"]["message"]


def test_connect_timeout_to_a_blackhole(faults):
    started = time.monotonic()
    r = chat(faults, "net-blackhole")
    assert r.status_code in (502, 504), r.text
    assert r.json()["error"]["code"] in ("upstream_timeout", "upstream_unreachable")
    assert time.monotonic() - started < 3  # the 1 s connect timeout, not the OS default
    assert row(faults, r.headers["x-request-id"])["status_code"] == r.status_code


def test_429_passes_retry_after_through(faults):
    r = chat(faults, "f-http-429")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert row(faults, r.headers["x-request-id"])["error_class"] == "rate_limited"


def test_slow_trickle_within_the_read_timeout_completes(faults):
    r = chat(faults, "f-trickle", stream=True)
    events = sse_events(r)
    assert events[-1] == "[DONE]"
    text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events[:-1] if e.get("choices"))
    assert text == "".join(f"w{i} " for i in range(6))
    assert row(faults, r.headers["x-request-id"])["status_code"] == 200


def test_endless_trickle_is_cut_at_the_deadline(faults):
    started = time.monotonic()
    r = chat(faults, "f-trickle-forever", stream=True)
    events = sse_events(r)
    took = time.monotonic() - started
    assert DEADLINE - 0.5 < took < DEADLINE + 3
    assert events[-1]["error"]["code"] == "request_deadline" and "[DONE]" not in events
    rec = row(faults, r.headers["x-request-id"])
    assert rec["status_code"] == 504 and rec["completion_tokens"] > 0  # what was delivered is billed


@pytest.mark.parametrize("model,code", [("f-cut-stream", "malformed_response"), ("f-no-done", "stream_truncated")])
def test_stream_ending_early_gets_an_in_band_error(faults, model, code):
    r = chat(faults, model, stream=True)
    assert r.status_code == 200
    events = sse_events(r)
    assert events[-1]["error"]["code"] == code and "[DONE]" not in events
    assert any(e.get("choices") for e in events[:-1])  # the content before the cut was delivered
    assert row(faults, r.headers["x-request-id"])["status_code"] == 502


def test_client_disconnect_mid_stream_stops_the_upstream(faults):
    before = requests.get(f"{faults.upstream_url}/_stats", timeout=5).json()["closed_early"].get("long-stream", 0)
    sock = socket.create_connection(("127.0.0.1", faults.port))
    body = json.dumps({"model": "f-long-stream", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {faults.key}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    got = b""
    while got.count(b"data: ") < 3:
        got += sock.recv(65536)
    rid = next(l.split(b":", 1)[1].strip().decode() for l in got.split(b"\r\n") if l.lower().startswith(b"x-request-id"))
    sock.close()
    rec = row(faults, rid)
    assert rec["status_code"] == 499 and rec["error_class"] == "client_disconnected" and rec["completion_tokens"] >= 1
    wait_until(lambda: requests.get(f"{faults.upstream_url}/_stats", timeout=5).json()["closed_early"]
               .get("long-stream", 0) > before, 15, 0.2, "the upstream to see the gateway hang up")


def test_client_disconnect_mid_request_body(faults):
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", faults.port))
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {faults.key}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{\"model\": ".encode())
        sock.close()
    assert chat(faults, "f-ok").status_code == 200


def test_idle_and_slow_loris_connections_do_not_starve_others(faults):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", faults.port)))
        for s in idle[:100]:  # slow-loris: a request line and a header byte, never finished
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        latencies = []
        for _ in range(20):
            t = time.monotonic()
            assert chat(faults, "f-ok", timeout=10).status_code == 200
            latencies.append(time.monotonic() - t)
        assert max(latencies) < 2.0, latencies
        assert faults.workers() == STATE["workers"]
    finally:
        for s in idle:
            s.close()


def test_db_locked_requests_still_served_and_usage_lands_after(faults):
    conn = sqlite3.connect(faults.db_path, timeout=10)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        rids = []
        for _ in range(10):
            r = chat(faults, "f-ok", timeout=10)
            assert r.status_code == 200
            rids.append(r.headers["x-request-id"])
        time.sleep(1.5)  # the writer's flushes fail meanwhile and keep the batch
    finally:
        conn.rollback()
        conn.close()
    for rid in rids:
        assert row(faults, rid)["status_code"] == 200


def test_no_leak_after_all_faults(faults):
    assert faults.workers() == STATE["workers"], "a worker died or was restarted"
    wait_until(lambda: metric(faults, "gateway_streams_in_flight") == 0, 15, 0.2, "no stream left in flight")

    def settled():
        now = {pid: fds(pid) for pid in STATE["workers"]}
        return all(now[p] <= STATE["fds"][p] + 15 for p in now) and now
    got = wait_until(settled, 30, 0.5, f"fds back near the baseline {STATE['fds']}")
    STATE["fds_after"] = got
    assert chat(faults, "f-ok").status_code == 200


def test_sigterm_lets_streams_in_flight_finish(faults):
    """Last (it stops the gateway): SIGTERM with 5 streams of ~2.4 s in flight (sent 1 s before);
    gunicorn's graceful timeout (10 s here) lets each finish with [DONE], its usage row written
    on the way out."""
    import signal
    results: list = [None] * 5

    def run(i):
        r = chat(faults, "f-trickle", stream=True, timeout=40)
        results[i] = (r.headers["x-request-id"], sse_events(r))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # all streaming
    os.kill(faults.master_pid, signal.SIGTERM)
    for t in threads:
        t.join(40)
    assert faults.proc.wait(30) == 0
    for rid, events in results:
        assert events[-1] == "[DONE]" and len([e for e in events if e != "[DONE]" and e.get("choices")]) >= 6
        rec = faults.query("SELECT status_code FROM usage_records WHERE request_id = ?", (rid,))
        assert rec == [{"status_code": 200}]
