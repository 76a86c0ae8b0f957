"""LiveState: this process's view of each deployment's latency, load and upstream rate limits.

Per process on purpose: each gunicorn worker measures the requests it sends itself, so there is
no shared write on the hot path. With N workers a deployment's in-flight count here is this
worker's share (about 1/N of the total), which is what least-busy needs to spread this worker's
requests; the latency average converges to the same value in every worker.

Thread- and greenlet-safe: every update is a few dict operations under one lock (never held
across I/O).
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float | None:
    """Seconds from a Go duration (``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``) or a bare number.

    None for anything else (empty, negative, malformed).
    """
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(value):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos and pos == len(value) else None


def parse_reset(value: str, now: float) -> float | None:
    """Seconds until a rate-limit reset: a duration (OpenAI) or an RFC 3339 time (Anthropic)."""
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    try:
        at = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return max(0.0, at.timestamp() - now)


def _count(value) -> int | None:
    try:
        n = int(float(str(value).strip()))
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n >= 0 else None


#: (kind, remaining header, reset header), lower case; OpenAI-style first, then Anthropic.
_RATELIMIT_HEADERS = (
    ("requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ("requests", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("tokens", "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
)


@dataclass
class _Dep:
    latency: float | None = None      # EWMA of TTFB, ms
    in_flight: int = 0
    ok: int = 0
    errors: int = 0
    remaining_requests: int | None = None
    reset_requests_at: float | None = None
    remaining_tokens: int | None = None
    reset_tokens_at: float | None = None
    ratelimit_seen_at: float | None = None


class LiveState:
    """Per-process live numbers of each deployment (keyed by the model row id).

    ``alpha``: weight of a new TTFB sample in the moving average. Pacing (see :meth:`paced`):
    a deployment is held back while its last seen ``remaining-requests`` is ``<= pace_requests``
    or its ``remaining-tokens`` is below the request's estimated tokens, until the matching
    reset time; a remaining count seen without a reset time holds for ``default_reset_s``.

    ``breaker``: optional :class:`~app.routing.breaker.Breaker`; :func:`~app.routing.order`
    uses it (when not given one explicitly) to move open deployments last.
    """

    def __init__(self, *, alpha: float = 0.2, pace_requests: int = 2,
                 default_reset_s: float = 1.0, breaker=None):
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.pace_requests = pace_requests
        self.default_reset_s = default_reset_s
        self.breaker = breaker
        self._deps: dict[int, _Dep] = {}
        self._lock = threading.Lock()

    def _dep(self, dep_id: int) -> _Dep:
        d = self._deps.get(dep_id)
        if d is None:
            d = self._deps[dep_id] = _Dep()
        return d

    # --- reads ----------------------------------------------------------------------------------
    def latency(self, dep_id: int) -> float | None:
        """Moving average of the time to first byte in ms; None before the first success."""
        d = self._deps.get(dep_id)
        return d.latency if d is not None else None

    def in_flight(self, dep_id: int) -> int:
        d = self._deps.get(dep_id)
        return d.in_flight if d is not None else 0

    def paced(self, dep_id: int, now: float, est_tokens: int = 0) -> bool:
        """True while the upstream's last rate-limit headers say this request would likely 429."""
        d = self._deps.get(dep_id)
        if d is None:
            return False
        if (d.remaining_requests is not None and d.remaining_requests <= self.pace_requests
                and d.reset_requests_at is not None and now < d.reset_requests_at):
            return True
        if (d.remaining_tokens is not None and d.remaining_tokens < max(est_tokens, 1)
                and d.reset_tokens_at is not None and now < d.reset_tokens_at):
            return True
        return False

    def paced_until(self, dep_id: int, now: float, est_tokens: int = 0) -> float | None:
        """When pacing ends (the latest applicable reset), None when not paced."""
        d = self._deps.get(dep_id)
        if d is None or not self.paced(dep_id, now, est_tokens):
            return None
        ends = []
        if (d.remaining_requests is not None and d.remaining_requests <= self.pace_requests
                and d.reset_requests_at is not None and now < d.reset_requests_at):
            ends.append(d.reset_requests_at)
        if (d.remaining_tokens is not None and d.remaining_tokens < max(est_tokens, 1)
                and d.reset_tokens_at is not None and now < d.reset_tokens_at):
            ends.append(d.reset_tokens_at)
        return max(ends)

    # --- updates --------------------------------------------------------------------------------
    def started(self, dep_id: int) -> None:
        """An attempt on ``dep_id`` begins (pair with exactly one :meth:`finished`)."""
        with self._lock:
            self._dep(dep_id).in_flight += 1

    def finished(self, dep_id: int, ttfb_ms: float | None, ok: bool) -> None:
        """The attempt ended; ``ttfb_ms`` of a successful attempt feeds the latency average.

        A failed attempt's TTFB is not averaged in: a deployment answering 500s quickly must not
        look fast to least-latency.
        """
        with self._lock:
            d = self._dep(dep_id)
            d.in_flight = max(0, d.in_flight - 1)
            if ok:
                d.ok += 1
                if ttfb_ms is not None and ttfb_ms >= 0:
                    d.latency = (float(ttfb_ms) if d.latency is None
                                 else d.latency + self.alpha * (float(ttfb_ms) - d.latency))
            else:
                d.errors += 1

    def observe_ratelimit(self, dep_id: int, headers: Mapping[str, str] | None,
                          now: float) -> None:
        """Remember the upstream's ``x-ratelimit-remaining-*`` / ``-reset-*`` (or Anthropic's).

        Absent headers leave what was known; a remaining count without a reset time is held for
        ``default_reset_s``.
        """
        if not headers:
            return
        h = {}
        for k, v in headers.items():
            k = str(k).lower()
            if "ratelimit" in k:
                h[k] = v
        if not h:
            return
        with self._lock:
            d = self._dep(dep_id)
            seen = False
            for kind, rem_name, reset_name in _RATELIMIT_HEADERS:
                remaining = _count(h[rem_name]) if rem_name in h else None
                if remaining is None:
                    continue
                reset = parse_reset(h[reset_name], now) if reset_name in h else None
                reset_at = now + (self.default_reset_s if reset is None else reset)
                setattr(d, f"remaining_{kind}", remaining)
                setattr(d, f"reset_{kind}_at", reset_at)
                seen = True
            if seen:
                d.ratelimit_seen_at = now

    def forget(self, dep_id: int) -> None:
        """Drop a deployment's numbers (deleted deployment, or an admin reset)."""
        with self._lock:
            self._deps.pop(dep_id, None)

    def snapshot(self, now: float | None = None) -> dict[int, dict]:
        """{dep_id: numbers} for the console and the admin API (``paced`` needs ``now``)."""
        with self._lock:
            items = [(k, _Dep(**vars(d))) for k, d in self._deps.items()]
        out = {}
        for dep_id, d in items:
            row = {"latency_ms": None if d.latency is None else round(d.latency, 1),
                   "in_flight": d.in_flight, "ok": d.ok, "errors": d.errors,
                   "remaining_requests": d.remaining_requests,
                   "reset_requests_at": d.reset_requests_at,
                   "remaining_tokens": d.remaining_tokens,
                   "reset_tokens_at": d.reset_tokens_at}
            if now is not None:
                row["paced"] = self.paced(dep_id, now)
            out[dep_id] = row
        return out
