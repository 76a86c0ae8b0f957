"""Circuit breaker per deployment, its state shared by every worker through a BreakerStore.

States (what :meth:`Breaker.state` reports)
    ``closed``     traffic flows; outcomes are counted.
    ``open``       refused until ``open_until`` (tripped by failures, or by an upstream 429).
    ``half-open``  ``open_until`` has passed: exactly ONE probe request is let through, across
                   every worker (the probe slot is taken in one store transaction). Its success
                   closes the breaker; its failure re-opens it with the cooldown doubled.
    ``disabled``   the upstream rejected the credentials (401/403): refused until an admin
                   :meth:`Breaker.reset` (a key does not fix itself).

Policy (:class:`BreakerPolicy`, defaults)
    * trip after ``failure_threshold`` (5) consecutive failures, or when the failures are
      ``>= error_rate`` (0.5) of at least ``min_requests`` (10) requests within ``window_s``
      (60 s);
    * open for ``cooldown_s`` (30 s); each failed probe doubles it, up to ``max_cooldown_s``
      (300 s); a successful probe closes the breaker and resets the cooldown, the failure count
      and the window;
    * a probe that never reports back frees its slot after ``probe_timeout_s`` (60 s), so a
      crashed worker cannot leave a deployment half-open forever;
    * outcomes (:data:`~app.routing.retry.OUTCOMES`): ``server_error``, ``timeout``,
      ``connect`` and ``not_found`` (404: the deployment's model is gone) are failures;
      ``ok`` is a success; ``client_error`` (other 4xx: the request's fault) is neutral: it
      counts neither way, and on a probe it frees the probe slot (the next request probes);
      ``rate_limited`` (429) opens the breaker for ``retry_after`` seconds (capped at
      ``max_cooldown_s``) or ``cooldown_s`` without counting as a failure, then a probe as
      usual, whose success keeps the failures counted before the 429 (a breaker tripped by
      failures starts afresh instead); ``auth`` disables.

The error-rate window is ``window_buckets`` (12) buckets of ``window_s / window_buckets``
(5 s): the rate covers the last 55-60 s. Outcomes recorded while the breaker is open and no
probe is out (requests that were already in flight when it tripped) are ignored, except
``auth`` (disables) and ``rate_limited`` (may extend ``open_until``). While a probe is out, any
outcome is taken as the probe's: a straggler finishing then is indistinguishable from it.

Time is float epoch seconds passed by the caller (``now``), so tests drive a fake clock.

Every decision is made by the pure functions :func:`take_probe`, :func:`apply` and
:func:`view` on a :class:`BreakerRow`; a store only reads and writes rows, atomically
(:class:`MemoryBreakerStore` here, :class:`~app.routing.sqlite.SQLiteBreakerStore` across
processes), so the two cannot disagree on policy.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, replace
from typing import Callable

log = logging.getLogger(__name__)

FAILURES = frozenset({"server_error", "timeout", "connect", "not_found"})
_OUTCOMES = FAILURES | {"ok", "auth", "rate_limited", "client_error"}


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5
    error_rate: float = 0.5
    window_s: float = 60.0
    min_requests: int = 10
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0
    probe_timeout_s: float = 60.0
    window_buckets: int = 12

    def __post_init__(self):
        if self.failure_threshold < 1 or self.min_requests < 1 or self.window_buckets < 1:
            raise ValueError("failure_threshold, min_requests and window_buckets must be >= 1")
        if not 0 < self.error_rate <= 1:
            raise ValueError("error_rate must be in (0, 1]")
        if self.window_s <= 0 or self.cooldown_s < 0 or self.max_cooldown_s < self.cooldown_s:
            raise ValueError("need window_s > 0 and 0 <= cooldown_s <= max_cooldown_s")
        if self.probe_timeout_s <= 0:
            raise ValueError("probe_timeout_s must be > 0")

    @property
    def bucket_s(self) -> float:
        return self.window_s / self.window_buckets


@dataclass(frozen=True)
class BreakerRow:
    """One deployment's stored breaker state (no row at all means closed and clean)."""
    state: str = "closed"                 # closed | open | disabled (half-open is derived)
    consecutive: int = 0                  # consecutive failures
    open_until: float | None = None       # open: refused before this instant
    cooldown: float | None = None         # the current (doubling) cooldown, None = base
    probe_until: float | None = None      # a probe is out until this instant
    reason: str | None = None
    opened_at: float | None = None
    window: tuple[tuple[int, int, int], ...] = ()   # (bucket index, requests, failures)
    tripped: bool = False                 # opened by failures (not only by 429s)


