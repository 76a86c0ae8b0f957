"""The official `openai` SDK against the gateway, once per provider type, over real HTTP.

Every answer is checked against the provider fixture the fake replayed (text, usage, finish
reason, tool calls), and every call against its row in usage_records (found by x-request-id).
"""
from __future__ import annotations

import json
import time
from decimal import Decimal

import openai
import pytest

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What's the weather like today?"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


# ------------------------------------------------------------------------------------ helpers
def expected_cost(prompt: int, completion: int, price: tuple[float, float]) -> Decimal:
    return ((Decimal(str(price[0])) * prompt + Decimal(str(price[1])) * completion)
            / Decimal(1_000_000)).quantize(Decimal("0.00000001"))


def check_success_row(gw, request_id: str, model: str, *, endpoint: str = "chat", stream: bool = False,
                      usage: tuple[int, int] | None = None, price=None) -> dict:
    row = gw.usage_row(request_id)
    assert row["endpoint"] == endpoint
    assert row["model_name"] == model
    assert row["status_code"] == 200
    assert row["error_class"] is None
    assert bool(row["stream"]) is stream
    assert row["provider_id"] is not None
    assert row["prompt_tokens"] > 0
    if endpoint == "chat":
        assert row["completion_tokens"] > 0
    if usage is not None:
        assert (row["prompt_tokens"], row["completion_tokens"]) == usage
        assert not row["tokens_estimated"]
    cost = Decimal(str(row["cost_usd"]))
    assert cost > 0
    price = price or gw.chat_price
    assert cost == expected_cost(row["prompt_tokens"], row["completion_tokens"], price)
    assert row["latency_ms"] is not None and row["latency_ms"] >= 0
    return row


def check_error_row(gw, request_id: str, model: str, status: int, error_class: str) -> dict:
    row = gw.usage_row(request_id)
    assert (row["status_code"], row["error_class"]) == (status, error_class)
    assert row["model_name"] == model
    assert row["prompt_tokens"] == 0 and row["completion_tokens"] == 0
    assert Decimal(str(row["cost_usd"])) == 0
    return row


def accumulate_tool_calls(chunks) -> list[dict]:
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": "", "type": None})
                c["id"] = tc.id or c["id"]
                c["type"] = tc.type or c["type"]
                if tc.function is not None:
                    c["name"] = tc.function.name or c["name"]
                    c["arguments"] += tc.function.arguments or ""
    return [calls[i] for i in sorted(calls)]


def check_tool_calls(got: list[dict], want: list[dict]) -> None:
    assert [(c["name"], json.loads(c["arguments"])) for c in got] == \
        [(c["name"], c["arguments"]) for c in want]
    for g, w in zip(got, want):
        assert g["type"] == "function"
        if w["id"]:
            assert g["id"] == w["id"]
        else:  # Ollama sends no ids: the gateway makes them up
            assert g["id"] and g["id"].startswith("call_")


# ------------------------------------------------------------------------------------ chat
def test_chat_non_stream(gateway, client, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, max_tokens=64)
    resp = raw.parse()
    want = expect[provider_type]["json"]
    assert resp.model == model
    assert resp.id
    assert len(resp.choices) == 1
    msg = resp.choices[0].message
    assert msg.role == "assistant"
    assert msg.content == want["text"]
    assert msg.tool_calls is None
    assert resp.choices[0].finish_reason == want["finish"]
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == want["usage"]
    assert resp.usage.total_tokens == sum(want["usage"])
    check_success_row(gateway, raw.headers["x-request-id"], model, usage=want["usage"])


def test_chat_non_stream_object_field(gateway, client, provider_type, request):
    """OpenAI's schema requires `object: "chat.completion"`; Azure's documented example omits it."""
    model = gateway.model(provider_type, "chat")
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert raw.http_response.json().get("object") == "chat.completion"
    gateway.usage_row(raw.headers["x-request-id"])


@pytest.mark.parametrize("include_usage", [True, False], ids=["with-usage", "no-usage"])
def test_chat_stream(gateway, client, expect, provider_type, include_usage):
    model = gateway.model(provider_type, "chat")
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, stream=True,
                                                           **extra)
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    want = expect[provider_type]["stream"]

    assert chunks, "empty stream"
    assert all(c.model == model for c in chunks)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == want["text"]
    finishes = [c.choices[0].finish_reason for c in with_choices if c.choices[0].finish_reason]
    assert finishes == [want["finish"]]

    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1], "usage chunk must come last"
        assert chunks[-1].choices == []
        u = chunks[-1].usage
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (*want["usage"], sum(want["usage"]))
    else:
        assert usage_chunks == [], "no usage chunk unless stream_options.include_usage"
    check_success_row(gateway, raw.headers["x-request-id"], model, stream=True, usage=want["usage"])


