"""cacheable()/decide(): one test per rule and header."""
from __future__ import annotations

import pytest
from cache_support import fixture

from app.cache import cacheable, decide, may_store

MSGS = [{"role": "user", "content": "hi"}]


def body(**kw):
    return {"model": "m", "messages": MSGS, **kw}


ON = {"x-gateway-cache": "on"}


@pytest.mark.parametrize("b, headers, expected", [
    (body(temperature=0), {}, (True, "temperature_zero")),
    (body(temperature=0.0, top_p=0.5), {}, (True, "temperature_zero")),
    (body(), {}, (False, "temperature_unset")),                    # OpenAI default is 1
    (body(top_p=1), {}, (False, "temperature_unset")),
    (body(temperature=0.7), {}, (False, "temperature_nonzero")),
    (body(temperature="0"), {}, (False, "temperature_invalid")),
    (body(temperature=False), {}, (False, "temperature_invalid")),
    (body(temperature=0, n=1), {}, (True, "temperature_zero")),
    (body(temperature=0, n=3), {}, (False, "n_gt_1")),
    (body(temperature=0, n="2"), {}, (False, "n_gt_1")),
    (body(temperature=0, tools=fixture("chat-request-tools.json")["tools"]), {}, (False, "tools")),
    (body(temperature=0, functions=[{"name": "f"}]), {}, (False, "tools")),
    (body(temperature=0, tools=[]), {}, (True, "temperature_zero")),
    (body(temperature=0, modalities=["text", "audio"]), {}, (False, "audio")),
    ({"model": "m", "prompt": "hi", "temperature": 0}, {}, (False, "not_chat")),
    # opt-in lifts the temperature, n and tools rules
    (body(), ON, (True, "opt_in")),
    (body(temperature=1.2, n=4, tools=[{"type": "function"}]), ON, (True, "opt_in")),
    (body(temperature=0), ON, (True, "opt_in")),
    (body(temperature=0), {"X-Gateway-Cache": "ON"}, (True, "opt_in")),   # any case
    ({"prompt": "x"}, ON, (False, "not_chat")),
    # off wins over everything
    (body(temperature=0), {"x-gateway-cache": "off"}, (False, "disabled")),
    # Cache-Control
    (body(temperature=0), {"Cache-Control": "no-cache"}, (False, "bypass")),
    (body(temperature=0), {"cache-control": "max-age=0"}, (False, "bypass")),
    (body(temperature=0), {"Pragma": "no-cache"}, (False, "bypass")),
    (body(temperature=0), {"Cache-Control": "no-store"}, (True, "no_store")),
    (body(temperature=0), {"Cache-Control": "No-Store, No-Cache"}, (False, "bypass_no_store")),
    (body(temperature=0), {"Cache-Control": "max-age=60"}, (True, "temperature_zero")),
    (body(), {**ON, "cache-control": "no-cache"}, (False, "bypass")),
    # an ineligible request stays ineligible whatever the Cache-Control
    (body(temperature=1), {"Cache-Control": "no-cache"}, (False, "temperature_nonzero")),
])
def test_decisions(b, headers, expected):
    assert cacheable(b, headers) == expected


@pytest.mark.parametrize("headers, lookup, store", [
    ({}, True, True),
    ({"cache-control": "no-cache"}, False, True),        # a refresh: skip lookup, store fresh
    ({"cache-control": "no-store"}, True, False),
    ({"cache-control": "no-cache, no-store"}, False, False),
    ({"x-gateway-cache": "off"}, False, False),
])
def test_lookup_and_store_sides(headers, lookup, store):
    d = decide(body(temperature=0), headers)
    assert (d.lookup, d.store) == (lookup, store)
    assert may_store(d.reason) is store


def test_ineligible_is_neither():
    for b in (body(), body(temperature=1), body(temperature=0, n=2)):
        d = decide(b, {})
        assert not d.lookup and not d.store and not may_store(d.reason)


def test_headers_may_be_a_list_of_pairs_or_none():
    assert cacheable(body(temperature=0), None) == (True, "temperature_zero")
    assert cacheable(body(), [("X-Gateway-Cache", "on")]) == (True, "opt_in")


def test_full_fixture_request():
    full = fixture("chat-request-full.json")            # temperature 0.2 + tools
    assert cacheable(full, {}) == (False, "temperature_nonzero")
    assert cacheable({**full, "temperature": 0}, {}) == (False, "tools")
    assert cacheable(full, ON) == (True, "opt_in")
