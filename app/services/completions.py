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
    live_dep: int | None = None  # deployment whose in-flight count this call holds
    deadline_s: float | None = None
    cache_hit: bool = False
    cache_status: str | None = None  # x-cache: HIT | MISS | BYPASS
    detectors: list[str] = field(default_factory=list)
    redacted: str | None = None
    trail: list[dict[str, Any]] = field(default_factory=list)  # attempts with timings and errors
    body: dict[str, Any] | None = None  # request body, kept only when body logging is on
    response_body: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None  # group, strategy, candidates considered
    dialect: str | None = None  # set when the serving deployment answered a native front door

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
    dialect: str | None = None  # None: chat-completion shape; else the native API's shape


@dataclass
class StreamResult:
    chunks: Iterator[bytes]
    headers: dict[str, str]
    dialect: str | None = None


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
        calls = m.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(
                isinstance(c, dict) and isinstance(c.get("function", {}), dict) for c in calls)):
            raise ProxyError(400, f"messages[{i}].tool_calls must be an array of tool call objects",
                             param=f"messages.[{i}].tool_calls")
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
AUTO_MODEL = "auto"


def resolve(snap: Snapshot, key: KeyInfo, model: str, kind: str) -> list[Route]:
    """Every usable deployment for the public name (or upstream id) `model`.

    `auto` (unless an admin named a model so) means every chat deployment this key may use,
    routed cheapest-first by the caller.
    """
    routes = [r for r in snap.resolve(model) if r.kind == kind]
    if not routes and model == AUTO_MODEL and kind == "chat":
        routes = [r for name, rs in snap.by_name.items() if key.may_use(name)
                  for r in rs if r.kind == kind]
        if not routes:
            raise ProxyError(404, "no chat model is available to this key for 'auto'",
                             code="model_not_found", param="model", error_class="not_found")
    elif not routes:
        other = snap.resolve(model)
        if other:
            raise ProxyError(400, f"model '{model}' is a {other[0].kind} model and cannot be used "
                             f"for {kind}", param="model", code="model_not_supported")
        raise ProxyError(404, f"The model '{model}' does not exist or you do not have access to it.",
                         code="model_not_found", param="model", error_class="not_found")
    elif not key.may_use(routes[0].name):
        raise ProxyError(403, f"this API key is not allowed to use model '{routes[0].name}'",
                         type_="permission_error", code="model_not_allowed", param="model",
                         error_class="forbidden")
    usable = [r for r in routes if r.adapter is not None]
    if not usable:
        raise ProxyError(502, f"{routes[0].adapter_error}; ask the gateway admin", type_="api_error",
                         code="provider_misconfigured", error_class="config_error")
    return usable


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
    """Binds a transport, a usage sink and the optional spend gate, router, cache and
    inspector; one per app."""

    def __init__(self, transport, record: Callable[[dict[str, Any]], None],
                 request_deadline: float | None = None, gate=None, router=None, cache=None,
                 inspectors=None):
        self.transport = transport
        self.record = record
        self.request_deadline = request_deadline
        self.gate = gate
        self.router = router
        self.cache = cache
        self.inspectors = inspectors

    def _deadline_error(self, call: Call) -> UpstreamError:
        name = call.route.provider_name if call.route else "upstream"
        return UpstreamError(504, f"The request to '{name}' exceeded the gateway's deadline of "
                             f"{call.deadline_s or self.request_deadline:g}s.", "timeout_error",
                             "request_deadline", "timeout")

    # -- accounting ------------------------------------------------------------------------
    def _record(self, call: Call, status: int, usage: Usage | None, error_class: str | None) -> None:
        route = call.route
        usage = usage or Usage()
        cost = Decimal(0) if call.cache_hit or route is None else \
            route.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        if call.ticket is not None and self.gate is not None:
            if usage.total_tokens or cost:
                self.gate.settle(call.ticket, usage.total_tokens, cost)
            else:  # failed before costing anything: give back the reservation and the lease
                self.gate.release(call.ticket)
            call.ticket = None
        if call.live_dep is not None and self.router is not None:
            self.router.live.finished(call.live_dep, call.ttfb_ms, status < 400)
            call.live_dep = None
        try:
            self.record({
                "request_id": call.request_id, "endpoint": call.endpoint, "key_id": call.key.id,
                "model_name": route.name if route else call.model_name,
                "model_id": route.model_pk if route else None,
                "provider_id": route.provider_id if route else None,
                "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens, "tokens_estimated": usage.estimated,
                "cost_usd": cost, "latency_ms": call.elapsed_ms(), "ttfb_ms": call.ttfb_ms,
                "status_code": status, "error_class": error_class, "cache_hit": call.cache_hit,
                "stream": call.stream, "attempts": ";".join(call.attempts)[:500] or None,
                "owner": call.key.owner, "detectors": ",".join(call.detectors)[:300] or None,
                "details": self._details(call, usage, cost),
                **({"_body": {"request": call.body, "response": call.response_body}}
                   if call.body is not None else {}),
            })
        except Exception:  # accounting must never break the response
            log.exception("could not queue usage record %s", call.request_id)

    @staticmethod
    def _details(call: Call, usage: Usage, cost: Decimal) -> dict[str, Any]:
        """What the request log's detail view explains (names and numbers only, no content)."""
        route = call.route
        checks = ["key: valid", f"scopes: {call.endpoint} allowed"]
        if call.key.allowed_models:
            checks.append("model: allowed by " + ", ".join(call.key.allowed_models))
        if call.ticket is not None or call.key.limits or call.key.budget:
            checks.append("limits/budget: admitted")
        if call.dialect:
            checks.append(f"{call.dialect}: passed through to the provider's own API")
        price = None
        if route is not None and not call.cache_hit:
            price = {"input_per_mtok": str(route.input_price), "output_per_mtok": str(route.output_price),
                     "cached_input_per_mtok": str(route.cached_price) if route.cached_price is not None else None}
        return {"checks": checks, "routing": call.routing, "attempts": call.trail,
                "cache": call.cache_status, "detectors": call.detectors, "redacted": call.redacted,
                "cost": {"usd": format(cost, "f"), "tokens": "estimated" if usage.estimated else "provider",
                         "prices": price}}

    def _admit(self, snap: Snapshot, call: Call, routes: list[Route], prompt_tokens: int,
               body: dict[str, Any]) -> None:
        """Take the key's/model's/provider's limits and reserve the worst-case cost over every
        deployment the request may fall back to."""
        if self.gate is None:
            return
        from app.services.spend import SpendDenied, worst_case_output
        first = routes[0]
        max_out = worst_case_output(body, first) if call.endpoint != "embeddings" else 0
        reserve = max(r.cost(prompt_tokens, max_out) for r in routes)
        try:
            call.ticket = self.gate.admit(snap, call.key, first, prompt_tokens, max_out, reserve)
        except SpendDenied as denied:
            raise ProxyError(denied.status, denied.message, denied.type, denied.code,
                             error_class=denied.error_class, headers=denied.headers) from None

    def _headers(self, call: Call) -> dict[str, str]:
        headers = {"x-request-id": call.request_id}
        if call.ticket is not None:
            headers.update(call.ticket.headers)
            if call.ticket.warning:
                headers["x-gateway-budget-warning"] = call.ticket.warning
        if call.attempts:
            headers["x-gateway-attempts"] = ";".join(call.attempts)[:1000]
        if call.cache_status:
            headers["x-cache"] = call.cache_status
        if call.redacted:
            headers["x-gateway-redacted"] = call.redacted
        return headers

    def fail(self, call: Call, err: Exception) -> JSONResult:
        """Record and format any FAILURES exception as an OpenAI-shaped error."""
        if isinstance(err, DeadlineExceeded):
            err = self._deadline_error(call)
        elif isinstance(err, TransportError):
            err = transport_error(err, call.route)
        self._record(call, err.status, None, err.error_class)
        return JSONResult(err.status, dumps(err.to_openai()), {**_error_headers(err),
                                                               **self._headers(call)})

    # -- sensitivity -----------------------------------------------------------------------
    def _inspect(self, snap: Snapshot, call: Call, body: dict[str, Any]) -> tuple[dict, tuple | None]:
        """Apply the key's (or the gateway's) sensitivity policy.

        Returns the body to send (redacted when the policy says so) and, for the `route`
        policy on sensitive content, the provider trust levels allowed to see it.
        """
        policy = {**(snap.settings.get("sensitivity") or {}), **(call.key.sensitivity or {})}
        action = policy.get("action", "allow")
        if action == "allow" or self.inspectors is None:
            return body, None
        inspector = self.inspectors(policy)
        verdict = inspector.inspect_messages(body.get("messages") or [])
        call.detectors = list(verdict.detectors)
        if not verdict.sensitive:
            return body, None
        if action == "block":
            raise ProxyError(400, "This request was blocked by the gateway's content policy "
                             f"(detected: {', '.join(verdict.detectors)}).", code="content_policy",
                             error_class="content_policy")
        if action == "redact":
            messages, verdict = inspector.redact_messages(body["messages"])
            categories = sorted({f.category for f in verdict.findings})
            call.redacted = f"{len(verdict.findings)} span(s): {', '.join(categories)}"
            return {**body, "messages": messages}, None
        return body, tuple(policy.get("trusted_levels") or ("local", "private"))

    # -- cache -----------------------------------------------------------------------------
    def _cache_plan(self, snap: Snapshot, call: Call, body: dict[str, Any], name: str,
                    headers) -> tuple[Any, str | None, float | None]:
        """(decision, cache key, ttl) or (None, None, None) when the cache is off."""
        settings = snap.settings.get("cache") or {}
        if self.cache is None or not settings.get("enabled", True):
            return None, None, None
        from app.cache import cache_key, decide
        max_bytes = int(settings.get("max_mb") or 256) * 1024 * 1024
        if self.cache.max_bytes != max_bytes:  # the console's cap, applied without a restart
            self.cache.max_bytes = max_bytes
        decision = decide(body, headers)
        scope = f"key:{call.key.id}" if settings.get("scope") == "key" else ""
        ttl = None
        raw_ttl = (headers or {}).get("x-gateway-cache-ttl") if headers else None
        if raw_ttl:
            try:
                ttl = max(1.0, min(float(raw_ttl), 30 * 86400.0))
            except ValueError:
                raise ProxyError(400, "x-gateway-cache-ttl must be a number of seconds",
                                 code="invalid_header") from None
        overrides = settings.get("ttl_overrides") or {}
        ttl = ttl or float(overrides.get(f"key:{call.key.id}") or overrides.get(name)
                           or settings.get("default_ttl") or 3600)
        call.cache_status = "BYPASS" if not decision.lookup else "MISS"
        return decision, cache_key(body, name, scope), ttl

    def _serve_hit(self, call: Call, entry, body: dict[str, Any]) -> JSONResult | StreamResult:
        call.cache_hit, call.cache_status = True, "HIT"
        response = entry.response
        response["id"] = "chatcmpl-" + call.request_id[4:]
        u = response.get("usage") or {}
        usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
        call.mark_first_byte()
        headers = self._headers(call)
        if not call.stream:
            self._record(call, 200, usage, None)
            return JSONResult(200, dumps(response), headers)
        from app.cache import as_stream_chunks

        def replay() -> Iterator[bytes]:
            try:
                for chunk in as_stream_chunks(response):
                    yield b"data: " + dumps(chunk) + b"\n\n"
                if client_wants_usage(body):
                    yield b"data: " + dumps({"id": response["id"], "object": "chat.completion.chunk",
                                             "created": response.get("created") or int(time.time()),
                                             "model": response.get("model"), "choices": [],
                                             "usage": usage.as_openai()}) + b"\n\n"
                yield b"data: [DONE]\n\n"
            finally:
                self._record(call, 200, usage, None)
        return StreamResult(replay(), headers)

    def _cache_put(self, call: Call, decision, key: str | None, ttl: float | None,
                   response: dict[str, Any] | None) -> None:
        if decision is None or key is None or response is None or not decision.store:
            return
        try:
            self.cache.put(key, response, model=call.route.name, key_id=call.key.id, ttl=ttl,
                           now=time.time())
        except Exception:  # a full disk must not fail the request
            log.exception("response cache put failed")

    # -- attempts ----------------------------------------------------------------------------
    def _send(self, route: Route, req):
        try:
            resp = self.transport.send(req, route.connect_timeout, route.read_timeout)
        except TransportError as exc:
            err = transport_error(exc, route)
            err.outcome = "timeout" if exc.kind == "timeout" else (
                "connect" if exc.kind == "connect" else "server_error")
            err.upstream_status, err.upstream_headers = None, {}
            raise err from None
        if resp.status >= 400:
            try:
                data = resp.read(1024 * 1024)
            except TransportError:
                data = b""
            err = route.adapter.parse_error(resp.status, resp.headers, data)
            err.upstream_status, err.upstream_headers = resp.status, resp.headers
            raise err
        return resp

    @staticmethod
    def _prime(route: Route, resp, dialect: str | None = None):
        """Read a stream until its first chunk, so a failure before any byte reached the client
        can still fall back. Returns (decoder, remaining blocks, first chunks)."""
        decoder = route.adapter.native_stream_decoder(dialect, route.name) if dialect \
            else route.adapter.stream_decoder(route.name)
        blocks = resp.iter_chunks()
        try:
            for block in blocks:
                chunks = decoder.feed(block)
                if chunks or decoder.done:
                    return decoder, blocks, chunks
            return decoder, blocks, decoder.close()
        except TransportError as exc:
            resp.close()
            raise transport_error(exc, route) from None
        except UpstreamError:
            resp.close()
            raise

    def _attempts(self, call: Call, plan, build: Callable[[Route], Any], stream: bool,
                  est_in: int, est_out: int, needs: frozenset[str]):
        """Try deployments in routing order until one answers (fallback before the first byte).

        A deployment is tried at most once per request. Between attempts: exponential backoff
        with full jitter; an upstream Retry-After is honoured when the next attempt goes to the
        same provider; nothing waits past the request's deadline. Returns (route, response,
        primed stream or None); for non-streams the response is the body bytes.
        """
        from app.routing import backoff, classify, is_retryable, order
        from app.services.router import deployment
        router = self.router
        budget = 1 + max(0, plan.primary.retries)
        tried: set[int] = set()
        last: UpstreamError | None = None
        started = time.monotonic()
        limit = call.deadline_s
        for group in plan.groups:
            by_id = {r.model_pk: r for r in group.routes}
            deps = [deployment(r) for r in group.routes]
            # capabilities steer only where the admin declared them: a need that no deployment
            # of the group declares is not a filter (flags default to off for new models)
            declared = frozenset().union(*(d.capabilities for d in deps))
            group_needs = needs & declared
            while len(tried) < budget:
                now = time.time()
                ranked = order(deps, group.strategy, router.live, router.rng, now, exclude=tried,
                               needs=group_needs, min_context=est_in or None,
                               est_input_tokens=est_in, est_output_tokens=est_out)
                if not ranked:
                    break
                dep = next((d for d in ranked if router.breaker.allow(d.id, now)), ranked[0])
                route = by_id[dep.id]
                if last is not None:
                    same = getattr(last, "provider_id", None) == route.provider_id
                    ra = float(last.retry_after) if same and _is_number(last.retry_after) else None
                    left = None if not limit else limit - (time.monotonic() - started)
                    wait = backoff(len(tried) - 1, router.rng, base=0.05, cap=1.0, retry_after=ra,
                                   deadline_left=left)
                    if wait is None:
                        raise last
                    _sleep(wait)
                tried.add(dep.id)
                call.route = route
                router.live.started(dep.id)
                call.live_dep = dep.id
                attempt_started = time.perf_counter()
                if call.routing is None:
                    call.routing = {"group": group.name, "strategy": group.strategy,
                                    "order": [by_id[d.id].owned_by + "/" + by_id[d.id].upstream_id
                                              for d in ranked]}
                try:
                    req = build(route)
                    dialect = getattr(req, "dialect", None)
                    resp = self._send(route, req)
                    upstream_headers = resp.headers
                    if stream:
                        primed = self._prime(route, resp, dialect)
                    else:  # a body cut off mid-way is still "before the first byte" to the client
                        try:
                            resp, primed = resp.read(), None
                        except TransportError as exc:
                            raise transport_error(exc, route) from None
                except UpstreamError as err:
                    outcome = getattr(err, "outcome", None) or classify(
                        getattr(err, "upstream_status", None) or err.status)
                    router.live.finished(dep.id, None, False)
                    call.live_dep = None
                    from app.routing import retry_after_seconds
                    ra = retry_after_seconds(getattr(err, "upstream_headers", None) or {}, time.time())
                    router.breaker.record(dep.id, outcome, time.time(), ra, detail=err.message[:200])
                    upstream_status = getattr(err, "upstream_status", None)
                    call.attempts.append(f"{route.owned_by}/{route.upstream_id}="
                                         f"{upstream_status or err.status}")
                    call.trail.append({"deployment": f"{route.owned_by}/{route.upstream_id}",
                                       "status": upstream_status or err.status, "outcome": outcome,
                                       "error": err.message[:300],
                                       "ms": round((time.perf_counter() - attempt_started) * 1000, 1)})
                    err.provider_id = route.provider_id
                    last = err
                    # a bad provider key or a model gone at one deployment is that deployment's
                    # fault: another one can still serve; other 4xx are the request's fault
                    if not (is_retryable(upstream_status, outcome) or outcome in ("auth", "not_found")):
                        raise
                    continue
                now = time.time()
                router.record_ok(dep.id, now)
                router.live.observe_ratelimit(dep.id, upstream_headers, now)
                call.attempts.append(f"{route.owned_by}/{route.upstream_id}=200")
                call.trail.append({"deployment": f"{route.owned_by}/{route.upstream_id}", "status": 200,
                                   "outcome": "ok",
                                   "ms": round((time.perf_counter() - attempt_started) * 1000, 1)})
                call.dialect = dialect
                return route, resp, primed
        if last is not None:
            raise last
        raise ProxyError(503, "No deployment of this model can serve the request (capabilities, "
                         "context window or sensitivity policy).", type_="api_error",
                         code="no_deployment_available", error_class="no_route")

    # -- chat --------------------------------------------------------------------------------
    def chat(self, snap: Snapshot, call: Call, body: dict[str, Any], headers=None,
             native: tuple[str, dict[str, Any]] | None = None) -> JSONResult | StreamResult:
        """One chat call. ``native`` = (dialect, original body) from a front door other than chat
        completions (``body`` is then its chat translation): a deployment whose adapter speaks
        that dialect gets the original body, and the result carries ``dialect`` so the door
        knows it is already in its own shape. Redacted bodies always go the translated way."""
        from app.services.router import needs_of
        call.model_name = body.get("model") if isinstance(body.get("model"), str) else None
        call.stream = body.get("stream") is True
        decision = cache_key = ttl = None
        try:
            validate_chat(body)
            primary = resolve(snap, call.key, body["model"], "chat")
            call.route = primary[0]
            if call.key.log_bodies or any(r.log_bodies for r in primary):
                call.body = body
            upstream_body, trusted = self._inspect(snap, call, body)
            decision, cache_key, ttl = self._cache_plan(snap, call, body, primary[0].name, headers)
            if decision is not None and decision.lookup:
                entry = self.cache.get(cache_key, time.time())
                if entry is not None:
                    return self._serve_hit(call, entry, body)
            plan = self.router.plan(snap, call.key, primary, "chat")
            if body["model"] == AUTO_MODEL and primary[0].name != AUTO_MODEL:
                plan.primary.strategy = "cost"
            if trusted is not None:
                for group in plan.groups:
                    group.routes = [r for r in group.routes if r.trust_level in trusted]
                if not plan.routes():
                    raise ProxyError(400, "This request contains sensitive content and no "
                                     "deployment of this model is trusted to receive it.",
                                     code="content_policy", error_class="content_policy")
                plan.groups = [g for g in plan.groups if g.routes]
            prompt = estimate_prompt(body["messages"])
            self._admit(snap, call, plan.routes(), prompt, body)
            call.deadline_s = plan.primary.timeout_s or self.request_deadline
            from app.services.spend import worst_case_output
            dialect, native_body = native if native is not None and upstream_body is body \
                else (None, None)

            def build(r: Route):
                if dialect and r.adapter.native(dialect):
                    return r.adapter.native_request(dialect, native_body, r.upstream_id)
                return r.adapter.chat_request(upstream_body, r.upstream_id)

            with deadline(call.deadline_s):
                route, resp, primed = self._attempts(
                    call, plan, build, call.stream, prompt,
                    worst_case_output(body, plan.routes()[0]), needs_of(body, call.stream))
                if call.stream:
                    chunks = self._native_stream(call, route, resp, body, primed) if call.dialect \
                        else self._stream(call, route, resp, body, primed, (decision, cache_key, ttl))
                    return StreamResult(chunks, self._headers(call), call.dialect)
                data = resp
            call.mark_first_byte()
            if call.dialect:
                obj, usage = route.adapter.parse_native_response(call.dialect, data, route.name)
            else:
                obj, usage = route.adapter.parse_chat_response(data, route.name)
        except FAILURES as err:
            return self.fail(call, err)
        if call.dialect:
            return self._native_done(call, obj, usage, body)
        if usage.estimated or (usage.prompt_tokens == 0 and usage.completion_tokens == 0):
            usage = Usage(estimate_prompt(body["messages"]), estimate_tokens(_message_chars(obj)),
                          estimated=True)
            obj["usage"] = usage.as_openai()  # what the client sees is what is billed
        self._cache_put(call, decision, cache_key, ttl, obj)
        if call.body is not None:
            call.response_body = obj
        headers = self._headers(call)
        self._record(call, 200, usage, None)
        return JSONResult(200, dumps(obj), headers)

    def _stream(self, call: Call, route: Route, resp, body: dict[str, Any], primed,
                cache_plan) -> Iterator[bytes]:
        decoder, blocks, first = primed
        wants_usage = client_wants_usage(body)
        delivered = [0]  # characters of content/arguments sent to the client
        last: list[dict[str, Any] | None] = [None]
        decision, cache_key, ttl = cache_plan
        collect = (decision is not None and decision.store) or call.body is not None
        keep: list[dict[str, Any]] | None = [] if collect else None
        kept = [0]
        status, error_class, finished = 200, None, False
        from app.metrics import IN_FLIGHT
        IN_FLIGHT.inc()

        def forward(chunks: list[dict[str, Any]]) -> Iterator[bytes]:
            nonlocal keep
            for chunk in chunks:
                delivered[0] += _chunk_chars(chunk)
                last[0] = chunk
                call.mark_first_byte()
                data = dumps(chunk)
                if keep is not None:
                    kept[0] += len(data)
                    keep = keep if kept[0] < 1024 * 1024 else None  # too big to cache
                    if keep is not None:
                        keep.append(chunk)
                yield b"data: " + data + b"\n\n"
            if decoder.error is not None:  # in-band error after the chunks above
                raise decoder.error

        try:
            for batch in self._batches(call, route, decoder, blocks, first):
                yield from forward(batch)
            if not decoder.done and decoder.finish_reason is None:
                raise _truncated()
            finished = True
            usage = self._stream_usage(decoder, body, delivered[0], finished)
            if keep:
                from app.cache import response_from_chunks
                assembled = response_from_chunks(keep)
                if assembled is not None:
                    assembled["usage"] = usage.as_openai()
                    self._cache_put(call, decision, cache_key, ttl, assembled)
                    if call.body is not None:
                        call.response_body = assembled
            if wants_usage:
                yield b"data: " + dumps(self._usage_chunk(last[0], route, usage)) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except UpstreamError as err:
            status, error_class = err.status, err.error_class
            yield b"data: " + dumps(err.to_openai()) + b"\n\n"
        except GeneratorExit:  # client went away: stop the upstream now, bill what was delivered
            status, error_class = 499, "client_disconnected"
            raise
        finally:
            IN_FLIGHT.dec()
            resp.close()
            self._record(call, status, self._stream_usage(decoder, body, delivered[0], finished),
                         error_class)

    def _batches(self, call: Call, route: Route, decoder, blocks, first) -> Iterator[list[Any]]:
        """The decoded batches of a primed stream: the first, one per upstream block until the
        decoder is done, then the decoder's tail; transport failures mapped to UpstreamError.

        The request's deadline bounds the whole stream: an upstream that keeps trickling bytes
        (each read within the read timeout) is cut off when the deadline passes."""
        limit = call.deadline_s or self.request_deadline
        try:
            yield first
            if not decoder.done:
                for block in blocks:
                    yield decoder.feed(block)
                    if decoder.done:
                        break
                    if limit and time.perf_counter() - call.started > limit:
                        raise self._deadline_error(call)
                yield decoder.close()
        except TransportError as exc:
            raise transport_error(exc, route) from None

    # -- native front doors ------------------------------------------------------------------
    def _native_done(self, call: Call, obj: dict[str, Any], usage: Usage,
                     body: dict[str, Any]) -> JSONResult:
        """A native JSON answer: billed on the upstream's usage (the prompt estimated when the
        upstream reported none), returned in its own shape."""
        if usage.estimated or (usage.prompt_tokens == 0 and usage.completion_tokens == 0):
            usage = Usage(estimate_prompt(body["messages"]), usage.completion_tokens, estimated=True)
        if call.body is not None:
            call.response_body = obj
        headers = self._headers(call)
        self._record(call, 200, usage, None)
        return JSONResult(200, dumps(obj), headers, call.dialect)

    def _native_stream(self, call: Call, route: Route, resp, body: dict[str, Any],
                       primed) -> Iterator[bytes]:
        """A native stream: the decoder's framed events forwarded as they come; exactly one
        usage record at the end (the upstream's usage, or at least what was delivered)."""
        decoder, blocks, first = primed
        status, error_class, finished = 200, None, False
        from app.metrics import IN_FLIGHT
        IN_FLIGHT.inc()
        try:
            for batch in self._batches(call, route, decoder, blocks, first):
                for piece in batch:
                    call.mark_first_byte()
                    yield piece
            if not decoder.done and decoder.failed is None:
                raise _truncated()
            finished = True
            if decoder.failed is not None:  # the upstream's failure event, already forwarded
                status, error_class = decoder.failed.status, decoder.failed.error_class
            if call.body is not None:
                call.response_body = decoder.final
        except UpstreamError as err:
            status, error_class = err.status, err.error_class
            yield decoder.error_event(err)
        except GeneratorExit:  # client went away: stop the upstream now, bill what was delivered
            status, error_class = 499, "client_disconnected"
            raise
        finally:
            IN_FLIGHT.dec()
            resp.close()
            self._record(call, status, self._stream_usage(decoder, body, decoder.chars, finished),
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

    # -- embeddings ----------------------------------------------------------------------------
    def embeddings(self, snap: Snapshot, call: Call, body: dict[str, Any]) -> JSONResult:
        call.model_name = body.get("model") if isinstance(body.get("model"), str) else None
        try:
            validate_embeddings(body)
            primary = resolve(snap, call.key, body["model"], "embedding")
            call.route = primary[0]
            plan = self.router.plan(snap, call.key, primary, "embedding")
            tokens = _embedding_tokens(body["input"])
            self._admit(snap, call, plan.routes(), tokens, body)
            call.deadline_s = plan.primary.timeout_s or self.request_deadline
            with deadline(call.deadline_s):
                route, first, _ = self._attempts(
                    call, plan, lambda r: r.adapter.embeddings_requests(body, r.upstream_id)[0],
                    False, tokens, 0, frozenset())
                datas = [first]
                # adapters that need several upstream calls (Bedrock Titan: one per input)
                for req in route.adapter.embeddings_requests(body, route.upstream_id)[1:]:
                    datas.append(self._send(route, req).read())
            call.mark_first_byte()
            obj, usage = route.adapter.parse_embeddings_responses(datas, route.name, body)
        except FAILURES as err:
            return self.fail(call, err)
        if not usage.prompt_tokens:
            usage = Usage(_embedding_tokens(body["input"]), 0, estimated=True)
            obj["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
        headers = self._headers(call)
        self._record(call, 200, usage, None)
        return JSONResult(200, dumps(obj), headers)


def _truncated() -> UpstreamError:
    return UpstreamError(502, "The upstream stream ended before it was complete.", "api_error",
                         "stream_truncated", "stream_truncated")


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _sleep(seconds: float) -> None:
    if seconds > 0:
        from app.services.usage import _sleep as sleep
        sleep(seconds)
