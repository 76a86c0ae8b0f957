"""The :class:`Inspector`: runs the detectors over a text or an OpenAI message list, scores the
result and redacts findings. An instance is immutable after construction and safe to share
between threads and greenlets."""
from __future__ import annotations

import copy
import json
import math
from bisect import bisect_left
from typing import Iterable, Iterator

from .custom import compile_keywords, compile_patterns
from .detectors import (
    BUILTIN, CATEGORY, DETECTORS, SUPPRESSED_BY, WEIGHT, Budget, lower_aligned, scan_builtin,
)
from .types import Finding, Verdict

TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
_CATEGORY_RANK = {"secret": 0, "pii": 1, "custom": 2}

Location = tuple


class Inspector:
    """Classify request text for secrets and personal data.

    ``threshold``: a verdict is ``sensitive`` when it has findings and its score is at least
    this (0 <= t <= 1; 0 means "any finding").
    ``keywords``: admin keywords, matched case-insensitively as whole words.
    ``patterns``: admin regexes (Python syntax), validated here: ``ValueError`` if invalid or
    liable to catastrophic backtracking.
    ``enabled``: the detector names to run (see :data:`DETECTORS`); ``None`` runs all of them.
    The ``overflow`` guard (work budget exhausted: fail closed) is always on.
    """

    __slots__ = ("threshold", "enabled", "_builtin", "_kw_low", "_patterns")

    def __init__(self, threshold: float = 0.5, keywords: Iterable[str] = (),
                 patterns: Iterable[str] = (), enabled: set[str] | None = None):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be a number between 0 and 1")
        if isinstance(keywords, str) or isinstance(patterns, str):
            raise ValueError("keywords and patterns must be lists of strings, not a string")
        if enabled is None:
            enabled = set(DETECTORS)
        unknown = sorted(set(enabled) - set(DETECTORS))
        if unknown:
            raise ValueError(f"unknown detector(s): {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(DETECTORS))}")
        self.threshold = float(threshold)
        self.enabled = frozenset(enabled)
        self._builtin = self.enabled & BUILTIN
        # validated even when the custom detectors are disabled, so a bad entry is reported
        kw_low = compile_keywords(keywords)
        pats = compile_patterns(patterns)
        on_kw = "custom_keyword" in self.enabled
        self._kw_low = kw_low if on_kw else None
        self._patterns = tuple(pats) if "custom_pattern" in self.enabled else ()

    def __repr__(self) -> str:  # no keyword or pattern text: they may be confidential too
        return (f"Inspector(threshold={self.threshold}, detectors={len(self.enabled)}, "
                f"custom_patterns={len(self._patterns)})")

    # ------------------------------------------------------------------ scanning

    def _scan(self, text: str, location: Location = ()) -> list[Finding]:
        if not isinstance(text, str) or not text:
            return []
        budget = Budget()
        low = lower_aligned(text) if (self._kw_low is not None or self._builtin) else None
        raw = scan_builtin(text, self._builtin, budget, low)
        if self._kw_low is not None:
            w = WEIGHT["custom_keyword"]
            for m in self._kw_low.finditer(low):
                if not budget.take(m.start()):
                    break
                raw.append(("custom_keyword", m.start(), m.end(), w))
        if self._patterns:
            w = WEIGHT["custom_pattern"]
            for rx in self._patterns:
                for m in rx.finditer(text):
                    if m.end() > m.start():
                        if not budget.take(m.start()):
                            break
                        raw.append(("custom_pattern", m.start(), m.end(), w))
        if budget.overflow_at >= 0:  # always: the fail-closed guard is not optional
            raw.append(("overflow", budget.overflow_at, len(text), WEIGHT["overflow"]))
        if not raw:
            return []
        raw = _resolve_overlaps(raw)
        return [Finding(d, CATEGORY[d], s, e, sc, location) for d, s, e, sc in raw]

    def _verdict(self, findings: list[Finding]) -> Verdict:
        best: dict[str, float] = {}
        for f in findings:
            if f.score > best.get(f.detector, 0.0):
                best[f.detector] = f.score
        miss = 1.0
        for s in best.values():
            miss *= 1.0 - s
        score = round(1.0 - miss, 6) if findings else 0.0
        return Verdict(score=score, sensitive=bool(findings) and score >= self.threshold,
                       detectors=sorted(best), findings=findings)

    # ------------------------------------------------------------------ public API

    def inspect_text(self, text: str) -> Verdict:
        """Inspect one text; finding spans index ``text``."""
        return self._verdict(self._scan(text))

    def inspect_messages(self, messages: list[dict]) -> Verdict:
        """Inspect an OpenAI chat message list: string content, text parts, tool-call (and
        legacy function-call) arguments, tool results. Each finding's ``location`` names the
        field, its span indexes that field's string."""
        findings: list[Finding] = []
        for loc, text, is_json in _text_fields(messages):
            found = self._scan(text, loc)
            if found and is_json:
                found = _json_safe(text, found)
            findings.extend(found)
        return self._verdict(findings)

    def redact_text(self, text: str) -> tuple[str, Verdict]:
        """``text`` with every finding replaced by ``[REDACTED:<category>]``."""
        verdict = self.inspect_text(text)
        return _apply(text, verdict.findings), verdict

    def redact_messages(self, messages: list[dict]) -> tuple[list[dict], Verdict]:
        """A deep copy of ``messages`` with every finding replaced by
        ``[REDACTED:<category>]``, and the verdict of the original messages (whose spans index
        the original fields). ``messages`` itself is not modified."""
        verdict = self.inspect_messages(messages)
        redacted = copy.deepcopy(messages)
        if not verdict.findings:
            return redacted, verdict
        by_loc: dict[Location, list[Finding]] = {}
        for f in verdict.findings:
            by_loc.setdefault(f.location, []).append(f)
        for loc, found in by_loc.items():
            parent, key = _parent(redacted, loc)
            original = parent[key]
            new = _apply(original, found)
            if loc[-1] == "arguments":
                new = self._keep_json_valid(original, new)
            parent[key] = new
        return redacted, verdict

    # ------------------------------------------------------------------ helpers

    def _keep_json_valid(self, original: str, redacted: str) -> str:
        """Tool arguments are JSON: if the span-wise redaction broke valid JSON, redact the
        decoded string values one by one instead and re-serialise."""
        try:
            value = json.loads(original)
        except ValueError:
            return redacted
        try:
            json.loads(redacted)
            return redacted
        except ValueError:
            pass

        def walk(v):
            if isinstance(v, str):
                return _apply(v, self._scan(v))
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, dict):
                return {walk(k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
            return v

        return json.dumps(walk(value), ensure_ascii=False)


# ---------------------------------------------------------------------- module helpers


def _resolve_overlaps(raw: list) -> list:
    """Deduplicate, and drop a generic finding that overlaps a more specific one (a finding
    of a detector in ``SUPPRESSED_BY[its detector]``)."""
    raw = sorted(set(raw), key=lambda r: (r[1], r[2], r[0]))
    present = {r[0] for r in raw}
    index: dict[str, tuple] = {}  # suppressed detector -> (starts, prefix-max ends) of suppressors
    for det in present:
        by = SUPPRESSED_BY.get(det)
        if not by or not (by & present):
            continue
        sup = [r for r in raw if r[0] in by]
        ends = []
        m = -1
        for r in sup:
            m = max(m, r[2])
            ends.append(m)
        index[det] = ([r[1] for r in sup], ends, sup)
    if not index:
        return raw
    out = []
    for r in raw:
        idx = index.get(r[0])
        if idx is not None:
            starts, ends, sup = idx
            # suppressors starting before r ends; any of them ending after r starts overlaps
            j = bisect_left(starts, r[2]) - 1
            hit = False
            while j >= 0 and ends[j] > r[1]:
                if sup[j][2] > r[1]:
                    hit = True
                    break
                j -= 1
            if hit:
                continue
        out.append(r)
    return out


def _text_fields(messages) -> Iterator[tuple[Location, str, bool]]:
    """(location, text, is_json) for every inspectable string of a message list."""
    if not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of message dicts")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            yield (i, "content"), content, False
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, str):
                    yield (i, "content", j), part, False
                elif isinstance(part, dict) and isinstance(part.get("text"), str) \
                        and part.get("type", "text") in TEXT_PART_TYPES:
                    yield (i, "content", j, "text"), part["text"], False
        calls = msg.get("tool_calls")
        if isinstance(calls, list):
            for k, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    yield (i, "tool_calls", k, "function", "arguments"), fn["arguments"], True
        fc = msg.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
            yield (i, "function_call", "arguments"), fc["arguments"], True


def _parent(root, loc: Location):
    node = root
    for step in loc[:-1]:
        node = node[step]
    return node, loc[-1]


def _escape_covering(text: str, pos: int):
    """``(k, n)`` when a JSON escape sequence ``text[k:k+n]`` (``\\n``, ``\\"``, ``\\u00e9``)
    starts before ``pos`` and ends after it, else None."""
    k = text.rfind("\\", max(0, pos - 6), pos)
    if k < 0:
        return None
    run = 0
    q = k
    while q >= 0 and text[q] == "\\":
        run += 1
        q -= 1
    if run % 2 == 0:
        return None  # text[k] is the escaped half of "\\\\"
    n = 6 if text[k + 1:k + 2] == "u" else 2
    return (k, n) if k + n > pos else None


def _json_safe(text: str, findings: list[Finding]) -> list[Finding]:
    """In raw JSON text, move span edges out of escape sequences so that replacing a span
    never leaves half an escape behind (``Hi\\nbob@x.com`` finds ``nbob@x.com``)."""
    out = []
    for f in findings:
        s, e = f.start, f.end
        cover = _escape_covering(text, s)
        if cover:
            s = cover[0] + cover[1]
        cover = _escape_covering(text, e)
        if cover:
            e = cover[0]
        if e > s:
            out.append(f if (s, e) == (f.start, f.end) else
                       Finding(f.detector, f.category, s, e, f.score, f.location))
    return out


def _apply(text: str, findings: list[Finding]) -> str:
    """Replace the (merged) spans of ``findings`` in ``text``."""
    if not findings:
        return text
    spans = sorted((f.start, f.end, _CATEGORY_RANK.get(f.category, 9), f.category)
                   for f in findings)
    merged: list[list] = []
    for s, e, rank, cat in spans:
        if merged and s < merged[-1][1]:
            cur = merged[-1]
            cur[1] = max(cur[1], e)
            if rank < cur[2]:
                cur[2], cur[3] = rank, cat
        else:
            merged.append([s, e, rank, cat])
    parts = []
    pos = 0
    for s, e, _, cat in merged:
        parts.append(text[pos:s])
        parts.append(f"[REDACTED:{cat}]")
        pos = e
    parts.append(text[pos:])
    return "".join(parts)
