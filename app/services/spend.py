"""Spend control on the request path: rate limits, concurrency and budgets per key, team, model
and provider, through one counter store (app.limits) shared by every worker of the host.

Budget refusals are HTTP 402 with type/code ``insufficient_quota``: unlike OpenAI's 429 for the
same condition, 402 tells SDKs not to retry (openai-python retries every 429), since waiting
does not make money appear. Rate and concurrency refusals are 429 with ``Retry-After`` and
OpenAI's ``x-ratelimit-*`` headers.

A key, model and provider without limits or budgets skip the store entirely (no round trip).
If the store cannot be reached (file locked beyond its timeout) the request is let through and
the failure logged: the gateway degrades to unlimited rather than refusing all traffic.

With ``GATEWAY_REDIS_URL`` set (and no other ``GATEWAY_LIMITS_URL``) the counters live in
Redis, shared by every host (app.limits.redis). While Redis does not answer,
``GATEWAY_REDIS_FAILURE=open`` (default) enforces the same limits per worker process from
local memory and goes back to Redis once it answers (probed at most every second);
``closed`` refuses requests with 503 ``limits_unavailable`` (app.limits.failover).
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import current_app

from app.limits import Budget, Denied, Limits, make_store
from app.limits.failover import StoreUnavailable
from app.services.runtime import KeyInfo, Route, Snapshot

log = logging.getLogger(__name__)
DEFAULT_MAX_OUTPUT = 4096  # reservation when neither the request nor the model caps output


class SpendDenied(Exception):
    """Carries the OpenAI-shaped refusal (status, type, code, message, headers)."""

    def __init__(self, status: int, message: str, type_: str, code: str, headers: dict[str, str],
                 error_class: str):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code
        self.headers, self.error_class = headers, error_class


@dataclass
class Ticket:
    """What a call holds while in flight: one store ticket per limited subject."""

    tickets: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    warning: str | None = None
    # holds a concurrency slot or a budget reservation: must be given back before the response
    # ends, or a client that waits for each answer would be refused by its own finished call
    holds: bool = False


def _limits(data: dict[str, Any] | None) -> Limits | None:
    if not data:
        return None
    limits = Limits.from_dict(data)
    return limits if any(getattr(limits, f) is not None for f in
                         ("rpm", "rph", "rpd", "tpm", "tpd", "concurrency")) else None


def budgets_for(snap: Snapshot, key: KeyInfo) -> list[Budget]:
    out = []
    if key.budget:
        out.append(Budget.from_dict(f"key:{key.id}", key.budget))
    if key.owner and key.owner in snap.team_budgets:
        out.append(Budget.from_dict(f"team:{key.owner}", snap.team_budgets[key.owner]))
    return out


def worst_case_output(body: dict[str, Any], route: Route) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return route.max_output_tokens or DEFAULT_MAX_OUTPUT


class Gate:
    """Admission is synchronous (one store transaction). The end of a request is written at
    once when it holds a concurrency slot or a budget reservation (a sequential client must
    never be refused by its own finished call); otherwise (rate and token counts only) it is
    queued and written in batches every ``settle_interval`` seconds by a background greenlet,
    so such requests cost one store round trip."""

    def __init__(self, store, settle_interval: float = 0.0):
        self.store = store
        self.settle_interval = settle_interval
        self._pending: list[tuple[str, int, Decimal, float, bool]] = []
        self._started = False
        self._lock = threading.Lock()

    def admit(self, snap: Snapshot, key: KeyInfo, route: Route, prompt_tokens: int,
              max_output: int, reserve: Decimal | None = None) -> Ticket | None:
        """Check and record every applicable limit and budget; None when nothing applies."""
        subjects = []
        key_limits = _limits(key.limits)
        budgets = budgets_for(snap, key)
        if key_limits or budgets:
            subjects.append((f"key:{key.id}", key_limits or Limits(), budgets))
        if (m := _limits(route.model_limits)) is not None:
            subjects.append((f"model:{route.model_pk}", m, []))
        if (p := _limits(route.provider_limits)) is not None:
            subjects.append((f"provider:{route.provider_id}", p, []))
        if not subjects:
            return None
        if reserve is None:
            reserve = route.cost(prompt_tokens, max_output)
        ticket = Ticket()
        now = time.time()
        try:
            for subject, limits, subject_budgets in subjects:
                if subject_budgets or limits.concurrency is not None:
                    ticket.holds = True
                adm = self.store.admit(subject, limits, subject_budgets, prompt_tokens + max_output,
                                       reserve if subject_budgets else Decimal(0), now)
                ticket.tickets.append(adm.ticket)
                if subject.startswith("key:"):
                    ticket.headers.update(adm.headers)
                    ticket.warning = adm.budget_warning
        except Denied as denied:
            self.release(ticket)
            raise self._refusal(denied, subject) from None
        except StoreUnavailable:  # Redis down and GATEWAY_REDIS_FAILURE=closed
            self.release(ticket)
            raise unavailable() from None
        except Exception:  # store unavailable: fail open, loudly
            log.exception("limit store unavailable; letting the request through")
            self.release(ticket)
            return None
        return ticket

    @staticmethod
    def _refusal(denied: Denied, subject: str) -> SpendDenied:
        headers = dict(denied.headers)
        if denied.reason == "budget":
            return SpendDenied(402, denied.message, "insufficient_quota", "insufficient_quota",
                               headers, "budget_exceeded")
        if not subject.startswith("key:"):  # a global model/provider limit protecting a quota
            headers = {k: val for k, val in headers.items() if k.lower() == "retry-after"}
        code = "concurrency_limit_exceeded" if denied.reason == "concurrency" else "rate_limit_exceeded"
        return SpendDenied(429, denied.message, "rate_limit_error", code, headers, "rate_limited")

    def settle(self, ticket: Ticket | None, tokens: int, cost: Decimal) -> None:
        if ticket is not None:
            self._queue([(t, tokens, cost, time.time(), True) for t in ticket.tickets], ticket.holds)

    def release(self, ticket: Ticket | None) -> None:
        if ticket is not None:
            self._queue([(t, 0, Decimal(0), time.time(), False) for t in ticket.tickets],
                        ticket.holds)

    def _queue(self, items: list[tuple[str, int, Decimal, float, bool]], now: bool) -> None:
        """Tickets holding a slot or a reservation are written at once (with whatever else is
        queued, in the same transaction); pure rate/token accounting waits for the batch."""
        with self._lock:
            self._pending.extend(items)
        if now or self.settle_interval <= 0:
            self.flush()
        elif not self._started:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        atexit.register(self.flush)
        threading.Thread(target=self._loop, name="limit-settler", daemon=True).start()

    def _loop(self) -> None:
        from app.services.usage import _sleep
        while True:
            _sleep(self.settle_interval)
            self.flush()

    def flush(self) -> int:
        """Write every queued settle/release now (also called at worker exit)."""
        with self._lock:
            items, self._pending = self._pending, []
        if not items:
            return 0
        try:
            self.store.settle_many(items)
        except Exception:  # keep them for the next round; leases expire if this never works
            log.exception("could not settle %d limit ticket(s); retrying", len(items))
            with self._lock:
                self._pending[:0] = items
            return 0
        return len(items)

    def key_state(self, snap: Snapshot, key: KeyInfo) -> dict[str, Any]:
        return self.store.state(f"key:{key.id}", _limits(key.limits) or Limits(),
                                budgets_for(snap, key), time.time())


def unavailable() -> SpendDenied:
    """503 for a request whose limits cannot be checked (shared store down, failing closed)."""
    return SpendDenied(503, "Rate limits and budgets cannot be checked right now (the limits "
                       "store is unavailable). Please retry shortly.", "api_error",
                       "limits_unavailable", {"Retry-After": "1"}, "limits_unavailable")


def store_url(app) -> str:
    """GATEWAY_LIMITS_URL, else GATEWAY_REDIS_URL, else a SQLite file beside the DB."""
    return (app.config.get("LIMITS_STORE_URL") or app.config.get("REDIS_URL")
            or f"sqlite:///{Path(app.instance_path) / 'counters.db'}")


def make_gate_store(app):
    """The app's counter store; a Redis one wrapped in its outage policy and metrics."""
    from app.limits import REDIS_SCHEMES
    cfg = app.config
    url = store_url(app).strip()
    if not url.startswith(REDIS_SCHEMES):
        return make_store(url, lease_ttl=cfg["LIMITS_LEASE_TTL"])
    # every host judged by Redis' clock (app/limits/redis.py)
    store = make_store(url, lease_ttl=cfg["LIMITS_LEASE_TTL"], clock="server")
    from app.limits import FailoverStore
    return FailoverStore(store, failure=cfg.get("REDIS_FAILURE") or "open",
                         lease_ttl=cfg["LIMITS_LEASE_TTL"], name="limits")  # metrics: its Guard


def gate() -> Gate:
    ext = current_app.extensions
    g = ext.get("gateway_gate")
    if g is None:
        g = ext["gateway_gate"] = Gate(make_gate_store(current_app),
                                       current_app.config["LIMITS_SETTLE_INTERVAL"])
    return g
