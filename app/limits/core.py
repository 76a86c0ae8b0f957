"""Types and the pure arithmetic shared by every counter store (no I/O, no Flask).

A store only reads and writes rows; every decision (GCRA, the token window, concurrency, budgets),
every header and every message is made here, so :class:`~app.limits.memory.MemoryStore` and
:class:`~app.limits.sqlite.SQLiteStore` cannot disagree on policy, only on storage.

Time
    Callers pass ``now`` as float epoch seconds (injected, so tests drive a fake clock). Inside
    a store every instant is an integer number of **microseconds** (:func:`to_us`): integer
    arithmetic keeps GCRA exact (no float drift after thousands of additions), and an epoch in
    µs (~1.8e15) still fits a double exactly, should a store ever need one.

Money
    Always :class:`~decimal.Decimal`; floats given by a caller are converted through ``repr`` (so
    ``0.1`` means ``Decimal("0.1")``), never used in arithmetic. Stores keep money as decimal TEXT.
"""
from __future__ import annotations

import calendar
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation, ROUND_FLOOR
from typing import Any, Callable, Iterable, Sequence

US = 1_000_000

#: Request limits: (Limits field, window in seconds, words for messages).
REQUEST_WINDOWS: tuple[tuple[str, int, str], ...] = (
    ("rpm", 60, "requests per minute"),
    ("rph", 3600, "requests per hour"),
    ("rpd", 86400, "requests per day"),
)
#: Token limits: (Limits field, window in seconds, bucket in seconds, words for messages).
TOKEN_WINDOWS: tuple[tuple[str, int, int, str], ...] = (
    ("tpm", 60, 1, "tokens per minute"),
    ("tpd", 86400, 60, "tokens per day"),
)
PERIODS = ("day", "week", "month", "total")
ZERO = Decimal(0)


# --- public value types -------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """Per-subject limits; ``None`` means unlimited, ``0`` means nothing is allowed."""
    rpm: int | None = None
    rph: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    tpd: int | None = None
    concurrency: int | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> "Limits":
        """From a key's ``limits`` JSON (unknown keys and ``None`` values ignored)."""
        data = data or {}
        return cls(**{f: (int(data[f]) if data.get(f) is not None else None)
                      for f in ("rpm", "rph", "rpd", "tpm", "tpd", "concurrency")})


@dataclass(frozen=True)
class Budget:
    """A spending cap for a scope (``"key:12"``, ``"team:research"``) over a UTC calendar period."""
    scope: str
    amount_usd: Decimal
    period: str            # "day" | "week" | "month" | "total"; weeks start on Monday
    soft_pct: int = 80

    @classmethod
    def from_dict(cls, scope: str, data: dict) -> "Budget":
        """From a key's ``budget`` JSON (``{"amount_usd": "10", "period": "month", ...}``)."""
        return cls(scope, money(data["amount_usd"]), data.get("period") or "month",
                   int(data.get("soft_pct") or 80))

    def __post_init__(self):
        if self.period not in PERIODS:
            raise ValueError(f"budget period must be one of {PERIODS}, not {self.period!r}")
        object.__setattr__(self, "amount_usd", money(self.amount_usd))


@dataclass
class Admission:
    """A request let through: keep ``ticket`` for :meth:`Store.settle` / :meth:`Store.release`."""
    ticket: str
    headers: dict[str, str]
    budget_warning: str | None = None