CLOSED = BreakerRow()


# --- the pure decisions -------------------------------------------------------------------------
def _bucket(now: float, policy: BreakerPolicy) -> int:
    return math.floor(now / policy.bucket_s)


def _live_window(row: BreakerRow, now: float, policy: BreakerPolicy):
    floor = _bucket(now, policy) - policy.window_buckets
    return tuple(b for b in row.window if b[0] > floor)


def window_counts(row: BreakerRow, now: float, policy: BreakerPolicy) -> tuple[int, int]:
    """(requests, failures) counted in the error-rate window ending at ``now``."""
    total = fails = 0
    for _, t, f in _live_window(row, now, policy):
        total += t
        fails += f
    return total, fails


def _count(row: BreakerRow, now: float, policy: BreakerPolicy, failed: bool):
    idx = _bucket(now, policy)
    window = list(_live_window(row, now, policy))
    if window and window[-1][0] == idx:
        _, t, f = window[-1]
        window[-1] = (idx, t + 1, f + failed)
    else:
        window.append((idx, 1, int(failed)))
    return tuple(window)


def phase(row: BreakerRow | None, now: float) -> str:
    """``closed`` | ``open`` | ``half-open`` | ``disabled`` at ``now``."""
    if row is None or row.state == "closed":
        return "closed"
    if row.state == "disabled":
        return "disabled"
    return "open" if now < row.open_until else "half-open"


def probe_out(row: BreakerRow | None, now: float) -> bool:
    return row is not None and row.probe_until is not None and now < row.probe_until


def blocked(row: BreakerRow | None, now: float) -> bool:
    """Whether a request now would be refused: open, disabled, or half-open with a probe out."""
    p = phase(row, now)
    return p in ("open", "disabled") or (p == "half-open" and probe_out(row, now))


def take_probe(row: BreakerRow | None, now: float,
               policy: BreakerPolicy) -> tuple[BreakerRow | None, bool]:
    """(row to write or None, allowed): the atomic core of :meth:`Breaker.allow`."""
    p = phase(row, now)
    if p == "closed":
        return None, True
    if p != "half-open" or probe_out(row, now):
        return None, False
    return replace(row, probe_until=now + policy.probe_timeout_s), True


def _open(row: BreakerRow, now: float, seconds: float, reason: str,
          cooldown: float | None, tripped: bool) -> BreakerRow:
    return replace(row, state="open", open_until=now + seconds, cooldown=cooldown,
                   probe_until=None, reason=reason, tripped=tripped,
                   opened_at=row.opened_at if row.state == "open" else now)


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s"


