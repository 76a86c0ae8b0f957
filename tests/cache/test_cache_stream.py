"""Stream replay: as_stream_chunks / response_from_chunks against the recorded OpenAI streams."""
from __future__ import annotations

import copy

import pytest
from cache_support import fixture, sse_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cache import as_stream_chunks, response_from_chunks, split_text

STREAMS = ["chat-stream-text.sse", "chat-stream-tool-call.sse",
           "chat-stream-parallel-tool-calls.sse"]
RESPONSES = ["chat-response-text.json", "chat-response-tool-calls.json"]


def essentials(resp: dict):
    """What the replay must preserve, per choice: content, tool calls, finish_reason."""
    out = []
    for c in resp["choices"]:
        m = c["message"]
        out.append((c.get("index"), m.get("role"), m.get("content"),
                    [(t["id"], t["type"], t["function"]["name"], t["function"]["arguments"])
                     for t in m.get("tool_calls") or ()],
                    c["finish_reason"]))
    return out


# --- assembling the recorded streams ------------------------------------------------------------
def test_recorded_text_stream_assembles():
    r = response_from_chunks(sse_chunks("chat-stream-text.sse"))
    assert r["object"] == "chat.completion"
    assert r["id"] == "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL"
    assert r["created"] == 1727346168 and r["model"] == "gpt-4o-2024-08-06"
    assert r["system_fingerprint"] == "fp_5050236cbd"
    msg = r["choices"][0]["message"]
    assert msg["role"] == "assistant"
    assert msg["content"].startswith("I'm unable to provide real-time weather updates. To get")
    assert msg["content"].endswith("a reliable weather website or a weather app.")
    assert "tool_calls" not in msg
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"] == {"prompt_tokens": 14, "completion_tokens": 30, "total_tokens": 44,
                          "completion_tokens_details": {"reasoning_tokens": 0}}


def test_recorded_tool_call_stream_assembles():
    r = response_from_chunks(sse_chunks("chat-stream-tool-call.sse"))
    msg = r["choices"][0]["message"]
    assert msg["content"] is None
    assert msg["tool_calls"] == [{"id": "call_4XzlGBLtUe9dy3GVNV4jhq7h", "type": "function",
                                  "function": {"name": "get_weather",
                                               "arguments": '{"city":"New York City"}'}}]
    assert r["choices"][0]["finish_reason"] == "tool_calls"


