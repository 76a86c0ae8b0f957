"""Unit tests of the Responses <-> chat translation (pure functions, no app)."""
from __future__ import annotations

import pytest

from app.services.completions import ProxyError
from app.services.responses_api import translate as t
from app.services.responses_api.stream import EventWriter


def test_string_input_and_instructions():
    chat = t.to_chat({"model": "m", "input": "hi", "instructions": "sys", "stream": True})
    assert chat["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def test_developer_role_and_assistant_output_text_become_chat_messages():
    items = [{"role": "developer", "content": "rules"},
             {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
              "content": [{"type": "output_text", "text": "a", "annotations": []},
                          {"type": "output_text", "text": "b", "annotations": []}]}]
    assert t.items_to_messages(items) == [{"role": "system", "content": "rules"},
                                          {"role": "assistant", "content": "ab"}]


def test_parallel_function_calls_join_one_assistant_turn_after_its_text():
    msgs = t.items_to_messages([
        {"type": "message", "role": "assistant", "content": "Checking."},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"x\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []}])
    assert msgs[0]["content"] == "Checking." and [c["id"] for c in msgs[0]["tool_calls"]] == ["c1", "c2"]
    assert msgs[1] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    assert len(msgs) == 2  # the reasoning item is dropped


def test_json_object_format_reasoning_and_history_order():
    chat = t.to_chat({"model": "m", "input": "now", "instructions": "new",
                      "text": {"format": {"type": "json_object"}}, "reasoning": {"effort": "low"}},
                     history=[{"role": "user", "content": "before"}])
    assert chat["response_format"] == {"type": "json_object"} and chat["reasoning_effort"] == "low"
    assert [m["content"] for m in chat["messages"]] == ["new", "before", "now"]


def test_parallel_tool_calls_only_with_tools():
    assert "parallel_tool_calls" not in t.to_chat({"model": "m", "input": "x", "parallel_tool_calls": False})


@pytest.mark.parametrize("part", [{"type": "input_image", "file_id": "file_1"},
                                  {"type": "input_audio"}, {"type": "input_text", "text": 3}])
def test_unsupported_parts_are_400(part):
    with pytest.raises(ProxyError) as exc:
        t.to_chat({"model": "m", "input": [{"role": "user", "content": [part]}]})
    assert exc.value.status == 400 and exc.value.param.startswith("input[0].content[0]")


def test_chat_answer_to_output_items_and_usage():
    chat = {"choices": [{"message": {"content": "Hi", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        "finish_reason": "length"}]}
    items, reason = t.output_items(chat)
    assert [i["type"] for i in items] == ["message", "function_call"]
    assert items[0]["content"][0] == {"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}
    assert items[1]["call_id"] == "call_1" and items[1]["id"].startswith("fc_")
    resp = t.finish(t.envelope({"model": "m"}, "resp_1", 1, "m", False), items, reason,
                    t.usage_of({"prompt_tokens": 3, "completion_tokens": 4,
                                "completion_tokens_details": {"reasoning_tokens": 2}}))
    assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert resp["usage"]["total_tokens"] == 7 and resp["usage"]["output_tokens_details"]["reasoning_tokens"] == 2


def test_tool_call_without_upstream_id_gets_a_call_id():
    items, _ = t.output_items({"choices": [{"message": {"tool_calls": [
        {"function": {"name": "f", "arguments": "{}"}}]}}]})
    assert items[0]["call_id"].startswith("call_")


def test_event_writer_interleaved_parallel_calls_keep_their_output_index():
    w = EventWriter(t.envelope({"model": "m"}, "resp_1", 1, "m", False))
    w.start()
    evs = w.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x\""}},
        {"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}}]}}]})
    evs += w.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 1, "function": {"arguments": "{}"}}, {"index": 0, "function": {"arguments": ":1}"}}]}}]})
    deltas = [(e["output_index"], e["delta"]) for e in evs if e["type"].endswith("arguments.delta")]
    assert deltas == [(0, "{\"x\""), (1, "{}"), (0, ":1}")]
    final = w.complete()[-1]["response"]
    assert [o["arguments"] for o in final["output"]] == ["{\"x\":1}", "{}"]
    assert final["status"] == "completed"