class Denied(Exception):
    """A request refused; ``headers`` are ready to send with the 429 (or 402/403 for a budget)."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None,
                 headers: dict[str, str] | None = None, scope: str | None = None,
                 subject: str | None = None, limit_name: str | None = None):
        super().__init__(message)
        # rate_limit_requests | rate_limit_tokens | concurrency | budget
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.headers = headers or {}
        self.scope = scope            # the budget's scope, for reason == "budget"
        self.subject = subject        # the rate-limit subject (for logs; not in the message)
        self.limit_name = limit_name  # "rpm", "tpd", "concurrency", "budget" ...

    def __repr__(self) -> str:
        return f"Denied({self.reason!r}, {self.message!r}, retry_after={self.retry_after!r})"


class Store:
    """The interface every counter store implements (see the package docstring for semantics)."""

    def admit(self, subject: str, limits: Limits, budgets: Sequence[Budget], est_tokens: int,
              reserve_usd: Decimal, now: float) -> Admission:
        raise NotImplementedError

    def settle(self, ticket: str, tokens: int, cost_usd: Decimal, now: float) -> None:
        raise NotImplementedError

    def release(self, ticket: str, now: float) -> None:
        raise NotImplementedError

    def settle_many(self, items: Sequence[tuple[str, int, Decimal, float, bool]]) -> None:
        """``(ticket, tokens, cost_usd, now, settled)`` items: settle, or release when not
        ``settled``. Stores that can should do it in one transaction."""
        for ticket, tokens, cost, now, settled in items:
            if settled:
                self.settle(ticket, tokens, cost, now)
            else:
                self.release(ticket, now)

    def state(self, subject: str, limits: Limits, budgets: Sequence[Budget], now: float) -> dict:
        raise NotImplementedError

    def spend(self, scope: str, period: str, now: float) -> Decimal:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --- conversions --------------------------------------------------------------------------------
def to_us(now: float) -> int:
    return int(round(now * US))


def money(value: Any) -> Decimal:
    """A non-negative, finite Decimal from a Decimal, int, str or float (floats via ``repr``)."""
    if isinstance(value, float):
        value = repr(value)
    try:
        d = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not an amount of money: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"amount must be a finite non-negative number, not {value!r}")
    return d


def count(value: Any, what: str) -> int:
    n = int(value)
    if n < 0:
        raise ValueError(f"{what} must be >= 0, not {value!r}")
    return n


def new_ticket() -> str:
    return secrets.token_hex(12)


def check_budgets(budgets: Sequence[Budget]) -> None:
    seen = set()
    for b in budgets:
        key = (b.scope, b.period)
        if key in seen:
            raise ValueError(f"budget {b.scope} {b.period} given twice")
        seen.add(key)


# --- calendar periods (UTC) ---------------------------------------------------------------------
def period_start(period: str, now: float) -> int:
    """Epoch seconds at which the calendar period containing ``now`` began (0 for "total")."""
    if period == "total":
        return 0
    day = int(now // 86400)
    if period == "day":
        return day * 86400
    if period == "week":            # 1970-01-01 was a Thursday: Monday-based weekday = (day+3) % 7
        return (day - (day + 3) % 7) * 86400
    if period == "month":
        dt = datetime.fromtimestamp(day * 86400, timezone.utc)
        return calendar.timegm((dt.year, dt.month, 1, 0, 0, 0))
    raise ValueError(f"budget period must be one of {PERIODS}, not {period!r}")


def period_end(period: str, start: int) -> int | None:
    """Epoch seconds at which the period that began at ``start`` ends (None for "total")."""
    if period == "total":
        return None
    if period == "day":
        return start + 86400
    if period == "week":
        return start + 7 * 86400
    dt = datetime.fromtimestamp(start, timezone.utc)
    year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0))


def iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- GCRA ---------------------------------------------------------------------------------------
def gcra_interval(limit: int, window_us: int) -> int:
    """Emission interval T = window / limit, floored to a µs (so ``limit`` always fit a window)."""
    return max(1, window_us // limit)


def gcra_step(tat: int | None, now_us: int, limit: int, window_us: int) -> tuple[int, int]:
    """One request against a GCRA cell: ``(new_tat, wait_us)``; ``wait_us == 0`` means allowed.

    The theoretical arrival time (TAT) is when the cell would be empty again if requests kept
    arriving at exactly the allowed rate. A request is conforming when, after adding one emission
    interval T, the TAT is no more than one window ahead of now: at most ``limit`` requests in
    any burst, and then one more every T — never 2x across a window boundary.
    """
    t = gcra_interval(limit, window_us)
    base = now_us if tat is None or tat < now_us else tat
    new_tat = base + t
    allow_at = new_tat - window_us
    return new_tat, (allow_at - now_us if allow_at > now_us else 0)


def gcra_remaining(tat: int | None, now_us: int, limit: int, window_us: int) -> tuple[int, int]:
    """``(remaining, reset_us)``: requests allowed right now, and µs until the cell is empty."""
    if tat is None or tat <= now_us:
        return limit, 0
    debt = tat - now_us
    rem = (window_us - debt) // gcra_interval(limit, window_us)
    return max(0, min(limit, rem)), debt


# --- token window -------------------------------------------------------------------------------
def token_bucket(now_us: int, bucket_s: int) -> int:
    return now_us // (bucket_s * US)


def token_floor(now_us: int, window_s: int, bucket_s: int) -> int:
    """Buckets strictly above this index are inside the window ending now."""
    return token_bucket(now_us, bucket_s) - window_s // bucket_s


def token_leaves_at(bucket: int, window_s: int, bucket_s: int) -> int:
    """µs instant at which ``bucket`` drops out of the sliding window."""
    return (bucket + window_s // bucket_s) * bucket_s * US


def token_wait(rows: Iterable[tuple[int, int]], used: int, need_below: int, now_us: int,
               window_s: int, bucket_s: int) -> int | None:
    """µs until ``used`` falls below ``need_below`` as the oldest buckets leave the window.

    ``rows`` are (bucket, tokens) inside the window, oldest first. None if it never will.
    """
    if used < need_below:
        return 0
    for bucket, tokens in rows:
        used -= tokens
        if used < need_below:
            return max(0, token_leaves_at(bucket, window_s, bucket_s) - now_us)
    return None


# --- formatting ---------------------------------------------------------------------------------
def fmt_duration(us: int | float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` format (Go durations, ms resolution, rounded up).

    ``1s``, ``6m0s``, ``20ms``, ``1.5s``, ``1h0m0s``; ``0s`` for nothing to wait.
    """
    ms = -(-int(math.ceil(us)) // 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, frac = divmod(rest, 1000)
    sec = f"{s}" if not frac else f"{s}.{frac:03d}".rstrip("0")
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def fmt_usd(d: Decimal) -> str:
    """``$``-less money for messages: cents, or up to 6 decimals when smaller amounts matter."""
    q = d.quantize(Decimal("0.000001"))
    if q == q.quantize(Decimal("0.01")):
        return f"{q.quantize(Decimal('0.01')):f}"
    return f"{q.normalize():f}"


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds - 1e-9)))


