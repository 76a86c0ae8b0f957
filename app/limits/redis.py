"""RedisStore: the counters in Redis, exact across every process of every host.

Why this shape
    * Every :meth:`admit` is ONE round trip: a Lua script (``app/limits/redis_lua.py``) reads
      every counter the admission depends on, applies the same checks as
      :func:`app.limits.core.decide` and, only if all pass, records the request, the lease, the
      token pre-charge and the reservations. Redis runs a script atomically, so N parallel
      admissions against room for k let exactly k through, whichever hosts they come from.
      :meth:`settle`, :meth:`release` and :meth:`settle_many` are one script call as well.
    * The script returns the counters it read, and :func:`core.decide` is then run on them in
      Python: messages, headers, ``Retry-After`` and the budget warning come from the same code
      as for the other stores. The script's verdict is the one recorded; ``mismatches`` counts
      (and logs) any disagreement with ``decide`` — there should never be one.
    * Scripts are sent with EVALSHA (``register_script``); after a restart or ``SCRIPT FLUSH``
      redis-py gets NOSCRIPT, loads the script and retries, transparently.
    * Time: ``clock="server"`` (what the gateway uses) judges every admission, settle and
      lease at Redis' own ``TIME``, read inside the script: one clock for all hosts, so no
      skew between them and GCRA sees instants in the order the admissions are made. The
      caller's ``now`` then only picks the budget period (a skew matters at most at a period
      boundary). ``clock="caller"`` (the default, like the other stores: the same inputs give
      the same answers, fake clocks in tests) uses ``now`` throughout. Key TTLs are relative,
      from the same instants, plus ``ttl_slack``.

Keys (``prefix`` = ``gw:lim:`` by default; all expire, except "total" budgets)
    ``g:<subject>``           hash rpm/rph/rpd -> TAT µs; expires once every TAT is past
    ``k:<subject>:tpm|tpd``   hash bucket index -> tokens, plus ``s`` (their sum), ``lo`` and
                              ``hi`` (oldest kept / newest bucket): buckets that left the window
                              are dropped on admit, so the window's sum costs O(1), not a scan
                              of up to 1440 buckets; expires when the newest bucket leaves
    ``l:<subject>``           zset of leases (ticket -> expiry µs), counted for concurrency
    ``t:<ticket>``            hash: what settle/release must undo; expires ``lease_ttl + retain``
    ``b:<scope>:<period>:<start>``   hash spent/reserved (integer pico-dollar strings); expires
                              ``retain`` after the period ends
    ``r:<scope>:<period>:<start>``   zset of the reservations it holds (``ticket:amount`` ->
                              lease expiry): an admission takes the expired ones off
                              ``reserved`` first, so a crashed worker's reservations stop
                              counting once their lease expires

Money is kept as integer pico-dollars (10^-12 USD): exact for every amount with up to 12
decimals (reservations and costs with more are rounded up, budget amounts down). The Lua side
does exact fixed-point arithmetic on them (see the scripts' docstring), never floats.

A single Redis (with replicas/Sentinel if wanted); Redis Cluster is not supported (a settle
touches keys named in the ticket). Errors: ``redis.exceptions.RedisError`` (ConnectionError,
TimeoutError, ...) when Redis does not answer — :class:`app.limits.failover.FailoverStore`
decides what happens then.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Sequence

from . import core
from .core import US, Admission, Budget, BudgetView, Denied, Limits, TokenView
from .redis_lua import ADMIT, FINISH

log = logging.getLogger(__name__)

PICO = 10 ** 12


def to_pico(d: Decimal, rounding=ROUND_CEILING) -> int:
    return int((d * PICO).to_integral_value(rounding=rounding))


def from_pico(text: bytes | str) -> Decimal:
    """Integer pico-dollars to a plain Decimal (``0.10000003``, not ``1.0000003E-7``)."""
    n = int(text)
    sign, n = ("-", -n) if n < 0 else ("", n)
    whole, frac = divmod(n, PICO)
    s = f"{sign}{whole}.{frac:012d}".rstrip("0").rstrip(".")
    return Decimal(s)


def _ms(us: int) -> int:
    return max(0, -(-us // 1000))


class RedisStore(core.Store):
    """Counters in the Redis at ``url`` (or behind an existing ``redis.Redis`` client)."""

    def __init__(self, url_or_client, *, prefix: str = "gw:lim:", lease_ttl: float = 900.0,
                 retain: float = 86400.0, strict_tokens: bool = False, ttl_slack: float = 60.0,
                 clock: str = "caller"):
        if clock not in ("caller", "server"):
            raise ValueError(f"clock must be 'caller' or 'server', not {clock!r}")
        if isinstance(url_or_client, str):
            from app.redisconn import client
            self.client = client(url_or_client)
        else:
            self.client = url_or_client
        self.prefix = prefix
        self.lease_us = int(lease_ttl * US)
        self.retain_us = int(retain * US)
        self.slack_ms = int(ttl_slack * 1000)
        self.strict_tokens = strict_tokens
        self.server_clock = clock == "server"
        self.mismatches = 0
        self._admit = self.client.register_script(ADMIT)
        self._finish = self.client.register_script(FINISH)

    # --- keys -----------------------------------------------------------------------------------
    def _budget_keys(self, b: Budget, start: int) -> tuple[str, str]:
        tail = f"{b.scope}:{b.period}:{start}"
        return self.prefix + "b:" + tail, self.prefix + "r:" + tail

    def _args(self, mode: str, subject: str, limits: Limits, budgets, est: int, reserve: int,
              now_us: int, rid: str) -> tuple[list, list]:
        p = self.prefix
        keys = [f"{p}g:{subject}", f"{p}k:{subject}:tpm", f"{p}k:{subject}:tpd",
                f"{p}l:{subject}", f"{p}t:{rid}"]
        args: list = [mode, "" if self.server_clock else now_us, est, reserve,
                      int(self.strict_tokens), self.lease_us,
                      _ms(self.lease_us + self.retain_us) + self.slack_ms, rid, self.slack_ms]
        for name, window_s, _ in core.REQUEST_WINDOWS:
            lim = getattr(limits, name)
            window_us = window_s * US
            if lim is None:
                args += ["", 0, 0]
            else:
                args += [int(lim), window_us, core.gcra_interval(int(lim), window_us)
                         if int(lim) > 0 else 0]
        for name, window_s, bucket_s, _ in core.TOKEN_WINDOWS:
            lim = getattr(limits, name)
            args += ["" if lim is None else int(lim), window_s, bucket_s]
        args += ["" if limits.concurrency is None else int(limits.concurrency), len(budgets)]
        for b, start in budgets:
            keys += self._budget_keys(b, start)
            end = core.period_end(b.period, start)
            args += [to_pico(b.amount_usd, ROUND_FLOOR),
                     "" if end is None else _ms(end * US - now_us + self.retain_us)]
        return keys, args

    def _views(self, res: list, limits: Limits, budgets) -> tuple:
        """The script's reply as decide()'s inputs:
        (ok, now_us, tats, tokens, in_flight, views, rows)."""
        vals = [v.decode() if isinstance(v, bytes) else str(v) for v in res]
        ok, now_us = vals[0] == "ok", int(vals[1])
        tats = {name: int(v) for (name, _, _), v in zip(core.REQUEST_WINDOWS, vals[2:5]) if v}
        tokens, pos = [], 5
        for name, window_s, bucket_s, words in core.TOKEN_WINDOWS:
            used, newest = vals[pos], vals[pos + 1]
            pos += 2
            lim = getattr(limits, name)
            if lim is not None:
                tokens.append(TokenView(name, int(lim), window_s, bucket_s, words, int(used),
                                        int(newest) if newest else None))
        in_flight = int(vals[pos])
        pos += 1
        views = []
        for b, start in budgets:
            views.append(BudgetView(b, start, from_pico(vals[pos]), from_pico(vals[pos + 1])))
            pos += 2
        rows = {}
        for name, _, _, _ in core.TOKEN_WINDOWS:
            n = int(vals[pos])
            flat = vals[pos + 1:pos + 1 + 2 * n]
            rows[name] = sorted((int(flat[i]), int(flat[i + 1])) for i in range(0, 2 * n, 2))
            pos += 1 + 2 * n
        return ok, now_us, tats, tokens, in_flight, views, rows

    @staticmethod
    def _budgets(budgets: Sequence[Budget], now: float) -> list[tuple[Budget, int]]:
        out = []
        for b in budgets:
            amount = from_pico(to_pico(b.amount_usd, ROUND_FLOOR))
            if amount != b.amount_usd:      # finer than a pico-dollar: what the script compares
                b = replace(b, amount_usd=amount)
            out.append((b, core.period_start(b.period, now)))
        return out

    # --- the API --------------------------------------------------------------------------------
    def admit(self, subject: str, limits: Limits, budgets: Sequence[Budget], est_tokens: int,
              reserve_usd: Decimal, now: float) -> Admission:
        """Check every limit and budget and record the admission: one script, one round trip."""
        now_us = core.to_us(now)
        est = core.count(est_tokens, "est_tokens")
        reserve_p = to_pico(core.money(reserve_usd))
        reserve = from_pico(reserve_p)
        core.check_budgets(budgets)
        starts = self._budgets(budgets, now)
        ticket = core.new_ticket()
        keys, args = self._args("admit", subject, limits, starts, est, reserve_p, now_us, ticket)
        ok, now_us, tats, tokens, in_flight, views, rows = self._views(
            self._admit(keys=keys, args=args), limits, starts)
        plan = core.decide(subject, limits, now_us, est, reserve, tats, tokens, in_flight, views,
                           lambda v: rows[v.name], ticket, self.strict_tokens)
        if isinstance(plan, Denied):
            if ok:                          # recorded by the script: it stands
                self._mismatch(subject, "admitted", plan.reason)
                return Admission(ticket, {k: v for k, v in plan.headers.items()
                                          if k != "Retry-After"})
            raise plan
        if not ok:
            self._mismatch(subject, "refused", "allow")
            raise Denied("rate_limit_requests", "Rate limit reached; please try again shortly.",
                         1.0, {"Retry-After": "1"}, subject=subject, limit_name="store")
        return plan.admission

    def _mismatch(self, subject: str, script: str, python: str) -> None:
        self.mismatches += 1
        log.error("RedisStore: the script %s a request for %s that decide() judged %s",
                  script, subject, python)

    def settle(self, ticket: str, tokens: int, cost_usd: Decimal, now: float) -> None:
        """Swap the pre-charge for ``tokens``, every reservation for ``cost_usd``; end the lease.
        Same rules as :meth:`SQLiteStore.settle`; idempotent."""
        self.settle_many([(ticket, tokens, cost_usd, now, True)])

    def release(self, ticket: str, now: float) -> None:
        """Drop the reservations, the pre-charge and the lease; idempotent."""
        self.settle_many([(ticket, 0, core.ZERO, now, False)])

    def settle_many(self, items: Sequence[tuple[str, int, Decimal, float, bool]]) -> None:
        """Settle or release several tickets in ONE script call (one round trip, atomic)."""
        keys, args = [], []
        for ticket, tokens, cost, now, settled in items:
            tokens, cost = core.count(tokens, "tokens"), core.money(cost)
            if not isinstance(ticket, str) or not ticket:
                continue
            keys.append(f"{self.prefix}t:{ticket}")
            args += [tokens, to_pico(cost) if settled else 0, int(bool(settled)),
                     "" if self.server_clock else core.to_us(now)]
        if keys:
            tail = [v for _, window_s, bucket_s, _ in core.TOKEN_WINDOWS
                    for v in (window_s, bucket_s)]
            self._finish(keys=keys, args=args + tail + [self.slack_ms])

    def state(self, subject: str, limits: Limits, budgets: Sequence[Budget], now: float) -> dict:
        """Limits, in-flight count and budgets as of ``now`` (the admission script, read only)."""
        now_us = core.to_us(now)
        core.check_budgets(budgets)
        starts = self._budgets(budgets, now)
        keys, args = self._args("state", subject, limits, starts, 0, 0, now_us, "-")
        _, now_us, tats, tokens, in_flight, views, _ = self._views(
            self._admit(keys=keys, args=args), limits, starts)
        return core.state_dict(subject, limits, now_us, tats, tokens, in_flight, views)

    def spend(self, scope: str, period: str, now: float) -> Decimal:
        """Settled spend of ``scope`` in the ``period`` containing ``now``."""
        start = core.period_start(period, now)
        raw = self.client.hget(f"{self.prefix}b:{scope}:{period}:{start}", "spent")
        return from_pico(raw) if raw is not None else core.ZERO

    def close(self) -> None:
        pass            # the client is shared by the process (app.redisconn)
