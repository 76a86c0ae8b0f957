"""Deployments of a model group and the order in which to try them."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

STRATEGIES = ("priority", "weighted", "least-latency", "least-busy", "cost")
CAPABILITIES = ("tools", "vision", "json", "streaming")
_MILLION = Decimal(1_000_000)


def _decimal(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))          # 0.1 means Decimal("0.1")
    return Decimal(value if value is not None else 0)


@dataclass(frozen=True)
class Deployment:
    """One deployment of a model group: plain values the caller builds from a Model row.

    Prices are per 1M tokens (floats are taken as their decimal text). ``context_window`` None
    means unknown (never filtered out on context). ``weight`` 0: never picked by ``weighted``
    (nor within its priority tier) unless nothing else is left.
    """
    id: int
    provider_id: int
    priority: int = 0
    weight: int = 1
    input_price: Decimal = Decimal(0)
    output_price: Decimal = Decimal(0)
    context_window: int | None = None
    capabilities: frozenset[str] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "input_price", _decimal(self.input_price))
        object.__setattr__(self, "output_price", _decimal(self.output_price))
        if not isinstance(self.capabilities, frozenset):
            object.__setattr__(self, "capabilities", frozenset(self.capabilities or ()))
        if self.weight is None or self.weight < 0 or not math.isfinite(self.weight):
            raise ValueError(f"deployment {self.id}: weight must be a number >= 0")

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Estimated USD cost of a request of that many tokens on this deployment."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / _MILLION


def eligible(deployments: Iterable[Deployment], *, exclude: Iterable[int] = frozenset(),
             needs: Iterable[str] = frozenset(),
             min_context: int | None = None) -> list[Deployment]:
    """The deployments that can serve the request at all (the filtering step of :func:`order`).

    Dropped: ids in ``exclude`` (already tried by this request), deployments lacking one of the
    ``needs`` capabilities, and those whose known ``context_window`` is below ``min_context``.
    A deployment listed twice is kept once.
    """
    exclude = frozenset(exclude)
    needs = frozenset(needs)
    seen: set[int] = set()
    out = []
    for d in deployments:
        if d.id in exclude or d.id in seen or not needs <= d.capabilities:
            continue
        if (min_context is not None and d.context_window is not None
                and d.context_window < min_context):
            continue
        seen.add(d.id)
        out.append(d)
    return out


def _weighted_shuffle(deps: list[Deployment], rng: random.Random) -> list[Deployment]:
    """Weighted random order without replacement (Efraimidis-Spirakis exponential keys).

    Each deployment with weight w > 0 draws ``Exp(w)``; ascending keys give the order, so the
    first is deployment i with probability ``w_i / sum(w)``, the second likewise among the rest,
    and so on. Weight 0 goes after every positive weight (in the order given). One draw per
    positive-weight deployment, in the order given: deterministic given ``rng``.
    """
    keyed = []
    for i, d in enumerate(deps):
        if d.weight > 0:
            keyed.append((-math.log(1.0 - rng.random()) / d.weight, i, d))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [d for _, _, d in keyed] + [d for d in deps if d.weight <= 0]


def _by_priority(deps, live, rng, est_in, est_out):
    out, tier = [], []
    for d in deps:                           # deps come sorted by (priority, id)
        if tier and d.priority != tier[0].priority:
            out.extend(_weighted_shuffle(tier, rng) if len(tier) > 1 else tier)
            tier = []
        tier.append(d)
    out.extend(_weighted_shuffle(tier, rng) if len(tier) > 1 else tier)
    return out


def _by_weight(deps, live, rng, est_in, est_out):
    return _weighted_shuffle(deps, rng)


def _by_latency(deps, live, rng, est_in, est_out):
    def key(d):
        lat = live.latency(d.id) if live is not None else None
        return (0, 0.0) if lat is None else (1, lat)   # unknown first: gets measured
    return sorted(deps, key=key)             # stable: ties keep (priority, id)


def _by_load(deps, live, rng, est_in, est_out):
    return sorted(deps, key=lambda d: live.in_flight(d.id) if live is not None else 0)


def _by_cost(deps, live, rng, est_in, est_out):
    return sorted(deps, key=lambda d: d.cost(est_in, est_out))


_STRATEGY = {"priority": _by_priority, "weighted": _by_weight, "least-latency": _by_latency,
             "least-busy": _by_load, "cost": _by_cost}


def order(deployments: list[Deployment], strategy: str, live, rng: random.Random, now: float,
          *, exclude: Iterable[int] = frozenset(), needs: Iterable[str] = frozenset(),
          min_context: int | None = None, est_input_tokens: int = 0,
          est_output_tokens: int = 0, breaker=None) -> list[Deployment]:
    """The order in which a request should try the group's deployments.

    1. Filter (:func:`eligible`): drop ``exclude``, missing ``needs``, too small a context.
    2. Rank by ``strategy`` (the input is first sorted by (priority, id), so the result does
       not depend on the order of ``deployments``; ties always fall back to priority, then id):

       * ``priority``: by priority (lower first); within one priority, weighted random.
       * ``weighted``: weighted random without replacement over all; weight 0 last.
       * ``least-latency``: by ``live.latency`` (TTFB moving average); unknown latency first,
         so a new deployment gets measured.
       * ``least-busy``: by ``live.in_flight`` (this process's).
       * ``cost``: by the estimated cost of ``est_input_tokens`` / ``est_output_tokens``.

    3. Stable partition: deployments the upstream's rate-limit headers say are about to 429
       (``live.paced``: remaining requests ``<= live.pace_requests``, or remaining tokens below
       ``est_input_tokens + est_output_tokens``, until the reset time) go behind the others;
       deployments whose breaker is open, disabled, or half-open with its probe taken go last
       (``breaker``, default ``live.breaker``; read from its cache, no probe is taken). They
       are kept, not dropped: when everything is open the caller may still try them.

    Deterministic given ``rng`` (only ``priority`` and ``weighted`` draw from it). ``live`` may
    be None (no latency, load or pacing known).
    """
    rank = _STRATEGY.get(strategy)
    if rank is None:
        raise ValueError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")
    cands = eligible(deployments, exclude=exclude, needs=needs, min_context=min_context)
    cands.sort(key=lambda d: (d.priority, d.id))
    ranked = rank(cands, live, rng, est_input_tokens, est_output_tokens)
    if breaker is None:
        breaker = getattr(live, "breaker", None)
    est_tokens = est_input_tokens + est_output_tokens
    ready, paced, blocked = [], [], []
    for d in ranked:
        if breaker is not None and breaker.blocked(d.id, now):
            blocked.append(d)
        elif live is not None and live.paced(d.id, now, est_tokens):
            paced.append(d)
        else:
            ready.append(d)
    return ready + paced + blocked
