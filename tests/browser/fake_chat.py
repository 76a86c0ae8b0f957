#!/usr/bin/env python3
"""A scripted OpenAI-compatible upstream for playground tests (stdlib only, real wire format).

Models:
  fast-*   answers in markdown that echoes the last user text (so a prompt carrying an XSS
           payload comes back as model output), streamed in small chunks 20 ms apart
  slow-*   300 chunks 100 ms apart (30 s): long enough to stop midway
  any model given `tools` and a prompt mentioning "weather" answers with a get_weather call
Test hooks: GET /_requests (bodies received), GET /_stats (streams open / finished / cut).
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
REQUESTS: list[dict] = []
STATS = {"open": 0, "finished": 0, "cut": 0}
MODELS = ["fast-alpha", "fast-beta", "slow-gamma"]


def last_user_text(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            return " ".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


def images_in(messages: list[dict]) -> int:
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for p in m["content"] if p.get("type") == "image_url")


def answer_for(body: dict) -> str:
    text = last_user_text(body.get("messages") or [])
    model = body.get("model", "")
    extra = f"\n\nI see {images_in(body['messages'])} image(s)." if images_in(body.get("messages") or []) else ""
    return (f"**{model}** says: {text}{extra}\n\n```python\nprint('hello from {model}')\n```\n\n"
            "| col | value |\n|-----|-------|\n| a   | 1     |\n")


def pieces(text: str, size: int = 6) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status: int, obj) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path == "/_requests":
            with LOCK:
                return self._json(200, REQUESTS[-50:])
        if self.path == "/_stats":
            with LOCK:
                return self._json(200, dict(STATS))
        if self.path.rstrip("/") == "/v1/models":
            return self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in MODELS]})
        self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with LOCK:
            REQUESTS.append(body)
        if self.path != "/v1/chat/completions":
            return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        model = body.get("model", "")
        wants_tool = bool(body.get("tools")) and "weather" in last_user_text(body.get("messages") or []).lower()
        prompt_tokens = max(1, len(json.dumps(body.get("messages"))) // 4)
        if wants_tool:
            call = {"id": "call_w1", "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
            content, calls, finish = None, [call], "tool_calls"
        else:
            content, calls, finish = answer_for(body), None, "stop"
        completion_tokens = max(1, len(content or "") // 4) if content else 12
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        base = {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_fake"}
        if not body.get("stream"):
            msg = {"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})}
            return self._json(200, {**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None, "logprobs": None}]}]
        if calls:
            c = calls[0]
            events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": c["id"], "type": "function",
                 "function": {"name": c["function"]["name"], "arguments": ""}}]}, "finish_reason": None}]})
            for part in pieces(c["function"]["arguments"], 5):
                events.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "function": {"arguments": part}}]}, "finish_reason": None}]})
        else:
            chunks = pieces(content) if not model.startswith("slow") else [f"word{i} " for i in range(300)]
            for part in chunks:
                events.append({**base, "choices": [{"index": 0, "delta": {"content": part},
                                                    "finish_reason": None, "logprobs": None}]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage})
        delay = 0.1 if model.startswith("slow") else 0.02
        with LOCK:
            STATS["open"] += 1
        try:
            for ev in events:
                self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                self.wfile.flush()
                time.sleep(delay)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            with LOCK:
                STATS["finished"] += 1
        except (BrokenPipeError, ConnectionResetError):
            with LOCK:
                STATS["cut"] += 1
        finally:
            with LOCK:
                STATS["open"] -= 1
        self.close_connection = True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
