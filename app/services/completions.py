"""The proxy flow: resolve the route, call the adapter and the upstream, account for usage.

Routes (views) only authenticate, parse and format. Everything here works on plain values
(KeyInfo, Route, dicts): no ORM object, DB session or request context is held across a
stream's yields, and exactly one usage record is written per call, in a `finally`.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from app.providers.base import UpstreamError, Usage, client_wants_usage
from app.providers.common import dumps
from app.services.runtime import KeyInfo, Route, Snapshot
from app.services.transport import TransportError

log = logging.getLogger(__name__)
MAX_MESSAGES = 10_000


class ProxyError(Exception):
    """A gateway-side error before or instead of an upstream call (OpenAI-shaped)."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, error_class: str = "bad_request",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.error_class = error_class
        self.headers = headers or {}

    def to_openai(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


@dataclass
class Call:
    """Per-request accounting state (plain values only)."""

    key: KeyInfo
    endpoint: str
    stream: bool = False
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex[:24])
    started: float = field(default_factory=time.perf_counter)
    ttfb_ms: float | None = None
    route: Route | None = None
    model_name: str | None = None
    attempts: list[str] = field(default_factory=list)
    ticket: Any = None  # spend.Ticket while limits/budgets are held

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 2)

    def mark_first_byte(self) -> None:
        if self.ttfb_ms is None:
            self.ttfb_ms = self.elapsed_ms()


@dataclass
class JSONResult:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class StreamResult:
    chunks: Iterator[bytes]
    headers: dict[str, str]


# ------------------------------------------------------------------------------- estimation
def estimate_tokens(chars: int) -> int:
    """~4 characters per token: the usual rule of thumb when an upstream reports no usage."""
    return math.ceil(chars / 4) if chars > 0 else 0


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    total += len(part["text"])
                elif part.get("type") == "image_url":
                    total += 85 * 4  # a low-detail image tile, OpenAI's floor
        return total
    return 0


def _embedding_tokens(inp: Any) -> int:
    """Strings at ~4 chars/token; token-id arrays count exactly."""
    texts = [inp] if isinstance(inp, str) else inp
    if texts and all(isinstance(t, int) for t in texts):
        return len(texts)
    return sum(estimate_tokens(len(t)) if isinstance(t, str) else len(t) for t in texts)


def estimate_prompt(messages: list[Any]) -> int:
    chars = 0
    for m in messages:
        if isinstance(m, dict):
            chars += _content_chars(m.get("content")) + 16  # role and framing overhead
            for tc in m.get("tool_calls") or []:
                if isinstance(tc, dict):
                    chars += len(str((tc.get("function") or {}).get("arguments", "")))
    return estimate_tokens(chars)


def _chunk_chars(chunk: dict[str, Any]) -> int:
    chars = 0
    for ch in chunk.get("choices") or ():
        delta = ch.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            chars += len(content)
        for tc in delta.get("tool_calls") or ():
            fn = tc.get("function") or {}
            chars += len(fn.get("arguments") or "") + len(fn.get("name") or "")
    return chars


def _message_chars(obj: dict[str, Any]) -> int:
    chars = 0
    for ch in obj.get("choices") or ():
        msg = ch.get("message") or {}
        chars += _content_chars(msg.get("content"))
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            chars += len(fn.get("arguments") or "") + len(fn.get("name") or "")
    return chars


# ------------------------------------------------------------------------------- validation
def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ProxyError(400, "you must provide a model parameter", param="model",
                         code="missing_model")
    return model


def validate_chat(body: dict[str, Any]) -> None:
    _require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ProxyError(400, "'messages' must be a non-empty array", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise ProxyError(400, f"'messages' has more than {MAX_MESSAGES} items", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ProxyError(400, f"messages[{i}] must be an object with a 'role'",
                             param=f"messages.[{i}]")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ProxyError(400, f"messages[{i}].content must be a string or an array of parts",
                             param=f"messages.[{i}].content")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ProxyError(400, "'stream' must be a boolean", param="stream")
    for name in ("temperature", "top_p"):
        val = body.get(name)
        if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float))):
            raise ProxyError(400, f"'{name}' must be a number", param=name)
    for name in ("max_tokens", "max_completion_tokens", "n"):
        val = body.get(name)
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
            raise ProxyError(400, f"'{name}' must be a positive integer", param=name)


