"""Helpers shared by the provider adapters (pure functions, no I/O)."""
from __future__ import annotations

import base64
import math
import re
import secrets as _secrets
import struct
import time
import urllib.parse
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Iterable, Mapping

from .base import StreamDecoder, UpstreamError, Usage

try:  # orjson is optional: ~5x faster on the hot streaming path
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None
import json as _json


# --- JSON ---------------------------------------------------------------------------------------
def dumps(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (non-ASCII kept as is)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj)
        except TypeError:  # e.g. ints beyond 64 bits: let the stdlib try
            pass
    return _json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dumps_str(obj: Any) -> str:
    return dumps(obj).decode("utf-8")


def loads(data: bytes | bytearray | str) -> Any:
    """Parse JSON; raises ValueError on bad input (both backends)."""
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError as e:
            raise ValueError(str(e)) from None
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8")
    return _json.loads(data)


def malformed(what: str = "response") -> UpstreamError:
    return UpstreamError(502, f"The upstream provider returned a malformed {what}.", "api_error",
                         "malformed_response", "malformed_response")


def load_json_body(data: bytes, what: str = "response") -> Any:
    """Parse an upstream 2xx body, mapping garbage to a 502 malformed_response."""
    try:
        return loads(data)
    except (ValueError, UnicodeDecodeError):
        raise malformed(what) from None


def load_json_object(data: bytes, what: str = "response") -> dict[str, Any]:
    obj = load_json_body(data, what)
    if not isinstance(obj, dict):
        raise malformed(what)
    return obj


# --- secrets scrubbing ----------------------------------------------------------------------------
_KEY_PATTERNS = re.compile(
    r"(?:"
    r"sk-[A-Za-z0-9_\-*.]{6,}"             # OpenAI / Anthropic (sk-ant-) / DeepSeek / OpenRouter
    r"|xai-[A-Za-z0-9_\-]{8,}"             # xAI
    r"|gsk_[A-Za-z0-9]{8,}"                # Groq
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"          # AWS access key ids
    r"|(?<=Bearer )[A-Za-z0-9_\-.=+/]{8,}"  # any bearer token echoed back
    r")"
)
REDACTED = "[redacted]"


def scrub(text: str | None, secrets: Mapping[str, Any] | None = None) -> str:
    """Remove anything that looks like a credential from an upstream message."""
    if not text:
        return ""
    for value in (secrets or {}).values():
        if isinstance(value, str) and len(value) >= 4 and value in text:
            text = text.replace(value, REDACTED)
    return _KEY_PATTERNS.sub(REDACTED, text)


# --- errors ------------------------------------------------------------------------------------
def openai_error(message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> UpstreamError:
    """A request the adapter cannot translate (returned to the client as 400)."""
    return UpstreamError(400, message, "invalid_request_error", code, "bad_request", param=param)


def lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def _duration_seconds(value: str) -> float | None:
    """OpenAI ``x-ratelimit-reset-*`` durations: ``1s``, ``6m0s``, ``174ms``, ``1h2m``."""
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(value):
        if m.start() != pos:
            return None
        n, unit = float(m.group(1)), m.group(2)
        total += n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        pos = m.end()
    return total if pos == len(value) and pos else None


def _rfc3339_seconds(value: str) -> float | None:
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - datetime.now(timezone.utc)).total_seconds()


def _secs(value: float) -> str:
    return str(max(1, math.ceil(value)))


def retry_after_from_headers(headers: Mapping[str, str] | None) -> str | None:
    """Seconds (as a string) the client should wait, from whatever the upstream sent.

    Order: ``retry-after-ms`` (OpenAI), ``retry-after`` (seconds kept; an HTTP date is passed
    through as is — it is a valid Retry-After value), then rate-limit reset headers
    (Anthropic ``anthropic-ratelimit-*-reset`` RFC 3339 times, OpenAI ``x-ratelimit-reset-*``
    durations), preferring the limit whose ``remaining`` is 0.
    """
    h = lower_headers(headers)
    ms = h.get("retry-after-ms")
    if ms:
        try:
            return _secs(float(ms) / 1000.0)
        except ValueError:
            pass
    ra = h.get("retry-after")
    if ra:
        ra = ra.strip()
        try:
            return _secs(float(ra))
        except ValueError:
            try:
                parsedate_to_datetime(ra)
                return ra
            except (TypeError, ValueError, IndexError):
                pass
    exhausted: list[float] = []
    others: list[float] = []
    for name, value in h.items():
        if name.startswith("anthropic-ratelimit-") and name.endswith("-reset"):
            kind = name[len("anthropic-ratelimit-"):-len("-reset")]
            secs = _rfc3339_seconds(value)
            remaining = h.get(f"anthropic-ratelimit-{kind}-remaining")
        elif name.startswith("x-ratelimit-reset-"):
            kind = name[len("x-ratelimit-reset-"):]
            secs = _duration_seconds(value)
            remaining = h.get(f"x-ratelimit-remaining-{kind}")
        else:
            continue
        if secs is not None:
            (exhausted if (remaining or "").strip() == "0" else others).append(secs)
    if exhausted:
        return _secs(max(exhausted))
    if others:
        return _secs(min(others))
    return None


