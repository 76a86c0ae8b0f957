"""cache_key: what makes two requests the same, and what tells them apart."""
from __future__ import annotations

import copy
import json
import re

import pytest
from cache_support import fixture

from app.cache import cache_key

BASE = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "temperature": 0,
    "max_tokens": 50,
}


def key(body=None, model="gpt-4o", scope="", **changes):
    b = copy.deepcopy(BASE if body is None else body)
    b.update(changes)
    return cache_key(b, model, scope)


def with_user_content(content):
    b = copy.deepcopy(BASE)
    b["messages"][1]["content"] = content
    return b


def reorder(value):
    """The same JSON with every dict's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reorder(v) for v in value]
    return value


def test_shape():
    k = key()
    assert re.fullmatch(r"[0-9a-f]{64}", k)
    assert key() == k                                    # deterministic


# --- equivalences -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["chat-request-full.json", "chat-request-tools.json",
                                  "chat-request-image.json"])
def test_dict_order_never_matters(name):
    body = fixture(name)
    assert cache_key(body, "m") == cache_key(reorder(body), "m")
    # the fixture file's own serialisation round trip too
    assert cache_key(json.loads(json.dumps(body, sort_keys=True)), "m") == cache_key(body, "m")


def test_string_content_equals_single_text_part():
    assert key(with_user_content([{"type": "text", "text": "What is 2+2?"}])) == key()
    assert key(with_user_content([{"text": "What is 2+2?", "type": "text"}])) == key()


def test_several_text_parts_are_not_joined():
    split = with_user_content([{"type": "text", "text": "What is "},
                               {"type": "text", "text": "2+2?"}])
    assert key(split) != key()
    # ... but equal to the same parts in any key order
    same = with_user_content([{"text": "What is ", "type": "text"},
                              {"text": "2+2?", "type": "text"}])
    assert key(split) == key(same)


def test_image_parts_are_part_of_the_key():
    img = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    b1 = with_user_content([{"type": "text", "text": "What is 2+2?"}, img])
    img_b = {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}
    b2 = with_user_content([{"type": "text", "text": "What is 2+2?"}, img_b])
    b3 = with_user_content([{"type": "text", "text": "What is 2+2?"},
                            {"type": "image_url", "image_url": {"url": "https://example.com/a.png",
                                                                "detail": "high"}}])
    assert len({key(b1), key(b2), key(b3), key()}) == 4
    assert key(b1) == key(with_user_content([{"text": "What is 2+2?", "type": "text"},
                                             {"image_url": {"url": "https://example.com/a.png"},
                                              "type": "image_url"}]))


def test_ignored_fields():
    k = key()
    assert key(stream=True) == k
    assert key(stream=True, stream_options={"include_usage": True}) == k
    assert key(user="alice") == k == key(user="bob")
    assert key(metadata={"trace": "1"}, store=True, request_id="r-1", service_tier="auto") == k
    assert key(model="gpt-4o") == key(body={**BASE, "model": "some-upstream-name"})


def test_null_values_equal_absent():
    k = key()
    assert key(top_p=None, seed=None, stop=None) == k
    b = copy.deepcopy(BASE)
    b["messages"].append({"role": "assistant", "content": "4", "name": None})
    b2 = copy.deepcopy(BASE)
    b2["messages"].append({"role": "assistant", "content": "4"})
    assert cache_key(b, "m") == cache_key(b2, "m")


def test_max_tokens_aliases():
    b = copy.deepcopy(BASE)
    b["max_completion_tokens"] = b.pop("max_tokens")
    assert cache_key(b, "gpt-4o") == key()
    assert key(max_tokens=51) != key()


def test_stop_string_and_list_are_equivalent():
    assert key(stop="END") == key(stop=["END"])
    assert key(stop=["a", "b"]) == key(stop=["b", "a", "a"])
    assert key(stop=[]) == key()
    assert key(stop="END") != key(stop="STOP") != key()


def test_integral_floats_and_folded_defaults():
    assert key(temperature=0.0) == key(temperature=0)
    assert key(n=1) == key() and key(logprobs=False) == key()
    assert key(frequency_penalty=0, presence_penalty=0.0) == key()
    assert key(logit_bias={}) == key()
    assert key(tools=[]) == key()
    assert key(tool_choice="none") == key()             # the default without tools
    assert key(parallel_tool_calls=True) == key()


def test_tool_choice_auto_is_the_default_with_tools():
    tools = fixture("chat-request-tools.json")
    assert tools["tool_choice"] == "auto"
    no_choice = {k: v for k, v in tools.items() if k != "tool_choice"}
    assert cache_key(tools, "m") == cache_key(no_choice, "m")
    assert cache_key({**tools, "tool_choice": "required"}, "m") != cache_key(tools, "m")


# --- differences --------------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"temperature": 0.5}, {"temperature": 1}, {"top_p": 0.9}, {"max_tokens": 10}, {"seed": 7},
    {"n": 2}, {"stop": ["\n"]}, {"frequency_penalty": 0.5}, {"presence_penalty": -0.5},
    {"logit_bias": {"50256": -100}}, {"logprobs": True}, {"logprobs": True, "top_logprobs": 3},
    {"response_format": {"type": "json_object"}}, {"reasoning_effort": "low"},
    {"parallel_tool_calls": False}, {"tool_choice": "required"},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
    # not in the documented list: unknown parameters split the cache rather than risk a wrong hit
    {"top_k": 40}, {"modalities": ["text"]}, {"verbosity": "low"},
])
def test_parameters_that_change_the_answer(change):
    assert key(**change) != key()


def test_every_difference_is_distinct():
    keys = {key(temperature=t) for t in (0, 0.1, 0.2, 1)}
    assert len(keys) == 4


def test_messages_differ():
    assert key(with_user_content("What is 2+3?")) != key()
    b = copy.deepcopy(BASE)
    b["messages"][1]["role"] = "assistant"
    assert cache_key(b, "gpt-4o") != key()
    b = copy.deepcopy(BASE)
    b["messages"] = b["messages"][1:]                     # no system prompt
    assert cache_key(b, "gpt-4o") != key()
    b = copy.deepcopy(BASE)
    b["messages"][0]["role"] = "developer"
    assert cache_key(b, "gpt-4o") != key()


def test_content_is_not_confused_with_structure():
    """A string that looks like a part list must not collide with the part list."""
    as_text = with_user_content('[{"type":"text","text":"What is 2+2?"}]')
    assert key(as_text) != key()
    assert key(with_user_content("")) != key(with_user_content([]))


def test_model_name_and_scope_partition():
    assert key(model="gpt-4o") != key(model="gpt-4o-mini")
    assert key(scope="key:1") != key(scope="key:2") != key()
    # the caller opts into per-user caching through the scope
    assert key(user="alice", scope="user:alice") != key(user="bob", scope="user:bob")


def test_full_fixture_sensitive_to_history():
    body = fixture("chat-request-full.json")
    k = cache_key(body, "m")
    changed = copy.deepcopy(body)
    changed["messages"][3]["content"] = '{"temperature": 23}'          # another tool result
    assert cache_key(changed, "m") != k
    changed = copy.deepcopy(body)
    changed["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"location": "NYC"}'
    assert cache_key(changed, "m") != k
    changed = copy.deepcopy(body)
    changed["response_format"]["json_schema"]["strict"] = False
    assert cache_key(changed, "m") != k
    changed = copy.deepcopy(body)
    del changed["messages"][1]["content"][2]                          # one image fewer
    assert cache_key(changed, "m") != k
