"""Routing for model groups: one public model name served by several deployments (pure Python,
no Flask).

The caller (the proxy) builds :class:`Deployment` values from the group's Model rows, keeps one
:class:`LiveState` and one :class:`Breaker` per worker process (the breaker's state is shared
by every worker through a :class:`SQLiteBreakerStore` file), and passes the clock::

    breaker = Breaker(SQLiteBreakerStore("/var/lib/gateway/breakers.db"))
    live = LiveState(breaker=breaker)
    rng = random.Random()

    tried, rounds, waits = set(), 0, []     # waits: each attempt's Retry-After this round
    while True:
        now = time.time()
        candidates = order(deps, group.strategy, live, rng, now, exclude=tried,
                           needs=frozenset({"tools"}), min_context=prompt_tokens,
                           est_input_tokens=prompt_tokens, est_output_tokens=max_tokens)
        if not candidates:                    # each deployment tried once in this round
            wait = backoff(rounds, rng, retry_after=min(waits, default=None),
                           deadline_left=deadline - now)
            if rounds >= group.retries or wait is None:
                break                         # answer with the last error
            time.sleep(wait)
            tried, rounds, waits = set(), rounds + 1, []
            continue
        # the first one the breaker lets through; if none is, the first anyway (last resort)
        dep = next((d for d in candidates if breaker.allow(d.id, now)), candidates[0])
        tried.add(dep.id)
        live.started(dep.id)
        status, error, headers, ttfb_ms = send(dep)      # the upstream call, to first byte
        now = time.time()
        outcome = classify(status, error)
        live.finished(dep.id, ttfb_ms, outcome == "ok")
        live.observe_ratelimit(dep.id, headers, now)
        ra = retry_after_seconds(headers, now)
        breaker.record(dep.id, outcome, now, ra)
        if outcome == "ok" or not is_retryable(status, outcome):
            break
        waits.append(ra or 0.0)      # retryable: fail over to the next deployment at once

Record the outcome as soon as the status and first byte are known, not at the end of a long
stream, so a half-open probe answers promptly (a probe that never reports frees its slot after
``probe_timeout_s``).

Modules: :mod:`.deployments` (:func:`order`), :mod:`.live` (:class:`LiveState`),
:mod:`.breaker` (policy, :class:`Breaker`, :class:`MemoryBreakerStore`), :mod:`.sqlite`
(:class:`SQLiteBreakerStore`), :mod:`.redis` (:class:`RedisBreakerStore`, shared by every host), :mod:`.retry` (:func:`backoff`, :func:`is_retryable`,
:func:`classify`).
"""
from __future__ import annotations

from .breaker import (Breaker, BreakerPolicy, BreakerRow, BreakerStore, MemoryBreakerStore)
from .deployments import CAPABILITIES, STRATEGIES, Deployment, eligible, order
from .live import LiveState, parse_duration, parse_reset
from .retry import OUTCOMES, backoff, classify, is_retryable, retry_after_seconds
from .redis import RedisBreakerStore
from .sqlite import SQLiteBreakerStore

__all__ = ["Deployment", "STRATEGIES", "CAPABILITIES", "order", "eligible", "LiveState",
           "Breaker", "BreakerPolicy", "BreakerRow", "BreakerStore", "MemoryBreakerStore",
           "SQLiteBreakerStore", "RedisBreakerStore", "backoff", "is_retryable", "classify", "retry_after_seconds",
           "OUTCOMES", "parse_duration", "parse_reset", "live_view"]


def live_view(dep_ids, live: LiveState | None, breaker: Breaker | None,
              now: float) -> dict[int, dict]:
    """{dep_id: {"breaker": state dict, "latency_ms", "in_flight", ...}} for the console/API.

    Breaker states are read fresh from the store (one read per deployment); live numbers are
    this worker's.
    """
    snap = live.snapshot(now) if live is not None else {}
    out = {}
    for dep_id in dep_ids:
        row = dict(snap.get(dep_id) or {"latency_ms": None, "in_flight": 0})
        if breaker is not None:
            row["breaker"] = breaker.state(dep_id, now)
        out[dep_id] = row
    return out
