"""Retry decisions: which failures are worth another attempt, and how long to wait first.

Pure functions, no I/O: the caller passes the attempt number, a seeded ``random.Random``, and
what it knows about the upstream's answer and its own deadline.
"""
from __future__ import annotations

import math
import random
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Mapping

#: Outcome classes of one upstream attempt (the vocabulary of :meth:`Breaker.record`).
OUTCOMES = ("ok", "auth", "rate_limited", "server_error", "timeout", "connect", "not_found",
            "client_error")

#: 4xx answers that a retry (on this or another deployment) cannot fix.
_NEVER_RETRY = frozenset({400, 401, 403, 404, 413, 422})


def classify(status: int | None, error: str | None = None) -> str:
    """The outcome class of an attempt: from the HTTP ``status``, or from ``error`` without one.

    ``error`` is ``"connect"`` (no connection: DNS, refused, TLS) or ``"timeout"`` (connect or
    first-byte timeout) when no status arrived; any other error without a status counts as
    ``"server_error"`` (a broken upstream, e.g. a reset connection or an unparsable answer).

    ========================  =============================================================
    status                    outcome
    ========================  =============================================================
    < 400                     ``ok``
    401, 403                  ``auth`` (bad or revoked credentials: disables the deployment)
    404                       ``not_found`` (the deployment's model is gone: counts as a failure)
    408                       ``timeout``
    429                       ``rate_limited``
    other 4xx                 ``client_error`` (the request's fault: not the deployment's)
    5xx                       ``server_error``
    ========================  =============================================================
    """
    if status is None:
        return error if error in ("connect", "timeout") else "server_error"
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status < 500:
        return "client_error"
    return "server_error"


def is_retryable(status: int | None, error_class: str) -> bool:
    """Whether another attempt (the same or another deployment) may succeed.

    Yes: connect errors, timeouts (including 408), 429 and 5xx other than 501 (Not
    Implemented: the request itself is not supported). No: 400, 401, 403, 404, 413, 422 and every
    other 4xx (the same request fails the same way), and success. With ``status`` None the
    ``error_class`` decides: ``connect``, ``timeout`` and ``server_error`` are retryable.

    A timed-out request may have reached the upstream and been billed there; a caller that
    must not run a request twice checks that before retrying timeouts.
    """
    if status is None:
        return error_class in ("connect", "timeout", "server_error")
    if status in _NEVER_RETRY or status == 501:
        return False
    if status in (408, 429) or 500 <= status <= 599:
        return True
    return False


def backoff(attempt: int, rng: random.Random, base: float = 0.25, cap: float = 8.0,
            retry_after: float | None = None,
            deadline_left: float | None = None) -> float | None:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry), or None.

    Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt)]`` (AWS's
    "full jitter": retries of many clients spread out instead of arriving in waves). A
    ``retry_after`` from the upstream is honoured: the wait is at least that long (it is not
    capped by ``cap``: the upstream said when it will take requests again). None when the wait
    would end after the deadline (``deadline_left`` seconds from now): the caller stops
    retrying and answers with the last error instead of sleeping past the deadline.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    wait = rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0
    if retry_after is not None and retry_after > wait:
        wait = float(retry_after)
    if deadline_left is not None and wait > deadline_left:
        return None
    return wait


def retry_after_seconds(headers: Mapping[str, str] | None, now: float) -> float | None:
    """The upstream's requested wait, in seconds, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be delta-seconds or an HTTP date (made relative to ``now``, epoch
    seconds). None when neither header is present and valid; never negative.
    """
    if not headers:
        return None
    h = {str(k).lower(): str(v) for k, v in headers.items()
         if str(k).lower() in ("retry-after", "retry-after-ms")}
    ms = h.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    ra = (h.get("retry-after") or "").strip()
    if ra:
        try:
            value = float(ra)
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            try:
                at = parsedate_to_datetime(ra)
                if at.tzinfo is None:                     # "-0000": UTC by RFC 5322
                    at = at.replace(tzinfo=timezone.utc)
                return max(0.0, at.timestamp() - now)
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    return None
