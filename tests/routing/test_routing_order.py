"""order(): each strategy, filtering, exclusion, open breakers last, pacing, determinism."""
from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routing_support import T0, dep, ids

from app.routing import STRATEGIES, Breaker, Deployment, LiveState, order

DRAWS = 10_000


def first_pick_freq(deps, strategy, seed=1234, live=None, n=DRAWS):
    rng = random.Random(seed)
    live = live or LiveState()
    c = Counter(order(deps, strategy, live, rng, T0)[0].id for _ in range(n))
    return {k: v / n for k, v in c.items()}


# --- priority ------------------------------------------------------------------------------------
def test_priority_orders_by_priority_then_id():
    deps = [dep(5, priority=2), dep(3, priority=0), dep(9, priority=1), dep(1, priority=3)]
    for seed in range(20):
        assert ids(order(deps, "priority", LiveState(), random.Random(seed), T0)) == [3, 9, 5, 1]


def test_priority_ties_are_weighted_random_within_the_tier():
    deps = [dep(1, priority=0, weight=3), dep(2, priority=0, weight=1), dep(3, priority=1),
            dep(4, priority=1, weight=0)]
    rng = random.Random(7)
    firsts = Counter()
    for _ in range(DRAWS):
        got = ids(order(deps, "priority", LiveState(), rng, T0))
        assert sorted(got[:2]) == [1, 2]          # the tier stays ahead of the next one
        assert got[2:] == [3, 4]                  # weight 0 last within its tier
        firsts[got[0]] += 1
    assert abs(firsts[1] / DRAWS - 0.75) < 0.02
    assert abs(firsts[2] / DRAWS - 0.25) < 0.02


def test_priority_zero_weight_tier_member_only_when_alone():
    deps = [dep(1, priority=0, weight=0), dep(2, priority=0, weight=2), dep(3, priority=1)]
    for seed in range(50):
        assert ids(order(deps, "priority", LiveState(), random.Random(seed), T0)) == [2, 1, 3]


# --- weighted ------------------------------------------------------------------------------------
def test_weighted_first_pick_frequencies_match_weights():
    deps = [dep(1, weight=5), dep(2, weight=3), dep(3, weight=2), dep(4, weight=0)]
    freq = first_pick_freq(deps, "weighted")
    assert set(freq) == {1, 2, 3}                 # weight 0 is never first
    for d in deps[:3]:
        assert abs(freq[d.id] - d.weight / 10) < 0.02, freq


def test_weighted_ignores_priority_and_later_positions_are_without_replacement():
    deps = [dep(1, priority=9, weight=6), dep(2, priority=0, weight=3), dep(3, priority=5,
                                                                           weight=1)]
    rng = random.Random(99)
    seconds = Counter()
    for _ in range(DRAWS):
        got = ids(order(deps, "weighted", LiveState(), rng, T0))
        assert sorted(got) == [1, 2, 3]
        seconds[got[1]] += 1
    w = {d.id: d.weight for d in deps}
    total = sum(w.values())
    for b in w:   # P(b second) = sum over a != b of P(a first) * w_b / (total - w_a)
        p = sum(w[a] / total * w[b] / (total - w[a]) for a in w if a != b)
        assert abs(seconds[b] / DRAWS - p) < 0.02, (b, seconds[b] / DRAWS, p)


def test_weighted_zero_weights_only_when_nothing_else():
    deps = [dep(1, weight=0, priority=1), dep(2, weight=0, priority=0), dep(3, weight=1)]
    assert ids(order(deps, "weighted", LiveState(), random.Random(1), T0)) == [3, 2, 1]
    assert ids(order(deps, "weighted", LiveState(), random.Random(1), T0, exclude={3})) == [2, 1]


def test_weighted_is_deterministic_given_the_rng_and_independent_of_input_order():
    deps = [dep(i, weight=i % 4 + 1) for i in range(1, 9)]
    a = [ids(order(deps, "weighted", None, random.Random(s), T0)) for s in range(30)]
    b = [ids(order(list(reversed(deps)), "weighted", None, random.Random(s), T0))
         for s in range(30)]
    assert a == b
    assert len({tuple(x) for x in a}) > 10         # and it does vary with the seed


# --- least-latency, least-busy, cost ------------------------------------------------------------
def test_least_latency_unknown_first_then_fastest_ties_by_priority():
    live = LiveState()
    deps = [dep(1, priority=0), dep(2, priority=1), dep(3, priority=2), dep(4, priority=3),
            dep(5, priority=4)]
    for d, ms in ((1, 300.0), (2, 100.0), (3, 300.0)):
        live.started(d)
        live.finished(d, ms, ok=True)
    # 4 and 5 unknown (5 by priority after 4), then 2 (100 ms), then 1 and 3 (300 ms, priority)
    assert ids(order(deps, "least-latency", live, random.Random(0), T0)) == [4, 5, 2, 1, 3]


