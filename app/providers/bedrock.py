"""Amazon Bedrock: Converse / ConverseStream for chat, InvokeModel for embeddings.

(bedrock/endpoints-and-auth.md, eventstream-framing.md, converse-stream-events.txt)

* URLs: ``https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse`` and
  ``/converse-stream``; ``api_base`` (tests, VPC endpoints) replaces the scheme+host. ``modelId``
  is percent-encoded with only ``-._~`` safe (``:`` -> ``%3A``, ARN ``/`` -> ``%2F``); SigV4
  (signing name ``bedrock``) then encodes the canonical path again, as botocore does.
* Auth: SigV4 with botocore's signer from ``aws_access_key_id``/``aws_secret_access_key``
  (+ ``aws_session_token``), or ``Authorization: Bearer`` when ``secrets["api_key"]`` holds a
  Bedrock API key.
* Streams are ``application/vnd.amazon.eventstream`` binary frames (CRC-checked here).
* Embeddings: Titan takes ONE ``inputText`` per call, Cohere up to 96 ``texts``. Use
  ``embeddings_requests`` (one request per Titan input / per 96 Cohere texts) and
  ``parse_embeddings_responses`` (combined, re-indexed, in order). ``embeddings_request``
  works for a single Titan input or one Cohere batch and raises 400 otherwise.
"""
from __future__ import annotations

import math
import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from .base import Adapter, UpstreamError, UpstreamRequest, Usage
from .common import (keeps_partial, ChunkFactory, TranslatingDecoder, args_to_obj, args_to_str, bad_request,
                     completion_id, content_parts, content_text, dumps, embedding_inputs,
                     embeddings_list, error_for_status, extract_error_fields, function_tools,
                     image_url_of, lower_headers, load_json_object, loads, malformed,
                     max_tokens_of, now, parse_data_uri, scrub, stop_list, tool_choice_kind)

DEFAULT_REGION = "us-east-1"
SIGNING_NAME = "bedrock"
COHERE_BATCH = 96

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
    "malformed_model_output": "stop", "malformed_tool_use": "stop",
}

# exception name (lower-cased; REST errors are PascalCase, stream frames camelCase) -> status
EXCEPTION_STATUS = {
    "validationexception": 400, "servicequotaexceededexception": 400, "conflictexception": 400,
    "accessdeniedexception": 403, "unrecognizedclientexception": 403,
    "invalidsignatureexception": 403, "incompletesignatureexception": 403,
    "expiredtokenexception": 403, "missingauthenticationtokenexception": 403,
    "resourcenotfoundexception": 404, "modeltimeoutexception": 408,
    "throttlingexception": 429, "modelnotreadyexception": 429, "toomanyrequestsexception": 429,
    "modelerrorexception": 424, "modelstreamerrorexception": 424,
    "internalserverexception": 500, "serviceunavailableexception": 503,
}

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                 "image/gif": "gif", "image/webp": "webp"}


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_from_bedrock(u: Any) -> Usage | None:
    """inputTokens excludes cache reads/writes: prompt = input + cacheRead + cacheWrite."""
    if not isinstance(u, dict):
        return None
    read = int(u.get("cacheReadInputTokens") or 0)
    return Usage(prompt_tokens=int(u.get("inputTokens") or 0) + read
                 + int(u.get("cacheWriteInputTokens") or 0),
                 completion_tokens=int(u.get("outputTokens") or 0), cached_tokens=read)


def sanitize_error_type(value: str | None) -> str:
    """``ns#ValidationException:http://...`` -> ``ValidationException`` (restJson1 rules)."""
    if not value:
        return ""
    value = value.split(":", 1)[0]
    return value.split("#", 1)[1] if "#" in value else value


def encode_model_id(model_id: str) -> str:
    return quote(model_id, safe="-._~")


# ================================================================================================
# application/vnd.amazon.eventstream
# ================================================================================================
class EventStreamError(UpstreamError):
    """Corrupt event-stream framing (bad CRC, impossible lengths, truncated frame)."""

    def __init__(self, message: str):
        super().__init__(502, f"The upstream provider sent a corrupt event stream: {message}.",
                         "api_error", "malformed_response", "malformed_response")


