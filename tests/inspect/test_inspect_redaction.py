"""inspect_messages / redact_messages over OpenAI chat messages."""
from __future__ import annotations

import copy
import json

import pytest

from app.inspect import Inspector

KEY = "sk-proj-Qx7LmR2vT9bWcK4nZ8pJ3sYd6fHa1gUeXo5iNtVq0EkBrMzCw"
GH = "ghp_4kT9zQ2mW7xR1pL8vN3bC6yH0jF5sD2aE9uK"
PEM = ("-----BEGIN EC PRIVATE KEY-----\n"
       "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n"
       "AwEHoUQDQgAEPR3tU2Fta9ktY+6P9G0cWO+0kETA6SOs38H63GBFnbP8dE2TPo3Z\n"
       "-----END EC PRIVATE KEY-----")


@pytest.fixture(scope="module")
def insp():
    return Inspector(keywords=["Project Nightingale"])


def conversation():
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": f"My key is {KEY}, mail me at bob@example.com"},
        {"role": "user", "content": [
            {"type": "text", "text": "Card 4111 1111 1111 1111 please"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "text", "text": "and nothing here"},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {
                "name": "lookup",
                "arguments": json.dumps({"email": "alice@example.org",
                                         "note": "Project Nightingale", "n": 3})}},
            {"id": "call_2", "type": "function", "function": {
                "name": "noop", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1",
         "content": f"found token {GH} for alice"},
        {"role": "assistant", "content": "Done."},
    ]


def test_inspect_messages_finds_every_field(insp):
    v = insp.inspect_messages(conversation())
    assert v.detectors == ["credit_card", "custom_keyword", "email", "github_token",
                           "openai_api_key"]
    by_loc = {}
    for f in v.findings:
        by_loc.setdefault(f.location, []).append(f.detector)
    assert by_loc == {
        (1, "content"): ["openai_api_key", "email"],
        (2, "content", 0, "text"): ["credit_card"],
        (3, "tool_calls", 0, "function", "arguments"): ["email", "custom_keyword"],
        (4, "content"): ["github_token"],
    }
    msgs = conversation()
    for f in v.findings:  # spans index the field named by location
        node = msgs
        for step in f.location:
            node = node[step]
        assert node[f.start:f.end] in (KEY, "bob@example.com", "4111 1111 1111 1111",
                                       "alice@example.org", "Project Nightingale", GH)


def test_redaction_replaces_exactly_the_spans(insp):
    msgs = conversation()
    before = copy.deepcopy(msgs)
    red, verdict = insp.redact_messages(msgs)
    assert msgs == before  # the originals are untouched
    assert verdict.detectors == insp.inspect_messages(msgs).detectors
    assert red[0] == before[0] and red[5] == before[5]
    assert red[1]["content"] == ("My key is [REDACTED:secret], mail me at [REDACTED:pii]")
    assert red[2]["content"][0]["text"] == "Card [REDACTED:pii] please"
    assert red[2]["content"][1] == before[2]["content"][1]
    assert red[2]["content"][2] == before[2]["content"][2]
    args = json.loads(red[3]["tool_calls"][0]["function"]["arguments"])
    assert args == {"email": "[REDACTED:pii]", "note": "[REDACTED:custom]", "n": 3}
    assert red[3]["tool_calls"][1] == before[3]["tool_calls"][1]
    assert red[3]["content"] is None
    assert red[4]["content"] == "found token [REDACTED:secret] for alice"
    assert red[4]["tool_call_id"] == "call_1"


def test_redacted_copy_shares_nothing_with_the_original(insp):
    msgs = conversation()
    red, _ = insp.redact_messages(msgs)
    red[2]["content"][1]["image_url"]["url"] = "changed"
    red[0]["content"] = "changed"
    red[3]["tool_calls"][1]["function"]["name"] = "changed"
    assert msgs == conversation()


def test_clean_conversation_is_copied_unchanged(insp):
    msgs = [{"role": "user", "content": "Write a haiku about autumn."}]
    red, v = insp.redact_messages(msgs)
    assert red == msgs and red is not msgs and red[0] is not msgs[0]
    assert v.findings == [] and not v.sensitive


def test_tool_arguments_stay_valid_json_around_escapes(insp):
    args = json.dumps({"body": f"Hi\nbob@example.com\n{PEM}", "key": KEY})
    assert "\\n" in args
    msgs = [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "send", "arguments": args}}]}]
    red, v = insp.redact_messages(msgs)
    assert v.detectors == ["email", "openai_api_key", "private_key"]
    for f in v.findings:  # no span starts or ends inside an escape sequence
        piece = args[f.start:f.end]
        assert not piece.startswith("n") and not piece.endswith("\\")
    out = json.loads(red[0]["tool_calls"][0]["function"]["arguments"])
    assert out == {"body": "Hi\n[REDACTED:pii]\n[REDACTED:secret]", "key": "[REDACTED:secret]"}


