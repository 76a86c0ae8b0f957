"""The adapter interface every provider module implements.

Adapters are pure translation: they build upstream HTTP requests from OpenAI-shaped bodies
and turn upstream bytes back into OpenAI-shaped dicts. They never do I/O themselves and never
import Flask, so the proxy core can run them with any HTTP client and tests can feed them
recorded wire data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable


@dataclass
class ProviderConfig:
    """Plain values copied out of a Provider row (no ORM object crosses into adapters)."""

    id: int | None
    name: str
    type: str
    api_base: str
    api_version: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    # decrypted secrets, e.g. {"api_key": ...} or {"aws_access_key_id", "aws_secret_access_key",
    # "aws_session_token"}
    secrets: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    default_temperature: float | None = None
    default_max_tokens: int | None = None


@dataclass
class UpstreamRequest:
    """One HTTP request to send upstream."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: bool = False
    # (added) set when this is a native front-door request (e.g. "responses"): the answer is in
    # that API's shape and is parsed by the adapter's native_* methods, not the chat ones
    dialect: str | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }


class UpstreamError(Exception):
    """An upstream failure already mapped to an OpenAI-shaped error.

    ``status`` is the HTTP status the gateway returns to its client; ``error_class`` is a short
    machine label for UsageRecord.error_class (e.g. "upstream_auth", "rate_limited", "timeout",
    "bad_request", "upstream_error", "malformed_response", "content_filter").
    """

    def __init__(self, status: int, message: str, type_: str = "upstream_error",
                 code: str | None = None, error_class: str = "upstream_error",
                 retry_after: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.error_class = error_class
        self.retry_after = retry_after
        self.param = param

    def to_openai(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class StreamDecoder:
    """Incremental decoder: feed raw upstream bytes (any split), get OpenAI chunk dicts out.

    Chunks returned are complete ``chat.completion.chunk`` dicts (without usage chunk; the core
    emits the usage chunk itself from ``usage``). Errors inside a 200 stream raise UpstreamError.
    """

    usage: Usage | None = None
    finish_reason: str | None = None
    # an in-band upstream error that followed chunks returned by the same feed()/close() call:
    # the caller forwards those chunks first, then raises this
    error: "UpstreamError | None" = None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> list[dict[str, Any]]:
        """Called at end of upstream body; returns any trailing chunks."""
        return []

    @property
    def done(self) -> bool:
        """True once the upstream signalled the end of the stream ([DONE], message_stop, ...)."""
        return False


class NativeStreamDecoder(StreamDecoder):
    """(added) Decoder for a native front-door stream (the Responses API's typed events, ...).

    ``feed``/``close`` return framed SSE events (bytes) to forward to the client as they are
    (the adapter rewrites only what must change, e.g. the model name). ``chars`` counts the
    generated text and arguments seen so far (what an interrupted stream is billed at least);
    ``final`` is the last complete response object, if the upstream sent one; ``failed`` is an
    UpstreamError when the upstream ended the stream with a failure event (already forwarded).
    """

    chars: int = 0
    final: "dict[str, Any] | None" = None
    failed: "UpstreamError | None" = None

    def error_event(self, err: "UpstreamError") -> bytes:
        """The dialect's framing of a gateway-side failure after the first byte."""
        raise NotImplementedError


def client_wants_usage(body: dict[str, Any]) -> bool:
    """(added) True when an OpenAI client asked for the final usage chunk of a stream.

    Adapters always ask their upstream for usage (OpenAI-style ones set
    ``stream_options.include_usage=true``) and their decoders never return the upstream usage
    chunk. The core emits its own ``{"choices": [], "usage": ...}`` chunk from
    ``decoder.usage`` (before ``data: [DONE]``) only when this returns True.
    """
    opts = body.get("stream_options")
    return bool(body.get("stream")) and isinstance(opts, dict) and opts.get("include_usage") is True


class Adapter:
    """Base class; one subclass per provider type, registered in registry.ADAPTERS."""

    type: ClassVar[str] = ""
    label: ClassVar[str] = ""
    supports_streaming: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    supports_vision: ClassVar[bool] = True
    supports_embeddings: ClassVar[bool] = True
    # fields of the Provider form/API config that this type uses (for the console's per-type form)
    config_fields: ClassVar[tuple[str, ...]] = ()
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    # (added) subset of secret_fields the console may leave empty (local servers, STS token, ...)
    optional_secret_fields: ClassVar[tuple[str, ...]] = ()
    # (added) used when ProviderConfig.api_base is empty
    default_api_base: ClassVar[str] = ""

    def __init__(self, provider: ProviderConfig):
        self.provider = provider

    # (added) helpers ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``provider.api_base`` (or the class default) without trailing slashes."""
        return (self.provider.api_base or self.default_api_base or "").strip().rstrip("/")

    def secret(self, name: str) -> str | None:
        value = (self.provider.secrets or {}).get(name)
        return value or None

    # --- chat -------------------------------------------------------------------------------
    def chat_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        raise NotImplementedError

    def parse_chat_response(self, data: bytes, public_model: str) -> tuple[dict[str, Any], Usage]:
        raise NotImplementedError

    def stream_decoder(self, public_model: str) -> StreamDecoder:
        raise NotImplementedError

    # --- native front doors (added) --------------------------------------------------------------
    # Front doors other than chat completions (POST /v1/responses, ...) are translated into a
    # chat body by default. An adapter whose upstream speaks that API itself says so here and
    # then serves it verbatim: the core asks ``native(dialect)`` per deployment, so a fallback
    # to another provider type is still translated.
    def native(self, dialect: str) -> bool:
        return False

    def native_request(self, dialect: str, body: dict[str, Any],
                       upstream_model: str) -> UpstreamRequest:
        raise NotImplementedError

    def parse_native_response(self, dialect: str, data: bytes,
                              public_model: str) -> tuple[dict[str, Any], Usage]:
        raise NotImplementedError

    def native_stream_decoder(self, dialect: str, public_model: str) -> NativeStreamDecoder:
        raise NotImplementedError

    # --- embeddings ---------------------------------------------------------------------------
    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        raise NotImplementedError

    def parse_embeddings_response(self, data: bytes, public_model: str,
                                  body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        raise NotImplementedError

    # (added) multi-request embeddings. Some upstreams take one input per call (Bedrock Titan) or
    # cap the batch size (Bedrock Cohere: 96). The core should always use this pair: send every
    # request in order (stop at the first non-2xx and hand it to parse_error), then pass the
    # bodies, in the same order, to parse_embeddings_responses. The defaults wrap the
    # single-request methods, so for most adapters this is exactly one request.
    def embeddings_requests(self, body: dict[str, Any],
                            upstream_model: str) -> list[UpstreamRequest]:
        return [self.embeddings_request(body, upstream_model)]

    def parse_embeddings_responses(self, datas: list[bytes], public_model: str,
                                   body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        if len(datas) != 1:
            raise ValueError(f"expected 1 upstream embeddings response, got {len(datas)}")
        return self.parse_embeddings_response(datas[0], public_model, body)

    # --- errors -------------------------------------------------------------------------------
    def parse_error(self, status: int, headers: dict[str, str], data: bytes) -> UpstreamError:
        raise NotImplementedError

    # --- health and model listing --------------------------------------------------------------
    def health_request(self) -> UpstreamRequest:
        """The cheapest authenticated call for this type."""
        return self.models_request()

    def models_request(self) -> UpstreamRequest:
        raise NotImplementedError

    def parse_models(self, data: bytes) -> list[dict[str, Any]]:
        """Upstream model list as [{"id": str, "kind": "chat"|"embedding", ...}]."""
        raise NotImplementedError