def extract_error_fields(obj: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """(message, type, code, param) from the usual upstream error envelopes.

    Handles ``{"error": {...}}`` (OpenAI, Azure, Anthropic), ``{"error": "text"}`` (Ollama,
    llama.cpp), ``{"message": ...}`` / ``{"Message": ...}`` (AWS), ``{"detail": ...}`` (FastAPI
    based servers such as vLLM).
    """
    if not isinstance(obj, dict):
        return None, None, None, None
    err = obj.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        code = err.get("code")
        return (str(msg) if msg is not None else None,
                str(err["type"]) if err.get("type") else None,
                str(code) if code not in (None, "") else None,
                str(err["param"]) if err.get("param") else None)
    if isinstance(err, str):
        return err, None, None, None
    for key in ("message", "Message", "detail", "msg"):
        val = obj.get(key)
        if isinstance(val, str):
            code = obj.get("code") or obj.get("__type")
            return val, obj.get("type") if isinstance(obj.get("type"), str) else None, \
                (str(code) if code else None), None
        if isinstance(val, list) and val:  # FastAPI validation errors
            return _as_text(val), None, None, None
    return None, None, None, None


def _as_text(val: Any) -> str:
    return val if isinstance(val, str) else dumps_str(val)


def error_for_status(status: int, message: str | None = None, *, provider: str = "",
                     headers: Mapping[str, str] | None = None, code: str | None = None,
                     param: str | None = None, secrets: Mapping[str, Any] | None = None,
                     overloaded: bool = False) -> UpstreamError:
    """Map an upstream HTTP status (+ parsed message) to the gateway's UpstreamError.

    ======================  ======  ==========================  =====================  ==============
    upstream                status  type                        code                   error_class
    ======================  ======  ==========================  =====================  ==============
    401 / 403               502     api_error                   upstream_auth_failed   upstream_auth
    404                     404     invalid_request_error       model_not_found        not_found
    408 / 504               504     api_error                   upstream_timeout       timeout
    429                     429     rate_limit_error            upstream's or          rate_limited
                                                                rate_limit_exceeded
    503 / 529 / overloaded  503     api_error                   upstream_overloaded    upstream_error
    other 5xx (and 424)     502     api_error                   upstream_error         upstream_error
    other 4xx               400     invalid_request_error       upstream's             bad_request
    anything else           502     api_error                   upstream_error         upstream_error
    ======================  ======  ==========================  =====================  ==============
    """
    who = f"The upstream provider{f' {provider!r}' if provider else ''}"
    text = scrub(message, secrets).strip()
    h = lower_headers(headers)
    if status in (401, 403):
        return UpstreamError(502, f"{who} rejected the gateway's credentials (HTTP {status}).",
                             "api_error", "upstream_auth_failed", "upstream_auth")
    if status == 404:
        return UpstreamError(404, text or f"{who} does not know the requested model.",
                             "invalid_request_error", "model_not_found", "not_found")
    if status in (408, 504):
        return UpstreamError(504, text or f"{who} timed out.", "api_error", "upstream_timeout",
                             "timeout")
    if status == 429:
        return UpstreamError(429, text or f"{who} is rate limiting the gateway.",
                             "rate_limit_error", code or "rate_limit_exceeded", "rate_limited",
                             retry_after=retry_after_from_headers(h))
    if overloaded or status in (503, 529):
        return UpstreamError(503, text or f"{who} is overloaded.", "api_error",
                             "upstream_overloaded", "upstream_error",
                             retry_after=retry_after_from_headers(h))
    if 400 <= status < 500 and status != 424:
        return UpstreamError(400, text or f"{who} rejected the request (HTTP {status}).",
                             "invalid_request_error", code, "bad_request", param=param)
    return UpstreamError(502, text or f"{who} failed (HTTP {status}).", "api_error",
                         "upstream_error", "upstream_error")


def timeout_error(provider: str = "") -> UpstreamError:
    """For the core: the HTTP client timed out talking to the upstream (-> 504)."""
    who = f"The upstream provider{f' {provider!r}' if provider else ''}"
    return UpstreamError(504, f"{who} did not answer in time.", "api_error", "upstream_timeout",
                         "timeout")


def connection_error(provider: str = "") -> UpstreamError:
    """For the core: the upstream could not be reached (DNS, refused, TLS...) (-> 502)."""
    who = f"The upstream provider{f' {provider!r}' if provider else ''}"
    return UpstreamError(502, f"{who} could not be reached.", "api_error", "upstream_unreachable",
                         "upstream_error")


def error_from_body(status: int, headers: Mapping[str, str] | None, data: bytes | None, *,
                    provider: str = "", secrets: Mapping[str, Any] | None = None) -> UpstreamError:
    """Generic parse_error: JSON envelopes of all kinds, or a short snippet of a non-JSON body."""
    message = type_ = code = param = None
    if data:
        try:
            message, type_, code, param = extract_error_fields(loads(data))
        except (ValueError, UnicodeDecodeError):
            snippet = bytes(data[:300]).decode("utf-8", errors="replace").strip()
            if snippet and not snippet.lstrip().startswith("<"):  # skip HTML error pages
                message = snippet
    if status == 429 and message and message.startswith("Request too large"):
        # OpenAI reports oversized requests as 429 rate_limit_exceeded, but retrying can never
        # succeed (README pitfall 16): tell the client it is a bad request.
        return UpstreamError(400, scrub(message, secrets), "invalid_request_error",
                             "request_too_large", "bad_request")
    return error_for_status(status, message, provider=provider, headers=headers, code=code,
                            param=param, secrets=secrets,
                            overloaded=(type_ == "overloaded_error"))


# --- ids ---------------------------------------------------------------------------------------
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def gen_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(_secrets.choice(_ALNUM) for _ in range(n))


def tool_call_id() -> str:
    return gen_id("call_")


def completion_id() -> str:
    return gen_id("chatcmpl-")


def now() -> int:
    return int(time.time())


# --- content -----------------------------------------------------------------------------------
def parse_data_uri(url: str) -> tuple[str, str] | None:
    """``data:<mime>[;params][;base64],<data>`` -> (mime, base64 data); None if not a data URI."""
    if not isinstance(url, str) or not url[:5].lower() == "data:":
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    parts = [p.strip() for p in header.split(";")]
    mime = (parts[0] or "text/plain").lower()
    if any(p.lower() == "base64" for p in parts[1:]):
        b64 = re.sub(r"\s+", "", payload)
    else:
        b64 = base64.b64encode(urllib.parse.unquote_to_bytes(payload)).decode("ascii")
    return mime, b64


def image_url_of(part: dict[str, Any]) -> str:
    """The URL of an OpenAI ``image_url`` part (object form, or the bare-string form some send)."""
    iu = part.get("image_url")
    if isinstance(iu, dict):
        return str(iu.get("url") or "")
    return str(iu or "")


def content_text(content: Any) -> str:
    """Plain text of an OpenAI message content (string, list of parts, or None)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                out.append(str(part.get("text") or ""))
            elif isinstance(part, dict) and part.get("type") == "refusal":
                out.append(str(part.get("refusal") or ""))
        return "".join(out)
    return str(content)


def content_parts(content: Any) -> list[dict[str, Any]]:
    """OpenAI content as a list of parts (a string becomes one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content]
    return [{"type": "text", "text": str(content)}]


# --- tools -------------------------------------------------------------------------------------
def args_to_obj(arguments: Any) -> dict[str, Any]:
    """OpenAI ``function.arguments`` (a JSON string) -> the object other providers want.

    Lenient: empty -> ``{}``; valid JSON that is not an object -> ``{"value": ...}``; invalid
    JSON (models sometimes produce it and clients echo it back) -> ``{"raw_arguments": "..."}``.
    """
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, str):
        try:
            obj = loads(arguments)
        except ValueError:
            return {"raw_arguments": arguments}
        return obj if isinstance(obj, dict) else {"value": obj}
    return {"value": arguments}


