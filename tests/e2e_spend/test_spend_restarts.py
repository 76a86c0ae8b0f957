"""Graceful stop (SIGTERM) and reload (SIGHUP) of gunicorn under load lose no accounting.

Each test runs its own two-worker gateway with GATEWAY_USAGE_FLUSH_INTERVAL=300: the batched
usage writer's timer never fires during the test, so every usage row that reaches the DB was
written by gunicorn's ``worker_exit`` hook (gunicorn.conf.py), which also logs how many it
wrote. 20 clients post chat completions back to back, one fresh connection per request, and
every response's ``x-request-id`` is matched against ``usage_records.request_id``.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter
from decimal import Decimal

import pytest

from spend_harness import Load, exit_flushes, store_budget

pytestmark = pytest.mark.e2e

NO_TIMER = {"GATEWAY_USAGE_FLUSH_INTERVAL": 300}


def _load_key(gw) -> tuple[int, str]:
    # limits and a budget that never bite, so every request also takes and settles a ticket
    return gw.make_key("load", limits={"rpm": 1_000_000, "concurrency": 1000},
                       budget={"amount_usd": "1000", "period": "total"})


def _check_every_200_has_one_row(load: Load, rows: dict[str, int]) -> None:
    ok = load.ok()
    missing = [o for o in ok if rows.get(o.rid, 0) == 0]
    duplicated = [o for o in ok if rows.get(o.rid, 0) > 1]
    assert not missing, f"{len(missing)} of {len(ok)} 200 responses have no usage row: {missing[:5]}"
    assert not duplicated, f"{len(duplicated)} 200 responses have several usage rows: {duplicated[:5]}"


def _check_store_matches_usage(gw, key_id: int) -> Decimal:
    """The counter store's spend equals the usage rows' cost; nothing left reserved."""
    total = sum((Decimal(r["cost"]) for r in gw.usage_for_key(key_id)), Decimal(0))
    spent, reserved = store_budget(gw.counters_path, f"key:{key_id}")
    assert spent == total, (spent, total)
    assert reserved == 0, reserved
    return spent


def test_sigterm_under_load_writes_every_usage_record(gateway_factory):
    """SIGTERM to the master while 20 clients are busy: a graceful stop.

    Every request answered 200 (before or during the stop) has exactly one usage row once the
    master has exited, all of them written by the workers' exit flush (the sum of the
    "flushed N usage record(s) on exit" log lines equals the rows in the table); the only
    failures are connection errors after the signal, never an HTTP error; and the counter
    store's spend for the key equals the sum of its usage rows' cost with nothing reserved.
    """
    gw = gateway_factory("sigterm", **NO_TIMER)
    key_id, raw = _load_key(gw)
    workers = gw.workers()
    load = Load(gw, raw, clients=20).start()
    time.sleep(2.5)
    t_sig = time.monotonic()
    os.kill(gw.master_pid, signal.SIGTERM)
    rc = gw.proc.wait(75)
    t_exit = time.monotonic()
    load.stop()

    assert rc == 0, rc
    ok = load.ok()
    after = [o for o in ok if o.t >= t_sig]
    rows = gw.rows_by_request_id()
    flushed = exit_flushes(gw.log_path)
    print(f"\n[sigterm] {len(ok)} x 200 ({len(after)} after the signal), outcomes {load.statuses()}; "
          f"master exited {t_exit - t_sig:.2f}s after SIGTERM; {sum(rows.values())} usage rows; "
          f"exit flushes {flushed}")
    assert len(ok) > 100
    assert set(o.status for o in load.outcomes if o.status is not None) == {200}
    assert all(o.t >= t_sig for o in load.errors()), [o for o in load.errors() if o.t < t_sig][:3]
    _check_every_200_has_one_row(load, rows)
    assert set(flushed) == set(workers), (flushed, workers)
    assert sum(flushed.values()) == sum(rows.values())
    spent = _check_store_matches_usage(gw, key_id)
    assert spent > 0


def test_sighup_reload_under_load_writes_every_usage_record(gateway_factory):
    """SIGHUP (reload) while 20 clients are busy: new workers take over, the old ones exit.

    Once both old workers are gone and before anything else stops, every 200 answered before
    the SIGHUP (necessarily by an old worker) already has its usage row — and the only rows in
    the table are the ones the old workers' exit flush reports (the new workers' timer is
    300 s away). The reload is invisible to clients: no connection error, no HTTP error, 200s
    keep coming from the new workers. After a final SIGTERM every 200 has exactly one row and
    the counter store's spend equals the rows' cost.
    """
    gw = gateway_factory("sighup", **NO_TIMER)
    key_id, raw = _load_key(gw)
    load = Load(gw, raw, clients=20).start()
    time.sleep(2.0)
    old = set(gw.workers())
    t_hup = time.monotonic()
    os.kill(gw.master_pid, signal.SIGHUP)
    new = gw.wait_workers(2, exclude=old, timeout=30)
    t_swapped = time.monotonic()
    time.sleep(1.5)  # the new workers serve

    rows_mid = gw.rows_by_request_id()
    flushed_mid = exit_flushes(gw.log_path)
    before_hup = [o for o in load.ok() if o.t < t_hup]
    missing = [o for o in before_hup if rows_mid.get(o.rid, 0) != 1]
    assert not missing, f"{len(missing)} of {len(before_hup)} pre-reload 200s without one row: {missing[:5]}"
    assert set(flushed_mid) == old, (flushed_mid, old)
    assert sum(flushed_mid.values()) == sum(rows_mid.values())

    load.stop()
    served_by_new = [o for o in load.ok() if o.t > t_swapped]
    os.kill(gw.master_pid, signal.SIGTERM)
    assert gw.proc.wait(75) == 0
    rows = gw.rows_by_request_id()
    flushed = exit_flushes(gw.log_path)
    print(f"\n[sighup] old workers {sorted(old)} replaced by {new} {t_swapped - t_hup:.2f}s after "
          f"SIGHUP; {len(before_hup)} x 200 before it, {len(served_by_new)} after the swap; "
          f"outcomes {load.statuses()}; rows {sum(rows_mid.values())} at the swap (exit flushes "
          f"{flushed_mid}), {sum(rows.values())} in the end (exit flushes {flushed})")
    assert len(before_hup) > 50 and len(served_by_new) > 50
    assert Counter(o.status for o in load.outcomes) == {200: len(load.ok())}, load.statuses()
    _check_every_200_has_one_row(load, rows)
    assert sum(flushed.values()) == sum(rows.values())
    _check_store_matches_usage(gw, key_id)
