"""Sensitivity inspectors, one per policy (threshold, keywords, patterns), built once and reused."""
from __future__ import annotations

import threading
from typing import Any

_cache: dict[tuple, Any] = {}
_lock = threading.Lock()


def inspector_for(policy: dict[str, Any]):
    """An app.inspect.Inspector for this policy; bounded cache keyed by its settings."""
    from app.inspect import Inspector

    key = (float(policy.get("threshold") or 0.5), tuple(policy.get("keywords") or ()),
           tuple(policy.get("patterns") or ()))
    found = _cache.get(key)
    if found is None:
        found = Inspector(threshold=key[0], keywords=list(key[1]), patterns=list(key[2]))
        with _lock:
            if len(_cache) > 64:
                _cache.clear()
            _cache[key] = found
    return found