def args_to_str(arguments: Any) -> str:
    """Provider tool input (object) -> OpenAI's JSON string."""
    if isinstance(arguments, str):
        return arguments
    if arguments is None:
        return "{}"
    return dumps_str(arguments)


def function_tools(tools: Any) -> list[dict[str, Any]]:
    """``[{"name", "description", "parameters"}]`` from OpenAI ``tools`` (function tools only)."""
    out = []
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise bad_request(f"Unsupported tool type {tool.get('type')!r} for this provider."
                              if isinstance(tool, dict) else "Invalid tool.", f"tools[{i}]")
        fn = tool.get("function") or {}
        if not fn.get("name"):
            raise bad_request("Each tool needs function.name.", f"tools[{i}].function.name")
        params = fn.get("parameters")
        out.append({"name": fn["name"], "description": fn.get("description") or "",
                    "parameters": params if isinstance(params, dict)
                    else {"type": "object", "properties": {}}})
    return out


def tool_choice_kind(tool_choice: Any) -> tuple[str | None, str | None]:
    """Normalise OpenAI ``tool_choice`` to (kind, name): kind in auto/required/none/tool/None."""
    if tool_choice is None:
        return None, None
    if isinstance(tool_choice, str):
        if tool_choice in ("auto", "required", "none"):
            return tool_choice, None
        raise bad_request(f"Invalid tool_choice {tool_choice!r}.", "tool_choice")
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        if name:
            return "tool", str(name)
    raise bad_request("Invalid tool_choice.", "tool_choice")


