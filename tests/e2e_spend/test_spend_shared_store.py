"""Budgets, rpm and concurrency enforced exactly across two gunicorn gevent workers.

Each worker is its own process with its own connection pool to the counter store
(``<instance>/counters.db``); these tests pass only if every admission is one atomic step
across processes. All use the shared two-worker gateway and a fresh key each.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from decimal import Decimal

import pytest

from spend_harness import (FAKE_COMPLETION, FAKE_PROMPT, cost, fire_at_once, pinned_connections,
                      wait_until)

pytestmark = pytest.mark.e2e

R_EXACT = cost(FAKE_PROMPT, FAKE_COMPLETION)   # 19*100 + 10*200 per Mtok = $0.0039


def _error(resp) -> dict:
    return resp.json()["error"]


def _rows_by_status(rows):
    return Counter(r["status_code"] for r in rows)


def _settled_budget(gw, raw: str) -> dict:
    """The key's budget once no reservation is held (finished requests are settled in batches)."""
    return wait_until(lambda: (lambda b: b if Decimal(b["reserved_usd"]) == 0 else None)(
        gw.budget_state(raw)), 5, 0.02, "every reservation to be settled")


def test_budget_admits_exactly_k_reservations_under_200_concurrent_requests(spend_gw):
    """Budget = 20 x the worst-case reservation, and the real cost equals the reservation.

    The 60-character prompt is estimated at 19 tokens and max_tokens=10, so the gateway reserves
    cost(19, 10) = $0.0039 per request; the fake reports exactly 19 + 10 tokens, so each request
    settles at its reservation. With $0.078 whatever the interleaving of 200 simultaneous
    requests over two workers, exactly 20 fit: 20 x 200 and 180 x 402 insufficient_quota.
    The key's spend in /v1/key/info must be $0.078 with nothing left reserved, equal to the sum
    of usage_records.cost_usd, and every 200 has exactly one usage row.
    """
    k, n = 20, 200
    budget = R_EXACT * k
    assert budget == Decimal("0.078")
    key_id, raw = spend_gw.make_key("budget-exact", budget={"amount_usd": str(budget),
                                                            "period": "total"})
    t0 = time.monotonic()
    results = fire_at_once(n, lambda i: spend_gw.chat(raw))
    elapsed = time.monotonic() - t0
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    statuses = Counter(r.status_code for r in results)
    print(f"\n[budget-exact] {n} requests in {elapsed:.2f}s: {dict(statuses)}")
    assert statuses == {200: k, 402: n - k}, statuses

    for r in results:
        if r.status_code == 402:
            err = _error(r)
            assert err["type"] == "insufficient_quota" and err["code"] == "insufficient_quota", err
            assert "retry-after" not in {h.lower() for h in r.headers}  # waiting will not help
        else:
            assert r.json()["usage"]["prompt_tokens"] == FAKE_PROMPT
            assert r.json()["usage"]["completion_tokens"] == FAKE_COMPLETION

    state = _settled_budget(spend_gw, raw)
    assert Decimal(state["spent_usd"]) == budget, state
    assert Decimal(state["reserved_usd"]) == 0, state
    assert Decimal(state["remaining_usd"]) == 0, state

    rows = spend_gw.settled_usage(key_id, n)
    assert len(rows) == n, _rows_by_status(rows)
    assert _rows_by_status(rows) == {200: k, 402: n - k}
    total = sum(Decimal(r["cost"]) for r in rows)
    assert total == Decimal(state["spent_usd"]) == budget
    assert all(Decimal(r["cost"]) == R_EXACT for r in rows if r["status_code"] == 200)
    by_id = Counter(r["request_id"] for r in rows)
    ok_ids = [r.headers["x-request-id"] for r in results if r.status_code == 200]
    assert all(by_id[i] == 1 for i in ok_ids), [i for i in ok_ids if by_id[i] != 1]


