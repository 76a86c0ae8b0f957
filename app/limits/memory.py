"""MemoryStore: the same semantics as SQLiteStore in plain dicts under one lock.

Single process only (tests, development, and the reference the SQLite store is checked
against): nothing survives a restart and nothing is shared with other workers.
"""
from __future__ import annotations

import threading
from decimal import Decimal
from typing import Sequence

from . import core
from .core import (US, Admission, Budget, BudgetView, Denied, Limits, TokenView, token_bucket,
                   token_floor)


class MemoryStore(core.Store):
    def __init__(self, *, lease_ttl: float = 900.0, prune_every: int = 200,
                 retain: float = 86400.0, strict_tokens: bool = False):
        self.lease_us = int(lease_ttl * US)
        self.prune_every = max(1, int(prune_every))
        self.retain_us = int(retain * US)
        self.strict_tokens = strict_tokens
        self._lock = threading.RLock()
        self._calls = 0
        self.tats: dict[tuple[str, str], int] = {}
        self.tokens: dict[tuple[str, str], dict[int, int]] = {}
        # ticket -> {subject, expires_at, est, tpm_bucket, tpd_bucket}
        self.tickets: dict[str, dict] = {}
        # (scope, period, start) -> [spent, reserved]
        self.budgets: dict[tuple[str, str, int], list[Decimal]] = {}
        # ticket -> [{scope, period, start, amount, expires_at, held}]
        self.resv: dict[str, list[dict]] = {}

    # --- reads ----------------------------------------------------------------------------------
    def _tats(self, subject: str) -> dict[str, int]:
        return {name: self.tats[(subject, name)] for name, _, _ in core.REQUEST_WINDOWS
                if (subject, name) in self.tats}

    def _token_views(self, subject: str, limits: Limits, now_us: int) -> list[TokenView]:
        views = []
        for name, limit, window_s, bucket_s, words in core.token_specs(limits):
            floor = token_floor(now_us, window_s, bucket_s)
            buckets = self.tokens.get((subject, name), {})
            live = [(b, t) for b, t in buckets.items() if b > floor]
            used = sum(t for _, t in live)
            newest = max((b for b, t in live if t > 0), default=None)
            views.append(TokenView(name, limit, window_s, bucket_s, words, used, newest))
        return views

    def _in_flight(self, subject: str, now_us: int) -> int:
        return sum(1 for t in self.tickets.values()
                   if t["subject"] == subject and t["expires_at"] > now_us)

    def _budget_view(self, b: Budget, start: int, now_us: int, write: bool) -> BudgetView:
        key = (b.scope, b.period, start)
        row = self.budgets.get(key)
        if row is None:
            return BudgetView(b, start, core.ZERO, core.ZERO)
        spent, reserved = row
        for rs in self.resv.values():
            for r in rs:
                if (r["held"] and (r["scope"], r["period"], r["start"]) == key
                        and r["expires_at"] <= now_us):
                    reserved -= r["amount"]
                    if write:
                        r["held"] = False
        if write:
            row[1] = reserved
        return BudgetView(b, start, spent, reserved)

    # --- the API --------------------------------------------------------------------------------
    def admit(self, subject: str, limits: Limits, budgets: Sequence[Budget], est_tokens: int,
              reserve_usd: Decimal, now: float) -> Admission:
        now_us = core.to_us(now)
        est = core.count(est_tokens, "est_tokens")
        reserve = core.money(reserve_usd)
        core.check_budgets(budgets)
        starts = [(b, core.period_start(b.period, now)) for b in budgets]
        ticket = core.new_ticket()
        with self._lock:
            self._calls += 1
            if self._calls % self.prune_every == 0:
                self._prune(now_us)
            tats = self._tats(subject) if core.request_views(limits) else {}
            tokens = self._token_views(subject, limits, now_us)
            in_flight = self._in_flight(subject, now_us) if limits.concurrency is not None else 0
            views = [self._budget_view(b, start, now_us, True) for b, start in starts]

            def rows(v: TokenView):
                floor = token_floor(now_us, v.window_s, v.bucket_s)
                return sorted((b, t) for b, t in self.tokens.get((subject, v.name), {}).items()
                              if b > floor)
            plan = core.decide(subject, limits, now_us, est, reserve, tats, tokens, in_flight,
                               views, rows, ticket, self.strict_tokens)
            if isinstance(plan, Denied):
                raise plan
            for name, tat in plan.new_tats.items():
                self.tats[(subject, name)] = tat
            buckets = {"tpm": None, "tpd": None}
            for v in plan.token_windows:
                b = token_bucket(now_us, v.bucket_s)
                buckets[v.name] = b
                if est:
                    d = self.tokens.setdefault((subject, v.name), {})
                    d[b] = d.get(b, 0) + est
            expires = now_us + self.lease_us
            self.tickets[ticket] = {"subject": subject, "expires_at": expires, "est": est,
                                    "tpm_bucket": buckets["tpm"], "tpd_bucket": buckets["tpd"]}
            rs = []
            for v in plan.budgets:
                b = v.budget
                key = (b.scope, b.period, v.start)
                self.budgets[key] = [v.spent, v.reserved + reserve]
                rs.append({"scope": b.scope, "period": b.period, "start": v.start,
                           "amount": reserve, "expires_at": expires, "held": True})
            if rs:
                self.resv[ticket] = rs
            return plan.admission

    def settle(self, ticket: str, tokens: int, cost_usd: Decimal, now: float) -> None:
        self._finish(ticket, core.count(tokens, "tokens"), core.money(cost_usd), now, True)

    def release(self, ticket: str, now: float) -> None:
        self._finish(ticket, 0, core.ZERO, now, False)

    def _finish(self, ticket: str, tokens: int, cost: Decimal, now: float, settled: bool) -> None:
        now_us = core.to_us(now)
        with self._lock:
            t = self.tickets.pop(ticket, None)
            if t is None:
                return
            subject, est = t["subject"], t["est"]
            for name, bucket_s in (("tpm", 1), ("tpd", 60)):
                old = t[f"{name}_bucket"]
                if old is None:
                    continue
                d = self.tokens.setdefault((subject, name), {})
                if old in d:
                    d[old] -= est
                if tokens:
                    cur = token_bucket(now_us, bucket_s)
                    d[cur] = d.get(cur, 0) + tokens
            for r in self.resv.pop(ticket, []):
                row = self.budgets[(r["scope"], r["period"], r["start"])]
                if r["held"]:
                    row[1] -= r["amount"]
                if settled:
                    row[0] += cost

    def state(self, subject: str, limits: Limits, budgets: Sequence[Budget], now: float) -> dict:
        now_us = core.to_us(now)
        core.check_budgets(budgets)
        with self._lock:
            tats = self._tats(subject)
            tokens = self._token_views(subject, limits, now_us)
            in_flight = self._in_flight(subject, now_us)
            views = [self._budget_view(b, core.period_start(b.period, now), now_us, False)
                     for b in budgets]
            return core.state_dict(subject, limits, now_us, tats, tokens, in_flight, views)

    def spend(self, scope: str, period: str, now: float) -> Decimal:
        with self._lock:
            row = self.budgets.get((scope, period, core.period_start(period, now)))
            return row[0] if row else core.ZERO

    def _prune(self, now_us: int) -> None:
        self.tats = {k: v for k, v in self.tats.items() if v >= now_us}
        for (subject, name), d in self.tokens.items():
            window_s, bucket_s = {"tpm": (60, 1), "tpd": (86400, 60)}[name]
            floor = token_floor(now_us, window_s, bucket_s)
            for b in [b for b in d if b <= floor]:
                del d[b]
        self.tokens = {k: d for k, d in self.tokens.items() if d}
        cutoff = now_us - self.retain_us
        for ticket, rs in list(self.resv.items()):
            for r in rs:
                if r["held"] and r["expires_at"] <= now_us:
                    r["held"] = False
                    self.budgets[(r["scope"], r["period"], r["start"])][1] -= r["amount"]
            kept = [r for r in rs if r["expires_at"] >= cutoff]
            if kept:
                self.resv[ticket] = kept
            else:
                del self.resv[ticket]
        self.tickets = {k: t for k, t in self.tickets.items() if t["expires_at"] >= cutoff}