def seconds(us: int | None) -> float | None:
    return None if us is None else us / US


# --- the decision, shared by all stores ---------------------------------------------------------
@dataclass
class BudgetView:
    """One budget as read inside the admission transaction (expired reservations already gone)."""
    budget: Budget
    start: int
    spent: Decimal
    reserved: Decimal


@dataclass
class TokenView:
    name: str
    limit: int
    window_s: int
    bucket_s: int
    words: str
    used: int
    newest: int | None    # newest bucket holding tokens, for the reset header


@dataclass
class Plan:
    """What an allowed admission must write (the store does the writing)."""
    new_tats: dict[str, int]
    token_windows: list[TokenView]
    budgets: list[BudgetView]
    admission: Admission


def request_views(limits: Limits) -> list[tuple[str, int, int, str]]:
    """[(name, limit, window_us, words)] for the request limits that are set."""
    out = []
    for name, window_s, words in REQUEST_WINDOWS:
        lim = getattr(limits, name)
        if lim is not None:
            out.append((name, int(lim), window_s * US, words))
    return out


def token_specs(limits: Limits) -> list[tuple[str, int, int, int, str]]:
    """[(name, limit, window_s, bucket_s, words)] for the token limits that are set."""
    out = []
    for name, window_s, bucket_s, words in TOKEN_WINDOWS:
        lim = getattr(limits, name)
        if lim is not None:
            out.append((name, int(lim), window_s, bucket_s, words))
    return out


def _tightest(cands: list[tuple[int, int, int]]) -> tuple[int, int, int] | None:
    """(limit, remaining, reset_us) with the fewest remaining; on a tie the longest reset."""
    if not cands:
        return None
    return min(cands, key=lambda c: (c[1], -c[2], c[0]))


def rate_headers(req: list[tuple[int, int, int]],
                 tok: list[tuple[int, int, int]]) -> dict[str, str]:
    """``x-ratelimit-*`` for the tightest request limit and the tightest token limit (if any)."""
    headers: dict[str, str] = {}
    for kind, cands in (("requests", req), ("tokens", tok)):
        t = _tightest(cands)
        if t is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(t[0])
            headers[f"x-ratelimit-remaining-{kind}"] = str(t[1])
            headers[f"x-ratelimit-reset-{kind}"] = fmt_duration(t[2])
    return headers