def test_budget_with_reservations_above_real_cost_never_overspends(spend_gw):
    """Reservation (max_tokens=100: $0.0219) > real cost ($0.0039): spend stays within budget.

    A request is admitted only if spent + reserved + 0.0219 <= 0.078. Every earlier admitted
    request counts at least its real cost 0.0039 (settled) or 0.0219 (still reserved), so the
    k-th admission needs (k-1) x 0.0039 + 0.0219 <= 0.078: never more than 15 successes, in
    any interleaving. The concurrent burst lets through between 3 (all reservations held at
    once) and 15; draining the rest one by one then reaches exactly 15 (= $0.0585 spent),
    after which the next request is refused with 402.
    """
    reserve = cost(FAKE_PROMPT, 100)
    assert reserve == Decimal("0.0219")
    budget = Decimal("0.078")
    key_id, raw = spend_gw.make_key("budget-over-reserve", budget={"amount_usd": str(budget),
                                                                   "period": "total"})
    results = fire_at_once(200, lambda i: spend_gw.chat(raw, max_tokens=100))
    assert not [r for r in results if isinstance(r, Exception)]
    statuses = Counter(r.status_code for r in results)
    burst_ok = statuses[200]
    print(f"\n[budget-over-reserve] burst: {dict(statuses)}")
    assert set(statuses) <= {200, 402}, statuses
    assert 3 <= burst_ok <= 15, statuses
    state = _settled_budget(spend_gw, raw)
    assert Decimal(state["spent_usd"]) == R_EXACT * burst_ok

    drained = 0
    while True:
        _settled_budget(spend_gw, raw)  # one at a time, each started once the last has settled
        r = spend_gw.chat(raw, max_tokens=100)
        if r.status_code != 200:
            assert r.status_code == 402 and _error(r)["code"] == "insufficient_quota", r.text
            break
        drained += 1
        assert drained <= 15
    print(f"[budget-over-reserve] drained {drained} more sequentially; total {burst_ok + drained}")
    assert burst_ok + drained == 15
    state = _settled_budget(spend_gw, raw)
    assert Decimal(state["spent_usd"]) == Decimal("0.0585") <= budget
    assert Decimal(state["reserved_usd"]) == 0
    rows = spend_gw.settled_usage(key_id, 201 + drained)
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("0.0585")
    assert _rows_by_status(rows)[200] == 15


def test_rpm_is_exact_across_two_workers(spend_gw):
    """rpm=30 (GCRA: a burst of 30, then one every 2 s): 100 simultaneous requests -> exactly 30.

    The 70 others get 429 rate_limit_exceeded with Retry-After (whole seconds, 1..2) and
    x-ratelimit-* headers; the 30 successes carry x-ratelimit-remaining-requests 29, 28, ... 0,
    each value exactly once, which only holds if the admissions were serialised across workers.
    """
    key_id, raw = spend_gw.make_key("rpm-30", limits={"rpm": 30})
    t0 = time.monotonic()
    results = fire_at_once(100, lambda i: spend_gw.chat(raw))
    elapsed = time.monotonic() - t0
    assert not [r for r in results if isinstance(r, Exception)]
    statuses = Counter(r.status_code for r in results)
    print(f"\n[rpm-30] 100 requests in {elapsed:.2f}s: {dict(statuses)}")
    # the burst must fit in one emission interval (2 s), or a 31st slot legitimately frees up
    assert elapsed < 2.0, f"burst took {elapsed:.2f}s: too slow to test an exact count"
    assert statuses == {200: 30, 429: 70}, statuses

    remaining = []
    for r in results:
        assert r.headers["x-ratelimit-limit-requests"] == "30"
        if r.status_code == 200:
            remaining.append(int(r.headers["x-ratelimit-remaining-requests"]))
            assert r.headers["x-ratelimit-reset-requests"]
        else:
            err = _error(r)
            assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded", err
            retry = r.headers["Retry-After"]
            assert retry.isdigit() and 1 <= int(retry) <= 2, retry
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert sorted(remaining) == list(range(30))
    info = spend_gw.key_info(raw)["state"]["limits"]["rpm"]
    assert info["limit"] == 30 and info["remaining"] == 0, info


