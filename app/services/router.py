"""Per-worker routing state and the plan of deployments a request may be sent to.

Wraps the pure routing package (app.routing): a LiveState (latency, in flight, upstream
rate-limit headers) per worker, and circuit breakers whose state is shared by every worker
through a SQLite file beside the DB (`instance/breakers.db`), or by every worker of every host
through Redis when GATEWAY_REDIS_URL is set (app.routing.redis.RedisBreakerStore; a worker
falls back to its own in-memory breakers while Redis is unreachable).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app

from app.routing import (Breaker, BreakerStore, Deployment, LiveState, SQLiteBreakerStore,
                         live_view)
from app.routing.breaker import window_counts
from app.services.runtime import KeyInfo, Route, Snapshot

DEFAULT_GROUP = {"strategy": "priority", "fallbacks": [], "retries": 2, "timeout_s": None}


@dataclass
class Group:
    name: str
    strategy: str
    retries: int
    timeout_s: float | None
    routes: list[Route]


@dataclass
class Plan:
    """The primary group then its fallback groups; deployments never repeat."""

    groups: list[Group] = field(default_factory=list)

    @property
    def primary(self) -> Group:
        return self.groups[0]

    def routes(self) -> list[Route]:
        return [r for g in self.groups for r in g.routes]


def deployment(route: Route) -> Deployment:
    return Deployment(id=route.model_pk, provider_id=route.provider_id, priority=route.priority,
                      weight=route.weight, input_price=route.input_price,
                      output_price=route.output_price, context_window=route.context_window,
                      capabilities=route.capabilities)


def needs_of(body: dict[str, Any], stream: bool) -> frozenset[str]:
    """Capabilities a chat request needs from a deployment."""
    needs = set()
    if body.get("tools") or body.get("functions"):
        needs.add("tools")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        needs.add("json")
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url"
                                             for p in content):
            needs.add("vision")
            break
    return frozenset(needs)


class Router:
    def __init__(self, breaker_path: str | None = None, seed: int | None = None, *,
                 store: BreakerStore | None = None):
        """Breakers over ``store``, else a SQLiteBreakerStore at ``breaker_path``."""
        if store is None:
            if breaker_path is None:
                raise ValueError("Router needs a breaker_path or a store")
            store = SQLiteBreakerStore(breaker_path)
        self.breaker = Breaker(store)
        self.live = LiveState(breaker=self.breaker)
        self.rng = random.Random(seed)

    def plan(self, snap: Snapshot, key: KeyInfo, primary: list[Route], kind: str) -> Plan:
        name = primary[0].name
        cfg = {**DEFAULT_GROUP, **snap.groups.get(name, {})}
        plan = Plan([Group(name, cfg["strategy"], cfg["retries"], cfg["timeout_s"], primary)])
        seen = {r.model_pk for r in primary}
        for fallback in cfg["fallbacks"]:
            if not key.may_use(fallback):
                continue
            routes = [r for r in snap.by_name.get(fallback, []) if r.kind == kind
                      and r.model_pk not in seen]
            if routes:
                fcfg = {**DEFAULT_GROUP, **snap.groups.get(fallback, {})}
                plan.groups.append(Group(fallback, fcfg["strategy"], fcfg["retries"],
                                         fcfg["timeout_s"], routes))
                seen.update(r.model_pk for r in routes)
        return plan

    def record_ok(self, dep_id: int, now: float) -> None:
        """A success on a deployment that is closed with no failure in its window teaches the
        breaker nothing: skip the store write (the hot path's common case). Once a failure is in
        the window, successes are recorded again so the error rate stays honest; the rate can
        only be overstated for the few requests right after a first failure, and tripping still
        needs min_requests (10) with half of them failing."""
        row = self.breaker.store.get(dep_id, now)
        if row is None or (row.state == "closed" and row.consecutive == 0
                           and window_counts(row, now, self.breaker.policy)[1] == 0):
            return
        self.breaker.record(dep_id, "ok", now)

    def live_view(self) -> dict[int, dict]:
        from app.services.runtime import cache
        snap = cache().get()
        ids = sorted({r.model_pk for routes in snap.by_name.values() for r in routes})
        return live_view(ids, self.live, self.breaker, time.time())


def router() -> Router:
    ext = current_app.extensions
    r = ext.get("gateway_router")
    if r is None:
        seed = current_app.config.get("ROUTER_SEED")
        url = current_app.config.get("REDIS_URL")
        if url:
            from app import redisconn
            from app.routing.redis import RedisBreakerStore
            r = Router(seed=seed, store=RedisBreakerStore(lambda: redisconn.client(url)))
        else:
            path = current_app.config.get("BREAKER_STORE_PATH") or str(
                Path(current_app.instance_path) / "breakers.db")
            r = Router(path, seed)
        ext["gateway_router"] = r
    return r