def apply(row: BreakerRow | None, outcome: str, now: float, policy: BreakerPolicy,
          retry_after: float | None = None, detail: str | None = None) -> BreakerRow | None:
    """The row after ``outcome`` was recorded at ``now``; None when nothing changes."""
    if outcome not in _OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; one of {sorted(_OUTCOMES)}")
    row = row or CLOSED
    p = phase(row, now)
    suffix = f": {detail}" if detail else ""
    if p == "disabled":
        return None
    if outcome == "auth":
        return replace(row, state="disabled", open_until=None, probe_until=None,
                       opened_at=now, reason="upstream rejected the credentials (401/403)"
                       + suffix)
    if outcome == "rate_limited":
        wait = policy.cooldown_s if retry_after is None else max(0.0, float(retry_after))
        wait = min(wait, policy.max_cooldown_s)
        reason = f"rate limited by the upstream (429), retry after {_fmt_s(wait)}" + suffix
        if p == "closed" or probe_out(row, now):
            return _open(row, now, wait, reason, row.cooldown, row.tripped)
        # open (or half-open without a probe out): a straggler's 429 only extends
        if now + wait > row.open_until:
            return replace(row, open_until=now + wait, reason=reason)
        return None
    failed = outcome in FAILURES
    if p == "closed":
        if outcome == "client_error":
            return None
        window = _count(row, now, policy, failed)
        if not failed:
            return replace(row, consecutive=0, window=window)
        n = row.consecutive + 1
        row = replace(row, consecutive=n, window=window)
        total, fails = window_counts(row, now, policy)
        if n >= policy.failure_threshold:
            reason = f"{n} consecutive failures (last: {outcome})"
        elif total >= policy.min_requests and fails >= policy.error_rate * total:
            reason = (f"error rate {fails / total:.0%} over {_fmt_s(policy.window_s)}"
                      f" ({fails}/{total}; last: {outcome})")
        else:
            return row
        return _open(row, now, policy.cooldown_s, reason + suffix, policy.cooldown_s, True)
    if not probe_out(row, now):
        return None                    # open, no probe out: a straggler from before the trip
    # the probe's outcome
    if outcome == "ok":
        if row.tripped:
            return CLOSED              # a fresh start: counts, window and cooldown
        # opened only by a 429: the failures counted before it still stand
        return BreakerRow(window=_count(row, now, policy, False))
    if outcome == "client_error":
        return replace(row, probe_until=None)       # proves nothing: the next request probes
    cooldown = min(2 * (row.cooldown or policy.cooldown_s), policy.max_cooldown_s)
    return _open(replace(row, consecutive=row.consecutive + 1), now, cooldown,
                 f"probe failed ({outcome}), cooldown {_fmt_s(cooldown)}" + suffix, cooldown,
                 True)


def view(row: BreakerRow | None, now: float, policy: BreakerPolicy) -> dict:
    """The state dict reported by :meth:`Breaker.state`."""
    row = row or CLOSED
    p = phase(row, now)
    total, fails = window_counts(row, now, policy)
    return {"state": p,
            "consecutive_failures": row.consecutive,
            "error_rate": round(fails / total, 4) if total else 0.0,
            "requests_in_window": total,
            "open_until": row.open_until if p in ("open", "half-open") else None,
            "cooldown_s": row.cooldown if p in ("open", "half-open") else None,
            "opened_at": row.opened_at if p != "closed" else None,
            "reason": row.reason if p != "closed" else None,
            "probe_in_flight": p == "half-open" and probe_out(row, now)}


# --- stores -------------------------------------------------------------------------------------
class BreakerStore:
    """Where breaker rows live. ``modify`` is atomic across every user of the store."""

    def get(self, dep_id: int, now: float, fresh: bool = False) -> BreakerRow | None:
        """The row (None: closed and clean); may be up to the store's ``read_ttl`` old unless
        ``fresh``."""
        raise NotImplementedError

    def modify(self, dep_id: int, fn: Callable[[BreakerRow | None], tuple], now: float):
        """In ONE transaction: ``new, result = fn(current)``; write ``new`` unless None; return
        ``result``."""
        raise NotImplementedError

    def delete(self, dep_id: int) -> None:
        raise NotImplementedError

    def all(self) -> dict[int, BreakerRow]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MemoryBreakerStore(BreakerStore):
    """One process (tests, development, a single worker): rows in a dict under a lock."""

    def __init__(self):
        self._rows: dict[int, BreakerRow] = {}
        self._lock = threading.Lock()

    def get(self, dep_id, now, fresh=False):
        return self._rows.get(dep_id)

    def modify(self, dep_id, fn, now):
        with self._lock:
            new, result = fn(self._rows.get(dep_id))
            if new is not None:
                if new == CLOSED:
                    self._rows.pop(dep_id, None)
                else:
                    self._rows[dep_id] = new
            return result

    def delete(self, dep_id):
        with self._lock:
            self._rows.pop(dep_id, None)

    def all(self):
        return dict(self._rows)