def token_reset_us(view: TokenView, now_us: int, extra: int = 0) -> int:
    """µs until every token in the window has left it (OpenAI: "resets to its initial state")."""
    newest = view.newest
    if extra > 0:
        newest = token_bucket(now_us, view.bucket_s)
    if newest is None or view.used + extra <= 0:
        return 0
    return max(0, token_leaves_at(newest, view.window_s, view.bucket_s) - now_us)


def budget_over(view: BudgetView, reserve: Decimal) -> bool:
    """Hard limit: refuse when spent + reserved + reserve > amount.

    A request reserving nothing is refused once spent + reserved has reached the amount (it would
    still cost something); a reservation that lands exactly on the amount is allowed.
    """
    committed = view.spent + view.reserved
    if reserve > 0:
        return committed + reserve > view.budget.amount_usd
    return committed >= view.budget.amount_usd


def budget_pct(committed: Decimal, amount: Decimal) -> int:
    if amount <= 0:
        return 100
    return int((committed * 100 / amount).to_integral_value(rounding=ROUND_FLOOR))


def soft_warning(views: list[BudgetView], reserve: Decimal) -> str | None:
    """``"key:12 at 83% of $10.00 month budget"`` for every budget at or past its soft threshold."""
    notes = []
    for v in views:
        b = v.budget
        committed = v.spent + v.reserved + reserve
        if committed * 100 >= b.amount_usd * b.soft_pct:
            notes.append(f"{b.scope} at {budget_pct(committed, b.amount_usd)}% of "
                         f"${fmt_usd(b.amount_usd)} {b.period} budget")
    return "; ".join(notes) or None


def decide(subject: str, limits: Limits, now_us: int, est_tokens: int, reserve: Decimal,
           tats: dict[str, int], tokens: list[TokenView], in_flight: int,
           budgets: list[BudgetView], token_rows: Callable[[TokenView], list[tuple[int, int]]],
           ticket: str, strict_tokens: bool = False) -> Plan | Denied:
    """Check every limit and every budget; return what to write, or the refusal.

    Nothing is written for a refused request (it does not count against any limit). When
    several checks fail the refusal names, in order of precedence: a budget (retrying will not
    help before the period ends), else the rate limit with the longest wait, else concurrency;
    ``retry_after`` is the longest wait among the failed rate checks.
    """
    new_tats: dict[str, int] = {}
    failures: list[tuple[float, str, str, str, int | None]] = []   # (key, reason, name, msg, wait)
    for name, limit, window_us, words in request_views(limits):
        if limit <= 0:
            failures.append((math.inf, "rate_limit_requests", name,
                             f"Rate limit reached for {words}: limit 0, used 0, requested 1. "
                             f"This key may not make requests.", None))
            continue
        new_tat, wait = gcra_step(tats.get(name), now_us, limit, window_us)
        if wait:
            rem, _ = gcra_remaining(tats.get(name), now_us, limit, window_us)
            failures.append((wait, "rate_limit_requests", name,
                             f"Rate limit reached for {words}: limit {limit}, used {limit - rem}, "
                             f"requested 1. Please try again in {fmt_duration(wait)}.", wait))
        else:
            new_tats[name] = new_tat

    for v in tokens:
        blocked = v.used >= v.limit or (strict_tokens and v.used + est_tokens > v.limit)
        if blocked:
            need_below = v.limit - est_tokens + 1 if strict_tokens else v.limit
            wait = None
            if need_below > 0:
                wait = token_wait(token_rows(v), v.used, need_below, now_us, v.window_s,
                                  v.bucket_s)
            hint = (f"Please try again in {fmt_duration(wait)}." if wait is not None
                    else "This request can never fit this limit.")
            failures.append((math.inf if wait is None else wait, "rate_limit_tokens", v.name,
                             f"Rate limit reached for {v.words}: limit {v.limit}, used {v.used}, "
                             f"requested {est_tokens}. {hint}", wait))

    if limits.concurrency is not None and in_flight >= limits.concurrency:
        lim = limits.concurrency
        failures.append((-1, "concurrency", "concurrency",
                         f"Too many concurrent requests: limit {lim}, in flight {in_flight}. "
                         f"Please try again when one of them has finished.",
                         US if lim > 0 else None))

    over = [v for v in budgets if budget_over(v, reserve)]
    if over or failures:
        # Headers describe the state before this (refused, unrecorded) request.
        req_hdr = []
        for name, limit, window_us, _ in request_views(limits):
            rem, reset = (gcra_remaining(tats.get(name), now_us, limit, window_us)
                          if limit > 0 else (0, 0))
            req_hdr.append((limit, rem, reset))
        tok_hdr = [(v.limit, max(0, v.limit - v.used), token_reset_us(v, now_us)) for v in tokens]
        headers = rate_headers(req_hdr, tok_hdr)
    if over:
        v = over[0]
        b = v.budget
        msg = (f"Budget exceeded for {b.scope}: ${fmt_usd(v.spent)} spent"
               + (f" and ${fmt_usd(v.reserved)} reserved" if v.reserved else "")
               + f" of its ${fmt_usd(b.amount_usd)} {b.period} budget"
               + (f"; this request needs up to ${fmt_usd(reserve)}." if reserve else "."))
        return Denied("budget", msg, None, headers, scope=b.scope, subject=subject,
                      limit_name="budget")
    if failures:
        rate = [f for f in failures if f[1] != "concurrency"]
        pick = max(rate, key=lambda f: f[0]) if rate else failures[0]
        waits = [f[4] for f in failures]
        retry_us = None if any(w is None for w in waits) else max(waits)
        retry = seconds(retry_us)
        if retry is not None:
            headers["Retry-After"] = retry_after_header(retry)
        return Denied(pick[1], pick[3], retry, headers, subject=subject, limit_name=pick[2])

    # Allowed: headers describe the state after this request.
    req_after = []
    for name, limit, window_us, _ in request_views(limits):
        rem, reset = gcra_remaining(new_tats[name], now_us, limit, window_us)
        req_after.append((limit, rem, reset))
    tok_after = [(v.limit, max(0, v.limit - v.used - est_tokens),
                  token_reset_us(v, now_us, est_tokens)) for v in tokens]
    admission = Admission(ticket, rate_headers(req_after, tok_after),
                          soft_warning(budgets, reserve))
    return Plan(new_tats, tokens, budgets, admission)


