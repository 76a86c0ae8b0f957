"""Exactness across processes (gunicorn workers) and threads sharing one SQLite file."""
from __future__ import annotations

import multiprocessing as mp
import threading
from decimal import Decimal

import pytest
from limits_support import T0, D

from app.limits import Budget, Denied, Limits, SQLiteStore

PROCS = 8
CTX = mp.get_context("fork")


def _worker(path, store, barrier, queue, n, job):
    """Run ``job(store, i)`` n times after the barrier; report (admitted, reasons, errors)."""
    try:
        store = store or SQLiteStore(path)
        barrier.wait(timeout=30)
        admitted, reasons = 0, {}
        for i in range(n):
            try:
                job(store, i)
                admitted += 1
            except Denied as d:
                reasons[d.reason] = reasons.get(d.reason, 0) + 1
        queue.put((admitted, reasons, None))
    except BaseException as exc:          # report, never hang the parent
        queue.put((0, {}, repr(exc)))


def run(path, n, job, store=None):
    barrier, queue = CTX.Barrier(PROCS), CTX.Queue()
    procs = [CTX.Process(target=_worker, args=(path, store, barrier, queue, n, job))
             for _ in range(PROCS)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    errors = [r[2] for r in results if r[2]]
    assert not errors, errors
    reasons: dict = {}
    for _, r, _ in results:
        for k, v in r.items():
            reasons[k] = reasons.get(k, 0) + v
    return sum(r[0] for r in results), reasons


BUDGET = Budget("team:research", D("1.00"), "month")
RESERVE = D("0.02")                     # exactly 50 reservations fit


def _budget_job(store, i):
    store.admit(f"key:{i % 5}", Limits(), [BUDGET], 10, RESERVE, T0)


def test_budget_admits_exactly_k_across_processes(tmp_path):
    path = tmp_path / "limits.db"
    admitted, reasons = run(path, 50, _budget_job)           # 400 admissions
    assert admitted == 50
    assert reasons == {"budget": 350}
    st = SQLiteStore(path).state("key:0", Limits(), [BUDGET], T0)["budgets"][0]
    assert st["reserved_usd"] == D("1.00") and st["remaining_usd"] == 0


def _rpm_job(store, i):
    store.admit("key:1", Limits(rpm=100), [], 0, 0, T0 + 0.5)


def test_rpm_admits_exactly_the_limit_across_processes(tmp_path):
    admitted, reasons = run(tmp_path / "limits.db", 50, _rpm_job)
    assert admitted == 100
    assert reasons == {"rate_limit_requests": 300}


def _concurrency_job(store, i):
    store.admit("key:1", Limits(concurrency=10), [], 0, 0, T0 + i * 0.001)


def test_concurrency_cap_across_processes(tmp_path):
    admitted, reasons = run(tmp_path / "limits.db", 50, _concurrency_job)
    assert admitted == 10
    assert reasons == {"concurrency": 390}


COST = D("0.00000137")


def _settle_job(store, i):
    a = store.admit("key:1", Limits(tpd=10**9), [Budget("key:1", D(1000), "day")], 100,
                    D("0.01"), T0 + i)
    store.settle(a.ticket, 7 + i % 3, COST * (1 + i % 4), T0 + i + 0.5)


def test_no_lost_updates_across_processes(tmp_path):
    """Read-modify-write of decimal TEXT under contention: every settle lands, exactly."""
    path = tmp_path / "limits.db"
    n = 60
    admitted, _ = run(path, n, _settle_job)
    assert admitted == PROCS * n
    store = SQLiteStore(path)
    b = Budget("key:1", D(1000), "day")
    st = store.state("key:1", Limits(tpd=10**9), [b], T0 + n + 1)
    assert st["budgets"][0]["spent_usd"] == PROCS * sum(COST * (1 + i % 4) for i in range(n))
    assert st["budgets"][0]["reserved_usd"] == 0
    assert st["limits"]["tpd"]["used"] == PROCS * sum(7 + i % 3 for i in range(n))
    assert st["in_flight"] == 0


def test_store_opened_before_fork_is_safe_in_children(tmp_path):
    """gunicorn --preload: the store (with pooled connections) exists before the fork."""
    path = tmp_path / "limits.db"
    store = SQLiteStore(path)
    store.admit("key:0", Limits(), [BUDGET], 0, RESERVE, T0)       # opens a connection
    admitted, reasons = run(path, 50, _budget_job, store=store)
    assert admitted == 49 and reasons == {"budget": 351}
    # the parent's connection still works after the children used theirs
    with pytest.raises(Denied):
        store.admit("key:0", Limits(), [BUDGET], 0, RESERVE, T0)
    assert store.spend("team:research", "month", T0) == 0


def test_threads_share_one_store(tmp_path):
    store = SQLiteStore(tmp_path / "limits.db")
    lim = Limits(rpm=100, concurrency=1000)
    budget = Budget("key:1", D("0.75"), "day")
    counts, errors = [], []
    start = threading.Barrier(8)

    def hammer():
        try:
            start.wait()
            ok = 0
            for _ in range(40):
                try:
                    store.admit("key:1", lim, [budget], 1, D("0.01"), T0)
                    ok += 1
                except Denied:
                    pass
            counts.append(ok)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(counts) == 75                  # the budget (75 reservations) binds before rpm
    assert store.state("key:1", lim, [budget], T0)["in_flight"] == 75
    assert isinstance(store.spend("key:1", "day", T0), Decimal)
