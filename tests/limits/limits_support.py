"""Helpers for the counter-store tests: UTC instants, a fake clock, decimals."""
from __future__ import annotations

import calendar
from decimal import Decimal


def utc(y, mo, d, h=0, mi=0, s=0.0) -> float:
    """Epoch seconds of a UTC wall-clock time (the fake clock's readings)."""
    return calendar.timegm((y, mo, d, h, mi, 0)) + s


# Monday 2026-03-02 10:00:00 UTC: a minute boundary, mid-week, mid-month.
T0 = utc(2026, 3, 2, 10, 0, 0)


def D(x) -> Decimal:
    return Decimal(str(x))


class Clock:
    """A fake clock: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t