def test_recorded_parallel_tool_calls_assemble_by_index():
    r = response_from_chunks(sse_chunks("chat-stream-parallel-tool-calls.sse"))
    calls = r["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["GetWeatherArgs", "get_stock_price"]
    assert calls[0]["id"] == "call_JMW1whyEaYG438VE1OIflxA2"
    assert calls[1]["function"]["arguments"] == '{"ticker": "AAPL", "exchange": "NASDAQ"}'
    assert r["choices"][0]["finish_reason"] == "tool_calls"


# --- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", STREAMS)
def test_round_trip_of_recorded_streams(name):
    original = response_from_chunks(sse_chunks(name))
    replayed = as_stream_chunks(original)
    again = response_from_chunks(replayed)
    assert essentials(again) == essentials(original)
    for k in ("id", "created", "model", "system_fingerprint"):
        assert again[k] == original[k]


@pytest.mark.parametrize("name", RESPONSES)
def test_round_trip_of_stored_responses(name):
    original = fixture(name)
    again = response_from_chunks(as_stream_chunks(original))
    assert essentials(again) == essentials(original)
    assert (again["id"], again["created"], again["model"]) == (
        original["id"], original["created"], original["model"])


def test_round_trip_with_several_choices_and_refusal():
    r = fixture("chat-response-text.json")
    second = copy.deepcopy(r["choices"][0])
    second["index"] = 1
    second["message"] = {"role": "assistant", "content": None,
                         "refusal": "I can't help with that request, sorry."}
    second["finish_reason"] = "stop"
    r["choices"].append(second)
    again = response_from_chunks(as_stream_chunks(r))
    assert essentials(again) == essentials(r)
    assert again["choices"][1]["message"]["refusal"] == "I can't help with that request, sorry."


def test_logprobs_are_carried_over():
    r = fixture("chat-response-text.json")
    lp = {"content": [{"token": "Hello", "logprob": -0.1, "bytes": [72], "top_logprobs": []},
                      {"token": "!", "logprob": -0.2, "bytes": [33], "top_logprobs": []}],
          "refusal": None}
    r["choices"][0]["logprobs"] = lp
    chunks = as_stream_chunks(r)
    assert sum(c["choices"][0]["logprobs"] is not None for c in chunks) == 1
    assert response_from_chunks(chunks)["choices"][0]["logprobs"] == lp


# --- chunk shapes -------------------------------------------------------------------------------
RECORDED_CHUNK_KEYS = set(sse_chunks("chat-stream-text.sse")[0])       # the real chunk envelope
RECORDED_CHOICE_KEYS = set(sse_chunks("chat-stream-text.sse")[0]["choices"][0])


@pytest.mark.parametrize("name", RESPONSES)
def test_chunk_shapes(name):
    r = fixture(name)
    chunks = as_stream_chunks(r)
    assert len(chunks) >= 3
    for c in chunks:
        assert set(c) - {"service_tier"} == RECORDED_CHUNK_KEYS
        assert c["object"] == "chat.completion.chunk"
        assert (c["id"], c["created"], c["model"]) == (r["id"], r["created"], r["model"])
        assert c["system_fingerprint"] == r.get("system_fingerprint")
        assert len(c["choices"]) == 1
        assert set(c["choices"][0]) == RECORDED_CHOICE_KEYS
        assert c["choices"][0]["index"] == 0
    first, last = chunks[0]["choices"][0], chunks[-1]["choices"][0]
    assert first["delta"]["role"] == "assistant" and first["finish_reason"] is None
    assert last["delta"] == {} and last["finish_reason"] == r["choices"][0]["finish_reason"]
    for c in chunks[1:]:
        assert "role" not in c["choices"][0]["delta"]
    for c in chunks[:-1]:
        assert c["choices"][0]["finish_reason"] is None
    assert not any(c.get("usage") for c in chunks)       # the caller adds the usage chunk


def test_text_is_split_at_word_boundaries():
    r = fixture("chat-response-text.json")
    text = ("The quick brown fox jumps over the lazy dog, then keeps running far away "
            "into the forest where nobody can find it anymore.")
    r["choices"][0]["message"]["content"] = text
    chunks = as_stream_chunks(r)
    assert chunks[0]["choices"][0]["delta"]["content"] == ""          # as recorded streams
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert "".join(pieces) == text
    assert len(pieces) >= 5
    for p in pieces[:-1]:
        assert len(p) <= 20 and p.endswith(" ")                         # cut after a space


def test_tool_call_fragments_keyed_by_index():
    r = response_from_chunks(sse_chunks("chat-stream-parallel-tool-calls.sse"))
    chunks = as_stream_chunks(r)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    frags = [c["choices"][0]["delta"]["tool_calls"] for c in chunks
             if "tool_calls" in c["choices"][0]["delta"]]
    assert all(len(f) == 1 for f in frags)
    seen: dict[int, int] = {}
    for (f,) in frags:
        i = f["index"]
        if i not in seen:                                   # the first fragment of a call
            assert set(f) == {"index", "id", "type", "function"}
            assert f["id"] and f["type"] == "function"
            assert f["function"]["name"] and f["function"]["arguments"] == ""
        else:
            assert set(f) == {"index", "function"}           # no id, no name afterwards
            assert set(f["function"]) == {"arguments"}
        seen[i] = seen.get(i, 0) + 1
    assert sorted(seen) == [0, 1] and all(n >= 2 for n in seen.values())
    # indexes stream in order: every fragment of call 0 before call 1
    order = [f[0]["index"] for f in frags]
    assert order == sorted(order)


def test_n_choices_each_start_with_role_and_end_with_finish_reason():
    r = fixture("chat-response-text.json")
    r["choices"].append({**copy.deepcopy(r["choices"][0]), "index": 1})
    chunks = as_stream_chunks(r)
    for i in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == i]
        assert "role" in mine[0]["delta"] and mine[-1]["finish_reason"] == "stop"


# --- incomplete streams ----------------------------------------------------------------------
def test_incomplete_streams_give_none():
    chunks = sse_chunks("chat-stream-text.sse")
    assert response_from_chunks([]) is None
    assert response_from_chunks(chunks[-1:]) is None                   # usage chunk only
    assert response_from_chunks(chunks[:-2]) is None                   # no finish_reason
    tool = sse_chunks("chat-stream-tool-call.sse")
    assert response_from_chunks(tool[1:]) is None                      # lost the id/name
    assert response_from_chunks(chunks + [{"error": {"message": "x"}}]) is None


def test_tolerates_azure_style_first_chunk_and_done_marker():
    chunks = sse_chunks("chat-stream-text.sse")
    azure_first = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
                   "prompt_filter_results": []}
    r = response_from_chunks([azure_first, *chunks, "[DONE]"])
    assert r["id"] == "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL" and r["created"] == 1727346168
    assert r["choices"][0]["finish_reason"] == "stop"


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=40))
def test_split_text_keeps_every_character(text, size):
    pieces = split_text(text, size)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= size for p in pieces)
    # a cut falls after whitespace unless a single word (or space run) exceeds the size
    for p, nxt in zip(pieces, pieces[1:]):
        assert p[-1].isspace() or nxt[0].isspace() or len(p) == size


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=0, max_size=300), st.text(max_size=80))
def test_round_trip_any_text_and_arguments(text, args):
    r = fixture("chat-response-tool-calls.json")
    r["choices"][0]["message"]["content"] = text
    r["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = args
    assert essentials(response_from_chunks(as_stream_chunks(r))) == essentials(r)