def state_dict(subject: str, limits: Limits, now_us: int, tats: dict[str, int],
               tokens: list[TokenView], in_flight: int, budgets: list[BudgetView]) -> dict:
    """The JSON-ready view for ``GET /v1/key/info`` (money stays Decimal)."""
    out_limits: dict[str, dict] = {}
    for name, limit, window_us, _ in request_views(limits):
        if limit <= 0:
            rem, reset = 0, 0
        else:
            rem, reset = gcra_remaining(tats.get(name), now_us, limit, window_us)
        out_limits[name] = {"limit": limit, "used": limit - rem, "remaining": rem,
                            "reset_s": reset / US}
    for v in tokens:
        out_limits[v.name] = {"limit": v.limit, "used": v.used,
                              "remaining": max(0, v.limit - v.used),
                              "reset_s": token_reset_us(v, now_us) / US}
    if limits.concurrency is not None:
        out_limits["concurrency"] = {"limit": limits.concurrency, "used": in_flight,
                                     "remaining": max(0, limits.concurrency - in_flight),
                                     "reset_s": None}
    out_budgets = []
    for v in budgets:
        b = v.budget
        end = period_end(b.period, v.start)
        out_budgets.append({
            "scope": b.scope, "amount_usd": b.amount_usd, "spent_usd": v.spent,
            "reserved_usd": v.reserved,
            "remaining_usd": max(ZERO, b.amount_usd - v.spent - v.reserved),
            "period": b.period,
            "period_start": iso(v.start) if b.period != "total" else None,
            "period_end": iso(end),
            "reset_s": None if end is None else max(0.0, end - now_us / US),
            "soft_pct": b.soft_pct,
            "used_pct": budget_pct(v.spent + v.reserved, b.amount_usd),
        })
    return {"subject": subject, "limits": out_limits, "in_flight": in_flight,
            "budgets": out_budgets}
