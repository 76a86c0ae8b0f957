"""Spend-control end-to-end harness: gunicorn with TWO gevent workers sharing one counter store.

What runs
  * the e2e suite's fake upstream (``tests/e2e/fake_provider.py``) in its own process: its
    OpenAI-compatible ``/v1/chat/completions`` answers every non-stream call with the recorded
    usage of ``openai/chat-response-text.json`` (19 prompt + 10 completion tokens), and serves
    ``drip`` (a 60 s stream) and ``drip-N`` (N chunks 100 ms apart);
  * one gateway per scenario, started as tests/e2e/conftest.py does it: a temporary instance
    folder (``flask --app wsgi db upgrade`` and ``flask --app wsgi create-key --scopes admin``
    run once, the folder copied for every gateway), then ``gunicorn -k gevent -w 2`` in its
    own session, configured through ``/api/admin/providers|models|keys`` only.

The fixtures (conftest.py): ``spend_gw`` is one shared gateway (usage flushed every 0.1 s)
for the tests that only need a fresh key each; the restart/kill tests start their own
through ``gateway_factory`` because they stop or cripple it and need their own
``GATEWAY_USAGE_FLUSH_INTERVAL``.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
E2E = ROOT / "tests" / "e2e"
for _p in (str(E2E), str(ROOT)):  # ROOT: `tests.support` also for tests/soak/run_soak.py
    if _p not in sys.path:
        sys.path.insert(0, _p)

import fake_provider as fp  # noqa: E402,F401  (the same fake the e2e suite uses; conftest uses fp)
# the process plumbing lives in tests/support/processes.py; re-exported here for the suites
# (and tests/soak/run_soak.py) that import it from this module
from tests.support.processes import (BIN, FAKE_PROVIDER, Gunicorn, children_of, clean_env,  # noqa: E402,F401
                                     free_port, pid_alive, stop_group, tail, upstream, wait_http,
                                     wait_until, wait_workers)

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

# Prices (USD per million tokens) chosen so every cost is an exact, readable decimal.
IN_PRICE, OUT_PRICE = 100, 200
FAKE_PROMPT, FAKE_COMPLETION = 19, 10      # the usage the fake reports for every non-stream chat
# A single user message of 60 characters: the gateway's estimate is ceil((60 + 16) / 4) = 19
# prompt tokens, exactly what the fake then reports, so with max_tokens=10 the reservation the
# gateway takes at admission equals the real cost it settles.
PROMPT_60 = "Count the budget exactly, please: spend control, end to end."
assert len(PROMPT_60) == 60
MESSAGES = [{"role": "user", "content": PROMPT_60}]


def cost(prompt: int, completion: int) -> Decimal:
    return (Decimal(prompt * IN_PRICE + completion * OUT_PRICE) / Decimal(1_000_000)).quantize(
        Decimal("0.00000001"))


MODELS = {  # public name -> upstream id at the fake
    "spend-chat": "gpt-4o-mini",
    "spend-drip": "drip",          # 60 s stream
    "spend-drip-20": "drip-20",    # 2 s stream
}


# ------------------------------------------------------------------------------------ helpers
def fake_provider(tmp: Path):
    """The e2e fake upstream (tests/e2e/fake_provider.py) as a process; a block yielding its base URL."""
    return upstream(FAKE_PROVIDER, tmp / "fake_provider.log")


def server_side_owner(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the accepted socket of the TCP connection from ``client_port``.

    Reads /proc/net/tcp for the server end (local = server_port, remote = client_port) and looks
    for its inode among the processes' file descriptors. None if not (yet) accepted.
    """
    inode = None
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            parts = line.split()
            lport = int(parts[1].rsplit(":", 1)[1], 16)
            rport = int(parts[2].rsplit(":", 1)[1], 16)
            if lport == server_port and rport == client_port and parts[9] != "0":
                inode = parts[9]
                break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def _base_env(instance: Path) -> dict:
    return clean_env(GATEWAY_INSTANCE_PATH=str(instance),
                     GATEWAY_DATABASE_URL=f"sqlite:///{instance / 'gw.db'}",
                     GATEWAY_CACHE_TTL="0.2", GATEWAY_USAGE_FLUSH_INTERVAL="0.1",
                     GATEWAY_HEALTH_INTERVAL="0", GATEWAY_LOG_LEVEL="info", PYTHONUNBUFFERED="1")


