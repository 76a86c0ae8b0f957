"""Result types of the content inspector.

Neither type ever holds the inspected text: a :class:`Finding` is a detector name, a category, a
span and a score, so a verdict can be logged, stored in an audit record or returned in an error
body without leaking what was found.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive span.

    ``start``/``end`` index the text the finding was found in (``text[start:end]``). For
    :meth:`Inspector.inspect_messages` that text is one field of one message, named by
    ``location``: a path into the message list such as ``(0, "content")``,
    ``(2, "content", 1, "text")`` or ``(1, "tool_calls", 0, "function", "arguments")``; it is
    ``()`` for :meth:`Inspector.inspect_text`.
    """

    detector: str
    category: str  # "secret" | "pii" | "custom"
    start: int
    end: int
    score: float
    location: tuple = field(default=())


@dataclass(slots=True)
class Verdict:
    """The outcome of one inspection.

    ``score`` combines the findings (see ``docs/sensitivity.md``); ``sensitive`` is
    ``score >= threshold``; ``detectors`` is the sorted list of distinct detectors that fired.
    """

    score: float
    sensitive: bool
    detectors: list[str]
    findings: list[Finding]

    @property
    def categories(self) -> list[str]:
        """Sorted distinct categories of the findings."""
        return sorted({f.category for f in self.findings})

    def summary(self) -> dict:
        """A log-safe dict: score, flag and per-detector counts (never any matched text)."""
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.detector] = counts.get(f.detector, 0) + 1
        return {"score": round(self.score, 4), "sensitive": self.sensitive,
                "detectors": list(self.detectors), "counts": counts}