# --- the breaker --------------------------------------------------------------------------------
class Breaker:
    """Per-deployment circuit breakers over ``store`` (shared by every worker using it).

    Policy arguments as in :class:`BreakerPolicy`. ``fail_open`` (default True): if the store
    fails (e.g. the SQLite file stays locked past its busy timeout), :meth:`allow` answers True
    and :meth:`record` drops the outcome, with a logged warning: a broken breaker store must
    not take routing down. Set False to get the exception instead.
    """

    def __init__(self, store: BreakerStore | None = None, *, failure_threshold: int = 5,
                 error_rate: float = 0.5, window_s: float = 60.0, min_requests: int = 10,
                 cooldown_s: float = 30.0, max_cooldown_s: float = 300.0,
                 probe_timeout_s: float = 60.0, window_buckets: int = 12,
                 fail_open: bool = True):
        self.store = store if store is not None else MemoryBreakerStore()
        self.policy = BreakerPolicy(failure_threshold, error_rate, window_s, min_requests,
                                    cooldown_s, max_cooldown_s, probe_timeout_s, window_buckets)
        self.fail_open = fail_open

    def allow(self, dep_id: int, now: float) -> bool:
        """May a request go to ``dep_id`` now? Closed: yes (from the read cache, no write).
        Open or disabled: no. Half-open: yes only for the one caller that takes the probe slot
        (an atomic store transaction)."""
        try:
            row = self.store.get(dep_id, now)
            if row is None or row.state == "closed":
                return True
            if blocked(row, now):
                return False
            policy = self.policy
            return self.store.modify(dep_id, lambda r: take_probe(r, now, policy), now)
        except Exception:
            if not self.fail_open:
                raise
            log.warning("breaker store failed in allow(%s); letting the request through",
                        dep_id, exc_info=True)
            return True

    def blocked(self, dep_id: int, now: float) -> bool:
        """Whether :meth:`allow` would refuse (no probe is taken; read cache only)."""
        try:
            return blocked(self.store.get(dep_id, now), now)
        except Exception:
            if not self.fail_open:
                raise
            log.warning("breaker store failed in blocked(%s)", dep_id, exc_info=True)
            return False

    def record(self, dep_id: int, outcome: str, now: float, retry_after: float | None = None,
               *, detail: str | None = None) -> str:
        """Record an attempt's outcome (one store transaction); returns the state after it
        (``"unknown"`` when the store failed and ``fail_open`` dropped the outcome).

        ``outcome``: see the module docstring (:func:`~app.routing.retry.classify` maps an HTTP
        status). ``retry_after``: the upstream's Retry-After, for ``rate_limited``. ``detail``
        is appended to the reason shown in the console (e.g. the upstream's error message).
        """
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {sorted(_OUTCOMES)}")
        policy = self.policy

        def fn(row):
            new = apply(row, outcome, now, policy, retry_after, detail)
            return new, phase(new if new is not None else row, now)
        try:
            return self.store.modify(dep_id, fn, now)
        except Exception:
            if not self.fail_open:
                raise
            log.warning("breaker store failed in record(%s, %s); outcome dropped", dep_id,
                        outcome, exc_info=True)
            return "unknown"

    def state(self, dep_id: int, now: float) -> dict:
        """{"state", "consecutive_failures", "error_rate", "open_until", "reason",
        "probe_in_flight", ...} read fresh from the store."""
        return view(self.store.get(dep_id, now, fresh=True), now, self.policy)

    def states(self, now: float) -> dict[int, dict]:
        """:meth:`state` of every deployment with a stored row (others are closed)."""
        return {dep_id: view(row, now, self.policy) for dep_id, row in self.store.all().items()}

    def reset(self, dep_id: int) -> None:
        """Admin action: back to closed with clean counters (also ends ``disabled``)."""
        self.store.delete(dep_id)