def test_chat_tools_non_stream(gateway, client, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, tools=TOOLS,
                                                           tool_choice="auto")
    resp = raw.parse()
    want = expect[provider_type]["json_tools"]
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert (choice.message.content or "") == (want["text"] or "")
    got = [{"id": tc.id, "type": tc.type, "name": tc.function.name, "arguments": tc.function.arguments}
           for tc in choice.message.tool_calls]
    assert all(isinstance(c["arguments"], str) for c in got), "arguments must be a JSON string"
    check_tool_calls(got, want["tool_calls"])
    # Bedrock's documented tool-use answer carries no usage: the gateway must estimate, not bill 0
    check_success_row(gateway, raw.headers["x-request-id"], model,
                      usage=want["usage"] if want["usage"] else None)


def test_chat_tools_stream(gateway, client, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, tools=TOOLS,
                                                           stream=True,
                                                           stream_options={"include_usage": True})
    chunks = list(raw.parse())
    want = expect[provider_type]["stream_tools"]
    with_choices = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == want["text"]
    check_tool_calls(accumulate_tool_calls(chunks), want["tool_calls"])
    finishes = [c.choices[0].finish_reason for c in with_choices if c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == want["usage"]
    check_success_row(gateway, raw.headers["x-request-id"], model, stream=True, usage=want["usage"])


def test_chat_stream_helper_accumulates(gateway, client, expect, provider_type):
    """The SDK's own stream helper (ChatCompletionStreamState) rebuilds the final message."""
    model = gateway.model(provider_type, "chat")
    with client.chat.completions.stream(model=model, messages=MESSAGES, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    want = expect[provider_type]["stream_tools"]
    msg = final.choices[0].message
    assert (msg.content or "") == want["text"]
    got = [{"id": tc.id, "type": tc.type, "name": tc.function.name, "arguments": tc.function.arguments}
           for tc in msg.tool_calls]
    check_tool_calls(got, want["tool_calls"])
    assert final.choices[0].finish_reason == "tool_calls"


# ------------------------------------------------------------------------------------ embeddings
@pytest.mark.parametrize("encoding", ["sdk-default-base64", "float"])
def test_embeddings(gateway, client, expect, embedding_provider, encoding):
    model = gateway.model(embedding_provider, "embed")
    extra = {"encoding_format": "float"} if encoding == "float" else {}
    raw = client.embeddings.with_raw_response.create(model=model, input="The food was delicious", **extra)
    wire = raw.http_response.json()
    resp = raw.parse()
    want = expect[embedding_provider]
    # what went over the wire: base64 text for the SDK's default, a float list otherwise
    if encoding == "float":
        assert isinstance(wire["data"][0]["embedding"], list)
    else:
        assert isinstance(wire["data"][0]["embedding"], str), "the SDK asked for base64"
    assert resp.model == model
    assert resp.object == "list"
    assert [d.index for d in resp.data] == [0]
    assert resp.data[0].object == "embedding"
    assert resp.data[0].embedding == pytest.approx(want["embedding"], rel=1e-6, abs=1e-9)
    assert resp.usage.prompt_tokens == want["embedding_tokens"]
    check_success_row(gateway, raw.headers["x-request-id"], model, endpoint="embeddings",
                      usage=(want["embedding_tokens"], 0), price=(gateway.embed_price, 0))


def test_embeddings_batch(gateway, client, expect, embedding_provider):
    """Two inputs -> two vectors in order (Bedrock Titan: two InvokeModel calls)."""
    model = gateway.model(embedding_provider, "embed")
    raw = client.embeddings.with_raw_response.create(model=model, input=["first text", "second text"])
    resp = raw.parse()
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) > 0 for d in resp.data)
    check_success_row(gateway, raw.headers["x-request-id"], model, endpoint="embeddings",
                      price=(gateway.embed_price, 0))


# ------------------------------------------------------------------------------------ usage
# Upstream answers without usage, where the gateway must estimate and show the estimate:
# Bedrock's documented toolUse answer has no usage; Ollama's documented multi-input /api/embed
# answer has no prompt_eval_count.


@pytest.mark.parametrize("call", ["chat-tools", "embeddings-batch"])
def test_client_usage_equals_billed_usage(gateway, client, provider_type, call, request):
    """The usage a client is shown must be the usage the gateway bills, also when it had to
    estimate because the upstream reported none (streams already do this via the usage chunk)."""
    if call == "embeddings-batch" and provider_type == "anthropic":
        pytest.skip("Anthropic has no embeddings")
    if call == "chat-tools":
        raw = client.chat.completions.with_raw_response.create(
            model=gateway.model(provider_type, "chat"), messages=MESSAGES, tools=TOOLS)
        u = raw.parse().usage
        shown = (u.prompt_tokens, u.completion_tokens) if u else (0, 0)
    else:
        raw = client.embeddings.with_raw_response.create(
            model=gateway.model(provider_type, "embed"), input=["first text", "second text"])
        shown = (raw.parse().usage.prompt_tokens, 0)
    row = gateway.usage_row(raw.headers["x-request-id"])
    assert shown == (row["prompt_tokens"], row["completion_tokens"])
    assert row["prompt_tokens"] > 0


