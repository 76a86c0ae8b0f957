"""Helpers for the routing tests: a fake clock and deployment builders."""
from __future__ import annotations

from app.routing import Deployment

T0 = 1_772_445_600.0          # 2026-03-02 10:00:00 UTC, a multiple of the 5 s window bucket


class Clock:
    """A fake clock: ``clock()`` reads it, ``clock.advance(s)`` moves it."""

    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def dep(id, priority=0, weight=1, provider_id=1, **kw) -> Deployment:
    return Deployment(id=id, provider_id=provider_id, priority=priority, weight=weight, **kw)


def ids(deps) -> list[int]:
    return [d.id for d in deps]