def validate_embeddings(body: dict[str, Any]) -> None:
    _require_model(body)
    inp = body.get("input")
    ok = isinstance(inp, str) or (
        isinstance(inp, list) and inp and (
            all(isinstance(x, str) for x in inp)
            or all(isinstance(x, int) and not isinstance(x, bool) for x in inp)
            or all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in inp)))
    if not ok or (isinstance(inp, str) and not inp):
        raise ProxyError(400, "'input' must be a non-empty string, array of strings or array of "
                         "token arrays", param="input")
    if isinstance(inp, list) and len(inp) > 2048:
        raise ProxyError(400, "'input' may have at most 2048 items", param="input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise ProxyError(400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise ProxyError(400, "'dimensions' must be a positive integer", param="dimensions")


# ------------------------------------------------------------------------------- routing
def resolve(snap: Snapshot, key: KeyInfo, model: str, kind: str) -> Route:
    routes = [r for r in snap.resolve(model) if r.kind == kind]
    if not routes:
        other = snap.resolve(model)
        if other:
            raise ProxyError(400, f"model '{model}' is a {other[0].kind} model and cannot be used "
                             f"for {kind}", param="model", code="model_not_supported")
        raise ProxyError(404, f"The model '{model}' does not exist or you do not have access to it.",
                         code="model_not_found", param="model", error_class="not_found")
    if not key.may_use(routes[0].name):
        raise ProxyError(403, f"this API key is not allowed to use model '{routes[0].name}'",
                         type_="permission_error", code="model_not_allowed", param="model",
                         error_class="forbidden")
    route = routes[0]
    if route.adapter is None:
        raise ProxyError(502, f"{route.adapter_error}; ask the gateway admin", type_="api_error",
                         code="provider_misconfigured", error_class="config_error")
    return route


def transport_error(exc: TransportError, route: Route) -> UpstreamError:
    if exc.kind == "timeout":
        return UpstreamError(504, f"The upstream provider '{route.provider_name}' timed out.",
                             "timeout_error", "upstream_timeout", "timeout")
    if exc.kind == "connect":
        return UpstreamError(502, f"Could not reach the upstream provider '{route.provider_name}': "
                             f"{exc.message}.", "api_error", "upstream_unreachable", "connect_error")
    return UpstreamError(502, f"The upstream provider '{route.provider_name}' sent an invalid "
                         f"response: {exc.message}.", "api_error", "malformed_response",
                         "malformed_response")


def _error_headers(err: UpstreamError | ProxyError) -> dict[str, str]:
    headers = dict(getattr(err, "headers", {}) or {})
    if getattr(err, "retry_after", None):
        headers["Retry-After"] = str(err.retry_after)
    return headers


# ------------------------------------------------------------------------------- the service
class DeadlineExceeded(Exception):
    pass


@contextmanager
def deadline(seconds: float | None):
    """Bound a whole upstream exchange (connect + all reads), not just each socket read.

    Uses gevent.Timeout under gevent (the served configuration); elsewhere the per-read
    timeouts of the transport are the only bound.
    """
    if not seconds or seconds <= 0:
        yield
        return
    try:
        from gevent import Timeout, monkey
        if not monkey.is_module_patched("socket"):
            raise ImportError
    except ImportError:
        yield
        return
    timer = Timeout(seconds, DeadlineExceeded)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


FAILURES = (DeadlineExceeded, ProxyError, UpstreamError, TransportError)


class Proxy:
    """Binds a transport and a usage sink; one per app."""

    def __init__(self, transport, record: Callable[[dict[str, Any]], None],
                 request_deadline: float | None = None, gate=None):
        self.transport = transport
        self.record = record
        self.request_deadline = request_deadline
        self.gate = gate

    def _deadline_error(self, call: Call) -> UpstreamError:
        name = call.route.provider_name if call.route else "upstream"
        return UpstreamError(504, f"The request to '{name}' exceeded the gateway's deadline of "
                             f"{self.request_deadline:g}s.", "timeout_error", "request_deadline",
                             "timeout")

    # -- accounting
    def _record(self, call: Call, status: int, usage: Usage | None, error_class: str | None) -> None:
        route = call.route
        usage = usage or Usage()
        cost = route.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) \
            if route else Decimal(0)
        if call.ticket is not None and self.gate is not None:
            if usage.total_tokens or cost:
                self.gate.settle(call.ticket, usage.total_tokens, cost)
            else:  # failed before costing anything: give back the reservation and the lease
                self.gate.release(call.ticket)
            call.ticket = None
        try:
            self.record({
                "request_id": call.request_id, "endpoint": call.endpoint, "key_id": call.key.id,
                "model_name": route.name if route else call.model_name,
                "model_id": route.model_pk if route else None,
                "provider_id": route.provider_id if route else None,
                "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens, "tokens_estimated": usage.estimated,
                "cost_usd": cost, "latency_ms": call.elapsed_ms(), "ttfb_ms": call.ttfb_ms,
                "status_code": status, "error_class": error_class, "cache_hit": False,
                "stream": call.stream, "attempts": ",".join(call.attempts) or None,
                "owner": call.key.owner,
            })
        except Exception:  # accounting must never break the response
            log.exception("could not queue usage record %s", call.request_id)

    def _admit(self, snap: Snapshot, call: Call, route: Route, prompt_tokens: int,
               body: dict[str, Any]) -> None:
        """Take the key's/model's/provider's limits and reserve the worst-case cost."""
        if self.gate is None:
            return
        from app.services.spend import SpendDenied, worst_case_output
        max_out = worst_case_output(body, route) if call.endpoint == "chat" else 0
        try:
            call.ticket = self.gate.admit(snap, call.key, route, prompt_tokens, max_out)
        except SpendDenied as denied:
            raise ProxyError(denied.status, denied.message, denied.type, denied.code,
                             error_class=denied.error_class, headers=denied.headers) from None

    def _success_headers(self, call: Call) -> dict[str, str]:
        headers = {"x-request-id": call.request_id}
        if call.ticket is not None:
            headers.update(call.ticket.headers)
            if call.ticket.warning:
                headers["x-gateway-budget-warning"] = call.ticket.warning
        return headers

    def fail(self, call: Call, err: Exception) -> JSONResult:
        """Record and format any FAILURES exception as an OpenAI-shaped error."""
        if isinstance(err, DeadlineExceeded):
            err = self._deadline_error(call)
        elif isinstance(err, TransportError):
            err = transport_error(err, call.route)
        self._record(call, err.status, None, err.error_class)
        return JSONResult(err.status, dumps(err.to_openai()),
                          {**_error_headers(err), "x-request-id": call.request_id})

    def _send(self, call: Call, route: Route, req):
        call.attempts.append(route.provider_name)
        try:
            resp = self.transport.send(req, route.connect_timeout, route.read_timeout)
        except TransportError as exc:
            raise transport_error(exc, route) from None
        if resp.status >= 400:
            try:
                data = resp.read(1024 * 1024)
            except TransportError:
                data = b""
            raise route.adapter.parse_error(resp.status, resp.headers, data)
        return resp

    # -- chat
    def chat(self, snap: Snapshot, call: Call, body: dict[str, Any]) -> JSONResult | StreamResult:
        call.model_name = body.get("model") if isinstance(body.get("model"), str) else None
        call.stream = body.get("stream") is True
        try:
            validate_chat(body)
            route = call.route = resolve(snap, call.key, body["model"], "chat")
            self._admit(snap, call, route, estimate_prompt(body["messages"]), body)
            req = route.adapter.chat_request(body, route.upstream_id)
            with deadline(self.request_deadline):
                resp = self._send(call, route, req)
                if call.stream:  # the deadline covers the wait for the stream to start
                    return StreamResult(self._stream(call, route, resp, body),
                                        self._success_headers(call))
                data = resp.read()
            call.mark_first_byte()
            obj, usage = route.adapter.parse_chat_response(data, route.name)
        except FAILURES as err:
            return self.fail(call, err)
        if usage.estimated or (usage.prompt_tokens == 0 and usage.completion_tokens == 0):
            usage = Usage(estimate_prompt(body["messages"]), estimate_tokens(_message_chars(obj)),
                          estimated=True)
            obj["usage"] = usage.as_openai()  # what the client sees is what is billed
        headers = self._success_headers(call)
        self._record(call, 200, usage, None)
        return JSONResult(200, dumps(obj), headers)

    def _stream(self, call: Call, route: Route, resp, body: dict[str, Any]) -> Iterator[bytes]:
        decoder = route.adapter.stream_decoder(route.name)
        wants_usage = client_wants_usage(body)
        delivered = [0]  # characters of content/arguments sent to the client
        last: list[dict[str, Any] | None] = [None]
        status, error_class, finished = 200, None, False

        def forward(chunks: list[dict[str, Any]]) -> Iterator[bytes]:
            for chunk in chunks:
                delivered[0] += _chunk_chars(chunk)
                last[0] = chunk
                call.mark_first_byte()
                yield b"data: " + dumps(chunk) + b"\n\n"
            if decoder.error is not None:  # in-band error after the chunks above
                raise decoder.error

        try:
            try:
                for block in resp.iter_chunks():
                    yield from forward(decoder.feed(block))
                    if decoder.done:
                        break
                yield from forward(decoder.close())
            except TransportError as exc:
                raise transport_error(exc, route) from None
            if not decoder.done and decoder.finish_reason is None:
                raise UpstreamError(502, "The upstream stream ended before it was complete.",
                                    "api_error", "stream_truncated", "stream_truncated")
            finished = True
            if wants_usage:
                usage = self._stream_usage(decoder, body, delivered[0], finished)
                yield b"data: " + dumps(self._usage_chunk(last[0], route, usage)) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except UpstreamError as err:
            status, error_class = err.status, err.error_class
            yield b"data: " + dumps(err.to_openai()) + b"\n\n"
        except GeneratorExit:  # client went away: stop the upstream now, bill what was delivered
            status, error_class = 499, "client_disconnected"
            raise
        finally:
            resp.close()
            self._record(call, status, self._stream_usage(decoder, body, delivered[0], finished),
                         error_class)

    @staticmethod
    def _stream_usage(decoder, body: dict[str, Any], delivered_chars: int, finished: bool) -> Usage:
        """The provider's usage when the stream completed; otherwise never less than delivered.

        An interrupted stream may carry only partial usage (Anthropic's message_start says
        output_tokens: 1), so it is billed at least the estimate of what reached the client.
        """
        usage = decoder.usage
        delivered_tokens = estimate_tokens(delivered_chars)
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            if finished or usage.completion_tokens >= delivered_tokens:
                return usage
            return Usage(usage.prompt_tokens, delivered_tokens, usage.cached_tokens, estimated=True)
        return Usage(estimate_prompt(body.get("messages") or []), delivered_tokens, estimated=True)

    @staticmethod
    def _usage_chunk(last: dict[str, Any] | None, route: Route, usage: Usage) -> dict[str, Any]:
        last = last or {}
        return {"id": last.get("id") or "chatcmpl-gw", "object": "chat.completion.chunk",
                "created": last.get("created") or int(time.time()), "model": route.name,
                "choices": [], "usage": usage.as_openai()}

    # -- embeddings
    def embeddings(self, snap: Snapshot, call: Call, body: dict[str, Any]) -> JSONResult:
        call.model_name = body.get("model") if isinstance(body.get("model"), str) else None
        try:
            validate_embeddings(body)
            route = call.route = resolve(snap, call.key, body["model"], "embedding")
            self._admit(snap, call, route, _embedding_tokens(body["input"]), body)
            datas = []
            with deadline(self.request_deadline):
                for req in route.adapter.embeddings_requests(body, route.upstream_id):
                    datas.append(self._send(call, route, req).read())
            call.mark_first_byte()
            obj, usage = route.adapter.parse_embeddings_responses(datas, route.name, body)
        except FAILURES as err:
            return self.fail(call, err)
        if not usage.prompt_tokens:
            usage = Usage(_embedding_tokens(body["input"]), 0, estimated=True)
            obj["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
        headers = self._success_headers(call)
        self._record(call, 200, usage, None)
        return JSONResult(200, dumps(obj), headers)