# ------------------------------------------------------------------------------------ models
def test_models_list_and_retrieve(gateway, client):
    listed = list(client.models.list())
    ids = [m.id for m in listed]
    for ptype in gateway.provider_ids:
        assert gateway.model(ptype, "chat") in ids
        assert gateway.model(ptype, "err-429") in ids
    assert ids == sorted(ids)
    assert all(m.object == "model" for m in listed)

    m = client.models.retrieve(gateway.model("anthropic", "chat"))
    assert (m.id, m.object, m.owned_by) == (gateway.model("anthropic", "chat"), "model", "e2e-anthropic")
    assert isinstance(m.created, int) and m.created > 0
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


# ------------------------------------------------------------------------------------ errors
ERRORS = {  # fake's model -> (SDK exception, gateway status, error_class)
    "err-401": (openai.InternalServerError, 502, "upstream_auth"),
    "err-404": (openai.NotFoundError, 404, "not_found"),
    "err-429": (openai.RateLimitError, 429, "rate_limited"),
    "err-500": (openai.InternalServerError, 502, "upstream_error"),
}


@pytest.mark.parametrize("kind", list(ERRORS))
def test_upstream_errors(gateway, client, provider_type, kind):
    exc_type, status, error_class = ERRORS[kind]
    model = gateway.model(provider_type, kind)
    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model=model, messages=MESSAGES)
    exc = info.value
    assert exc.status_code == status
    body = exc.response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    if kind == "err-429":
        assert exc.response.headers.get("retry-after") == "2"
    if kind == "err-401":
        secret = gateway.upstream_secret(provider_type)
        if secret:
            assert secret not in str(exc)
            assert secret not in exc.response.text
            assert secret not in json.dumps(dict(exc.response.headers))
        assert body["error"]["code"] == "upstream_auth_failed"
    check_error_row(gateway, exc.response.headers["x-request-id"], model, status, error_class)


def test_upstream_429_on_stream_request_is_an_http_error(gateway, client, provider_type):
    """An upstream error before the first byte is a plain HTTP error, not an SSE event."""
    model = gateway.model(provider_type, "err-429")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert info.value.response.headers.get("retry-after") == "2"
    assert info.value.response.headers["content-type"].startswith("application/json")
    row = check_error_row(gateway, info.value.response.headers["x-request-id"], model, 429, "rate_limited")
    assert row["stream"]


def test_bad_gateway_key(gateway):
    bad = gateway.client(api_key="sk-not-a-gateway-key")
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model=gateway.model("openai-compatible", "chat"), messages=MESSAGES)
    assert info.value.status_code == 401
    assert info.value.response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_unknown_model(gateway, client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    body = info.value.response.json()["error"]
    assert body["code"] == "model_not_found" and body["param"] == "model"
    row = gateway.usage_row(info.value.response.headers["x-request-id"])
    assert (row["status_code"], row["error_class"], row["model_name"]) == (404, "not_found", "no-such-model")
    assert row["provider_id"] is None


def test_slow_upstream_client_timeout(gateway, provider_type):
    """The client gives up first: APITimeoutError; the gateway still records its own 504."""
    model = gateway.model(provider_type, "slow")
    before = gateway.count_usage(model)
    impatient = gateway.client(timeout=0.3)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model=model, messages=MESSAGES)
    assert time.monotonic() - started < gateway.read_timeout
    gateway.wait(lambda: gateway.count_usage(model) > before, 5, what="the timed-out call's usage row")
    rows = gateway.query("SELECT * FROM usage_records WHERE model_name = ? ORDER BY id DESC LIMIT 1", (model,))
    assert (rows[0]["status_code"], rows[0]["error_class"]) == (504, "timeout")


def test_slow_upstream_gateway_timeout(gateway, provider_type):
    """The provider read timeout (1 s) is shorter than the client's: the gateway answers 504."""
    model = gateway.model(provider_type, "slow")
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client(timeout=10).chat.completions.create(model=model, messages=MESSAGES)
    elapsed = time.monotonic() - started
    assert info.value.status_code == 504
    assert isinstance(info.value, openai.InternalServerError)
    assert info.value.response.json()["error"]["code"] == "upstream_timeout"
    assert gateway.read_timeout * 0.9 <= elapsed < gateway.read_timeout + 1.5
    check_error_row(gateway, info.value.response.headers["x-request-id"], model, 504, "timeout")


@pytest.mark.parametrize("ptype, want", [
    ("openai-compatible", ["model-id-0", "model-id-1", "model-id-2"]),   # GET /v1/models
    ("ollama", ["deepseek-r1:latest", "llama3.2:latest"]),                 # GET /api/tags
])
def test_upstream_model_listing_via_admin_api(gateway, ptype, want):
    """The admin API's "import models" call reads each upstream's own listing format."""
    listed = gateway.admin("GET", f"/providers/{gateway.provider_ids[ptype]}/upstream-models")
    assert [m["id"] for m in listed["data"]] == want
    assert all(m["kind"] == "chat" for m in listed["data"])