@dataclass
class EventFrame:
    headers: dict[str, Any]
    payload: bytes


# header value type codes
BOOL_TRUE, BOOL_FALSE, BYTE, SHORT, INTEGER, LONG, BYTE_ARRAY, STRING, TIMESTAMP, UUID = range(10)


def _encode_header_value(value: Any) -> bytes:
    if isinstance(value, tuple):  # explicit (type_code, value)
        code, value = value
    elif isinstance(value, bool):
        code = BOOL_TRUE if value else BOOL_FALSE
    elif isinstance(value, int):
        code = INTEGER if -2**31 <= value < 2**31 else LONG
    elif isinstance(value, (bytes, bytearray)):
        code = BYTE_ARRAY
    elif isinstance(value, str):
        code = STRING
    elif isinstance(value, datetime):
        code = TIMESTAMP
    elif isinstance(value, uuid.UUID):
        code = UUID
    else:
        raise TypeError(f"unsupported event-stream header value {value!r}")
    if code in (BOOL_TRUE, BOOL_FALSE):
        return bytes([code])
    if code == BYTE:
        return bytes([code]) + struct.pack(">b", value)
    if code == SHORT:
        return bytes([code]) + struct.pack(">h", value)
    if code == INTEGER:
        return bytes([code]) + struct.pack(">i", value)
    if code == LONG:
        return bytes([code]) + struct.pack(">q", value)
    if code in (BYTE_ARRAY, STRING):
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return bytes([code]) + struct.pack(">H", len(raw)) + raw
    if code == TIMESTAMP:
        ms = value if isinstance(value, int) else int(round(value.timestamp() * 1000))
        return bytes([code]) + struct.pack(">q", ms)
    if code == UUID:
        raw = value.bytes if isinstance(value, uuid.UUID) else bytes(value)
        if len(raw) != 16:
            raise ValueError("uuid header values are 16 bytes")
        return bytes([code]) + raw
    raise ValueError(f"unknown header type {code}")


def encode_headers(headers: dict[str, Any]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw = name.encode("utf-8")
        if not 1 <= len(raw) <= 255:
            raise ValueError("header names are 1..255 bytes")
        out += bytes([len(raw)]) + raw + _encode_header_value(value)
    return bytes(out)


def encode_event_frame(headers: dict[str, Any], payload: bytes = b"") -> bytes:
    """One event-stream message. Header values: bool, int (int32, or int64 if larger), bytes,
    str, datetime (timestamp), uuid.UUID, or an explicit ``(type_code, value)`` tuple."""
    hdr = encode_headers(headers)
    total = 12 + len(hdr) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdr))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + hdr + bytes(payload)
    return msg + struct.pack(">I", zlib.crc32(msg))


def event_frame(event_type: str, payload: Any) -> bytes:
    """Convenience for fakes/tests: a ConverseStream ``event`` frame with a JSON payload."""
    body = payload if isinstance(payload, (bytes, bytearray)) else dumps(payload)
    return encode_event_frame({":event-type": event_type, ":content-type": "application/json",
                               ":message-type": "event"}, bytes(body))


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_event_frame({":exception-type": exception_type,
                               ":content-type": "application/json",
                               ":message-type": "exception"}, dumps({"message": message}))