def test_least_latency_follows_the_moving_average():
    live = LiveState()
    deps = [dep(1), dep(2)]
    for d in (1, 2):
        live.finished(d, 200.0, ok=True)
    for _ in range(3):
        live.finished(1, 500.0, ok=True)           # 1 slows down
    assert live.latency(1) == pytest.approx(200 + (500 - 200) * (1 - 0.8 ** 3))
    assert ids(order(deps, "least-latency", live, random.Random(0), T0)) == [2, 1]


def test_least_busy_by_in_flight_then_priority():
    live = LiveState()
    deps = [dep(1, priority=0), dep(2, priority=1), dep(3, priority=2), dep(4, priority=3)]
    for d, n in ((1, 3), (2, 1), (3, 0), (4, 1)):
        for _ in range(n):
            live.started(d)
    assert ids(order(deps, "least-busy", live, random.Random(0), T0)) == [3, 2, 4, 1]
    live.finished(1, None, ok=False)
    live.finished(1, None, ok=False)
    live.finished(1, None, ok=False)
    assert ids(order(deps, "least-busy", live, random.Random(0), T0)) == [1, 3, 2, 4]


def test_cost_by_estimated_request_cost_then_priority():
    cheap_in = dep(1, priority=2, input_price=Decimal("0.10"), output_price=Decimal("10"))
    cheap_out = dep(2, priority=1, input_price=Decimal("5"), output_price=Decimal("0.40"))
    same_as_2 = dep(3, priority=0, input_price=Decimal("5"), output_price=Decimal("0.40"))
    deps = [cheap_in, cheap_out, same_as_2]
    # input-heavy: 1 costs 100k*0.10 + 100*10 = 11,000 (per 1M), 2 and 3 cost 500,040
    got = order(deps, "cost", None, random.Random(0), T0, est_input_tokens=100_000,
                est_output_tokens=100)
    assert ids(got) == [1, 3, 2]
    got = order(deps, "cost", None, random.Random(0), T0, est_input_tokens=100,
                est_output_tokens=100_000)
    assert ids(got) == [3, 2, 1]        # output-heavy: 2 and 3 cost the same, priority decides
    assert cheap_in.cost(1_000_000, 0) == Decimal("0.10")
    assert cheap_out.cost(1000, 1000) == Decimal("0.0054")


def test_float_prices_are_taken_as_their_decimal_text():
    assert Deployment(1, 1, input_price=0.1).input_price == Decimal("0.1")


# --- filtering -----------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exclusion_drops_already_tried(strategy):
    deps = [dep(1), dep(2, priority=1), dep(3, priority=2)]
    got = order(deps, strategy, LiveState(), random.Random(0), T0, exclude={1, 3})
    assert ids(got) == [2]
    assert order(deps, strategy, LiveState(), random.Random(0), T0, exclude={1, 2, 3}) == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_capability_and_context_filtering(strategy):
    deps = [dep(1, capabilities=frozenset({"tools", "streaming"}), context_window=8_000),
            dep(2, capabilities=frozenset({"tools", "vision", "json"}), context_window=128_000),
            dep(3, capabilities={"vision"}, context_window=None),
            dep(4, capabilities=frozenset(), context_window=200_000)]
    run = lambda **kw: sorted(ids(order(deps, strategy, LiveState(), random.Random(0), T0,
                                        **kw)))
    assert run() == [1, 2, 3, 4]
    assert run(needs=frozenset({"tools"})) == [1, 2]
    assert run(needs=frozenset({"vision"})) == [2, 3]
    assert run(needs=frozenset({"tools", "vision"})) == [2]
    assert run(needs=frozenset({"audio"})) == []
    assert run(min_context=10_000) == [2, 3, 4]           # unknown window (3) is kept
    assert run(min_context=150_000) == [3, 4]
    assert run(min_context=8_000) == [1, 2, 3, 4]          # exactly enough fits
    assert run(needs=frozenset({"vision"}), min_context=150_000) == [3]


def test_unknown_strategy_is_an_error():
    with pytest.raises(ValueError, match="unknown strategy"):
        order([dep(1)], "round-robin", LiveState(), random.Random(0), T0)


# --- breakers ------------------------------------------------------------------------------------
def trip(breaker, dep_id, now):
    for _ in range(5):
        breaker.record(dep_id, "server_error", now)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_open_breakers_are_moved_last_not_dropped(strategy):
    breaker = Breaker()
    live = LiveState(breaker=breaker)
    deps = [dep(1, priority=0), dep(2, priority=1), dep(3, priority=2)]
    trip(breaker, 1, T0)
    got = ids(order(deps, strategy, live, random.Random(0), T0 + 1))
    assert got[-1] == 1 and sorted(got) == [1, 2, 3]
    breaker.record(3, "auth", T0)                  # disabled: last too
    got = ids(order(deps, strategy, live, random.Random(0), T0 + 1))
    assert got[0] == 2 and sorted(got[1:]) == [1, 3]
    trip(breaker, 2, T0)                           # everything open: all still returned
    assert sorted(ids(order(deps, strategy, live, random.Random(0), T0 + 1))) == [1, 2, 3]


