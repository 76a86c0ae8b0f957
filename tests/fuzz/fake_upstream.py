"""An OpenAI-shaped fake upstream for the fuzz tests, served through `responses` at http://up.test.

It behaves like OpenAI would for what the gateway forwards: a body the documented OpenAI request
schema rejects gets a 400 OpenAI error (so a request the gateway passes through unchecked is still
refused, as it would be in production); a valid one gets a well-formed reply (JSON or SSE).
Anything else at up.test is a 404; every other host is unreachable (`responses` refuses it).
"""
from __future__ import annotations

import base64
import json
import re
import struct
from urllib.parse import urlparse

import responses
from jsonschema import Draft202012Validator

UP = re.compile(r"^http://up\.test/.*")
UPSTREAM_CHAT_ID = "gpt-4o-mini-2024"
UPSTREAM_EMBED_ID = "text-embedding-3-small"


def _validator(doc: dict, name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                 "components": doc["components"]})


def _error(status: int, message: str, type_: str = "invalid_request_error", code=None):
    return status, {"Content-Type": "application/json"}, json.dumps(
        {"error": {"message": message, "type": type_, "param": None, "code": code}})


class FakeUpstream:
    def __init__(self, doc: dict):
        self.chat = _validator(doc, "ChatCompletionRequest")
        self.embeddings = _validator(doc, "EmbeddingsRequest")
        self.calls = 0
        self.refused = 0

    def install(self, mock: responses.RequestsMock) -> None:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            mock.add_callback(method, UP, callback=self.handle)

    # ------------------------------------------------------------------------------------
    def handle(self, request):
        self.calls += 1
        path = urlparse(request.url).path
        if request.method == "GET" and path.endswith("/models"):
            return 200, {"Content-Type": "application/json"}, json.dumps({"object": "list", "data": [
                {"id": UPSTREAM_CHAT_ID, "object": "model", "owned_by": "up"},
                {"id": UPSTREAM_EMBED_ID, "object": "model", "owned_by": "up"}]})
        if request.method != "POST" or not path.endswith(("/chat/completions", "/embeddings")):
            return _error(404, f"no route {request.method} {path}", code="not_found")
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            self.refused += 1
            return _error(400, "We could not parse the JSON body of your request.")
        validator = self.chat if path.endswith("/chat/completions") else self.embeddings
        error = next(iter(validator.iter_errors(body)), None)
        if error is not None:
            self.refused += 1
            return _error(400, f"Invalid request: {error.message[:200]}")
        if path.endswith("/embeddings"):
            return self._embeddings(body)
        if body.get("stream"):
            return self._stream(body)
        return self._completion(body)

    # ------------------------------------------------------------------------------------
    @staticmethod
    def _completion(body):
        n = body.get("n") or 1
        choices = [{"index": i, "message": {"role": "assistant", "content": "Hello from up"},
                    "finish_reason": "stop", "logprobs": None} for i in range(n)]
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "id": "chatcmpl-up", "object": "chat.completion", "created": 1_700_000_000,
            "model": body["model"], "choices": choices, "system_fingerprint": "fp_up",
            "usage": {"prompt_tokens": 11, "completion_tokens": 3 * n, "total_tokens": 11 + 3 * n}})

    @staticmethod
    def _stream(body):
        n = body.get("n") or 1
        base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": body["model"]}
        events = []
        for i in range(n):
            events.append({**base, "choices": [{"index": i, "delta": {"role": "assistant",
                                                                       "content": ""},
                                                 "finish_reason": None}]})
            for piece in ("Hel", "lo"):
                events.append({**base, "choices": [{"index": i, "delta": {"content": piece},
                                                     "finish_reason": None}]})
            events.append({**base, "choices": [{"index": i, "delta": {},
                                                 "finish_reason": "stop"}]})
        opts = body.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage"):
            events.append({**base, "choices": [], "usage": {
                "prompt_tokens": 11, "completion_tokens": 2 * n, "total_tokens": 11 + 2 * n}})
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return 200, {"Content-Type": "text/event-stream"}, text

    @staticmethod
    def _embeddings(body):
        inp = body["input"]
        items = [inp] if isinstance(inp, str) or (inp and isinstance(inp[0], int)) else inp
        dims = body.get("dimensions") or 3
        data = []
        for i, _ in enumerate(items):
            vec = [round(0.01 * (i + 1) * (d + 1), 4) for d in range(min(dims, 8))]
            emb = (base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
                   if body.get("encoding_format") == "base64" else vec)
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": 5 * len(items), "total_tokens": 5 * len(items)}})
