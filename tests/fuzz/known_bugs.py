"""App bugs found by fuzzing, each with the inputs that trigger it.

The fuzz test does not send inputs a known bug matches (so it stays green until something new
breaks); tests/fuzz/test_known_bugs.py reproduces each one as a strict xfail. When a bug is
fixed its xfail test XPASSes and fails: delete its entry here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class KnownBug:
    name: str
    reason: str
    matches: Callable  # (schemathesis Case) -> bool

KNOWN_BUGS: list[KnownBug] = []
