"""Content inspection: classify the text of an LLM request for secrets and personal data.

Pure Python, no Flask: the gateway builds one :class:`Inspector` from its settings and calls
:meth:`Inspector.inspect_messages` (route or block sensitive requests) or
:meth:`Inspector.redact_messages` (replace findings with ``[REDACTED:<category>]``).
Detectors, scoring, thresholds and measured precision/recall: ``docs/sensitivity.md``.
"""
from .custom import PatternError
from .detectors import CATEGORY, DETECTORS, WEIGHT
from .inspector import Inspector
from .types import Finding, Verdict

__all__ = ["CATEGORY", "DETECTORS", "Finding", "Inspector", "PatternError", "Verdict", "WEIGHT"]