class Gateway:
    """One gunicorn master (+ workers) serving one instance folder."""

    def __init__(self, *, base_url: str, port: int, admin_key: str, instance: Path,
                 proc: subprocess.Popen, log_path: Path, env: dict):
        self.base_url, self.port, self.admin_key = base_url, port, admin_key
        self.instance, self.proc, self.log_path, self.env = instance, proc, log_path, env
        self.db_path = instance / "gw.db"
        self.counters_path = instance / "counters.db"

    # -- admin API
    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        r = requests.request(method, f"{self.base_url}/api/admin{path}", json=body, timeout=10,
                             headers={"Authorization": f"Bearer {self.admin_key}"})
        assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def make_key(self, name: str, limits: dict | None = None, budget: dict | None = None) -> tuple[int, str]:
        """(id, raw key), once every worker's config cache (TTL 0.2 s) serves it."""
        body = {"name": name, "scopes": ["chat", "models"]}
        if limits:
            body["limits"] = limits
        if budget:
            body["budget"] = budget
        created = self.admin("POST", "/keys", body)
        raw = created["key"]
        time.sleep(0.3)

        def visible():  # fresh connections, so both workers get asked
            return all(requests.get(f"{self.base_url}/v1/key/info", timeout=5,
                                    headers=self.auth(raw)).status_code == 200 for _ in range(6))
        wait_until(visible, 10, 0.1, f"key {name} to be served")
        return created["id"], raw

    @staticmethod
    def auth(raw: str) -> dict:
        return {"Authorization": f"Bearer {raw}"}

    # -- proxy calls
    def chat(self, raw: str, model: str = "spend-chat", max_tokens: int = FAKE_COMPLETION,
             stream: bool = False, timeout: float = 30, **kw) -> requests.Response:
        body = {"model": model, "messages": MESSAGES, "max_tokens": max_tokens}
        if stream:
            body["stream"] = True
        return requests.post(f"{self.base_url}/v1/chat/completions", json=body, stream=stream,
                             headers=self.auth(raw), timeout=timeout, **kw)

    def key_info(self, raw: str) -> dict:
        r = requests.get(f"{self.base_url}/v1/key/info", headers=self.auth(raw), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def budget_state(self, raw: str) -> dict:
        budgets = self.key_info(raw)["state"]["budgets"]
        assert len(budgets) == 1, budgets
        return budgets[0]

    # -- the usage DB (read-only)
    def query(self, sql: str, params=()) -> list[dict]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def usage_for_key(self, key_id: int) -> list[dict]:
        return self.query("SELECT request_id, status_code, CAST(cost_usd AS TEXT) AS cost,"
                          " prompt_tokens, completion_tokens, tokens_estimated"
                          " FROM usage_records WHERE key_id = ?", (key_id,))

    def rows_by_request_id(self) -> dict[str, int]:
        rows = self.query("SELECT request_id, COUNT(*) AS n FROM usage_records"
                          " WHERE request_id IS NOT NULL GROUP BY request_id")
        return {r["request_id"]: r["n"] for r in rows}

    def settled_usage(self, key_id: int, expected_rows: int, timeout: float = 10) -> list[dict]:
        """The key's usage rows once ``expected_rows`` of them have been flushed."""
        wait_until(lambda: len(self.usage_for_key(key_id)) >= expected_rows, timeout, 0.1,
                   f"{expected_rows} usage rows for key {key_id}")
        time.sleep(0.3)  # nothing more should arrive: re-read
        return self.usage_for_key(key_id)

    # -- processes
    @property
    def master_pid(self) -> int:
        return self.proc.pid

    def workers(self) -> list[int]:
        return children_of(self.proc.pid)

    def wait_workers(self, n: int, exclude: set[int] = frozenset(), timeout: float = 30) -> list[int]:
        return wait_workers(self.proc.pid, n, exclude, timeout)

    def wait_serving(self, timeout: float = 30) -> None:
        wait_http(f"{self.base_url}/v1/models", 401, timeout, 0.1, proc=self.proc,
                  log_path=self.log_path, what="gunicorn to serve")

    def stop(self, sig=signal.SIGINT, grace: float = 15) -> None:
        stop_group(self.proc, sig, grace)


def start_gateway(instance: Path, env: dict, admin_key: str, log_path: Path, *, workers: int = 2,
                  args=(), stdout=None, wait: bool = True, timeout: float = 30) -> Gateway:
    """``gunicorn -k gevent -w WORKERS [ARGS] wsgi:app`` on `instance` with `env` as a Gateway;
    with wait=True, once it serves and has all its workers (stopped again if it does not)."""
    server = Gunicorn(env, workers=workers, log_path=log_path, stdout=stdout, args=args).start()
    gw = Gateway(base_url=server.url, port=server.port, admin_key=admin_key, instance=instance,
                 proc=server.proc, log_path=log_path, env=env)
    if wait:
        try:
            gw.wait_serving(timeout)
            gw.wait_workers(workers)
        except BaseException:
            gw.stop()
            raise
    return gw


# ------------------------------------------------------------------------------------ load
def fire_at_once(n: int, fn) -> list:
    """Run ``fn(i)`` in ``n`` threads released together by a barrier; results in order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # keep it: the test decides
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


# ------------------------------------------------------------------------------------ raw connections
class RawConn:
    """One persistent HTTP/1.1 connection (http.client) whose server-side worker pid is known."""

    def __init__(self, gw: Gateway, timeout: float = 30):
        import http.client
        self.gw = gw
        self.conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
        self.conn.connect()
        self.local_port = self.conn.sock.getsockname()[1]
        self.owner: int | None = None

    def find_owner(self, timeout: float = 5.0) -> int | None:
        """The worker that accepted this connection (polls until it has been accepted)."""
        deadline = time.monotonic() + timeout
        while self.owner is None and time.monotonic() < deadline:
            self.owner = server_side_owner(self.local_port, self.gw.port, self.gw.workers())
            if self.owner is None:
                time.sleep(0.02)
        return self.owner

    def chat(self, raw: str, model: str = "spend-chat", max_tokens: int = FAKE_COMPLETION,
             stream: bool = False):
        """Send a chat completion; returns the http.client response (body not read yet)."""
        import json
        body = {"model": model, "messages": MESSAGES, "max_tokens": max_tokens}
        if stream:
            body["stream"] = True
        self.conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                          headers={"Authorization": f"Bearer {raw}",
                                   "Content-Type": "application/json"})
        return self.conn.getresponse()

    def close(self) -> None:
        self.conn.close()


def pinned_connections(gw: Gateway, wanted: dict[int, int], attempts: int = 200) -> dict[int, list[RawConn]]:
    """Open connections until ``wanted[pid]`` of them were accepted by each worker ``pid``."""
    got: dict[int, list[RawConn]] = {pid: [] for pid in wanted}
    for _ in range(attempts):
        if all(len(got[p]) >= n for p, n in wanted.items()):
            return got
        c = RawConn(gw)
        owner = c.find_owner()
        if owner in got and len(got[owner]) < wanted[owner]:
            got[owner].append(c)
        else:
            c.close()
    raise AssertionError(f"could not pin connections {wanted}: got "
                         f"{ {p: len(v) for p, v in got.items()} }")


# ------------------------------------------------------------------------------------ sustained load
class Outcome:
    __slots__ = ("t", "status", "rid", "err", "cid")

    def __init__(self, t: float, status: int | None, rid: str | None, err: str | None,
                 cid: int | None = None):
        self.t, self.status, self.rid, self.err, self.cid = t, status, rid, err, cid

    def __repr__(self) -> str:
        return f"Outcome(t={self.t:.3f}, status={self.status}, rid={self.rid}, err={self.err}, cid={self.cid})"


class Load:
    """``clients`` threads sending chat completions back to back until :meth:`stop`.

    ``pinned=False``: a fresh connection per request (requests, no session), so a restarted
    gunicorn's new workers get new connections at once. ``pinned=True``: one persistent
    http.client connection per client, reopened after an error, each attributed to the worker
    that accepted it (``owners[cid]``), so every outcome is attributable to a worker pid.
    Times are ``time.monotonic()`` at the moment the response (or error) was complete.
    """

    def __init__(self, gw: Gateway, raw: str, clients: int = 20, pinned: bool = False):
        self.gw, self.raw, self.clients, self.pinned = gw, raw, clients, pinned
        self.outcomes: list[Outcome] = []
        self.owners: dict[int, int | None] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cids = iter(range(1, 1_000_000))
        self._lock = threading.Lock()

    def start(self) -> "Load":
        target = self._pinned_client if self.pinned else self._fresh_client
        self._threads = [threading.Thread(target=target, daemon=True) for _ in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _add(self, o: Outcome) -> None:
        with self._lock:
            self.outcomes.append(o)

    def _fresh_client(self) -> None:
        import json
        url = f"{self.gw.base_url}/v1/chat/completions"
        body = json.dumps({"model": "spend-chat", "messages": MESSAGES,
                           "max_tokens": FAKE_COMPLETION})
        headers = {**self.gw.auth(self.raw), "Content-Type": "application/json",
                   "Connection": "close"}
        while not self._stop.is_set():
            try:
                r = requests.post(url, data=body, headers=headers, timeout=30)
                self._add(Outcome(time.monotonic(), r.status_code, r.headers.get("x-request-id"),
                                  None))
            except Exception as exc:
                self._add(Outcome(time.monotonic(), None, None, type(exc).__name__))
                time.sleep(0.02)

    def _pinned_client(self) -> None:
        conn: RawConn | None = None
        cid = 0
        while not self._stop.is_set():
            try:
                if conn is None:
                    with self._lock:
                        cid = next(self._cids)
                        self.owners[cid] = None
                    conn = RawConn(self.gw, timeout=30)
                resp = conn.chat(self.raw)
                resp.read()
                t = time.monotonic()
                if self.owners[cid] is None:  # accepted and answered: its worker holds it now
                    self.owners[cid] = conn.find_owner(timeout=0.5)
                self._add(Outcome(t, resp.status, resp.getheader("x-request-id"), None, cid))
            except Exception as exc:
                self._add(Outcome(time.monotonic(), None, None, type(exc).__name__, cid))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
        if conn is not None:
            conn.close()

    # -- views
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200]

    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is None]

    def statuses(self) -> dict:
        from collections import Counter
        return dict(Counter(o.status if o.status else o.err for o in self.outcomes))


def exit_flushes(log_path: Path) -> dict[int, int]:
    """{worker pid: usage records it wrote in gunicorn's worker_exit hook} from the log."""
    import re
    out: dict[int, int] = {}
    for m in re.finditer(r"worker (\d+) flushed (\d+) usage record", log_path.read_text(errors="replace")):
        out[int(m.group(1))] = out.get(int(m.group(1)), 0) + int(m.group(2))
    return out


def store_budget(counters_path: Path, scope: str) -> tuple[Decimal, Decimal]:
    """(spent, reserved) of a budget scope read straight from the counter store file."""
    conn = sqlite3.connect(f"file:{counters_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT spent, reserved FROM rl_budget WHERE scope=?", (scope,)).fetchall()
    finally:
        conn.close()
    assert len(rows) == 1, rows
    return Decimal(rows[0][0]), Decimal(rows[0][1])