def _read_sse(resp) -> list[str]:
    """All `data:` payloads of a finished SSE body."""
    text = resp.read().decode()
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def test_concurrency_limit_spans_workers_with_streams(spend_gw):
    """concurrency=3, six 2-second `drip-20` streams opened at once, three on EACH worker.

    Per-process counting would admit all six (3 per worker); a shared store admits exactly 3
    and refuses 3 with 429 concurrency_limit_exceeded (Retry-After: 1). While the three stream,
    /v1/key/info shows 3 in flight; they stream all 20 chunks to [DONE]; once they end the
    leases are released (in flight back to 0) and three new streams are all admitted.
    """
    key_id, raw = spend_gw.make_key("conc-3", limits={"concurrency": 3})
    workers = spend_gw.workers()
    assert len(workers) == 2
    pinned = pinned_connections(spend_gw, {workers[0]: 3, workers[1]: 3})
    conns = pinned[workers[0]] + pinned[workers[1]]
    t0 = time.monotonic()
    responses = fire_at_once(6, lambda i: conns[i].chat(raw, "spend-drip-20", stream=True))
    assert not [r for r in responses if isinstance(r, Exception)], responses
    statuses = [r.status for r in responses]
    owners = [c.owner for c in conns]
    print(f"\n[conc-3] statuses {statuses} by worker {owners}")
    assert sorted(statuses) == [200, 200, 200, 429, 429, 429]

    for r in responses:
        if r.status == 429:
            err = json.loads(r.read())["error"]
            assert err["type"] == "rate_limit_error"
            assert err["code"] == "concurrency_limit_exceeded", err
            assert r.getheader("Retry-After") == "1"
    in_flight = spend_gw.key_info(raw)["state"]["in_flight"]
    assert in_flight == 3

    for r in responses:
        if r.status == 200:
            events = _read_sse(r)
            assert events[-1] == "[DONE]"
            text = "".join((json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                           for e in events[:-1])
            assert text == "".join(f"tick{i} " for i in range(20))
    streamed = time.monotonic() - t0
    assert streamed >= 1.9  # they really streamed concurrently for ~2 s
    for c in conns:
        c.close()

    wait_until(lambda: spend_gw.key_info(raw)["state"]["in_flight"] == 0, 5, 0.05,
               "the leases to be released")
    again = fire_at_once(3, lambda i: spend_gw.chat(raw, "spend-drip-20", stream=True))
    assert [r.status_code for r in again] == [200, 200, 200], [r.text for r in again if r.status_code != 200]
    for r in again:
        events = [ln for ln in r.iter_lines(decode_unicode=True) if ln.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
    wait_until(lambda: spend_gw.key_info(raw)["state"]["in_flight"] == 0, 5, 0.05,
               "the second round's leases to be released")
    print(f"[conc-3] first round streamed in {streamed:.2f}s; second round admitted 3/3")




def test_sequential_client_is_never_refused_for_its_own_finished_requests(spend_gw):
    """A client that waits for each response before sending the next request never has two
    requests in flight and never spends more than it has: it must never be refused.

    (a) concurrency=1, 30 back-to-back requests on one keep-alive connection: all 200.
    (b) budget $0.0258 = one reservation ($0.0219, max_tokens=100) + one real cost ($0.0039):
        the first request settles at $0.0039, so the second (0.0039 + 0.0219 = 0.0258 <= 0.0258)
        fits; 10 fresh keys, two sequential requests each: every pair must be (200, 200).
    Observed with the batched settle: (a) ~46 of 50 refused with 429, (b) 9 of 10 pairs
    (200, 402 insufficient_quota) — and 402 tells SDKs not to retry.
    """
    import requests
    _, raw = spend_gw.make_key("seq-conc-1", limits={"concurrency": 1})
    session = requests.Session()
    statuses = Counter()
    for _ in range(30):
        r = session.post(f"{spend_gw.base_url}/v1/chat/completions", headers=spend_gw.auth(raw),
                         json={"model": "spend-chat", "messages": [{"role": "user", "content": "hi"}]},
                         timeout=10)
        statuses[r.status_code] += 1
    pairs = Counter()
    for t in range(10):
        _, raw = spend_gw.make_key(f"seq-budget-{t}", budget={"amount_usd": "0.0258",
                                                              "period": "total"})
        first = spend_gw.chat(raw, max_tokens=100)
        second = spend_gw.chat(raw, max_tokens=100)
        pairs[(first.status_code, second.status_code)] += 1
    print(f"\n[sequential] concurrency=1: {dict(statuses)}; budget pairs: {dict(pairs)}")
    assert statuses == {200: 30}, statuses
    assert pairs == {(200, 200): 10}, pairs
