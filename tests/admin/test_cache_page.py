"""Response cache page: stats that match the store, clearing by model/key/pattern/all, audit,
viewer read-only."""
from __future__ import annotations

import time

import pytest

from .helpers import HTMX, element, is_fragment, squash, text


def response(text_: str = "cached answer") -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text_},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


@pytest.fixture
def cache(app):
    from app.services.response_cache import response_cache
    return response_cache()


@pytest.fixture
def filled(cache):
    """Five entries (gpt-4o x2 for key A, gpt-4o-mini x2 for key B, llama x1), 4 hits, 2 misses."""
    from app.services import keys
    a, _ = keys.create({"name": "billing"}, actor="t")
    b, _ = keys.create({"name": "search"}, actor="t")
    now = time.time()
    for key, model, key_id in (("k1", "gpt-4o", a.id), ("k2", "gpt-4o", a.id),
                               ("k3", "gpt-4o-mini", b.id), ("k4", "gpt-4o-mini", b.id),
                               ("k5", "meta/llama", None)):
        assert cache.put(key, response(), model=model, key_id=key_id, ttl=600, now=now)
    for key in ("k1", "k1", "k2", "k5", "nope", "nada"):
        cache.get(key, now)
    return {"a": a, "b": b}


def stat(html: str, name: str) -> str:
    return squash(element(html, f"stat-{name}"))


def test_stats_match_the_store(admin_client, cache, filled):
    s = cache.stats()
    html = text(admin_client.get("/cache"))
    assert "66.7" in stat(html, "hit-rate") and "4 hits · 2 misses" in stat(html, "hit-rate")
    assert ">5<" in stat(html, "entries")
    size = stat(html, "size")
    assert f"{s['bytes']} B" in size or "KB" in size
    assert "/ 256.0 MB" in size and "&lt;0.1% of the maximum size" in size
    assert ">0<" in stat(html, "evictions")
    assert "enabled" in html and "for 1 h by default" in html and "routing.css" in html


def test_empty_cache(admin_client):
    html = text(admin_client.get("/cache"))
    assert ">0<" in stat(html, "entries") and "0 B" in stat(html, "size")
    assert "0.0" in stat(html, "hit-rate") and "0.0% of the maximum size" in stat(html, "size")


def test_refresh_returns_only_the_stats(admin_client, filled):
    r = admin_client.get("/cache", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    assert text(r).strip().startswith('<section id="cache-stats"') and "Clear entries" not in text(r)


def test_clear_by_model(admin_client, cache, filled, audit_rows):
    r = admin_client.post("/cache/clear", data={"by": "model", "model": "gpt-4o"})
    assert r.status_code == 303 and r.headers["Location"] == "/cache"
    assert cache.stats()["entries"] == 3
    html = text(admin_client.get("/cache"))
    assert "Removed 2 entries for model “gpt-4o”." in html and ">3<" in stat(html, "entries")
    entry = audit_rows("cache", "clear")[0]
    assert (entry.entity_name, entry.diff, entry.actor) == ("gpt-4o", {"removed": 2}, "admin")


def test_clear_by_key_names_the_key(admin_client, cache, filled, audit_rows):
    b = filled["b"]
    page = text(admin_client.get("/cache"))
    assert f'<option value="{b.id}">search · {b.prefix}…</option>' in page
    admin_client.post("/cache/clear", data={"by": "key", "key_id": str(b.id)})
    assert cache.stats()["entries"] == 3
    assert "Removed 2 entries for key “search”." in text(admin_client.get("/cache"))
    assert audit_rows("cache", "clear")[0].entity_name == f"key {b.id}"


def test_clear_by_pattern(admin_client, cache, filled):
    admin_client.post("/cache/clear", data={"by": "pattern", "pattern": "gpt-4o*"})
    assert cache.stats()["entries"] == 1
    assert "Removed 4 entries for models matching “gpt-4o*”." in text(admin_client.get("/cache"))


def test_nothing_matched_still_says_so(admin_client, cache, filled):
    admin_client.post("/cache/clear", data={"by": "model", "model": "unknown"})
    assert "Removed 0 entries for model “unknown”." in text(admin_client.get("/cache"))
    assert cache.stats()["entries"] == 5


@pytest.mark.parametrize("data, message", [
    ({"by": "model", "model": " "}, "Choose the model to clear."),
    ({"by": "key"}, "Choose the key to clear."),
    ({"by": "pattern", "pattern": ""}, "Choose the glob pattern to clear."),
    ({"by": "everything"}, "Choose what to clear: a model, a key or a pattern."),
])
def test_clear_needs_its_field(admin_client, cache, filled, data, message, audit_rows):
    r = admin_client.post("/cache/clear", data=data)
    assert r.status_code == 422 and message in text(r)
    assert cache.stats()["entries"] == 5 and audit_rows("cache") == []


def test_clear_all_asks_first(admin_client, cache, filled, audit_rows):
    page = text(admin_client.get("/cache/clear-all"))
    assert "Clear the whole response cache?" in page and "All 5 entries are removed" in page
    r = admin_client.post("/cache/clear-all")
    assert r.status_code == 303 and cache.stats()["entries"] == 0
    assert "Cache cleared: removed 5 entries." in text(admin_client.get("/cache"))
    entry = audit_rows("cache", "clear")[0]
    assert (entry.entity_name, entry.diff) == ("all", {"removed": 5})


def test_viewer_sees_stats_but_cannot_clear(viewer_client, cache, filled):
    html = text(viewer_client.get("/cache"))
    assert ">5<" in stat(html, "entries") and "read-only" in html
    assert 'action="/cache/clear"' not in html and "Clear all" not in html
    assert viewer_client.post("/cache/clear", data={"by": "model", "model": "gpt-4o"}).status_code == 403
    assert viewer_client.get("/cache/clear-all").status_code == 403
    assert viewer_client.post("/cache/clear-all").status_code == 403
    assert cache.stats()["entries"] == 5