def stop_list(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    return [str(s) for s in stop if s]


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    return int(value) if value is not None else None


# --- usage / finish -----------------------------------------------------------------------------
def usage_from_openai(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    details = u.get("prompt_tokens_details") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0),
                 completion_tokens=int(u.get("completion_tokens") or 0),
                 cached_tokens=int(details.get("cached_tokens") or 0)
                 if isinstance(details, dict) else 0)


def guess_kind(model_id: str) -> str:
    return "embedding" if "embed" in model_id.lower() else "chat"


# --- embeddings ----------------------------------------------------------------------------------
def floats_to_b64(vec: Iterable[float]) -> str:
    """OpenAI ``encoding_format: base64``: little-endian float32 bytes, base64 (pitfall 5)."""
    vec = list(vec)
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")


def b64_to_floats(data: str) -> list[float]:
    raw = base64.b64decode(data)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    """Embedding ``input`` as a list of strings; token-id inputs are rejected."""
    inp = body.get("input")
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
        return list(inp)
    if isinstance(inp, list) and not inp:
        raise bad_request("input must not be empty.", "input")
    raise bad_request("This provider only accepts string inputs for embeddings "
                      "(token arrays are not supported).", "input")


def embeddings_list(vectors: list[list[float]], public_model: str, body: Mapping[str, Any],
                    usage: Usage) -> dict[str, Any]:
    """Build an OpenAI embeddings response, honouring encoding_format and dimensions."""
    dims = body.get("dimensions")
    b64 = body.get("encoding_format") == "base64"
    data = []
    for i, vec in enumerate(vectors):
        if isinstance(dims, int) and dims > 0 and len(vec) > dims:
            vec = vec[:dims]  # best effort when the upstream ignored `dimensions`
        data.append({"object": "embedding", "index": i,
                     "embedding": floats_to_b64(vec) if b64 else vec})
    return {"object": "list", "data": data, "model": public_model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}}


# --- streaming -----------------------------------------------------------------------------------
class ChunkFactory:
    """Builds ``chat.completion.chunk`` dicts; the first one carries ``delta.role``."""

    def __init__(self, public_model: str, id_: str | None = None, created: int | None = None):
        self.model = public_model
        self.id = id_ or completion_id()
        self.created = created or now()
        self.role_sent = False

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        if not self.role_sent:
            delta = {"role": "assistant", **delta}
            if "content" not in delta and "tool_calls" not in delta:
                delta["content"] = ""
            self.role_sent = True
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}]}


class TranslatingDecoder(StreamDecoder):
    """Common state for decoders (instance-level usage/finish_reason/done)."""

    def __init__(self, public_model: str) -> None:
        self.public_model = public_model
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done


def keeps_partial(method):
    """Decorator for a decoder's loop over upstream events, written as a generator.

    Collects the chunks it yields into a list. If the upstream signals an error part-way (an
    in-band error after HTTP 200), the chunks decoded before it are still returned and the error
    is kept in ``decoder.error`` for the core to raise after forwarding them, so content that
    arrived in the same network read as the error is neither lost nor unbilled. With nothing
    decoded before it, the error is raised straight away.
    """
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        out: list[dict[str, Any]] = []
        try:
            for chunk in method(self, *args, **kwargs):
                out.append(chunk)
        except UpstreamError as err:
            if not out:
                raise
            self.error = err
        return out
    return wrapper
