"""A fault-injecting fake OpenAI upstream (one process; the fault is the request's model name).

Raw sockets, so it can misbehave below HTTP: bodies shorter than their Content-Length, streams
cut without the terminating chunk, connections held open forever. GET /_stats gives counters
(requests per model, streams the gateway hung up on).

    python fault_upstream.py --port N

Models: ok, ok-stream, long-stream (50 chunks, 0.2 s apart), http-500, http-429 (Retry-After),
malformed, truncated, slow-first-byte (3 s before anything), hang (never answers),
never-close (a body without length, then the socket held open), trickle (6 chunks 0.4 s apart),
trickle-forever (a chunk every 0.4 s, never ends), cut-stream (two chunks, then the connection
drops), no-done (chunks without finish_reason or [DONE], then a clean end), huge (5 MB body).
"""
from __future__ import annotations

import argparse
import json
import socketserver
import threading
import time
from collections import Counter

STATS = {"models": Counter(), "closed_early": Counter()}
LOCK = threading.Lock()


def chat_body(model: str, content: str = "fine") -> bytes:
    return json.dumps({"id": "chatcmpl-fault", "object": "chat.completion", "created": 1, "model": model,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}).encode()


def chunk(model: str, content: str | None = None, finish: str | None = None, usage=None) -> bytes:
    obj = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1, "model": model,
           "choices": [] if usage else [{"index": 0, "delta": {"content": content} if content is not None else {},
                                         "finish_reason": finish}]}
    if usage:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Handler(socketserver.BaseRequestHandler):
    def _read_request(self):
        sock = self.request
        sock.settimeout(30)
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                return None, None, None
            buf += data
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        length = int(headers.get("content-length") or 0)
        while len(body) < length:
            data = sock.recv(65536)
            if not data:
                break
            body += data
        return method, path, body

    def send(self, status: str, body: bytes = b"", headers: dict | None = None, length: bool = True) -> None:
        # every connection is closed after one exchange, so say so: without it the gateway pools
        # the connection and its next POST on it meets the close (a 502 no test asked for)
        h = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
        if length:
            h["Content-Length"] = str(len(body))
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.request.sendall(head.encode() + body)

    def stream(self, pieces, delay: float = 0.0, terminate: bool = True, model: str = "") -> None:
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        try:
            for i, piece in enumerate(pieces):
                if i and delay:
                    time.sleep(delay)
                self.request.sendall(http_chunk(piece))
            if terminate:
                self.request.sendall(b"0\r\n\r\n")
        except OSError:
            with LOCK:
                STATS["closed_early"][model] += 1

    def handle(self) -> None:
        try:
            method, path, body = self._read_request()
        except (OSError, ValueError):
            return
        if method is None:
            return
        if path == "/_stats":
            with LOCK:
                data = json.dumps({k: dict(v) for k, v in STATS.items()}).encode()
            self.send("200 OK", data)
            return
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = {}
        model = str(req.get("model") or "")
        with LOCK:
            STATS["models"][model] += 1
        try:
            self.behave(model, req)
        except OSError:
            pass

    def behave(self, model: str, req: dict) -> None:
        usage = {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
        if model == "ok":
            self.send("200 OK", chat_body(model))
        elif model in ("ok-stream", "long-stream", "trickle", "trickle-forever"):
            n, delay = {"ok-stream": (3, 0.0), "long-stream": (50, 0.2), "trickle": (6, 0.4),
                        "trickle-forever": (10_000, 0.4)}[model]
            pieces = [chunk(model, f"w{i} ") for i in range(n)]
            pieces += [chunk(model, finish="stop"), chunk(model, usage=usage), b"data: [DONE]\n\n"]
            self.stream(pieces, delay, model=model)
        elif model == "http-500":
            self.send("500 Internal Server Error", json.dumps({"error": {
                "message": "The server had an error while processing your request.", "type": "server_error",
                "param": None, "code": None}}).encode())
        elif model == "http-429":
            self.send("429 Too Many Requests", json.dumps({"error": {
                "message": "Rate limit reached for requests", "type": "requests", "param": None,
                "code": "rate_limit_exceeded"}}).encode(), {"Retry-After": "7"})
        elif model == "malformed":
            self.send("200 OK", b'{"id": "chatcmpl-x", "choices": [')
        elif model == "truncated":
            body = chat_body(model)
            self.request.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 f"Content-Length: {len(body) + 500}\r\n\r\n".encode() + body[:40])
            self.request.close()
        elif model == "slow-first-byte":
            time.sleep(3)
            self.send("200 OK", chat_body(model))
        elif model == "hang":
            time.sleep(60)
        elif model == "never-close":
            self.send("200 OK", chat_body(model)[:30], length=False)  # no length: read to EOF
            time.sleep(60)
        elif model == "cut-stream":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n"
                                 + http_chunk(chunk(model, "one ")) + http_chunk(chunk(model, "two ")))
            time.sleep(0.1)
            self.request.close()
        elif model == "no-done":
            self.stream([chunk(model, "a "), chunk(model, "b ")], model=model)
        elif model == "huge":
            self.send("200 OK", chat_body(model, "x" * (5 * 1024 * 1024)))
        else:
            self.send("404 Not Found", json.dumps({"error": {"message": f"no model {model}",
                                                              "type": "invalid_request_error"}}).encode())


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    with Server(("127.0.0.1", args.port), Handler) as srv:
        srv.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
