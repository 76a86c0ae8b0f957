"""Exact-match response cache for OpenAI-shaped chat completions (pure Python, no Flask).

    cache = ResponseCache(SQLiteStore("/var/lib/gateway/cache.db"), default_ttl=3600)
    # several hosts: ResponseCache(app.cache.redis.RedisCacheStore(redis_client))

    d = decide(body, request.headers)            # or: lookup, reason = cacheable(body, headers)
    key = cache_key(body, public_model_name, scope=f"key:{key_id}" if per_key else "")
    if d.lookup and (hit := cache.get(key, now=time.time())) is not None:
        response = hit.response                  # a fresh dict: rewrite id/usage freely
        if body.get("stream"):
            for chunk in as_stream_chunks(response):
                send(chunk)                      # then the usage chunk if asked, then [DONE]
        ...
    else:
        response = call upstream             # streamed: response_from_chunks(chunks)
        if d.store and response is not None:
            cache.put(key, response, model=public_model_name, key_id=key_id, ttl=None,
                      now=time.time())

What is cacheable (:func:`decide` / :func:`cacheable`; reasons in ``app.cache.keys``):
    * ``x-gateway-cache: off`` -> never (``disabled``); ``on`` -> opt-in, skips the next rules;
    * otherwise only ``temperature == 0`` (absent means OpenAI's default 1: ``temperature_unset``),
      ``n`` <= 1, no ``tools``/``functions``, no audio output;
    * ``Cache-Control: no-cache`` (or ``max-age=0``, ``Pragma: no-cache``) -> no lookup but the
      fresh answer is stored (``bypass``, a refresh); ``no-store`` -> lookup, no store
      (``no_store``); both -> neither (``bypass_no_store``).
"""
from .core import Entry, Pending, Record, ResponseCache, Store, StoreError, storable
from .keys import Decision, cache_key, cacheable, decide, may_store
from .memory import MemoryStore
from .sqlite import SQLiteStore
from .stream import as_stream_chunks, response_from_chunks, split_text

__all__ = [
    "Decision", "Entry", "MemoryStore", "Pending", "Record", "ResponseCache", "SQLiteStore",
    "Store", "StoreError", "as_stream_chunks", "cache_key", "cacheable", "decide", "may_store",
    "response_from_chunks", "split_text", "storable",
]
