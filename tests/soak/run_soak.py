#!/usr/bin/env python3
"""Soak run, on demand (not part of pytest or CI): the real gateway under mixed traffic for N minutes.

    .venv/bin/python tests/soak/run_soak.py --minutes 10            # writes docs/bench/soak-<date>.md

What runs
  * the e2e suite's fake upstream (tests/e2e/fake_provider.py, its own process): OpenAI chat
    (recorded body and stream transcript) and embeddings;
  * the gateway under ``gunicorn -k gevent -w 2`` on a fresh instance folder (SQLite), configured
    through the admin API only: one provider, a chat and an embedding model (priced), ``--clients``
    keys with limits and budgets set far above what the run can reach (rpm 10^6, concurrency 1000,
    $100000 total), and one deliberately limited key (rpm ``--limited-rpm``) whose 429s are
    expected and counted apart;
  * ``--clients`` threads, each with its own key and keep-alive session, sending back to back
    (``--think`` seconds between requests) a mix of non-stream chat (50%), streaming chat with
    usage (30%) and embeddings (20%); one more thread sends with the limited key at 2 req/s;
  * every ``--sample`` seconds the RSS (VmRSS) and open descriptors of each worker are read from
    /proc, and worker pids are tracked (a restart shows as a new pid).

At the end (after a graceful SIGTERM, so every worker flushes its usage records) the summary is
printed and written as markdown: requests per kind and status, error rate, latency p50/p95/max,
RSS start/end/max per worker, and usage rows in the DB against the responses the clients counted
(each response's x-request-id must have exactly one row). Exit status 1 when a check fails:
a 5xx or transport error, a stream without [DONE], a 429 on an unlimited key, a worker restart,
or rows != responses.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e_spend"))
from spend_harness import _base_env, start_gateway, stop_group, tail, wait_until  # noqa: E402
from tests.support.processes import FAKE_PROVIDER, migrate_and_admin_key, start_upstream  # noqa: E402

import fake_provider as fp  # noqa: E402  (on sys.path through spend_harness)

KINDS = (("chat", 0.5), ("stream", 0.3), ("embed", 0.2))


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def nfds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status: dict[str, Counter] = defaultdict(Counter)  # kind -> status/err -> n
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.rids: dict[str, str] = {}                           # request id -> kind
        self.problems: list[str] = []

    def add(self, kind: str, status, rid: str | None, took: float, problem: str | None = None):
        with self.lock:
            self.status[kind][status] += 1
            self.latency[kind].append(took)
            if rid:
                self.rids[rid] = kind
            if problem and len(self.problems) < 50:
                self.problems.append(problem)


def client(gw, raw: str, stats: Stats, stop: threading.Event, think: float, seed: int, kinds=KINDS,
           label: str | None = None):
    rnd = random.Random(seed)
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {raw}"})
    names, weights = zip(*kinds)
    i = 0
    while not stop.is_set():
        i += 1
        kind = rnd.choices(names, weights)[0]
        tag = label or kind
        t0 = time.monotonic()
        try:
            if kind == "embed":
                r = s.post(f"{gw.base_url}/v1/embeddings", timeout=30,
                           json={"model": "soak-embed", "input": f"soak embedding {seed} {i}"})
                ok = r.status_code == 200 and r.json()["data"][0]["embedding"]
            elif kind == "stream":
                r = s.post(f"{gw.base_url}/v1/chat/completions", stream=True, timeout=30,
                           json={"model": "soak-chat", "stream": True, "stream_options": {"include_usage": True},
                                 "messages": [{"role": "user", "content": f"soak stream {seed} {i}"}]})
                lines = [l for l in r.iter_lines() if l.startswith(b"data: ")] if r.status_code == 200 else []
                ok = r.status_code == 200 and lines and lines[-1] == b"data: [DONE]" \
                    and not any(b'"error"' in l for l in lines)
                if r.status_code != 200:
                    r.content
            else:
                r = s.post(f"{gw.base_url}/v1/chat/completions", timeout=30,
                           json={"model": "soak-chat",
                                 "messages": [{"role": "user", "content": f"soak chat {seed} {i}"}]})
                ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
            took = time.monotonic() - t0
            status = r.status_code if (ok or r.status_code != 200) else f"{r.status_code}-incomplete"
            stats.add(tag, status, r.headers.get("x-request-id"), took,
                      None if ok or r.status_code == 429 else f"{tag} {r.status_code} {r.text[:200]!r}")
        except Exception as exc:
            stats.add(tag, type(exc).__name__, None, time.monotonic() - t0, f"{tag} {exc!r}"[:300])
            s = requests.Session()
            s.headers.update({"Authorization": f"Bearer {raw}"})
            time.sleep(0.1)
        if think:
            time.sleep(think)


def start(tmp: Path, log_level: str):
    fake, fake_url = start_upstream(FAKE_PROVIDER, tmp / "fake_provider.log", timeout=20)
    instance = tmp / "gw"
    instance.mkdir()
    env = _base_env(instance)
    env.update({"GATEWAY_WORKERS": "2", "GATEWAY_USAGE_FLUSH_INTERVAL": "1", "GATEWAY_CACHE_TTL": "2",
                "GATEWAY_LOG_LEVEL": log_level})
    admin_key = migrate_and_admin_key(env, "soak-admin")
    gw = start_gateway(instance, env, admin_key, tmp / "gunicorn.log", workers=2)
    gw.fake = fake
    prov = gw.admin("POST", "/providers", {"name": "soak-fake", "type": "openai-compatible",
                                           "api_base": f"{fake_url}/v1", "api_key": fp.OPENAI_KEY,
                                           "connect_timeout": 2.0, "read_timeout": 20.0})
    gw.admin("POST", "/models", {"provider_id": prov["id"], "model_id": "gpt-4o-mini", "name": "soak-chat",
                                 "kind": "chat", "input_price_per_mtok": 1, "output_price_per_mtok": 2})
    gw.admin("POST", "/models", {"provider_id": prov["id"], "model_id": "text-embedding-3-small",
                                 "name": "soak-embed", "kind": "embedding", "input_price_per_mtok": 1,
                                 "output_price_per_mtok": 0})
    return gw


def make_key(gw, name: str, limits: dict, budget: dict | None) -> str:
    body = {"name": name, "scopes": ["chat", "embeddings", "models"], "limits": limits}
    if budget:
        body["budget"] = budget
    raw = gw.admin("POST", "/keys", body)["key"]
    wait_until(lambda: all(requests.get(f"{gw.base_url}/v1/key/info", timeout=5,
                                        headers=gw.auth(raw)).status_code == 200 for _ in range(4)),
               10, 0.1, f"key {name}")
    return raw


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--think", type=float, default=0.01, help="seconds between a client's requests")
    ap.add_argument("--sample", type=float, default=10, help="RSS sampling period, seconds")
    ap.add_argument("--limited-rpm", type=int, default=30)
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--out", type=Path, default=None,
                    help="markdown summary (default docs/bench/soak-<UTC date-time>.md)")
    ap.add_argument("--workdir", type=Path, default=None, help="instance/logs folder (default a temp dir)")
    args = ap.parse_args(argv)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "docs" / "bench" / f"soak-{stamp}.md"
    import tempfile
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"[soak] workdir {tmp}; {args.minutes} min, {args.clients} clients + 1 limited", flush=True)

    gw = start(tmp, args.log_level)
    stats = Stats()
    stop = threading.Event()
    samples: list[tuple[float, dict[int, tuple[int | None, int | None]]]] = []
    pids_seen: list[int] = []
    threads = []
    try:
        keys = [make_key(gw, f"soak-{i}", {"rpm": 1_000_000, "concurrency": 1000},
                         {"amount_usd": "100000", "period": "total"}) for i in range(args.clients)]
        limited = make_key(gw, "soak-limited", {"rpm": args.limited_rpm}, {"amount_usd": "100000", "period": "total"})
        for i, raw in enumerate(keys):
            threads.append(threading.Thread(target=client, args=(gw, raw, stats, stop, args.think, i), daemon=True))
        threads.append(threading.Thread(target=client, args=(gw, limited, stats, stop, 0.5, 999),
                                        kwargs={"kinds": (("chat", 1.0),), "label": "limited-chat"}, daemon=True))

        def sample():
            pids = gw.workers()
            for p in pids:
                if p not in pids_seen:
                    pids_seen.append(p)
            samples.append((time.monotonic(), {p: (rss_kb(p), nfds(p)) for p in pids}))

        sample()
        t_start = time.monotonic()
        for t in threads:
            t.start()
        end = t_start + args.minutes * 60
        next_sample = t_start + args.sample
        while time.monotonic() < end:
            time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
            if time.monotonic() >= next_sample:
                sample()
                done = sum(sum(c.values()) for c in stats.status.values())
                print(f"[soak] t={time.monotonic() - t_start:5.0f}s requests={done} "
                      f"rss_kb={ {p: v[0] for p, v in samples[-1][1].items()} }", flush=True)
                next_sample += args.sample
        stop.set()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - t_start
        sample()
        time.sleep(3)  # two flush intervals
        rows_before_stop = gw.query("SELECT COUNT(*) AS n FROM usage_records")[0]["n"]
    finally:
        stop.set()
        stop_group(gw.proc, signal.SIGTERM, 60)  # graceful: worker_exit flushes what is pending
        stop_group(gw.fake, signal.SIGTERM, 5)
    rc_gunicorn = gw.proc.returncode

    conn = sqlite3.connect(f"file:{gw.db_path}?mode=ro", uri=True)
    by_rid = dict(conn.execute("SELECT request_id, COUNT(*) FROM usage_records WHERE request_id IS NOT NULL"
                               " GROUP BY request_id").fetchall())
    rows_total = conn.execute("SELECT COUNT(*) FROM usage_records").fetchone()[0]
    by_endpoint = dict(conn.execute("SELECT endpoint || ' ' || status_code, COUNT(*) FROM usage_records"
                                    " GROUP BY 1").fetchall())
    conn.close()
    missing = [r for r in stats.rids if by_rid.get(r, 0) == 0]
    dup = [r for r in stats.rids if by_rid.get(r, 0) > 1]
    extra = [r for r in by_rid if r not in stats.rids]
    log_text = gw.log_path.read_text(errors="replace")
    tracebacks = log_text.count("Traceback")
    # gunicorn's own lines (error/warning level) when a worker dies or is killed
    deaths = sum(log_text.count(m) for m in ("WORKER TIMEOUT", "was sent SIGKILL", "was terminated due to signal",
                                             "exited with code"))

    # ---------------------------------------------------------------- checks
    failures = []
    for kind, c in stats.status.items():
        for status, n in c.items():
            bad = not isinstance(status, int) or status >= 500 or (status == 429 and kind != "limited-chat") \
                or (status not in (200, 429))
            if bad:
                failures.append(f"{kind}: {n} x {status}")
    if len(pids_seen) != 2 or deaths:
        failures.append(f"worker pids seen {pids_seen}, worker-death lines in the log: {deaths}")
    if missing or dup or extra or rows_total != len(stats.rids):
        failures.append(f"usage rows {rows_total} vs responses {len(stats.rids)}: {len(missing)} missing, "
                        f"{len(dup)} duplicated, {len(extra)} unknown")
    if stats.status["limited-chat"][429] == 0:
        failures.append("the limited key was never refused")
    if rc_gunicorn not in (0,):
        failures.append(f"gunicorn exit status {rc_gunicorn}")

    # ---------------------------------------------------------------- summary
    total = sum(sum(c.values()) for c in stats.status.values())
    lines = [f"# Soak run {stamp} UTC", "",
             f"`{' '.join(['python', 'tests/soak/run_soak.py'] + (argv if argv is not None else sys.argv[1:]))}`"
             f" -- gateway `gunicorn -k gevent -w 2` (SQLite, usage flushed every 1 s) against the e2e fake "
             f"upstream on one shared 2-core machine; {args.clients} client threads (own key each, limits "
             f"and budgets on but out of reach; {args.think}s between requests) + 1 thread on a key limited "
             f"to {args.limited_rpm} rpm sending 2 req/s.", "",
             f"Duration {elapsed / 60:.1f} min, {total} requests ({total / elapsed:.1f}/s).", "",
             "## Requests", "",
             "| kind | requests | statuses | error rate | p50 ms | p95 ms | max ms |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for kind in ("chat", "stream", "embed", "limited-chat"):
        c = stats.status.get(kind, Counter())
        n = sum(c.values())
        errs = sum(v for k, v in c.items() if k != 200 and not (kind == "limited-chat" and k == 429))
        lat = [x * 1000 for x in stats.latency.get(kind, [])]
        lines.append(f"| {kind} | {n} | {', '.join(f'{k}: {v}' for k, v in sorted(c.items(), key=str))} | "
                     f"{(errs / n * 100 if n else 0):.3f}% | {pct(lat, 50):.1f} | {pct(lat, 95):.1f} | "
                     f"{max(lat, default=0):.1f} |")
    lines += ["", "Error rate: anything but 200 (and, for the limited key, its expected 429s).", "",
              "## Worker memory (VmRSS) and open descriptors", "",
              f"Sampled every {args.sample:.0f} s ({len(samples)} samples).", "",
              "| worker pid | RSS start MiB | RSS end MiB | RSS max MiB | fds start | fds end |",
              "|---|---:|---:|---:|---:|---:|"]
    for p in pids_seen:
        vals = [(s[1][p][0], s[1][p][1]) for s in samples if p in s[1] and s[1][p][0] is not None]
        if not vals:
            continue
        r = [v[0] / 1024 for v in vals]
        lines.append(f"| {p} | {r[0]:.1f} | {r[-1]:.1f} | {max(r):.1f} | {vals[0][1]} | {vals[-1][1]} |")
    # RSS over time, first/last minute means: drift check at a glance
    lines += ["", "## Usage accounting", "",
              f"* responses counted by the clients (with an x-request-id): {len(stats.rids)}",
              f"* usage rows in the DB after the graceful stop: {rows_total} (before the stop, after 3 s: "
              f"{rows_before_stop})",
              f"* response ids without a row: {len(missing)}; with more than one: {len(dup)}; rows of ids no "
              f"client saw: {len(extra)}",
              f"* rows by endpoint and status: {', '.join(f'{k}: {v}' for k, v in sorted(by_endpoint.items()))}",
              "", "## Gateway log", "",
              f"* worker pids seen over the run: {len(pids_seen)} (2 = no restart); worker timeout/kill/exit "
              f"lines: {deaths}; tracebacks: {tracebacks}; gunicorn exit status {rc_gunicorn}", "",
              "## Result", "",
              ("PASS: no 5xx, no transport error, every stream complete, no worker restart, "
               "rows == responses." if not failures else "FAIL:\n" + "\n".join(f"* {f}" for f in failures))]
    if stats.problems:
        lines += ["", "First problems seen:", ""] + [f"* `{p}`" for p in stats.problems[:10]]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"[soak] summary written to {out}; logs in {tmp}")
    if tracebacks:
        print(tail(gw.log_path, 40))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