def decode_headers(data: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    pos, end = 0, len(data)
    try:
        while pos < end:
            nlen = data[pos]
            pos += 1
            if nlen == 0:
                raise EventStreamError("empty header name")
            name = data[pos:pos + nlen].decode("utf-8")
            pos += nlen
            code = data[pos]
            pos += 1
            if code == BOOL_TRUE:
                value: Any = True
            elif code == BOOL_FALSE:
                value = False
            elif code == BYTE:
                value = struct.unpack_from(">b", data, pos)[0]
                pos += 1
            elif code == SHORT:
                value = struct.unpack_from(">h", data, pos)[0]
                pos += 2
            elif code == INTEGER:
                value = struct.unpack_from(">i", data, pos)[0]
                pos += 4
            elif code in (LONG, TIMESTAMP):
                ms = struct.unpack_from(">q", data, pos)[0]
                pos += 8
                value = ms if code == LONG else \
                    datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
            elif code in (BYTE_ARRAY, STRING):
                vlen = struct.unpack_from(">H", data, pos)[0]
                pos += 2
                raw = bytes(data[pos:pos + vlen])
                if len(raw) != vlen:
                    raise EventStreamError("truncated header value")
                pos += vlen
                value = raw.decode("utf-8") if code == STRING else raw
            elif code == UUID:
                raw = bytes(data[pos:pos + 16])
                if len(raw) != 16:
                    raise EventStreamError("truncated uuid header")
                value = uuid.UUID(bytes=raw)
                pos += 16
            else:
                raise EventStreamError(f"unknown header type {code}")
            if pos > end:
                raise EventStreamError("truncated header")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise EventStreamError("bad headers") from None
    return headers


class EventStreamParser:
    """Incremental frame parser: buffers until a whole message is present, checks both CRCs."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[EventFrame]:
        self._buf += data
        frames: list[EventFrame] = []
        buf = self._buf
        while len(buf) >= 12:
            total, hlen, prelude_crc = struct.unpack_from(">III", buf, 0)
            if zlib.crc32(bytes(buf[:8])) != prelude_crc:
                raise EventStreamError("prelude CRC mismatch")
            if total < 16 or hlen > total - 16:
                raise EventStreamError("impossible lengths")
            if len(buf) < total:
                break
            (msg_crc,) = struct.unpack_from(">I", buf, total - 4)
            if zlib.crc32(bytes(buf[:total - 4])) != msg_crc:
                raise EventStreamError("message CRC mismatch")
            headers = decode_headers(bytes(buf[12:12 + hlen]))
            frames.append(EventFrame(headers, bytes(buf[12 + hlen:total - 4])))
            del buf[:total]
        return frames

    def close(self) -> list[EventFrame]:
        if self._buf:
            n = len(self._buf)
            self._buf.clear()
            raise EventStreamError(f"stream ended inside a frame ({n} bytes left)")
        return []


def decode_event_frames(data: bytes) -> list[EventFrame]:
    p = EventStreamParser()
    frames = p.feed(data)
    p.close()
    return frames


def frame_error(frame: EventFrame, provider: str = "",
                secrets: dict | None = None) -> UpstreamError | None:
    """UpstreamError for an ``exception``/``error`` frame; None for normal events."""
    mtype = frame.headers.get(":message-type")
    if mtype == "exception":
        name = str(frame.headers.get(":exception-type") or "")
        message = None
        if frame.payload:
            try:
                message = extract_error_fields(loads(frame.payload))[0]
            except ValueError:
                pass
        status = EXCEPTION_STATUS.get(name.lower(), 500)
        return error_for_status(status, message or name or "Upstream stream error.",
                                provider=provider, secrets=secrets)
    if mtype == "error":
        code = str(frame.headers.get(":error-code") or "")
        message = str(frame.headers.get(":error-message") or code or "Upstream stream error.")
        return error_for_status(EXCEPTION_STATUS.get(code.lower(), 500), message,
                                provider=provider, secrets=secrets)
    return None


class BedrockStreamDecoder(TranslatingDecoder):
    """ConverseStream frames -> OpenAI chunks. Usage arrives in the final ``metadata`` event."""

    def __init__(self, public_model: str, provider: str = "", secrets: dict | None = None):
        super().__init__(public_model)
        self._parser = EventStreamParser()
        self._factory = ChunkFactory(public_model)
        self._tool_index: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool index
        self._stopped = False
        self._provider = provider
        self._secrets = secrets

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._frames(self._parser.feed(data))

    def close(self) -> list[dict[str, Any]]:
        out = self._frames(self._parser.close())
        if self._stopped:
            self._done = True
        return out

    @keeps_partial
    def _frames(self, frames: list[EventFrame]) -> Iterator[dict[str, Any]]:
        for frame in frames:
            err = frame_error(frame, self._provider, self._secrets)
            if err is not None:
                raise err
            if self._done:
                continue
            etype = frame.headers.get(":event-type")
            try:
                obj = loads(frame.payload) if frame.payload else {}
            except ValueError:
                raise malformed("stream event") from None
            if not isinstance(obj, dict):
                raise malformed("stream event")
            if set(obj) == {etype}:  # tolerate SDK-style wrapping {"contentBlockDelta": {...}}
                obj = obj[etype]
            chunk = self._event(etype, obj)
            if chunk is not None:
                yield chunk

    def _event(self, etype: Any, obj: dict[str, Any]) -> dict[str, Any] | None:
        f = self._factory
        if etype == "messageStart":
            return f.chunk({"content": ""})
        if etype == "contentBlockStart":
            tool = (obj.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                ti = len(self._tool_index)
                self._tool_index[int(obj.get("contentBlockIndex", 0))] = ti
                return f.chunk({"tool_calls": [{
                    "index": ti, "id": tool.get("toolUseId"), "type": "function",
                    "function": {"name": tool.get("name"), "arguments": ""}}]})
            return None
        if etype == "contentBlockDelta":
            delta = obj.get("delta") or {}
            if isinstance(delta.get("text"), str):
                return f.chunk({"content": delta["text"]}) if delta["text"] else None
            tool = delta.get("toolUse")
            if isinstance(tool, dict):
                ti = self._tool_index.get(int(obj.get("contentBlockIndex", 0)))
                piece = tool.get("input")
                if ti is None or not piece:
                    return None
                return f.chunk({"tool_calls": [{"index": ti,
                                                "function": {"arguments": str(piece)}}]})
            return None  # reasoningContent, citations, ...
        if etype == "messageStop":
            self._stopped = True
            self.finish_reason = finish_reason(obj.get("stopReason")) or "stop"
            return f.chunk({}, self.finish_reason)
        if etype == "metadata":
            usage = usage_from_bedrock(obj.get("usage"))
            if usage is not None:
                self.usage = usage
            self._done = True
            return None
        return None  # contentBlockStop, unknown events


# ================================================================================================
# request translation
# ================================================================================================
def _image_block(part: dict[str, Any], param: str) -> dict[str, Any]:
    data = parse_data_uri(image_url_of(part))
    if not data:
        raise bad_request("Bedrock only accepts inline images (data URIs), not image URLs.",
                          param)
    fmt = IMAGE_FORMATS.get(data[0])
    if not fmt:
        raise bad_request(f"Unsupported image type {data[0]!r} for Bedrock "
                          "(png, jpeg, gif, webp).", param)
    return {"image": {"format": fmt, "source": {"bytes": data[1]}}}


def translate_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """OpenAI messages -> (system blocks, Converse messages, history uses tools)."""
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array.", "messages")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    uses_tools = False

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            merged = out[-1]["content"] + blocks
            if role == "user":
                merged.sort(key=lambda b: 0 if "toolResult" in b else 1)
            out[-1]["content"] = merged
        else:
            out.append({"role": role, "content": list(blocks)})

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request("Each message must be an object.", f"messages[{i}]")
        role, content = msg.get("role"), msg.get("content")
        if role in ("system", "developer"):
            text = content_text(content)
            if text:
                system.append({"text": text})
        elif role == "user":
            blocks = []
            for j, part in enumerate(content_parts(content)):
                ptype = part.get("type")
                if ptype in ("text", "input_text"):
                    if part.get("text"):
                        blocks.append({"text": str(part["text"])})
                elif ptype == "image_url":
                    blocks.append(_image_block(part, f"messages[{i}].content[{j}]"))
                else:
                    raise bad_request(f"Unsupported content part type {ptype!r} for Bedrock.",
                                      f"messages[{i}].content[{j}].type")
            push("user", blocks)
        elif role == "assistant":
            blocks = []
            text = content_text(content)
            if text.strip():
                blocks.append({"text": text})
            for tc in msg.get("tool_calls") or []:
                fn = (tc or {}).get("function") or {}
                uses_tools = True
                blocks.append({"toolUse": {"toolUseId": tc.get("id") or "",
                                           "name": fn.get("name") or "",
                                           "input": args_to_obj(fn.get("arguments"))}})
            push("assistant", blocks)
        elif role == "tool":
            uses_tools = True
            text = content_text(content)
            push("user", [{"toolResult": {"toolUseId": msg.get("tool_call_id") or "",
                                          "content": [{"text": text if text else "(empty)"}],
                                          "status": "success"}}])
        else:
            raise bad_request(f"Unsupported message role {role!r}.", f"messages[{i}].role")
    if out and out[-1]["role"] == "assistant":  # prefill: no trailing whitespace
        last = out[-1]["content"][-1]
        if "text" in last:
            last["text"] = last["text"].rstrip()
    if not out:
        raise bad_request("messages must contain at least one user or assistant message.",
                          "messages")
    return system, out, uses_tools


class BedrockAdapter(Adapter):
    type = "bedrock"
    label = "Amazon Bedrock"
    config_fields = ("region",)
    secret_fields = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    optional_secret_fields = ("aws_session_token",)

    # --- addressing / signing ------------------------------------------------------------------
    @property
    def region(self) -> str:
        return str((self.provider.config or {}).get("region") or DEFAULT_REGION)

    @property
    def runtime_url(self) -> str:
        return self.base_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"

    @property
    def control_url(self) -> str:
        base = self.base_url
        if not base:
            return f"https://bedrock.{self.region}.amazonaws.com"
        parts = urlsplit(base)
        if parts.hostname and parts.hostname.startswith("bedrock-runtime"):
            return base.replace("//bedrock-runtime", "//bedrock", 1)
        return base

    def _model_url(self, model_id: str, op: str) -> str:
        if not model_id:
            raise bad_request("No Bedrock model id configured for this model.", "model")
        return f"{self.runtime_url}/model/{encode_model_id(model_id)}/{op}"

    def sign(self, method: str, url: str, headers: dict[str, str],
             body: bytes | None) -> dict[str, str]:
        """Headers with auth added: Bearer API key, else SigV4 (botocore's signer)."""
        headers = dict(headers)
        api_key = self.secret("api_key")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
            return headers
        ak, sk = self.secret("aws_access_key_id"), self.secret("aws_secret_access_key")
        if not ak or not sk:
            raise UpstreamError(502, "The Bedrock provider has no AWS credentials configured.",
                                "api_error", "upstream_auth_failed", "upstream_auth")
        try:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
        except ImportError as e:  # pragma: no cover - botocore is a dependency
            raise RuntimeError("botocore is required to sign Bedrock requests") from e
        req = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(Credentials(ak, sk, self.secret("aws_session_token")), SIGNING_NAME,
                  self.region).add_auth(req)
        return {k: v for k, v in req.headers.items()}

    def _request(self, method: str, url: str, body: bytes | None, accept: str = "application/json",
                 stream: bool = False) -> UpstreamRequest:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return UpstreamRequest(method, url, self.sign(method, url, headers, body), body,
                               stream=stream)

    # --- chat ----------------------------------------------------------------------------------
    def translate_request(self, body: dict[str, Any]) -> dict[str, Any]:
        system, messages, uses_tools = translate_messages(body.get("messages"))
        p = self.provider
        out: dict[str, Any] = {"messages": messages}
        if system:
            out["system"] = system
        inf: dict[str, Any] = {}
        mt = max_tokens_of(body)
        if mt is None:
            mt = p.default_max_tokens
        if mt is not None:
            inf["maxTokens"] = mt
        temp = body.get("temperature")
        if temp is None:
            temp = p.default_temperature
        if temp is not None:
            inf["temperature"] = temp
        if body.get("top_p") is not None:
            inf["topP"] = body["top_p"]
        stops = stop_list(body.get("stop"))
        if stops:
            inf["stopSequences"] = stops
        if inf:
            out["inferenceConfig"] = inf
        if body.get("n") not in (None, 1):
            raise bad_request("Bedrock does not support n > 1.", "n")
        tools = function_tools(body.get("tools"))
        if tools:
            kind, name = tool_choice_kind(body.get("tool_choice"))
            cfg: dict[str, Any] = {"tools": [{"toolSpec": {
                "name": t["name"], **({"description": t["description"]} if t["description"]
                                      else {}),
                "inputSchema": {"json": t["parameters"]}}} for t in tools]}
            if kind == "auto":
                cfg["toolChoice"] = {"auto": {}}
            elif kind == "required":
                cfg["toolChoice"] = {"any": {}}
            elif kind == "tool":
                cfg["toolChoice"] = {"tool": {"name": name}}
            # "none" has no ToolChoice member: drop the tools, unless the history holds
            # toolUse/toolResult blocks (then Bedrock requires toolConfig) - best effort.
            if kind != "none" or uses_tools:
                out["toolConfig"] = cfg
        return out

    def chat_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        stream = bool(body.get("stream"))
        payload = dumps(self.translate_request(body))
        if stream:
            return self._request("POST", self._model_url(upstream_model, "converse-stream"),
                                 payload, "application/vnd.amazon.eventstream", stream=True)
        return self._request("POST", self._model_url(upstream_model, "converse"), payload)

    def parse_chat_response(self, data: bytes, public_model: str) -> tuple[dict[str, Any], Usage]:
        obj = load_json_object(data)
        msg = (obj.get("output") or {}).get("message")
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
            raise malformed()
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for block in msg["content"]:
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif isinstance(block.get("toolUse"), dict):
                tu = block["toolUse"]
                tool_calls.append({"id": tu.get("toolUseId"), "type": "function",
                                   "function": {"name": tu.get("name"),
                                                "arguments": args_to_str(tu.get("input"))}})
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(texts) if texts or not tool_calls else None,
                                   "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        usage = usage_from_bedrock(obj.get("usage")) or Usage(estimated=True)
        return ({"id": completion_id(), "object": "chat.completion", "created": now(),
                 "model": public_model,
                 "choices": [{"index": 0, "message": message, "logprobs": None,
                              "finish_reason": finish_reason(obj.get("stopReason")) or "stop"}],
                 "usage": usage.as_openai()}, usage)

    def stream_decoder(self, public_model: str) -> BedrockStreamDecoder:
        return BedrockStreamDecoder(public_model, self.provider.name, self.provider.secrets)

    # --- embeddings ----------------------------------------------------------------------------
    @staticmethod
    def embedding_family(model_id: str) -> str:
        mid = model_id.lower()
        # inference-profile prefixes ("us.", "eu.", ...) and ARNs end with the model id
        tail = mid.rsplit("/", 1)[-1]
        if "amazon.titan-embed" in tail:
            return "titan"
        if "cohere.embed" in tail:
            return "cohere"
        raise bad_request(f"Bedrock model {model_id!r} is not a supported embeddings model "
                          "(amazon.titan-embed*, cohere.embed*).", "model")

    def _embedding_bodies(self, body: dict[str, Any], model_id: str) -> list[dict[str, Any]]:
        family = self.embedding_family(model_id)
        inputs = embedding_inputs(body)
        if family == "titan":
            dims = body.get("dimensions")
            extra = {"dimensions": dims} if ("v2" in model_id.lower()
                                              and dims in (256, 512, 1024)) else {}
            return [{"inputText": text, **extra} for text in inputs]
        input_type = (body.get("input_type")
                      or (self.provider.config or {}).get("cohere_input_type")
                      or "search_document")
        return [{"texts": inputs[i:i + COHERE_BATCH], "input_type": input_type,
                 "embedding_types": ["float"]}
                for i in range(0, len(inputs), COHERE_BATCH)]

    def embeddings_requests(self, body: dict[str, Any],
                            upstream_model: str) -> list[UpstreamRequest]:
        url = self._model_url(upstream_model, "invoke")
        return [self._request("POST", url, dumps(b))
                for b in self._embedding_bodies(body, upstream_model)]

    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        reqs = self.embeddings_requests(body, upstream_model)
        if len(reqs) != 1:
            raise bad_request(f"Bedrock model {upstream_model!r} takes one input per call; "
                              "this request needs several (use embeddings_requests).", "input")
        return reqs[0]

    def parse_embeddings_response(self, data: bytes, public_model: str,
                                  body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        return self.parse_embeddings_responses([data], public_model, body)

    def parse_embeddings_responses(self, datas: list[bytes], public_model: str,
                                   body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        vectors: list[list[float]] = []
        tokens = 0
        estimated = False
        for data in datas:
            obj = load_json_object(data)
            if isinstance(obj.get("embedding"), list):  # Titan
                vectors.append(obj["embedding"])
                if obj.get("inputTextTokenCount") is not None:
                    tokens += int(obj["inputTextTokenCount"])
                else:
                    estimated = True
            elif "embeddings" in obj:  # Cohere: list, or {"float": [...]} by type
                emb = obj["embeddings"]
                if isinstance(emb, dict):
                    emb = emb.get("float")
                if not isinstance(emb, list):
                    raise malformed()
                vectors.extend(emb)
                estimated = True  # Cohere via Bedrock reports no token counts
            else:
                raise malformed()
        if estimated:
            # rough estimate (~4 chars per token) so usage is never zero
            texts = embedding_inputs(body)
            tokens = max(tokens, sum(math.ceil(len(t) / 4) for t in texts))
        usage = Usage(prompt_tokens=tokens, estimated=estimated)
        return embeddings_list(vectors, public_model, body, usage), usage

    # --- errors --------------------------------------------------------------------------------
    def parse_error(self, status: int, headers: dict[str, str], data: bytes) -> UpstreamError:
        h = lower_headers(headers)
        message = code = None
        try:
            obj = loads(data) if data else None
            message, _type, code, _param = extract_error_fields(obj)
            if isinstance(obj, dict) and not code:
                code = obj.get("__type") or obj.get("code")
        except (ValueError, UnicodeDecodeError):
            obj = None
        name = sanitize_error_type(h.get("x-amzn-errortype") or (str(code) if code else ""))
        mapped = EXCEPTION_STATUS.get(name.lower())
        if mapped and status in (0, 400, 500) and mapped != status:
            status = mapped  # trust the modeled error name over a generic status
        if status == 400 and message and "model identifier is invalid" in message.lower():
            return UpstreamError(404, scrub(message, self.provider.secrets),
                                 "invalid_request_error", "model_not_found", "not_found")
        return error_for_status(status, message, provider=self.provider.name, headers=headers,
                                secrets=self.provider.secrets)

    # --- health / models -----------------------------------------------------------------------
    def models_request(self) -> UpstreamRequest:
        return self._request("GET", f"{self.control_url}/foundation-models", None)

    def parse_models(self, data: bytes) -> list[dict[str, Any]]:
        obj = load_json_object(data, "model list")
        items = obj.get("modelSummaries")
        if not isinstance(items, list):
            raise malformed("model list")
        out = []
        for m in items:
            if not isinstance(m, dict) or not m.get("modelId"):
                continue
            outputs = [str(x).upper() for x in m.get("outputModalities") or []]
            if "EMBEDDING" in outputs:
                kind = "embedding"
            elif "TEXT" in outputs:
                kind = "chat"
            else:
                continue  # image/video generators
            entry: dict[str, Any] = {"id": str(m["modelId"]), "kind": kind}
            if m.get("modelName"):
                entry["name"] = m["modelName"]
            if m.get("providerName"):
                entry["provider"] = m["providerName"]
            if "responseStreamingSupported" in m:
                entry["streaming"] = bool(m["responseStreamingSupported"])
            out.append(entry)
        return out
