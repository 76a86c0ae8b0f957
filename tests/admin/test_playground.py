"""Playground pages, fragments and the streaming endpoint, through the Flask test client.

The upstream is faked with `responses` in OpenAI's wire format (recorded fixture transcripts);
the playground goes through the real proxy path with the user's own key.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import responses

FIX = Path(__file__).resolve().parents[3] / "shared" / "provider-fixtures"
UP = "http://up.test/v1/chat/completions"
UP2 = "http://two.test/v1/chat/completions"


@pytest.fixture
def pg(app_factory):
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0)

    @app.before_request
    def _fresh_user():  # the fixture's app context is shared by requests: so would be `g`'s user
        from flask import g
        g.pop("_login_user", None)

    with app.app_context():
        yield app


def _login(app, username, role):
    from app.services import users
    users.create(username, "correct-horse-9", role, actor="test")
    c = app.test_client()
    r = c.post("/login", data={"username": username, "password": "correct-horse-9"})
    assert r.status_code in (302, 303)
    return c


@pytest.fixture
def admin(pg):
    return _login(pg, "alice", "admin")


@pytest.fixture
def viewer(pg):
    return _login(pg, "victor", "viewer")


@pytest.fixture
def catalog(pg):
    """Two providers: `mini` (tools, vision, 128k, prices), `plain` (no tools/vision, no
    streaming) and models the picker must hide (embedding, disabled)."""
    from app.services import models, providers
    p1 = providers.create({"name": "Up", "type": "openai-compatible", "api_base": "http://up.test/v1",
                           "api_key": "sk-upstream-SECRET-1"}, actor="t")
    p2 = providers.create({"name": "Two", "type": "openai-compatible", "api_base": "http://two.test/v1",
                           "api_key": "sk-upstream-SECRET-2"}, actor="t")
    mini = models.create({"provider_id": p1.id, "model_id": "gpt-4o-mini-2024", "name": "mini",
                          "supports_tools": True, "supports_vision": True, "context_window": 128000,
                          "input_price_per_mtok": "0.15", "output_price_per_mtok": "0.60"}, actor="t")
    plain = models.create({"provider_id": p2.id, "model_id": "plain-1", "name": "plain",
                           "supports_streaming": False, "input_price_per_mtok": "1",
                           "output_price_per_mtok": "2"}, actor="t")
    models.create({"provider_id": p1.id, "model_id": "text-embedding-3-small", "kind": "embedding"}, actor="t")
    models.create({"provider_id": p2.id, "model_id": "off-1", "name": "off", "enabled": False}, actor="t")
    return mini, plain


def page_data(html: bytes) -> dict:
    m = re.search(rb'<script type="application/json" id="pg-data">(.*?)</script>', html, re.S)
    assert m, "page data missing"
    return json.loads(m.group(1))


def events(body: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        name = re.search(r"^event: (.+)$", block, re.M).group(1)
        data = re.search(r"^data: (.+)$", block, re.M).group(1)
        out.append((name, json.loads(data)))
    return out


def ask(client, model="mini", text="hi", **extra):
    payload = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return client.post("/playground/chat", json=payload, headers={"Accept": "text/event-stream"})


def stream_body(texts, usage=(9, 4), tool_call=None) -> bytes:
    base = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in texts]
    if tool_call:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": tool_call, "arguments": ""}}]},
            "finish_reason": None}]})
        for part in ('{"city"', ': "Paris"}'):
            chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": part}}]}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_call else "stop"}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                                    "total_tokens": sum(usage)}})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def usage_rows():
    from app.extensions import db
    from app.models import UsageRecord
    return db.session.scalars(db.select(UsageRecord).order_by(UsageRecord.id)).all()


def playground_key(username):
    from app.extensions import db
    from app.models import GatewayKey
    return db.session.scalars(db.select(GatewayKey).where(GatewayKey.name == f"Playground · {username}")).all()


# ------------------------------------------------------------------------------ page + picker
def test_page_lists_usable_chat_models_grouped_with_badges(admin, catalog):
    r = admin.get("/playground")
    assert r.status_code == 200
    data = page_data(r.data)
    sections = {s["provider"]: {m["name"]: m for m in s["models"]} for s in data["models"]}
    assert set(sections) == {"Up", "Two"}            # embedding and disabled models are not offered
    assert set(sections["Up"]) == {"mini"} and set(sections["Two"]) == {"plain"}
    mini, plain = sections["Up"]["mini"], sections["Two"]["plain"]
    assert (mini["tools"], mini["vision"], mini["streaming"], mini["context_window"]) == (True, True, True, 128000)
    assert (mini["input_price"], mini["output_price"]) == ("0.15", "0.6")
    assert (plain["tools"], plain["vision"], plain["streaming"]) == (False, False, False)
    # the user's key exists once, chat-only, and is shown by prefix only
    (key,) = playground_key("alice")
    assert key.scopes == ["chat"] and key.prefix.encode() in r.data
    admin.get("/playground")
    assert len(playground_key("alice")) == 1


def test_picker_follows_the_keys_allowed_models(pg, admin, catalog):
    from app.services import keys
    admin.get("/playground")
    (key,) = playground_key("alice")
    keys.update(key, {"allowed_models": ["mini*"]}, actor="t")
    data = page_data(admin.get("/playground").data)
    assert [m["name"] for s in data["models"] for m in s["models"]] == ["mini"]
    r = ask(admin, model="plain")
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "model"


# ------------------------------------------------------------------------------ streaming
@responses.activate
def test_stream_reads_to_the_end_with_figures_usage_and_saved_conversation(pg, admin, catalog):
    transcript = (FIX / "openai" / "chat-stream-text.sse").read_bytes()
    responses.post(UP, body=transcript, content_type="text/event-stream")
    r = ask(admin, text="Say hello", system="Be brief",
            params={"temperature": "0.3", "top_p": 0.9, "max_tokens": "50", "seed": "7",
                    "stop": "END\nSTOP", "json_mode": True})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    evs = events(r.data)
    names = [n for n, _ in evs]
    assert names[0] == "start" and names[-1] == "done" and "render" in names
    text = "".join(d.get("text", "") for n, d in evs if n == "delta")
    expected = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in transcript.decode().splitlines()
                       if line.startswith("data: {") and json.loads(line[6:]).get("choices"))
    assert text == expected and text
    last_render = [d for n, d in evs if n == "render"][-1]["html"]
    assert expected.split()[0] in last_render
    # what went upstream is an ordinary OpenAI request with the panel's parameters
    sent = json.loads(responses.calls[0].request.body)
    assert sent["model"] == "gpt-4o-mini-2024" and sent["stream"] is True
    assert sent["messages"] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Say hello"}]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == (0.3, 0.9, 50, 7)
    assert sent["stop"] == ["END", "STOP"] and sent["response_format"] == {"type": "json_object"}
    # figures match the usage record the proxy wrote for the user's key
    figures = evs[-1][1]
    (row,) = usage_rows()
    (key,) = playground_key("alice")
    assert row.key_id == key.id and row.stream and row.status_code == 200
    assert (figures["prompt_tokens"], figures["completion_tokens"]) == (row.prompt_tokens, row.completion_tokens)
    assert Decimal(figures["cost_usd"]) == row.cost_usd > 0
    assert figures["deployment"] == "Up / gpt-4o-mini-2024" and figures["request_id"] == row.request_id
    assert figures["ttft_ms"] is not None and figures["latency_ms"] >= figures["ttft_ms"]
    # the conversation was saved with the answer and its figures
    cid = evs[0][1]["conversation_id"]
    from app.extensions import db
    from app.models import PlaygroundConversation
    db.session.expire_all()
    conv = db.session.get(PlaygroundConversation, cid)
    assert conv.title == "Say hello" and conv.system_prompt == "Be brief"
    assert [m["role"] for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[1]["content"] == expected and conv.messages[1]["meta"]["request_id"] == row.request_id


@responses.activate
def test_a_model_without_streaming_is_called_with_json(pg, admin, catalog):
    responses.post(UP2, json={"id": "c1", "object": "chat.completion", "created": 1, "model": "plain-1",
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": "**whole**"},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
    evs = events(ask(admin, model="plain").data)
    assert json.loads(responses.calls[0].request.body).get("stream") is None
    assert [d["text"] for n, d in evs if n == "delta"] == ["**whole**"]
    assert "<strong>whole</strong>" in [d for n, d in evs if n == "render"][-1]["html"]
    done = evs[-1][1]
    assert (done["prompt_tokens"], done["completion_tokens"]) == (5, 2)
    assert Decimal(done["cost_usd"]) == Decimal("0.00000900")  # 5 * 1/1M + 2 * 2/1M


@responses.activate
def test_tools_and_images_go_upstream_and_tool_calls_come_back(pg, admin, catalog):
    responses.post(UP, body=stream_body([], tool_call="get_weather"), content_type="text/event-stream")
    image = "data:image/png;base64," + "iVBORw0KGgo" * 10
    tools = json.dumps([{"name": "get_weather", "description": "Weather",
                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    payload = {"model": "mini", "tools": tools, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "weather here?"}, {"type": "image_url", "image_url": {"url": image}}]}]}
    r = admin.post("/playground/chat", json=payload)
    evs = events(r.data)
    sent = json.loads(responses.calls[0].request.body)
    assert sent["tools"] == [{"type": "function", "function": json.loads(tools)[0]}]
    assert sent["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": image}}
    last_call = [d for n, d in evs if n == "delta" and "tool_calls" in d][-1]["tool_calls"][0]
    assert (last_call["name"], last_call["arguments"], last_call["id"]) == ("get_weather", '{"city": "Paris"}', "call_1")
    assert evs[-1][1]["finish_reason"] == "tool_calls"
    from app.extensions import db
    from app.models import PlaygroundConversation
    conv = db.session.get(PlaygroundConversation, evs[0][1]["conversation_id"])
    db.session.refresh(conv)
    answer = conv.messages[-1]
    assert answer["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    # answering the tool call continues the conversation with a tool message
    responses.replace(responses.POST, UP, body=stream_body(["Sunny."]), content_type="text/event-stream")
    follow = {"model": "mini", "tools": tools, "conversation_id": conv.id,
              "messages": [*conv.messages, {"role": "tool", "tool_call_id": "call_1", "content": '{"t": 21}'}]}
    evs2 = events(admin.post("/playground/chat", json=follow).data)
    assert "".join(d.get("text", "") for n, d in evs2 if n == "delta") == "Sunny."
    sent2 = json.loads(responses.calls[1].request.body)
    assert sent2["messages"][1]["tool_calls"][0]["id"] == "call_1" and "meta" not in sent2["messages"][1]
    assert sent2["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"t": 21}'}


@pytest.mark.parametrize("payload, param", [
    ({"params": {"temperature": "3"}}, "temperature"),
    ({"params": {"top_p": "x"}}, "top_p"),
    ({"params": {"max_tokens": "0"}}, "max_tokens"),
    ({"params": {"stop": "a\nb\nc\nd\ne"}}, "stop"),
    ({"tools": "[not json"}, "tools"),
    ({"tools": '[{"name": "bad name!"}]'}, "tools"),
    ({"model": "plain", "tools": '[{"name": "f"}]'}, "tools"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "messages"),
    ({"messages": [{"role": "system", "content": "sneaky"}]}, "messages"),
    ({"model": "plain", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}}]}]}, "image"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "javascript:alert(1)"}}]}]}, "image"),
    ({"conversation_id": "1"}, "conversation_id"),
])
def test_bad_input_is_a_clear_400(pg, admin, catalog, payload, param):
    body = {"model": "mini", "messages": [{"role": "user", "content": "hi"}], **payload}
    r = admin.post("/playground/chat", json=body)
    assert r.status_code == 400, r.data
    err = r.get_json()["error"]
    assert err["param"] == param and err["message"]
    assert usage_rows() == []  # refused before any upstream call


def test_non_json_body_is_a_400_not_a_500(admin, catalog):
    r = admin.post("/playground/chat", data="{{{", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["message"]


# ------------------------------------------------------------------------------ readable errors
@responses.activate
def test_rate_limit_of_the_users_key_shows_as_a_readable_message(pg, admin, catalog):
    from app.services import keys
    admin.get("/playground")
    (key,) = playground_key("alice")
    keys.update(key, {"limits": {"rpm": 1}}, actor="t")
    responses.post(UP, body=stream_body(["ok"]), content_type="text/event-stream")
    assert events(ask(admin).data)[-1][0] == "done"
    evs = events(ask(admin).data)
    (err,) = [d for n, d in evs if n == "error"]
    assert err["title"] == "Rate limit reached" and err["status"] == 429
    assert int(err["retry_after"]) >= 1 and "Try again in" in err["hint"]
    assert [r.status_code for r in usage_rows()] == [200, 429]


@responses.activate
def test_budget_upstream_down_and_policy_errors_are_explained(pg, admin, catalog):
    from app.services import keys
    admin.get("/playground")
    (key,) = playground_key("alice")
    keys.update(key, {"budget": {"amount_usd": "0.0000001", "period": "total"}}, actor="t")
    err = [d for n, d in events(ask(admin).data) if n == "error"][0]
    assert (err["title"], err["status"]) == ("Budget exhausted", 402)

    keys.update(key, {"budget": {}}, actor="t")
    responses.post(UP, body=requests.ConnectionError("refused"))
    err = [d for n, d in events(ask(admin).data) if n == "error"][0]
    assert err["title"] == "Upstream unavailable" and err["status"] == 502
    assert "SECRET" not in json.dumps(err)

    keys.update(key, {"sensitivity": {"action": "block"}}, actor="t")
    err = [d for n, d in events(ask(admin, text="deploy with sk-proj-abcdefghijklmnopqrstuvwxyz123456").data)
           if n == "error"][0]
    assert err["title"] == "Blocked by the content policy" and err["code"] == "content_policy"


def test_revoked_playground_key_is_not_silently_replaced(pg, admin, catalog):
    from app.services import keys
    admin.get("/playground")
    (key,) = playground_key("alice")
    keys.revoke(key, actor="t")
    page = admin.get("/playground")
    assert b"is revoked" in page.data
    r = ask(admin)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "playground_key_unusable"
    assert len(playground_key("alice")) == 1


# ------------------------------------------------------------------------------ stop
@responses.activate
def test_closing_the_stream_midway_bills_what_was_delivered_and_saves_the_partial_answer(pg, admin, catalog):
    responses.post(UP, body=stream_body([f"w{i} " for i in range(50)]), content_type="text/event-stream")
    r = admin.post("/playground/chat", json={"model": "mini", "messages": [{"role": "user", "content": "count"}]},
                   buffered=False)
    it = iter(r.response)
    got = b""
    while got.count(b"event: delta") < 3:
        got += next(it)
    r.close()  # what the server does when the browser's Stop aborts the fetch
    (row,) = usage_rows()
    assert row.status_code == 499 and row.error_class == "client_disconnected"
    from app.extensions import db
    from app.models import PlaygroundConversation
    (conv,) = db.session.scalars(db.select(PlaygroundConversation)).all()
    db.session.refresh(conv)
    answer = conv.messages[-1]
    assert answer["role"] == "assistant" and answer["meta"]["finish_reason"] == "stopped"
    assert answer["content"].startswith("w0 w1") and "w49" not in answer["content"]


# ------------------------------------------------------------------------------ conversations
def _seed_conversation(username, content="**Answer** <script>window.__xss=1</script>"):
    from app.extensions import db
    from app.models import PlaygroundConversation, User
    user = db.session.scalar(db.select(User).where(User.username == username))
    conv = PlaygroundConversation(user_id=user.id, title="Greeting", model="mini", system_prompt="Sys",
                                  params={"temperature": "0.5"},
                                  messages=[{"role": "user", "content": "hello"},
                                            {"role": "assistant", "content": content,
                                             "meta": {"request_id": "req_1", "cost_usd": "0.1"}}])
    db.session.add(conv)
    db.session.commit()
    return conv


def test_conversations_are_per_user_listable_exportable_deletable(pg, admin, viewer, catalog):
    conv = _seed_conversation("alice")
    page = admin.get(f"/playground?c={conv.id}")
    assert page.status_code == 200, page.data[-3000:]
    state = page_data(page.data)["conversation"]
    assert state["id"] == conv.id and state["system"] == "Sys" and state["params"] == {"temperature": "0.5"}
    assert "<strong>Answer</strong>" in state["messages"][1]["html"]
    assert b"<script>window.__xss" not in page.data           # stored output never reaches the page raw
    frag = admin.get("/playground/conversations", headers={"HX-Request": "true"})
    assert b"Greeting" in frag.data and b"<html" not in frag.data
    export = admin.get(f"/playground/conversations/{conv.id}/export.json")
    body = json.loads(export.data)
    assert "attachment" in export.headers["Content-Disposition"]
    assert body["model"] == "mini" and body["temperature"] == 0.5
    assert body["messages"] == [{"role": "system", "content": "Sys"}, {"role": "user", "content": "hello"},
                                {"role": "assistant", "content": conv.messages[1]["content"]}]
    # another user sees nothing of it
    assert viewer.get(f"/playground?c={conv.id}").status_code == 404
    assert viewer.get(f"/playground/conversations/{conv.id}/export.json").status_code == 404
    assert viewer.post(f"/playground/conversations/{conv.id}/delete").status_code == 404
    assert b"Greeting" not in viewer.get("/playground/conversations", headers={"HX-Request": "true"}).data
    # the owner deletes it
    r = admin.post(f"/playground/conversations/{conv.id}/delete?current={conv.id}", headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.headers["HX-Redirect"] == "/playground" and b"Greeting" not in r.data
    assert admin.get(f"/playground?c={conv.id}").status_code == 404


def test_delete_all_only_touches_ones_own(pg, admin, viewer, catalog):
    _seed_conversation("alice")
    _seed_conversation("alice")
    theirs = _seed_conversation("victor")
    r = admin.post("/playground/conversations/delete-all", headers={"HX-Request": "true"})
    assert r.status_code == 204
    from app.extensions import db
    from app.models import PlaygroundConversation
    assert [c.id for c in db.session.scalars(db.select(PlaygroundConversation))] == [theirs.id]


def test_snippets_are_ready_to_run_and_hold_no_key(admin, catalog):
    payload = {"model": "mini", "system": "S", "params": {"temperature": 0.2, "stop": "X"},
               "messages": [{"role": "user", "content": "It's \"quoted\" $HOME"}]}
    r = admin.post("/playground/snippet", json=payload)
    assert r.status_code == 200
    body = r.get_json()
    req = body["request"]
    assert req["messages"][0] == {"role": "system", "content": "S"} and req["stream"] is True
    curl = body["curl"]
    assert curl.startswith("curl http://localhost/v1/chat/completions") and "$GATEWAY_API_KEY" in curl
    sent = curl.split("<<'JSON'\n", 1)[1].rsplit("\nJSON", 1)[0]  # quoted heredoc: no shell expansion
    assert json.loads(sent) == req
    python = body["python"]
    compile(python, "snippet.py", "exec")
    assert "base_url='http://localhost/v1'" in python and "temperature=0.2" in python and "stop=['X']" in python
    assert "gw-" not in curl + python
    bad = admin.post("/playground/snippet", json={**payload, "model": "nope"})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "model"


# ------------------------------------------------------------------------------ roles
@responses.activate
def test_viewers_may_use_the_playground_but_still_change_nothing_else(pg, viewer, catalog):
    responses.post(UP, body=stream_body(["hi"]), content_type="text/event-stream")
    evs = events(ask(viewer).data)
    assert evs[-1][0] == "done"
    (row,) = usage_rows()
    (key,) = playground_key("victor")
    assert row.key_id == key.id
    assert viewer.post("/keys/new", data={"name": "x"}).status_code == 403
    assert viewer.get(f"/keys/{key.id}/edit").status_code == 403


def test_anonymous_users_are_sent_to_login(pg, catalog):
    c = pg.test_client()
    r = c.get("/playground")
    assert r.status_code in (302, 303) and "/login" in r.headers["Location"]
    r = c.post("/playground/chat", json={})
    assert r.status_code in (302, 303, 401)