def test_tool_arguments_with_escaped_quotes(insp):
    args = json.dumps({"cmd": 'mysql --password="S3cr3t!2024x" -e "select 1"'})
    msgs = [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "sh", "arguments": args}}]}]
    red, v = insp.redact_messages(msgs)
    assert v.detectors == ["credential_assignment"]
    out = json.loads(red[0]["tool_calls"][0]["function"]["arguments"])
    assert "S3cr3t" not in out["cmd"] and "[REDACTED:secret]" in out["cmd"]


def test_legacy_function_call_and_odd_shapes(insp):
    msgs = [
        {"role": "assistant", "function_call": {"name": "f",
                                                "arguments": '{"to": "bob@example.com"}'}},
        {"role": "user", "content": ["plain string part with eve@example.com"]},
        {"role": "user", "content": [{"text": "untyped part carol@example.com"}]},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]},
        "not a message",
        {"role": "user"},
    ]
    before = copy.deepcopy(msgs)
    red, v = insp.redact_messages(msgs)
    assert msgs == before
    assert [f.location for f in v.findings] == [
        (0, "function_call", "arguments"), (1, "content", 0), (2, "content", 0, "text")]
    assert json.loads(red[0]["function_call"]["arguments"]) == {"to": "[REDACTED:pii]"}
    assert red[1]["content"][0] == "plain string part with [REDACTED:pii]"
    assert red[4] == "not a message" and red[5] == {"role": "user"}


def test_messages_must_be_a_list(insp):
    with pytest.raises(TypeError):
        insp.inspect_messages({"role": "user", "content": "x"})


def test_overlapping_findings_merge_into_one_placeholder():
    insp = Inspector(keywords=["bob"])
    red, v = insp.redact_text("write to bob@example.com today")
    assert v.detectors == ["custom_keyword", "email"]
    assert red == "write to [REDACTED:pii] today"  # the most sensitive category names it


def test_redact_text(insp):
    red, v = insp.redact_text(f'password = "hunter2x" and {KEY}')
    assert red == 'password = "[REDACTED:secret]" and [REDACTED:secret]'
    assert v.detectors == ["credential_assignment", "openai_api_key"]


def test_redaction_is_idempotent_on_the_corpus():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sensitivity_report as report

    insp = report.corpus_inspector()
    for ex in report.load_corpus():
        once, v = insp.redact_text(ex["text"])
        twice, v2 = insp.redact_text(once)
        assert twice == once
        assert v2.findings == [], (ex["text"], v2.detectors)


def test_json_fallback_when_a_span_crosses_json_syntax():
    insp = Inspector(patterns=[r'note": "Proj'])  # an admin pattern written against raw JSON
    args = json.dumps({"note": "Project Nightingale", "to": "bob@example.com"})
    msgs = [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]}]
    red, v = insp.redact_messages(msgs)
    assert v.detectors == ["custom_pattern", "email"]
    out = json.loads(red[0]["tool_calls"][0]["function"]["arguments"])  # still valid JSON
    assert out == {"note": "Project Nightingale", "to": "[REDACTED:pii]"}