def test_half_open_due_a_probe_keeps_its_place_until_the_probe_is_taken():
    breaker = Breaker(cooldown_s=30)
    live = LiveState(breaker=breaker)
    deps = [dep(1, priority=0), dep(2, priority=1)]
    trip(breaker, 1, T0)
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 29)) == [2, 1]
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 30)) == [1, 2]
    assert breaker.allow(1, T0 + 30)               # this request takes the probe
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 30)) == [2, 1]
    breaker.record(1, "ok", T0 + 31)
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 31)) == [1, 2]


def test_explicit_breaker_argument_overrides_live_breaker():
    b = Breaker()
    trip(b, 1, T0)
    deps = [dep(1), dep(2, priority=1)]
    assert ids(order(deps, "priority", LiveState(), random.Random(0), T0)) == [1, 2]
    assert ids(order(deps, "priority", LiveState(), random.Random(0), T0, breaker=b)) == [2, 1]


# --- pacing --------------------------------------------------------------------------------------
def test_pacing_on_remaining_requests_until_reset():
    live = LiveState()
    deps = [dep(1, priority=0), dep(2, priority=1), dep(3, priority=2)]
    live.observe_ratelimit(1, {"x-ratelimit-remaining-requests": "2",
                               "x-ratelimit-reset-requests": "6s"}, T0)
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 1)) == [2, 3, 1]
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 5.999)) == [2, 3, 1]
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 6)) == [1, 2, 3]
    live.observe_ratelimit(1, {"X-RateLimit-Remaining-Requests": "3",
                               "X-RateLimit-Reset-Requests": "1m0s"}, T0 + 7)
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 7)) == [1, 2, 3]


def test_pacing_on_remaining_tokens_against_the_estimate():
    live = LiveState()
    deps = [dep(1, priority=0), dep(2, priority=1)]
    live.observe_ratelimit(1, {"x-ratelimit-remaining-tokens": "1500",
                               "x-ratelimit-reset-tokens": "20ms"}, T0)
    small = dict(est_input_tokens=1000, est_output_tokens=500)
    big = dict(est_input_tokens=1000, est_output_tokens=501)
    assert ids(order(deps, "priority", live, random.Random(0), T0, **small)) == [1, 2]
    assert ids(order(deps, "priority", live, random.Random(0), T0, **big)) == [2, 1]
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 0.02, **big)) == [1, 2]


def test_paced_go_behind_ready_but_ahead_of_open():
    breaker = Breaker()
    live = LiveState(breaker=breaker)
    deps = [dep(1, priority=0), dep(2, priority=1), dep(3, priority=2)]
    live.observe_ratelimit(1, {"x-ratelimit-remaining-requests": "0",
                               "x-ratelimit-reset-requests": "30s"}, T0)
    trip(breaker, 2, T0)
    assert ids(order(deps, "priority", live, random.Random(0), T0 + 1)) == [3, 1, 2]


# --- properties ----------------------------------------------------------------------------------
deployment_lists = st.lists(
    st.builds(lambda i, p, w, cw, caps: dep(i, priority=p, weight=w, context_window=cw,
                                           capabilities=frozenset(caps)),
              st.integers(1, 30), st.integers(0, 3), st.integers(0, 5),
              st.one_of(st.none(), st.integers(1000, 200_000)),
              st.sets(st.sampled_from(["tools", "vision", "json", "streaming"]))),
    max_size=12, unique_by=lambda d: d.id)


@settings(max_examples=200, deadline=None)
@given(deps=deployment_lists, strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 2**32),
       exclude=st.sets(st.integers(1, 30), max_size=5),
       needs=st.sets(st.sampled_from(["tools", "vision"]), max_size=1),
       open_ids=st.sets(st.integers(1, 30), max_size=5),
       min_context=st.one_of(st.none(), st.integers(1000, 200_000)))
def test_order_is_a_deterministic_permutation_of_the_eligible(deps, strategy, seed, exclude,
                                                             needs, open_ids, min_context):
    breaker = Breaker()
    for i in open_ids:
        breaker.record(i, "auth", T0)
    live = LiveState(breaker=breaker)
    kw = dict(exclude=exclude, needs=frozenset(needs), min_context=min_context)
    got = order(deps, strategy, live, random.Random(seed), T0, **kw)
    want = {d.id for d in deps if d.id not in exclude and set(needs) <= d.capabilities
            and (min_context is None or d.context_window is None
                 or d.context_window >= min_context)}
    assert len(got) == len(want) and {d.id for d in got} == want
    flags = [d.id in open_ids for d in got]
    assert flags == sorted(flags)                  # every open one after every other one
    assert got == order(list(reversed(deps)), strategy, live, random.Random(seed), T0, **kw)
