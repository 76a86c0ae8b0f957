"""The gateway's OpenAPI 3.1 document: the OpenAI-compatible `/v1` face and the `/api/admin` API.

`build_document()` returns the document as a plain dict; `bp` serves it at
`GET /api/openapi.json` (no authentication: it describes the API, it holds no data).

The schemas describe what the gateway *accepts*, exactly, so a client generated from them is
never surprised and a fuzzer can hold the server to them:

* Admin fields go through `app.services.validation`, which is lenient in documented ways: an
  integer or number field also takes a numeric string and treats `null` or `""` as "not set";
  a boolean also takes "true"/"false"/"yes"/"no"/"on"/"off"/"y"/"n"/"1"/"0"/"" (any case);
  a list of strings also takes one comma- or newline-separated string; text is trimmed before
  its length is checked and blank text counts as not given. Each such field is an `anyOf` whose
  first branch is the canonical form (what clients should send).
* `/v1` request fields are validated partly by the gateway (model, messages, stream,
  temperature/top_p types, token counts, embeddings input) and the rest is forwarded as is to
  the upstream provider, which enforces the remaining OpenAI constraints; an upstream refusal
  comes back as a 400 in the same error shape. The schemas give the OpenAI constraints.

Enumerations (provider types, scopes, strategies, ...) are read from the code that enforces
them, so the document cannot drift from the validators.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from flask import Blueprint, Response

bp = Blueprint("openapi", __name__)

INT64_MAX = 2**63 - 1
JSON = "application/json"
SSE = "text/event-stream"

# -------------------------------------------------------------------------------- regexes
# (ECMA-262 compatible; `\s`/`\d` also mean what Python's str.strip()/int() accept)
INT_STRING = r"^\s*[+-]?\d+(_\d+)*\s*$"
NUMBER_STRING = (r"^\s*[+-]?((\d+(_\d+)*)(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+(_\d+)*)?\s*$")
BOOL_STRING = (r"^([Tt][Rr][Uu][Ee]|1|[Yy]([Ee][Ss])?|[Oo][Nn]|[Ff][Aa][Ll][Ss][Ee]|0|[Nn][Oo]?"
               r"|[Oo][Ff][Ff])?$")
URL_PATTERN = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://[^/?#]"
BEDROCK_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"
NON_BLANK = r"\S"
# what Werkzeug's <path:...> converter can route: no newline, no leading or doubled slash
ROUTABLE = {"type": "string", "minLength": 1, "not": {"pattern": r"^/|//|\n"}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _trimmed(max_len: int, required: bool) -> str:
    """A pattern for text whose trimmed length is at most max_len (and not blank if required)."""
    inner = rf"\S([\s\S]{{0,{max_len - 2}}}\S)?" if max_len >= 2 else r"\S"
    return rf"^\s*{inner}\s*$" if required else rf"^\s*({inner})?\s*$"


def text(max_len: int, description: str = "", *, required: bool = False,
         nullable: bool = True) -> dict:
    """v.text: trimmed; blank means not given; at most max_len characters after trimming."""
    note = f"At most {max_len} characters (surrounding whitespace is trimmed first)."
    if required:
        note += " Must not be blank."
    schema = {"type": "string", "pattern": _trimmed(max_len, required)}
    if not required and nullable:
        schema["type"] = ["string", "null"]
        note += " `null` or blank: not set."
    return {**schema, "description": f"{description} {note}".strip()}


def integer(lo: int | None = None, hi: int | None = None, description: str = "", *,
            nullable: bool = True, default: Any = None) -> dict:
    """v.integer: an integer (a float with no fraction counts), a numeric string, null or ""."""
    # the database's 64-bit range bounds every integer field
    canonical: dict[str, Any] = {"type": "integer",
                                 "minimum": -INT64_MAX if lo is None else lo,
                                 "maximum": INT64_MAX if hi is None else hi}
    branches = [canonical, {"type": "string", "pattern": INT_STRING,
                            "description": "The integer as a string (same bounds)."}]
    if nullable:
        branches += [{"type": "null"}, {"const": "", "description": "Same as null."}]
    out: dict[str, Any] = {"anyOf": branches, "description": description}
    if default is not None:
        out["default"] = default
    return out


def number(lo: float | None = None, hi: float | None = None, description: str = "", *,
           nullable: bool = True, default: Any = None, null: bool = True) -> dict:
    """v.number / v.decimal: a finite number, a numeric string, null or ""."""
    canonical: dict[str, Any] = {"type": "number"}
    if lo is not None:
        canonical["minimum"] = lo
    if hi is not None:
        canonical["maximum"] = hi
    branches = [canonical, {"type": "string", "pattern": NUMBER_STRING,
                            "description": "The number as a string (same bounds); exact "
                                           "decimals are kept for prices and budgets."}]
    if nullable:
        branches += ([{"type": "null"}] if null else []) + [
            {"const": "", "description": "Not set." if not null else "Same as null."}]
    out: dict[str, Any] = {"anyOf": branches, "description": description}
    if default is not None:
        out["default"] = default
    return out


def boolean(description: str = "", default: bool | None = None) -> dict:
    """v.boolean: true/false, a boolean word (any case), or null (= the default)."""
    out: dict[str, Any] = {
        "anyOf": [{"type": "boolean"},
                  {"type": "string", "pattern": BOOL_STRING,
                   "description": "true, 1, yes, on, y / false, 0, no, off, n, \"\" (any case)."},
                  {"type": "null", "description": "The default."}],
        "description": description}
    if default is not None:
        out["default"] = default
    return out


def string_list(description: str = "", *, allowed: tuple | list | None = None,
                max_items: int = 500, at_least_one: bool = False,
                item_max_len: int | None = None, lines_only: bool = False) -> dict:
    """v.string_list: an array of strings (trimmed, blanks dropped, de-duplicated), or one
    comma/newline-separated string, or null (= empty)."""
    if item_max_len:
        item: dict[str, Any] = {"type": "string", "pattern": _trimmed(item_max_len, False)}
        array: dict[str, Any] = {"type": "array", "items": item, "maxItems": max_items}
        joined: dict[str, Any] = {"type": "string", "description": (
            "One value per line." if lines_only else "Comma- or newline-separated values.")}
        note = (f"At most {max_items} items of at most {item_max_len} characters each. Items "
                "are trimmed; blank and repeated items are dropped.")
        return {"anyOf": [array, joined, {"type": "null", "description": "Same as []."}],
                "description": f"{description} {note}".strip()}
    if allowed:
        words = "|".join(allowed)
        item: dict[str, Any] = {"type": "string", "pattern": rf"^\s*({words})?\s*$"}
        piece = rf"\s*(({words})\s*)?"
        joined: dict[str, Any] = {"type": "string", "pattern": rf"^{piece}([,\n]{piece})*$"}
    else:
        item = {"type": "string"}
        joined = {"type": "string"}
    array: dict[str, Any] = {"type": "array", "items": item, "maxItems": max_items}
    if at_least_one:
        if allowed:
            array["contains"] = {"type": "string", "pattern": rf"^\s*({words})\s*$"}
            joined = {"allOf": [joined, {"pattern": rf"({words})"}], "type": "string"}
        else:
            array["contains"] = {"type": "string", "pattern": NON_BLANK}
            joined = {"type": "string", "pattern": r"[^\s,]"}
    joined["description"] = ("One value per line." if lines_only
                             else "Comma- or newline-separated values.")
    branches = [array, joined]
    if not at_least_one:
        branches.append({"type": "null", "description": "Same as an empty list."})
    note = f"At most {max_items} items. Items are trimmed; blank and repeated items are dropped."
    if allowed:
        note += f" Allowed values: {', '.join(allowed)}."
    return {"anyOf": branches, "description": f"{description} {note}".strip()}


def enum(values, description: str = "", default: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "string", "enum": list(values), "description": description}
    if default is not None:
        out["default"] = default
    return out


def timestamp(description: str) -> dict:
    return {"anyOf": [{"type": "string", "format": "date-time"},
                      {"type": "null"}, {"const": "", "description": "Same as null."}],
            "description": f"{description} ISO 8601; a time without an offset is UTC.",
            "examples": ["2027-01-31T00:00:00Z"]}


def iso_out(description: str = "", null: bool = False) -> dict:
    return {"type": ["string", "null"] if null else "string", "format": "date-time",
            "description": description}


def _obj(properties: dict, required: list[str] | None = None, description: str = "",
         additional: Any = None) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if description:
        out["description"] = description
    if additional is not None:
        out["additionalProperties"] = additional
    return out


def _list_of(item_ref: str, description: str = "") -> dict:
    return _obj({"object": {"const": "list"}, "data": {"type": "array", "items": _ref(item_ref)}},
                ["object", "data"], description, False)


# -------------------------------------------------------------------------------- components
def _schemas() -> dict[str, Any]:
    from app.models.key import SCOPES
    from app.models.model import KINDS
    from app.models.provider import HEALTH_STATUSES, TRUST_LEVELS
    from app.providers.registry import ADAPTERS, PRESETS
    from app.services.groups import STRATEGIES
    from app.services.keys import LIMIT_FIELDS, PERIODS
    from app.services.providers import SECRET_FIELDS, type_choices
    from app.services.settings import SENSITIVITY_ACTIONS
    from app.services.settings import TRUST_LEVELS as SETTINGS_TRUST

    no_default_base = sorted(t for t in ADAPTERS if t in ("azure-openai", "openai-compatible"))
    preset_only = sorted(set(PRESETS) - set(ADAPTERS))  # "xai" is a type of its own
    s: dict[str, Any] = {}

    # ---- errors
    s["Error"] = _obj({"error": _obj({
        "message": {"type": "string", "description": "Human-readable reason."},
        "type": {"type": "string", "description": "OpenAI error type, e.g. invalid_request_error, "
                 "authentication_error, permission_error, rate_limit_error, insufficient_quota, "
                 "api_error, timeout_error."},
        "param": {"type": ["string", "null"], "description": "The request field at fault, if any."},
        "code": {"type": ["string", "null"], "description": "Machine-readable code, e.g. "
                 "missing_api_key, invalid_api_key, insufficient_scope, validation_error, "
                 "not_found, conflict, model_not_found, rate_limit_exceeded."}},
        ["message", "type", "param", "code"], additional=False)},
        ["error"], "Every error, on /v1 and /api, has this OpenAI shape.", False)

    # ---- shared admin pieces
    s["Limits"] = _obj({f: integer(1, 10**12, {
        "rpm": "Requests per minute.", "rph": "Requests per hour.", "rpd": "Requests per day.",
        "tpm": "Tokens (prompt + completion) per minute.", "tpd": "Tokens per day.",
        "concurrency": "Requests in flight at once."}[f]) for f in LIMIT_FIELDS},
        description="Rate limits; unknown fields are refused (422).", additional=False)
    s["LimitsInput"] = {"anyOf": [_ref("Limits"), {"type": "null", "description": "No limits."}],
                        "description": "Rate limits (null: none). Replaces the previous limits."}
    s["LimitsOut"] = {"type": ["object", "null"], "description": "The limits that are set.",
                      "properties": {f: {"type": ["integer", "null"]} for f in LIMIT_FIELDS},
                      "additionalProperties": False}
    s["BudgetInput"] = {
        "description": "A spending cap. null or {} removes it. Other fields are ignored.",
        "anyOf": [
            _obj({"amount_usd": number(0, 10**12, "Cap in USD (exact decimal; a string keeps "
                                           "every digit).", nullable=False),
                  "period": enum(PERIODS, "Calendar period (UTC); weeks start on Monday.",
                                 "month"),
                  "soft_pct": integer(1, 100, "Percentage of the cap at which responses carry "
                                              "x-gateway-budget-warning.", default=80)},
                 ["amount_usd"]),
            {"type": "object", "maxProperties": 0},
            {"type": "null"}]}
    s["Budget"] = {"type": ["object", "null"], "properties": {
        "amount_usd": {"type": "string", "description": "Decimal string."},
        "period": enum(PERIODS), "soft_pct": {"type": "integer", "minimum": 1, "maximum": 100}},
        "required": ["amount_usd", "period", "soft_pct"], "additionalProperties": False}
    s["SensitivityInput"] = _obj({
        "action": enum(SENSITIVITY_ACTIONS, "allow: no inspection; route: sensitive requests go "
                       "only to providers of a trusted level; block: refuse them (400 "
                       "content_policy); redact: mask the findings before forwarding."),
        "threshold": number(0.01, 1, "Detector confidence at which content counts as "
                                     "sensitive (null is refused; \"\": the default 0.5).",
                            null=False),
        "trusted_levels": string_list("Provider trust levels that may receive sensitive "
                                      "content under `route`.", allowed=SETTINGS_TRUST),
        "keywords": string_list("Custom keywords (whole words, case-insensitive).",
                                max_items=200, item_max_len=200),
        "patterns": string_list("Custom regular expressions (Python syntax; as one string: one "
                                "per line). Patterns that do not compile or can backtrack "
                                "catastrophically are refused (422).", max_items=100,
                                lines_only=True)},
        description="A sensitivity policy (fields not given keep their value). Other fields are "
                    "ignored.")
    s["Sensitivity"] = {"type": "object", "properties": {
        "action": enum(SENSITIVITY_ACTIONS), "threshold": {"type": ["number", "null"]},
        "trusted_levels": {"type": "array", "items": enum(SETTINGS_TRUST)},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "patterns": {"type": "array", "items": {"type": "string"}}}}
    s["BreakerState"] = _obj({
        "state": enum(("closed", "open", "half-open", "disabled")),
        "consecutive_failures": {"type": "integer", "minimum": 0},
        "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "requests_in_window": {"type": "integer", "minimum": 0},
        "open_until": {"type": ["number", "null"], "description": "Epoch seconds."},
        "cooldown_s": {"type": ["number", "null"]},
        "opened_at": {"type": ["number", "null"], "description": "Epoch seconds."},
        "reason": {"type": ["string", "null"]},
        "probe_in_flight": {"type": "boolean"}},
        ["state", "consecutive_failures", "error_rate", "requests_in_window", "open_until",
         "cooldown_s", "opened_at", "reason", "probe_in_flight"],
        "A deployment's circuit breaker.")
    s["Deleted"] = _obj({"id": {"type": "integer"}, "deleted": {"const": True}},
                        ["id", "deleted"], additional=False)

    # ---- providers
    secret = {"anyOf": [{"type": "string", "maxLength": 4096}, {"type": "null"}],
              "writeOnly": True,
              "description": "Write-only secret, stored encrypted and never returned. null or "
                             "\"\" keeps the stored value."}
    config = {
        "type": "object",
        "description": "Type-specific settings: OpenAI `organization`/`project`, Azure "
                       "`deployment` names, Bedrock `region` (required for bedrock, like "
                       "us-east-1), Ollama `keep_alive`, `stream_include_usage: false` for "
                       "OpenAI-compatible servers that reject stream_options. Values are strings "
                       "(at most 500 characters), numbers or booleans; null or \"\" drops a key. "
                       "Secrets are top-level fields, never config keys. null: {}.",
        "propertyNames": {"maxLength": 64},
        "properties": {**{f: {"enum": [None, ""], "description": "Not allowed here: send it as "
                              "a top-level field."} for f in SECRET_FIELDS},
                       "preset": {"description": "Ignored (set from `type`)."},
                       "region": {"anyOf": [{"type": "string", "maxLength": 500},
                                            {"type": ["number", "boolean", "null"]}],
                                  "description": "Bedrock region (must look like us-east-1)."}},
        "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 500},
                                           {"type": ["number", "boolean", "null"]}]}}
    url = {"type": "string", "allOf": [{"pattern": _trimmed(500, True)}, {"pattern": URL_PATTERN}],
           "description": "http(s) base URL with a host (and a valid port, if any), at most 500 "
                          "characters; a trailing / is removed.",
           "examples": ["https://api.openai.com/v1"]}
    provider_fields = {
        "name": text(120, "Unique display name.", required=True),
        "type": enum(type_choices(), "Adapter type, or an OpenAI-compatible preset name (" +
                     ", ".join(preset_only) + ") which stores type openai-compatible with "
                     "the preset's api_base."),
        "api_base": {"anyOf": [url, {"type": "null"}, {"const": ""}],
                     "description": "Upstream base URL. null/\"\": the type's default "
                                    "(openai, anthropic, ollama, xai, bedrock from the region, and "
                                    "presets have one; " + ", ".join(no_default_base) +
                                    " do not)."},
        "api_version": text(40, "API version (azure-openai default 2024-10-21)."),
        "config": {"anyOf": [config, {"type": "null"}]},
        "default_temperature": number(0, 2, "Temperature sent when the client sends none "
                                            "(rounded to 2 decimals)."),
        "default_max_tokens": integer(1, 10_000_000, "Output token cap sent when the client "
                                                     "sends none."),
        "connect_timeout": number(0.1, 600, "Seconds (null: 5).", default=5.0),
        "read_timeout": number(0.1, 3600, "Seconds between bytes (null: 60).", default=60.0),
        "enabled": boolean("Disabled providers serve no traffic.", True),
        "trust_level": enum(TRUST_LEVELS, "For the sensitivity policy `route`.", "public"),
        "limits": _ref("LimitsInput"),
        **{f: secret for f in SECRET_FIELDS},
        "clear_secret": {"description": "When no new secret is sent, `true` (or \"true\", "
                                        "\"on\", \"1\") removes the stored one; any other "
                                        "value is ignored.", "examples": [True]},
    }
    bedrock_region = {"if": {"properties": {"type": {"const": "bedrock"}}, "required": ["type"]},
                      "then": {"required": ["config"], "properties": {"config": {
                          "type": "object", "required": ["region"], "properties": {
                              "region": {"type": "string", "pattern": BEDROCK_REGION}}}}}}
    s["ProviderCreate"] = {
        "type": "object", "required": ["name", "type"], "properties": provider_fields,
        "allOf": [
            {"if": {"properties": {"type": {"enum": no_default_base}}, "required": ["type"]},
             "then": {"required": ["api_base"], "properties": {"api_base": url}}},
            bedrock_region],
        "description": "Unknown fields are ignored."}
    patch_fields = dict(provider_fields)
    patch_fields["api_base"] = {**provider_fields["api_base"],
                                "description": "Upstream base URL. null/\"\" are refused "
                                "(422) except together with a preset `type`, which then sets "
                                "its own base URL."}
    s["ProviderUpdate"] = {
        "type": "object", "properties": patch_fields,
        "allOf": [
            {"if": {"properties": {"type": {"enum": preset_only}}, "required": ["type"]},
             "then": True, "else": {"properties": {"api_base": url}}},
            {"if": {"properties": {"type": {"const": "bedrock"}}, "required": ["type", "config"]},
             "then": {"properties": bedrock_region["then"]["properties"]}}],
        "description": "Only the fields sent change. Changing `type` re-validates the stored "
                       "config (a bedrock provider needs config.region); a preset `type` without "
                       "api_base also sets the preset's base URL."}
    s["Provider"] = _obj({
        "id": {"type": "integer"}, "name": {"type": "string"}, "slug": {"type": "string"},
        "type": enum(ADAPTERS), "api_base": {"type": "string"},
        "api_version": {"type": ["string", "null"]},
        "config": {"type": "object", "description": "May contain `preset`."},
        "has_api_key": {"type": "boolean"},
        "default_temperature": {"type": ["number", "null"]},
        "default_max_tokens": {"type": ["integer", "null"]},
        "connect_timeout": {"type": "number"}, "read_timeout": {"type": "number"},
        "enabled": {"type": "boolean"}, "trust_level": enum(TRUST_LEVELS),
        "limits": _ref("LimitsOut"),
        "health": _obj({"status": enum(HEALTH_STATUSES),
                        "latency_ms": {"type": ["number", "null"]},
                        "error": {"type": ["string", "null"]},
                        "checked_at": iso_out(null=True)},
                       ["status", "latency_ms", "error", "checked_at"], additional=False),
        "model_count": {"type": "integer", "minimum": 0},
        "created_at": iso_out(), "updated_at": iso_out(),
        "created_by": {"type": ["string", "null"]}, "updated_by": {"type": ["string", "null"]}},
        ["id", "name", "slug", "type", "api_base", "api_version", "config", "has_api_key",
         "default_temperature", "default_max_tokens", "connect_timeout", "read_timeout",
         "enabled", "trust_level", "limits", "health", "model_count", "created_at",
         "updated_at", "created_by", "updated_by"],
        "A provider; secrets are never returned (see has_api_key).", False)
    s["ProviderList"] = _list_of("Provider")
    s["HealthResult"] = _obj({
        "status": enum(HEALTH_STATUSES), "latency_ms": {"type": ["number", "null"]},
        "error": {"type": ["string", "null"]}, "checked_at": iso_out()},
        ["status", "latency_ms", "error", "checked_at"],
        "A live check (the adapter's cheapest authenticated call). Failures are "
        "`unhealthy` with a reason, never an error response.", False)
    s["HealthCheck"] = _obj({
        "checked_at": iso_out(), "status": enum(HEALTH_STATUSES),
        "latency_ms": {"type": ["number", "null"]}, "error": {"type": ["string", "null"]},
        "trigger": {"type": "string", "description": "manual or schedule"}},
        ["checked_at", "status", "latency_ms", "error", "trigger"], additional=False)
    s["HealthHistory"] = _list_of("HealthCheck", "The latest 100 checks, newest first.")
    s["UpstreamModel"] = _obj({
        "id": {"type": "string"}, "kind": enum(KINDS),
        "registered": {"type": "boolean", "description": "Already a model of this provider."}},
        ["id", "kind", "registered"],
        "Adapters may add fields (owned_by, display_name, name, provider, streaming, ...).")
    s["UpstreamModelList"] = _list_of("UpstreamModel")

    # ---- models (deployments)
    price = number(0, 100_000, "USD per million tokens (exact decimal).", default=0)
    model_fields = {
        "provider_id": {"anyOf": [{"type": "integer", "minimum": 1},
                                  {"type": "string", "pattern": INT_STRING}],
                        "description": "An existing provider (422 if it does not exist)."},
        "model_id": text(200, "The upstream model id.", required=True),
        "name": text(200, "Public name clients send as `model` (default: model_id). Several "
                          "enabled deployments may share a name only if it is a routing group."),
        "kind": enum(KINDS, default="chat"),
        "capabilities": {"description": "The response's nested form is accepted too: "
                                        "{streaming, tools, vision, json_mode (or json)}, each "
                                        "a boolean like supports_*; a top-level supports_* field, "
                                        "when sent, wins (the nested value is then ignored). A "
                                        "non-object is ignored.",
                         "properties": {k: {"description": f"Like supports_{k}."} for k in
                                        ("streaming", "tools", "vision", "json_mode", "json")}},
        "supports_streaming": boolean(default=True), "supports_tools": boolean(default=False),
        "supports_vision": boolean(default=False), "supports_json": boolean(default=False),
        "context_window": integer(1, 100_000_000, "Tokens."),
        "max_output_tokens": integer(1, 100_000_000, "Tokens."),
        "input_price_per_mtok": price, "output_price_per_mtok": price,
        "cached_input_price_per_mtok": number(0, 100_000, "USD per million cached input tokens."),
        "priority": integer(-1000, 1000, "Lower is tried first (strategy priority).", default=0),
        "weight": integer(0, 1000, "Share of traffic (strategy weighted).", default=1),
        "enabled": boolean(default=True), "deprecated": boolean(default=False),
        "limits": _ref("LimitsInput"),
        "log_bodies": boolean("Store request and response bodies of calls to this model in the "
                              "request log.", False),
    }
    nested = [{"if": {"not": {"required": [f"supports_{k}"]}},
               "then": {"properties": {"capabilities": {"properties": {k: boolean()}}}}}
              for k in ("streaming", "tools", "vision")]
    nested.append({"if": {"not": {"anyOf": [
        {"required": ["supports_json"]},
        {"properties": {"capabilities": {"required": ["json", "json_mode"]}}}]}},
        "then": {"properties": {"capabilities": {"properties": {
            "json": boolean(), "json_mode": boolean()}}}}})
    s["ModelCreate"] = {"type": "object", "required": ["provider_id", "model_id"],
                        "properties": model_fields, "allOf": nested,
                        "description": "Prices default to the built-in list price of a known "
                                       "model_id when none is given. Unknown fields are ignored."}
    s["ModelUpdate"] = {"type": "object", "properties": model_fields, "allOf": nested,
                        "description": "Only the fields sent change."}
    s["Model"] = _obj({
        "id": {"type": "integer"}, "provider_id": {"type": "integer"},
        "provider": {"type": "string"}, "model_id": {"type": "string"},
        "name": {"type": "string"}, "kind": enum(KINDS),
        "capabilities": _obj({k: {"type": "boolean"} for k in
                              ("streaming", "tools", "vision", "json_mode")},
                             ["streaming", "tools", "vision", "json_mode"], additional=False),
        "context_window": {"type": ["integer", "null"]},
        "max_output_tokens": {"type": ["integer", "null"]},
        "input_price_per_mtok": {"type": "number"}, "output_price_per_mtok": {"type": "number"},
        "cached_input_price_per_mtok": {"type": ["number", "null"]},
        "priority": {"type": "integer"}, "weight": {"type": "integer"},
        "limits": _ref("LimitsOut"), "enabled": {"type": "boolean"},
        "deprecated": {"type": "boolean"}, "log_bodies": {"type": "boolean"},
        "created_at": iso_out(), "updated_at": iso_out()},
        ["id", "provider_id", "provider", "model_id", "name", "kind", "capabilities",
         "context_window", "max_output_tokens", "input_price_per_mtok", "output_price_per_mtok",
         "cached_input_price_per_mtok", "priority", "weight", "limits", "enabled", "deprecated",
         "log_bodies", "created_at", "updated_at"], "A deployment: one upstream model behind a public name.",
        False)
    s["ModelList"] = _list_of("Model")

    # ---- keys
    key_fields = {
        "name": text(120, required=True),
        "owner": text(120, "A team name: the key then shares that team's budget."),
        "scopes": string_list("What the key may call (admin: this API). Default chat, "
                              "embeddings, models. At least one.", allowed=SCOPES,
                              at_least_one=True),
        "allowed_models": string_list("Public model names the key may use (empty: all)."),
        "expires_at": timestamp("After this instant the key no longer authenticates."),
        "enabled": boolean(default=True),
        "limits": _ref("LimitsInput"),
        "budget": _ref("BudgetInput"),
        "allowed_ips": string_list("IP addresses or CIDR ranges the key may be used from "
                                   "(empty: any). Each must parse (422 otherwise)."),
        "tags": {"anyOf": [{"type": "object", "propertyNames": {"maxLength": 64},
                            "additionalProperties": {"anyOf": [
                                {"type": "string", "maxLength": 200},
                                {"type": ["number", "boolean"]}]}},
                           {"type": "null"}],
                 "description": "Free-form labels: names of at most 64 characters, values strings "
                                "(at most 200) or numbers or booleans. null: {}."},
        "sensitivity": {"anyOf": [_ref("SensitivityInput"), {"type": "null"}],
                        "description": "This key's sensitivity policy, overriding the gateway's "
                                       "(null or {}: use the gateway's)."},
        "log_bodies": boolean("Store request and response bodies of this key's calls in the "
                              "request log.", False),
    }
    s["KeyCreate"] = {"type": "object", "required": ["name"], "properties": key_fields,
                      "description": "Unknown fields are ignored."}
    s["KeyUpdate"] = {"type": "object", "properties": key_fields,
                      "description": "Only the fields sent change."}
    s["Key"] = _obj({
        "id": {"type": "integer"}, "name": {"type": "string"},
        "owner": {"type": ["string", "null"]},
        "prefix": {"type": "string", "description": "The first 11 characters of the key."},
        "scopes": {"type": "array", "items": enum(SCOPES)},
        "allowed_models": {"type": "array", "items": {"type": "string"}},
        "expires_at": iso_out(null=True), "enabled": {"type": "boolean"},
        "status": enum(("active", "disabled", "expired", "revoked")),
        "limits": _obj({f: {"type": ["integer", "null"]} for f in LIMIT_FIELDS},
                       list(LIMIT_FIELDS), additional=False),
        "budget": _ref("Budget"),
        "allowed_ips": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "object"},
        "sensitivity": {"anyOf": [_ref("Sensitivity"), {"type": "null"}]},
        "log_bodies": {"type": "boolean"},
        "created_at": iso_out(), "created_by": {"type": ["string", "null"]},
        "last_used_at": iso_out(null=True), "revoked_at": iso_out(null=True)},
        ["id", "name", "owner", "prefix", "scopes", "allowed_models", "expires_at", "enabled",
         "status", "limits", "budget", "allowed_ips", "tags", "sensitivity", "log_bodies",
         "created_at", "created_by", "last_used_at", "revoked_at"], "A gateway API key (never its secret).",
        False)
    created = copy.deepcopy(s["Key"])
    created["properties"]["key"] = {"type": "string", "pattern": "^gw-",
                                    "description": "The secret; shown only here."}
    created["required"] = [*created["required"], "key"]
    created["description"] = "The new key, with its secret (shown only once)."
    s["KeyCreated"] = created
    s["KeyList"] = _list_of("Key", "Newest first; revoked keys included.")

    # ---- teams
    team_fields = {"name": text(120, "Unique; keys whose owner is this name share the budget.",
                                required=True),
                   "description": text(500), "budget": _ref("BudgetInput")}
    s["TeamCreate"] = {"type": "object", "required": ["name"], "properties": team_fields}
    s["TeamUpdate"] = {"type": "object", "properties": team_fields,
                       "description": "Only the fields sent change."}
    s["Team"] = _obj({"id": {"type": "integer"}, "name": {"type": "string"},
                      "description": {"type": ["string", "null"]}, "budget": _ref("Budget"),
                      "key_count": {"type": "integer", "minimum": 0,
                                    "description": "Unrevoked keys owned by the team."},
                      "created_at": iso_out(), "updated_at": iso_out()},
                     ["id", "name", "description", "budget", "key_count", "created_at",
                      "updated_at"], additional=False)
    s["TeamList"] = _list_of("Team")

    # ---- users
    s.update(_user_schemas())

    # ---- groups
    s["GroupInput"] = {"type": "object", "properties": {
        "strategy": enum(STRATEGIES, "How a deployment is chosen.", "priority"),
        "fallbacks": string_list("Other public names tried, in order, when every deployment of "
                                 "this one failed (not the group's own name).", max_items=10),
        "retries": integer(0, 10, "Further deployments tried after a failure.", default=2),
        "timeout_s": number(0.1, 3600, "Deadline for the whole request (null: the gateway's).")},
        "description": "Fields not sent keep their value (or default, on creation)."}
    s["Deployment"] = _obj({
        "id": {"type": "integer"}, "provider_id": {"type": "integer"},
        "provider": {"type": "string"}, "model_id": {"type": "string"},
        "priority": {"type": "integer"}, "weight": {"type": "integer"},
        "enabled": {"type": "boolean", "description": "Model and provider both enabled."},
        "latency_ms": {"type": ["number", "null"]}, "in_flight": {"type": "integer"},
        "breaker": _ref("BreakerState")},
        ["id", "provider_id", "provider", "model_id", "priority", "weight", "enabled"],
        "Live fields (latency_ms, in_flight, breaker, ...) are present for enabled deployments.")
    s["Group"] = _obj({
        "name": {"type": "string"}, "strategy": enum(STRATEGIES),
        "fallbacks": {"type": "array", "items": {"type": "string"}},
        "retries": {"type": "integer"}, "timeout_s": {"type": ["number", "null"]},
        "deployments": {"type": "array", "items": _ref("Deployment")},
        "updated_at": iso_out()},
        ["name", "strategy", "fallbacks", "retries", "timeout_s", "deployments", "updated_at"],
        "A routing group: one public name served by every deployment with that name.", False)
    s["GroupList"] = _list_of("Group")
    s["GroupDeleted"] = _obj({"name": {"type": "string"}, "deleted": {"const": True}},
                             ["name", "deleted"], additional=False)
    s["BreakerReset"] = _obj({"id": {"type": "integer"},
                              "breaker": {"anyOf": [_ref("BreakerState"), {"type": "null"}],
                                          "description": "null for a disabled deployment."}},
                             ["id", "breaker"], additional=False)

    # ---- settings, cache, prices
    s["SettingsPatch"] = _obj({
        "sensitivity": {"anyOf": [_ref("SensitivityInput"), {"type": "null"}],
                        "description": "Gateway-wide sensitivity policy (fields merge)."},
        "cache": {"anyOf": [_obj({
            "enabled": boolean("Response cache on/off."),
            "default_ttl": integer(1, 30 * 86400, "Seconds an answer is kept."),
            "max_mb": integer(1, 100_000, "Cache size cap.")},
            description="Other fields are ignored."), {"type": "null"}],
            "description": "Response cache settings (fields merge)."}},
        description="Unknown top-level settings are refused (422).", additional=False)
    s["Settings"] = _obj({
        "sensitivity": _ref("Sensitivity"),
        "cache": _obj({"enabled": {"type": "boolean"},
                       "default_ttl": {"type": ["integer", "null"]},
                       "max_mb": {"type": ["integer", "null"]}}, ["enabled"])},
        ["sensitivity", "cache"])
    s["CacheStats"] = _obj({
        **{k: {"type": "integer", "minimum": 0} for k in
           ("entries", "bytes", "max_bytes", "hits", "misses", "evictions", "expired")},
        "hit_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "process": _obj({k: {"type": "integer", "minimum": 0} for k in
                         ("hits", "misses", "puts", "refused", "errors")},
                        ["hits", "misses", "puts", "refused", "errors"],
                        "This worker's counters since it started.")},
        ["entries", "bytes", "max_bytes", "hits", "misses", "hit_rate", "evictions", "expired",
         "process"], "Totals across every worker sharing the cache store.")
    s["CacheClear"] = _obj({
        "model": text(200, "Only entries of this public model name."),
        "key_id": integer(1, None, "Only entries stored for this key id."),
        "pattern": text(200, "Only entries whose model name matches this glob (* ? [seq])."),
    }, description="Filters combine; none: clear everything. Unknown fields are ignored.")
    s["CacheCleared"] = _obj({"removed": {"type": "integer", "minimum": 0}}, ["removed"],
                             additional=False)
    s["Price"] = {"type": "object", "required": ["model_id", "known"], "properties": {
        "model_id": {"type": "string"}, "known": {"type": "boolean"},
        "matched": {"type": "string", "description": "The table entry (id prefix) used."},
        "input_price_per_mtok": {"type": "number"}, "output_price_per_mtok": {"type": "number"},
        "cached_input_price_per_mtok": {"type": ["number", "null"]}},
        "additionalProperties": False,
        "if": {"properties": {"known": {"const": True}}},
        "then": {"required": ["matched", "input_price_per_mtok", "output_price_per_mtok",
                              "cached_input_price_per_mtok"]},
        "description": "Built-in list price in USD per million tokens."}

    s.update(_usage_schemas())
    s.update(_openai_schemas())
    return s


def _user_schemas() -> dict[str, Any]:
    """Console users. Unlike the other admin bodies these are strict: unknown fields, other
    types and untrimmed text are refused (422), exactly as app/services/users.py does."""
    from app.models.user import ROLES
    from app.services import users as u

    def exact(pattern: str) -> dict:
        # `$` also matches before a final newline in Python's re: say "no newline" as well
        return {"pattern": f"^{pattern}$", "not": {"pattern": "\n"}}

    username = {"type": "string", "minLength": 1, "maxLength": u.USERNAME_MAX,
                **exact(u.USERNAME_PATTERN),
                "description": f"1-{u.USERNAME_MAX} ASCII letters, digits and . _ @ + -, starting "
                               "with a letter or digit; unique ignoring case (409 user_exists). "
                               "Not trimmed. Cannot be changed later."}
    email = {"anyOf": [{"type": "string", "maxLength": u.EMAIL_MAX, **exact(u.EMAIL_PATTERN)},
                       {"const": "", "description": "No e-mail address."},
                       {"type": "null", "description": "No e-mail address."}],
             "description": f"An address such as ops@example.com (no spaces, at most "
                            f"{u.EMAIL_MAX} characters)."}
    password = {"type": "string", "minLength": u.MIN_PASSWORD, "maxLength": u.MAX_PASSWORD,
                "pattern": "\\S", "not": {"pattern": u.PASSWORD_CONTROL}, "writeOnly": True,
                "description": f"{u.MIN_PASSWORD}-{u.MAX_PASSWORD} characters, not only whitespace, "
                               "no control characters (tabs, line breaks). Stored as a hash, never "
                               "returned."}
    teams = {"type": "array", "maxItems": u.MAX_TEAMS, "uniqueItems": True,
             "items": {"type": "string", "minLength": 1, "maxLength": u.TEAM_NAME_MAX},
             "description": "team_admin: the teams whose keys and usage the user manages (at "
                            "least one); every other role: none ([] or left out). A name the "
                            "user does not have yet must be an existing team (422 otherwise)."}
    role = enum(ROLES, "admin: everything; operator: runs the gateway (no users, settings or "
                       "teams changes); viewer: reads; team_admin: their teams' keys and usage.")
    s: dict[str, Any] = {}
    s["UserCreate"] = {
        "type": "object", "required": ["username", "role"], "additionalProperties": False,
        "properties": {"username": username, "role": role, "teams": teams, "email": email,
                       "password": {"anyOf": [password, {"type": "null"}],
                                    "description": f"{password['description']} Left out or null: "
                                                   "a strong one is generated and returned once "
                                                   "(as `password` in the response)."}},
        "allOf": [{"if": {"properties": {"role": {"const": "team_admin"}}},
                   "then": {"required": ["teams"], "properties": {"teams": {"minItems": 1}}},
                   "else": {"properties": {"teams": {"maxItems": 0}}}}],
        "description": "A local account (single-sign-on accounts are made by signing in)."}
    s["UserUpdate"] = {
        "type": "object", "additionalProperties": False,
        "properties": {
            "role": role,
            "teams": {**teams, "description": teams["description"] + " Left out: a team_admin "
                      "keeps their teams; a change to another role drops them."},
            "email": email,
            "password": {**password, "description": password["description"] + " Refused (422) "
                         "for a single-sign-on account."},
            "generate_password": {"type": "boolean", "description": "true: set a new generated "
                                  "password, returned once as `password` (not with `password`)."},
            "unlock": {"type": "boolean", "description": "true: lift a sign-in lockout and reset "
                       "the failed sign-in count."}},
        "allOf": [
            {"if": {"required": ["role"], "properties": {"role": {"const": "team_admin"}}},
             "then": {"properties": {"teams": {"minItems": 1}}},
             "else": {"if": {"required": ["role"]},
                      "then": {"properties": {"teams": {"maxItems": 0}}}}},
            {"if": {"required": ["password", "generate_password"]},
             "then": {"properties": {"generate_password": {"const": False}}}}],
        "description": "Only the fields sent change. A change of role, teams or password ends "
                       "the user's console sessions. The last admin cannot be demoted (409 "
                       "last_admin). Role, teams and e-mail of a single-sign-on account are "
                       "set again from the identity provider at its next sign-in."}
    user = {
        "id": {"type": "integer"}, "username": {"type": "string"}, "role": enum(ROLES),
        "teams": {"type": "array", "items": {"type": "string"},
                  "description": "team_admin's teams ([] for other roles)."},
        "email": {"type": ["string", "null"]},
        "sso": {"type": "boolean", "description": "Signs in with single sign-on (no local "
                                                  "password)."},
        "issuer": {"type": ["string", "null"], "description": "The identity provider of a "
                                                            "single-sign-on account."},
        "last_login_at": iso_out(null=True),
        "locked": {"type": "boolean", "description": "Locked out after too many failed "
                                                     "sign-ins (PATCH unlock: true lifts it)."},
        "created_at": iso_out()}
    required = list(user)
    s["User"] = _obj(user, required, "A console user (never a password or its hash).", False)
    shown = {"type": "string", "minLength": u.MIN_PASSWORD,
             "description": "The generated password: shown only in this response."}
    s["UserCreated"] = _obj({**user, "password": shown}, required,
                            "The new user; `password` only when it was generated.", False)
    s["UserUpdated"] = _obj({**user, "password": shown}, required,
                            "The user; `password` only with generate_password: true.", False)
    s["UserList"] = _list_of("User", "Ordered by username.")
    return s


def _usage_schemas() -> dict[str, Any]:
    from app.services.usage_query import GROUPS
    s: dict[str, Any] = {}
    opt_num = {"type": ["number", "null"]}
    s["UsageMetrics"] = _obj({
        "requests": {"type": "integer", "minimum": 0}, "errors": {"type": "integer", "minimum": 0},
        "error_rate": {"type": "number", "minimum": 0},
        "prompt_tokens": {"type": "integer", "minimum": 0},
        "completion_tokens": {"type": "integer", "minimum": 0},
        "cost_usd": {"type": "number"}, "cache_hit_rate": {"type": "number", "minimum": 0},
        "latency_avg_ms": opt_num, "latency_p50_ms": opt_num, "latency_p95_ms": opt_num,
        "ttfb_p50_ms": opt_num, "ttfb_p95_ms": opt_num},
        ["requests", "errors", "error_rate", "prompt_tokens", "completion_tokens", "cost_usd",
         "cache_hit_rate", "latency_avg_ms", "latency_p50_ms", "latency_p95_ms", "ttfb_p50_ms",
         "ttfb_p95_ms"], "Totals of a window; percentiles are estimated from histograms.", False)
    changed = ("requests", "prompt_tokens", "completion_tokens", "cost_usd", "error_rate",
               "latency_p50_ms")
    s["UsageSummary"] = _obj({
        "current": _ref("UsageMetrics"),
        "previous": {**_ref("UsageMetrics"), "description": "The period of the same length "
                                                            "just before."},
        "change": _obj({k: opt_num for k in changed}, list(changed),
                       "Relative change against the previous period (null: no base).", False)},
        ["current", "previous", "change"], additional=False)
    s["UsageTimeseries"] = _obj({
        "buckets": {"type": "array", "items": iso_out(), "description": "Bucket start times."},
        "step_s": {"type": "integer", "description": "Seconds per bucket."},
        "group_by": {"type": ["string", "null"], "enum": [*GROUPS, None]},
        "source": enum(("rollup", "raw"), "rollup: the 5-minute rollups (one filter at most, "
                       "or grouped by the filtered dimension); raw: the request records."),
        "series": {"type": "object", "additionalProperties": {
            "type": "array", "items": _ref("UsageMetrics")},
            "description": "Per group (the 8 largest by requests, the rest as `other`; a single "
                           "series named \"\" when not grouped): one entry per bucket."}},
        ["buckets", "step_s", "group_by", "source", "series"], additional=False)
    row = copy.deepcopy(s["UsageMetrics"])
    row["properties"] = {"name": {"type": "string", "description": "Label (\"(none)\" for "
                                                                   "no value)."},
                         "id": {"type": ["string", "integer", "null"],
                                "description": "The grouped value (model name, provider id, "
                                               "key id or owner)."},
                         **row["properties"]}
    row["required"] = ["name", "id", *row["required"]]
    row["description"] = "One group's totals."
    s["UsageBreakdownRow"] = row
    s["UsageBreakdown"] = _obj({"object": {"const": "list"}, "by": enum(GROUPS),
                                "data": {"type": "array", "items": _ref("UsageBreakdownRow")}},
                               ["object", "by", "data"], additional=False)
    s["RequestRecord"] = _obj({
        "id": {"type": "integer"}, "request_id": {"type": ["string", "null"]},
        "created_at": iso_out(), "endpoint": {"type": "string"},
        "key_id": {"type": ["integer", "null"]}, "owner": {"type": ["string", "null"]},
        "model": {"type": ["string", "null"]}, "model_id": {"type": ["integer", "null"]},
        "provider_id": {"type": ["integer", "null"]}, "status": {"type": "integer"},
        "error_class": {"type": ["string", "null"]},
        "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
        "cached_tokens": {"type": "integer"}, "tokens_estimated": {"type": "boolean"},
        "cost_usd": {"type": "string", "description": "Decimal string (USD)."},
        "latency_ms": opt_num, "ttfb_ms": opt_num, "cache_hit": {"type": "boolean"},
        "stream": {"type": "boolean"}, "attempts": {"type": ["string", "null"]},
        "detectors": {"type": ["string", "null"]}, "details": {"type": ["object", "null"]}},
        ["id", "request_id", "created_at", "endpoint", "key_id", "owner", "model", "model_id",
         "provider_id", "status", "error_class", "prompt_tokens", "completion_tokens",
         "cached_tokens", "tokens_estimated", "cost_usd", "latency_ms", "ttfb_ms", "cache_hit",
         "stream", "attempts", "detectors", "details"], "One proxied request.")
    s["RequestRecordDetail"] = {"allOf": [_ref("RequestRecord")], "type": "object",
                                "required": ["body"], "properties": {"body": {"anyOf": [
                                    _obj({"request": {"type": ["object", "null"]},
                                          "response": {"type": ["object", "null"]}},
                                         ["request", "response"], additional=False),
                                    {"type": "null"}],
                                    "description": "Logged bodies (keys/models with "
                                                   "log_bodies), else null."}}}
    s["RequestPage"] = _obj({"object": {"const": "list"}, "page": {"type": "integer"},
                             "has_more": {"type": "boolean"},
                             "data": {"type": "array", "items": _ref("RequestRecord")}},
                            ["object", "page", "has_more", "data"], additional=False)
    s["AuditEntry"] = _obj({
        "id": {"type": "integer"}, "at": iso_out(), "actor": {"type": "string"},
        "action": {"type": "string"}, "entity_type": {"type": "string"},
        "entity_id": {"type": ["integer", "null"]}, "entity_name": {"type": ["string", "null"]},
        "diff": {"type": ["object", "null"]}, "ip": {"type": ["string", "null"]}},
        ["id", "at", "actor", "action", "entity_type", "entity_id", "entity_name", "diff", "ip"],
        additional=False)
    s["AuditList"] = _list_of("AuditEntry", "Newest first.")
    return s


def _openai_schemas() -> dict[str, Any]:
    s: dict[str, Any] = {}
    s["ContentPart"] = {"anyOf": [
        _obj({"type": {"const": "text"}, "text": {"type": "string"}}, ["type", "text"]),
        _obj({"type": {"const": "image_url"}, "image_url": _obj({
            "url": {"type": "string", "description": "https URL or data: URI."},
            "detail": enum(("auto", "low", "high"))}, ["url"])}, ["type", "image_url"]),
        _obj({"type": {"const": "input_audio"}, "input_audio": _obj({
            "data": {"type": "string", "description": "Base64 audio."},
            "format": enum(("wav", "mp3"))}, ["data", "format"])}, ["type", "input_audio"]),
        _obj({"type": {"const": "file"}, "file": _obj({
            "file_data": {"type": "string"}, "file_id": {"type": "string"},
            "filename": {"type": "string"}})}, ["type", "file"]),
        _obj({"type": {"const": "refusal"}, "refusal": {"type": "string"}},
             ["type", "refusal"])],
        "description": "One part of a message's content."}
    s["ToolCall"] = _obj({
        "id": {"type": "string"}, "type": {"const": "function"},
        "function": _obj({"name": {"type": "string"},
                          "arguments": {"type": "string", "description": "JSON text."}},
                         ["name", "arguments"])},
        ["id", "type", "function"])
    s["ChatMessage"] = _obj({
        "role": enum(("system", "developer", "user", "assistant", "tool", "function"),
                     "The gateway requires a string; the upstream checks the value."),
        "content": {"anyOf": [{"type": "string"},
                              {"type": "array", "items": _ref("ContentPart")},
                              {"type": "null"}],
                    "description": "Text, or an array of parts (text, image_url, input_audio, "
                                   "file)."},
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": _ref("ToolCall"),
                       "description": "Assistant messages: the calls it made."},
        "tool_call_id": {"type": "string", "description": "Tool messages: the call answered."},
        "refusal": {"type": ["string", "null"]}},
        ["role"], "Other fields are forwarded as is.")
    s["Tool"] = _obj({"type": {"const": "function"}, "function": _obj({
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
        "description": {"type": "string"},
        "parameters": {"type": "object", "description": "JSON Schema of the arguments."},
        "strict": {"type": ["boolean", "null"]}}, ["name"])}, ["type", "function"])
    s["ChatCompletionRequest"] = _obj({
        "model": {"type": "string", "pattern": NON_BLANK,
                  "description": "A public model name (see GET /v1/models), an upstream model "
                                 "id, or `auto` (the cheapest chat model this key may use)."},
        "messages": {"type": "array", "minItems": 1, "maxItems": 10_000,
                     "items": _ref("ChatMessage")},
        "stream": {"type": "boolean", "description": "true: answer as server-sent events."},
        "stream_options": {
            "description": "Consulted only when stream is true: {\"include_usage\": true} adds a "
                           "final chunk with `usage` and empty `choices` before [DONE]. Any "
                           "other value is ignored (the gateway always asks the upstream for "
                           "usage itself).",
            "properties": {"include_usage": {"description": "Only the JSON value true turns it "
                                                            "on."}},
            "examples": [{"include_usage": True}]},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2,
                        "description": "The gateway checks the type; the upstream the range. "
                                       "0 makes the answer cacheable."},
        "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "max_tokens": {"type": ["integer", "null"], "minimum": 1},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 128},
        "stop": {"anyOf": [{"type": "string"},
                           {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                           {"type": "null"}]},
        "seed": {"type": ["integer", "null"]},
        "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "response_format": {"anyOf": [
            _obj({"type": {"enum": ["text", "json_object"]}}, ["type"]),
            _obj({"type": {"const": "json_schema"}, "json_schema": _obj({
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                "description": {"type": "string"}, "schema": {"type": "object"},
                "strict": {"type": ["boolean", "null"]}}, ["name"])},
                ["type", "json_schema"])],
            "description": "json_object / json_schema route only to deployments declaring JSON "
                           "support when any does."},
        "tools": {"type": "array", "items": _ref("Tool"), "maxItems": 128,
                  "description": "Not cacheable; routes to tool-capable deployments."},
        "tool_choice": {"anyOf": [
            enum(("none", "auto", "required")),
            _obj({"type": {"const": "function"},
                  "function": _obj({"name": {"type": "string"}}, ["name"])},
                 ["type", "function"])]},
        "parallel_tool_calls": {"type": "boolean"},
        "user": {"type": "string", "description": "End-user id, forwarded."},
        "logprobs": {"type": ["boolean", "null"]},
        "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
    }, ["model", "messages"],
        "OpenAI Chat Completions request. Fields not listed are forwarded as is (adapters for "
        "non-OpenAI providers translate what they support).")
    usage = _obj({"prompt_tokens": {"type": "integer", "minimum": 0},
                  "completion_tokens": {"type": "integer", "minimum": 0},
                  "total_tokens": {"type": "integer", "minimum": 0},
                  "prompt_tokens_details": {"type": ["object", "null"]},
                  "completion_tokens_details": {"type": ["object", "null"]}},
                 ["prompt_tokens", "completion_tokens", "total_tokens"],
                 "Token counts; estimated (about 4 characters per token) when the upstream "
                 "reports none. This is what the request is billed on.")
    s["Usage"] = usage
    s["ChatCompletion"] = _obj({
        "id": {"type": "string"}, "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": {"type": "string", "description": "The public model name that served it."},
        "choices": {"type": "array", "items": _obj({
            "index": {"type": "integer"},
            "message": _obj({"role": {"type": "string"},
                             "content": {"type": ["string", "null"]},
                             "tool_calls": {"type": "array", "items": _ref("ToolCall")},
                             "refusal": {"type": ["string", "null"]}}),
            "finish_reason": {"type": ["string", "null"]},
            "logprobs": {"type": ["object", "null"]}})},
        "usage": _ref("Usage"), "system_fingerprint": {"type": ["string", "null"]}},
        ["object", "model", "choices", "usage"],
        "OpenAI chat.completion; upstream fields beyond these are passed through.")
    s["ChatCompletionChunk"] = _obj({
        "id": {"type": "string"}, "object": {"const": "chat.completion.chunk"},
        "created": {"type": "integer"}, "model": {"type": "string"},
        "choices": {"type": "array", "items": _obj({
            "index": {"type": "integer"},
            "delta": _obj({"role": {"type": "string"}, "content": {"type": ["string", "null"]},
                           "tool_calls": {"type": "array"},
                           "refusal": {"type": ["string", "null"]}}),
            "finish_reason": {"type": ["string", "null"]}}),
            "description": "Empty in the final usage chunk."},
        "usage": {"anyOf": [_ref("Usage"), {"type": "null"}]}},
        ["object", "model", "choices"])
    s["ChatCompletionEvent"] = _obj({
        "event": {"type": "string", "const": "message"},
        "data": {"anyOf": [
            {"type": "string", "contentMediaType": JSON,
             "contentSchema": {"anyOf": [_ref("ChatCompletionChunk"), _ref("Error")]}},
            {"const": "[DONE]", "description": "The last event of a complete stream."}],
            "description": "A chat.completion.chunk as JSON; an error object "
                           "({\"error\": {...}}, then the stream ends) when the upstream "
                           "fails after the first byte; or the literal [DONE] at the end."}},
        ["data"], "One server-sent event (`data: ...` followed by a blank line).")
    s["ResponseCreateRequest"] = _obj({
        "model": {"type": "string", "pattern": NON_BLANK},
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
                  "description": "Text, or items: messages (input_text / input_image / "
                                 "input_file parts), function_call, function_call_output."},
        "instructions": {"type": ["string", "null"]},
        "previous_response_id": {"type": ["string", "null"]},
        "store": {"type": ["boolean", "null"], "description": "Store the response for "
                  "previous_response_id, GET and DELETE. Default false on this gateway."},
        "stream": {"type": ["boolean", "null"]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {}, "parallel_tool_calls": {"type": ["boolean", "null"]},
        "text": {"type": "object"}, "reasoning": {"type": "object"},
        "max_output_tokens": {"type": ["integer", "null"], "minimum": 1},
        "temperature": {"type": ["number", "null"]}, "top_p": {"type": ["number", "null"]},
        "metadata": {"type": ["object", "null"], "maxProperties": 16,
                     "additionalProperties": {"type": "string", "maxLength": 512}},
        "user": {"type": "string"}},
        ["model"], "OpenAI Responses API request (function tools only).")
    s["ResponseObject"] = _obj({
        "id": {"type": "string"}, "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": enum(("completed", "incomplete", "failed", "in_progress")),
        "model": {"type": "string"}, "output": {"type": "array", "items": {"type": "object"}},
        "usage": {"anyOf": [_obj({
            "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
            "input_tokens_details": {"type": "object"},
            "output_tokens_details": {"type": "object"}},
            ["input_tokens", "output_tokens", "total_tokens"]), {"type": "null"}]},
        "error": {"type": ["object", "null"]}, "previous_response_id": {"type": ["string", "null"]},
        "store": {"type": "boolean"}, "metadata": {"type": "object"}},
        ["id", "object", "created_at", "status", "model", "output"], "OpenAI response object.")
    s["AnthropicMessageRequest"] = _obj({
        "model": {"type": "string", "pattern": NON_BLANK},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {"type": "array", "minItems": 1, "items": _obj({
            "role": enum(("user", "assistant")),
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
                        "description": "Text, or blocks: text, image (base64 or url), tool_use, "
                                       "tool_result (thinking blocks are dropped when translated)."}},
            ["role", "content"])},
        "system": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "stream": {"type": "boolean"}, "temperature": {"type": "number"}, "top_p": {"type": "number"},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "tools": {"type": "array", "items": {"type": "object"}}, "tool_choice": {"type": "object"},
        "metadata": {"type": "object"}},
        ["model", "max_tokens", "messages"], "Anthropic Messages API request (custom tools only).")
    s["AnthropicCountTokensRequest"] = _obj({
        "model": {"type": "string", "pattern": NON_BLANK},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "system": {}, "tools": {"type": "array", "items": {"type": "object"}}},
        ["model", "messages"], "Anthropic count_tokens request.")
    s["AnthropicMessage"] = _obj({
        "id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"},
        "model": {"type": "string"}, "content": {"type": "array", "items": {"type": "object"}},
        "stop_reason": {"type": ["string", "null"]}, "stop_sequence": {"type": ["string", "null"]},
        "usage": {"type": "object"}},
        ["id", "type", "role", "model", "content"], "Anthropic message object.")
    s["AnthropicTokenCount"] = _obj({"input_tokens": {"type": "integer", "minimum": 0}},
                                    ["input_tokens"], "The prompt's token count (the gateway's estimate).")
    s["AnthropicError"] = _obj({"type": {"const": "error"}, "error": _obj({
        "type": {"type": "string"}, "message": {"type": "string"}}, ["type", "message"])},
        ["type", "error"], "Anthropic's error shape (every /v1/messages failure).")
    s["AnthropicStreamEvent"] = _obj({
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": JSON,
                 "contentSchema": _obj({"type": {"type": "string"}}, ["type"])}},
        ["event", "data"], "One Anthropic event (message_start ... message_stop, ping, error).")
    s["ResponseDeleted"] = _obj({"id": {"type": "string"}, "object": {"const": "response.deleted"},
                                 "deleted": {"const": True}}, ["id", "object", "deleted"],
                                additional=False)
    s["ResponseStreamEvent"] = _obj({
        "event": {"type": "string", "description": "The event's `type`."},
        "data": {"type": "string", "contentMediaType": JSON,
                 "contentSchema": _obj({"type": {"type": "string"},
                                        "sequence_number": {"type": "integer"}},
                                       ["type", "sequence_number"])}},
        ["event", "data"], "One typed Responses event (response.created ... response.completed, "
        "or error + response.failed).")
    s["EmbeddingsRequest"] = _obj({
        "model": {"type": "string", "pattern": NON_BLANK},
        "input": {"anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "maxItems": 2048,
             "items": {"type": "string", "minLength": 1}},
            {"type": "array", "minItems": 1, "maxItems": 2048,
             "items": {"type": "integer", "minimum": 0}},
            {"type": "array", "minItems": 1, "maxItems": 2048,
             "items": {"type": "array", "minItems": 1, "items": {"type": "integer",
                                                                 "minimum": 0}}}],
            "description": "Text, texts, a token array or token arrays (at most 2048 items)."},
        "encoding_format": {"type": ["string", "null"], "enum": ["float", "base64", None]},
        "dimensions": {"type": ["integer", "null"], "minimum": 1},
        "user": {"type": "string"}},
        ["model", "input"], "OpenAI Embeddings request; other fields are forwarded.")
    s["Embeddings"] = _obj({
        "object": {"const": "list"},
        "data": {"type": "array", "items": _obj({
            "object": {"const": "embedding"}, "index": {"type": "integer"},
            "embedding": {"anyOf": [{"type": "array", "items": {"type": "number"}},
                                    {"type": "string", "description": "base64 float32"}]}},
            ["object", "index", "embedding"])},
        "model": {"type": "string"},
        "usage": _obj({"prompt_tokens": {"type": "integer", "minimum": 0},
                       "total_tokens": {"type": "integer", "minimum": 0}},
                      ["prompt_tokens", "total_tokens"])},
        ["object", "data", "model", "usage"])
    s["ModelObject"] = _obj({"id": {"type": "string", "description": "Public model name."},
                             "object": {"const": "model"}, "created": {"type": "integer"},
                             "owned_by": {"type": "string", "description": "Provider slug."}},
                            ["id", "object", "created", "owned_by"], additional=False)
    s["ModelObjectList"] = _obj({"object": {"const": "list"},
                                 "data": {"type": "array", "items": _ref("ModelObject")}},
                                ["object", "data"], additional=False)
    s["LimitState"] = _obj({"limit": {"type": "integer"}, "used": {"type": "integer"},
                            "remaining": {"type": "integer", "minimum": 0},
                            "reset_s": {"type": ["number", "null"]}},
                           ["limit", "used", "remaining", "reset_s"], additional=False)
    money = {"type": "string", "description": "Decimal string (USD)."}
    s["BudgetState"] = _obj({
        "scope": {"type": "string", "description": "key:<id> or team:<name>."},
        "amount_usd": money, "spent_usd": money, "reserved_usd": money, "remaining_usd": money,
        "period": enum(("day", "week", "month", "total")),
        "period_start": iso_out(null=True), "period_end": iso_out(null=True),
        "reset_s": {"type": ["number", "null"]}, "soft_pct": {"type": "integer"},
        "used_pct": {"type": "integer"}},
        ["scope", "amount_usd", "spent_usd", "reserved_usd", "remaining_usd", "period",
         "period_start", "period_end", "reset_s", "soft_pct", "used_pct"], additional=False)
    s["KeyInfo"] = _obj({
        "object": {"const": "key_info"}, "id": {"type": "integer"}, "name": {"type": "string"},
        "prefix": {"type": "string"}, "owner": {"type": ["string", "null"]},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "allowed_models": {"type": "array", "items": {"type": "string"}},
        "expires_at": iso_out(null=True), "tags": {"type": "object"},
        "state": _obj({
            "subject": {"type": "string"},
            "limits": {"type": "object", "additionalProperties": _ref("LimitState"),
                       "propertyNames": {"enum": ["rpm", "rph", "rpd", "tpm", "tpd",
                                                  "concurrency"]}},
            "in_flight": {"type": "integer", "minimum": 0},
            "budgets": {"type": "array", "items": _ref("BudgetState")}},
            ["subject", "limits", "in_flight", "budgets"], additional=False)},
        ["object", "id", "name", "prefix", "owner", "scopes", "allowed_models", "expires_at",
         "tags", "state"], "The calling key, its limits with current counts, and its budgets.",
        False)
    return s


# -------------------------------------------------------------------------------- responses
def _headers(*names: str) -> dict:
    return {n: {"$ref": f"#/components/headers/{n}"} for n in ("x-request-id", *names)}


def _json(schema_ref: str, description: str, *headers: str) -> dict:
    return {"description": description, "headers": _headers(*headers),
            "content": {JSON: {"schema": _ref(schema_ref)}}}


def _err(description: str, *headers: str) -> dict:
    return _json("Error", description, *headers)


ERRORS = {
    "400": "Malformed request: the body is not a JSON object, or (on /v1) a field the gateway "
           "checks is invalid, or the upstream refused the request.",
    "401": "Missing, unknown, disabled, revoked or expired API key (code missing_api_key or "
           "invalid_api_key).",
    "403": "The key lacks the required scope (insufficient_scope), may not be used from this IP "
           "(ip_not_allowed) or may not use this model (model_not_allowed).",
    "404": "No such resource (code not_found or <thing>_not_found, e.g. model_not_found).",
    "405": "The method is not allowed on this path (e.g. an id segment that is not an integer "
           "resolves to the collection path).",
    "409": "Conflicts with an existing resource (provider_exists, model_exists, team_exists, "
           "user_exists), or would leave no admin (last_admin).",
    "413": "The body is larger than the gateway's limit (GATEWAY_MAX_BODY_BYTES).",
    "415": "Content-Type is not JSON.",
    "422": "A field failed validation (code validation_error; `param` names the field).",
    "402": "A budget of the key or its team is exhausted (insufficient_quota); not retryable.",
    "429": "A rate or concurrency limit of the key, model or provider (or the upstream's) was hit; "
           "see Retry-After.",
    "502": "The upstream could not be reached, refused the gateway's credentials, failed or sent "
           "an invalid response; or no usable adapter is configured (provider_misconfigured).",
    "503": "The upstream is overloaded, or no deployment can serve the request "
           "(no_deployment_available).",
    "504": "The upstream timed out or the request exceeded its deadline.",
}


def _errors(*codes: str) -> dict:
    out = {}
    for c in (*codes, "405"):
        extra = ("Retry-After",) if c == "429" else ()
        out[c] = {"$ref": f"#/components/responses/E{c}"} if not extra else _err(ERRORS[c], *extra)
    return out


ADMIN_AUTH = ("401", "403")
ADMIN_BODY = ("400", "413", "422")


def _admin(op_id: str, summary: str, tag: str, ok: dict, *, errors: tuple = (),
           body: str | None = None, params: list | None = None, description: str = "") -> dict:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag],
                          "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
                          "responses": {**ok, **_errors(*ADMIN_AUTH, *errors)}}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
        op["responses"].update(_errors(*ADMIN_BODY))
    op["responses"] = dict(sorted(op["responses"].items()))
    return op


def _id_param(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX, "format": "int64"}}


def _paths() -> dict[str, Any]:
    p: dict[str, Any] = {}
    ok = lambda ref, desc="OK", code="200": {code: _json(ref, desc)}  # noqa: E731

    # ------------------------------------------------------------------ /v1
    v1_sec = [{"bearerAuth": []}, {"apiKeyHeader": []}]
    cache_headers = [
        {"name": "x-gateway-cache", "in": "header", "required": False,
         "schema": {"type": "string"},
         "description": "on/1/true/yes: use the response cache even for sampled requests; "
                        "off/0/false/no: do not use it. Other values: the default (only "
                        "temperature 0, n <= 1, no tools/audio is cached)."},
        {"name": "x-gateway-cache-ttl", "in": "header", "required": False,
         "schema": {"anyOf": [{"type": "number"}, {"const": "", "description": "Ignored."}]},
         "description": "Seconds to keep this answer (clamped to 1..2592000). Not a number: 400 "
                        "invalid_header (when the cache is on)."},
        {"name": "Cache-Control", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "no-cache / max-age=0: do not serve from the cache (the fresh answer "
                        "is stored); no-store: do not store it."},
    ]
    p["/v1/chat/completions"] = {"post": {
        "operationId": "createChatCompletion", "tags": ["OpenAI-compatible"],
        "summary": "Chat completion (OpenAI-compatible), with routing, limits and caching",
        "description": "Needs the `chat` scope. With `stream: true` the answer is "
                       "text/event-stream: one `data:` event per chat.completion.chunk, then "
                       "`data: [DONE]`; an upstream failure after the first byte is sent as a "
                       "`data: {\"error\": ...}` event and ends the stream. Failures before "
                       "the first byte are JSON errors with the status below.",
        "security": v1_sec, "parameters": cache_headers,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(
            "ChatCompletionRequest")}}},
        "responses": dict(sorted({
            "200": {"description": "The completion (JSON), or a stream of events when "
                                   "`stream` is true.",
                    "headers": _headers("x-cache", "x-gateway-attempts",
                                        "x-gateway-budget-warning", "x-gateway-redacted"),
                    "content": {JSON: {"schema": _ref("ChatCompletion")},
                                SSE: {"schema": _ref("ChatCompletionEvent")}}},
            **_errors("400", "401", "402", "403", "404", "413", "415", "429", "502", "503",
                      "504")}.items()))}}
    rid = [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    p["/v1/responses"] = {"post": {
        "operationId": "createResponse", "tags": ["OpenAI-compatible"],
        "summary": "OpenAI Responses API over any provider (translated onto chat completions)",
        "description": "Needs the `chat` scope. Same routing, limits, budgets, cache, content "
                       "policy and accounting as chat completions (usage endpoint `responses`). "
                       "With `stream: true`, typed server-sent events; an upstream failure after "
                       "the first byte is an `error` event then `response.failed`.",
        "security": v1_sec,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(
            "ResponseCreateRequest")}}},
        "responses": dict(sorted({
            "200": {"description": "The response (JSON), or typed events when `stream` is true.",
                    "headers": _headers("x-cache", "x-gateway-attempts",
                                        "x-gateway-budget-warning", "x-gateway-redacted"),
                    "content": {JSON: {"schema": _ref("ResponseObject")},
                                SSE: {"schema": _ref("ResponseStreamEvent")}}},
            **_errors("400", "401", "402", "403", "404", "413", "415", "429", "502", "503",
                      "504")}.items()))}}
    p["/v1/responses/{response_id}"] = {
        "parameters": rid,
        "get": {"operationId": "getResponse", "tags": ["OpenAI-compatible"],
                "summary": "A stored response (created with store: true by this key)",
                "security": v1_sec,
                "responses": {**ok("ResponseObject"), **_errors("401", "403", "404")}},
        "delete": {"operationId": "deleteResponse", "tags": ["OpenAI-compatible"],
                   "summary": "Delete a stored response of this key", "security": v1_sec,
                   "responses": {**ok("ResponseDeleted"), **_errors("401", "403", "404")}}}
    def anthropic_errors(*codes: str) -> dict:
        return {c: {"description": ERRORS.get(c, "Failure.") + " (Anthropic's error shape and type.)",
                    "headers": _headers(*(("Retry-After",) if c == "429" else ())),
                    "content": {JSON: {"schema": _ref("AnthropicError")}}} for c in (*codes, "405")}

    p["/v1/messages"] = {"post": {
        "operationId": "createMessage", "tags": ["Anthropic-compatible"],
        "summary": "Anthropic Messages API over any provider (passed through to Anthropic, "
                   "translated for the others)",
        "description": "Needs the `chat` scope; the key in `x-api-key` or `Authorization: Bearer`. "
                       "Same routing, limits, budgets, cache, content policy and accounting as "
                       "chat completions (usage endpoint `messages`). With `stream: true`, "
                       "Anthropic's event stream; a failure after the first byte is an `error` "
                       "event. Limit headers also as anthropic-ratelimit-*.",
        "security": v1_sec,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AnthropicMessageRequest")}}},
        "responses": dict(sorted({
            "200": {"description": "The message (JSON), or events when `stream` is true.",
                    "headers": _headers("x-cache", "x-gateway-attempts"),
                    "content": {JSON: {"schema": _ref("AnthropicMessage")},
                                SSE: {"schema": _ref("AnthropicStreamEvent")}}},
            **anthropic_errors("400", "401", "402", "403", "404", "413", "415", "429", "502", "503",
                               "504")}.items()))}}
    p["/v1/messages/count_tokens"] = {"post": {
        "operationId": "countMessageTokens", "tags": ["Anthropic-compatible"],
        "summary": "Token count of an Anthropic Messages request (the gateway's estimate)",
        "security": v1_sec,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AnthropicCountTokensRequest")}}},
        "responses": dict(sorted({**ok("AnthropicTokenCount"),
                                  **anthropic_errors("400", "401", "403", "404", "413", "415")}.items()))}}
    p["/v1/embeddings"] = {"post": {
        "operationId": "createEmbeddings", "tags": ["OpenAI-compatible"],
        "summary": "Embeddings (OpenAI-compatible)", "description": "Needs the `embeddings` "
        "scope.", "security": v1_sec,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(
            "EmbeddingsRequest")}}},
        "responses": dict(sorted({
            "200": _json("Embeddings", "The embeddings.", "x-gateway-attempts"),
            **_errors("400", "401", "402", "403", "404", "413", "415", "429", "502", "503",
                      "504")}.items()))}}
    p["/v1/models"] = {"get": {
        "operationId": "listModels", "tags": ["OpenAI-compatible"],
        "summary": "Models this key may use", "description": "Needs the `models` scope. "
        "Sorted by name; one entry per public name.", "security": v1_sec,
        "responses": {**ok("ModelObjectList"), **_errors("401", "403")}}}
    p["/v1/models/{model_id}"] = {"get": {
        "operationId": "retrieveModel", "tags": ["OpenAI-compatible"],
        "summary": "One model", "description": "Needs the `models` scope. Accepts a public name "
        "or an upstream model id (which may contain `/`).", "security": v1_sec,
        "parameters": [{"name": "model_id", "in": "path", "required": True,
                        "schema": ROUTABLE}],
        "responses": {**ok("ModelObject"), **_errors("401", "403", "404")}}}
    key_info = {
        "tags": ["OpenAI-compatible"], "security": v1_sec,
        "summary": "The calling key: limits with current counts, budgets and spend",
        "description": "Any active key may call it (no scope needed).",
        "responses": {**ok("KeyInfo"), **_errors("401")}}
    p["/v1/key/info"] = {"get": {"operationId": "getKeyInfo", **key_info}}
    p["/v1/usage"] = {"get": {"operationId": "getUsage", **copy.deepcopy(key_info),
                              "description": "Alias of GET /v1/key/info."}}

    # ------------------------------------------------------------------ /api/admin
    A = "/api/admin"
    pid = [_id_param("provider_id", "provider")]
    p[f"{A}/providers"] = {
        "get": _admin("listProviders", "List providers", "Providers", ok("ProviderList")),
        "post": _admin("createProvider", "Create a provider", "Providers",
                       ok("Provider", "Created.", "201"), errors=("409",),
                       body="ProviderCreate")}
    p[f"{A}/providers/{{provider_id}}"] = {
        "parameters": pid,
        "get": _admin("getProvider", "Get a provider", "Providers", ok("Provider"),
                      errors=("404",)),
        "patch": _admin("updateProvider", "Update a provider", "Providers", ok("Provider"),
                        errors=("404", "409"), body="ProviderUpdate"),
        "delete": _admin("deleteProvider", "Delete a provider and its models", "Providers",
                         ok("Deleted", "Deleted."), errors=("404",))}
    p[f"{A}/providers/{{provider_id}}/health"] = {
        "parameters": pid,
        "post": _admin("checkProviderHealth", "Run a health check now", "Providers",
                       ok("HealthResult"), errors=("404",),
                       description="The result is stored and fed to the deployments' "
                                   "breakers. An unreachable upstream is a 200 with status "
                                   "unhealthy."),
        "get": _admin("listProviderHealth", "Health check history", "Providers",
                      ok("HealthHistory"), errors=("404",))}
    p[f"{A}/providers/{{provider_id}}/upstream-models"] = {
        "parameters": pid,
        "get": _admin("listUpstreamModels", "What the upstream offers", "Providers",
                      ok("UpstreamModelList"), errors=("400", "404"),
                      description="Asks the upstream live. 400 when it cannot be reached or "
                                  "answers with an error (codes upstream_unreachable, "
                                  "upstream_error, unsupported, secret_unavailable).")}
    mpk = [_id_param("model_pk", "model (deployment)")]
    p[f"{A}/models"] = {
        "get": _admin("listAdminModels", "List models (deployments)", "Models", ok("ModelList"),
                      params=[
                          {"name": "q", "in": "query", "required": False,
                           "schema": {"type": "string"},
                           "description": "Substring of the name, model id or provider name."},
                          {"name": "provider_id", "in": "query", "required": False,
                           "schema": {"anyOf": [
                               {"type": "integer", "minimum": -2**63, "maximum": INT64_MAX},
                               {"type": "string", "description": "Ignored: no filter."}]},
                           "description": "Only this provider's models (an integer; 0 or "
                                          "a value that is not an integer: no filter; beyond "
                                          "the 64-bit range: matches nothing)."},
                          {"name": "kind", "in": "query", "required": False,
                           "schema": {"anyOf": [enum(("chat", "embedding")),
                                                {"type": "string", "description": "Ignored."}]},
                           "description": "chat or embedding (other values: no filter)."}]),
        "post": _admin("createAdminModel", "Create a model (deployment)", "Models",
                       ok("Model", "Created.", "201"), errors=("409",), body="ModelCreate")}
    p[f"{A}/models/{{model_pk}}"] = {
        "parameters": mpk,
        "get": _admin("getAdminModel", "Get a model", "Models", ok("Model"), errors=("404",)),
        "patch": _admin("updateAdminModel", "Update a model", "Models", ok("Model"),
                        errors=("404", "409"), body="ModelUpdate"),
        "delete": _admin("deleteAdminModel", "Delete a model", "Models", ok("Deleted", "Deleted."),
                         errors=("404",))}
    p[f"{A}/deployments/{{model_pk}}/breaker/reset"] = {"post": _admin(
        "resetBreaker", "Close a deployment's circuit breaker", "Routing", ok("BreakerReset"),
        errors=("404",), params=mpk,
        description="Also ends `disabled` (after a bad provider key was fixed).")}
    kid = [_id_param("key_id", "key")]
    p[f"{A}/keys"] = {
        "get": _admin("listKeys", "List keys", "Keys", ok("KeyList")),
        "post": _admin("createKey", "Create a key", "Keys",
                       ok("KeyCreated", "Created; `key` is the secret, shown only now.", "201"),
                       body="KeyCreate")}
    p[f"{A}/keys/{{key_id}}"] = {
        "parameters": kid,
        "get": _admin("getKey", "Get a key", "Keys", ok("Key"), errors=("404",)),
        "patch": _admin("updateKey", "Update a key", "Keys", ok("Key"), errors=("404",),
                        body="KeyUpdate"),
        "delete": _admin("revokeKey", "Revoke a key", "Keys", ok("Key", "The revoked key."),
                         errors=("404",), description="The row stays (status revoked) so usage "
                                                      "keeps its owner; revoking twice is a "
                                                      "no-op.")}
    tid = [_id_param("team_id", "team")]
    p[f"{A}/teams"] = {
        "get": _admin("listTeams", "List teams", "Teams", ok("TeamList")),
        "post": _admin("createTeam", "Create a team", "Teams", ok("Team", "Created.", "201"),
                       errors=("409",), body="TeamCreate")}
    p[f"{A}/teams/{{team_id}}"] = {
        "parameters": tid,
        "get": _admin("getTeam", "Get a team", "Teams", ok("Team"), errors=("404",)),
        "patch": _admin("updateTeam", "Update a team", "Teams", ok("Team"),
                        errors=("404", "409"), body="TeamUpdate"),
        "delete": _admin("deleteTeam", "Delete a team", "Teams", ok("Deleted", "Deleted."),
                         errors=("404",))}
    uid = [_id_param("user_id", "user")]
    p[f"{A}/users"] = {
        "get": _admin("listUsers", "List console users", "Users", ok("UserList")),
        "post": _admin("createUser", "Create a console user", "Users",
                       ok("UserCreated", "Created; `password` is the generated password when "
                                         "none was sent, shown only now.", "201"),
                       errors=("409",), body="UserCreate")}
    p[f"{A}/users/{{user_id}}"] = {
        "parameters": uid,
        "get": _admin("getUser", "Get a console user", "Users", ok("User"), errors=("404",)),
        "patch": _admin("updateUser", "Change a console user", "Users", ok("UserUpdated"),
                        errors=("404", "409"), body="UserUpdate"),
        "delete": _admin("deleteUser", "Delete a console user", "Users", ok("Deleted", "Deleted."),
                         errors=("404", "409"),
                         description="Ends the user's sessions, revokes their playground key "
                                     "and deletes their playground conversations. The last "
                                     "admin cannot be deleted (409 last_admin).")}
    gname = [{"name": "name", "in": "path", "required": True,
              "description": "The public model name (may contain single slashes; at most 200 "
                             "characters, trimmed; not blank).",
              "schema": ROUTABLE}]
    p[f"{A}/groups"] = {"get": _admin("listGroups", "List routing groups", "Routing",
                                      ok("GroupList"))}
    p[f"{A}/groups/{{name}}"] = {
        "parameters": gname,
        "get": _admin("getGroup", "Get a routing group", "Routing", ok("Group"),
                      errors=("404",)),
        "put": _admin("putGroup", "Create or update a routing group", "Routing",
                      {**ok("Group", "Updated."), **ok("Group", "Created.", "201")},
                      body="GroupInput", errors=("404",),
                      description="404 only for a name that cannot be routed (a newline, a "
                                  "leading or doubled slash)."),
        "delete": _admin("deleteGroup", "Delete a routing group", "Routing",
                         ok("GroupDeleted", "Deleted (the deployments stay)."),
                         errors=("404",))}
    p[f"{A}/settings"] = {
        "get": _admin("getSettings", "Gateway-wide settings", "Settings", ok("Settings")),
        "patch": _admin("updateSettings", "Change gateway-wide settings", "Settings",
                        ok("Settings", "The settings after the change."),
                        body="SettingsPatch")}
    p[f"{A}/cache"] = {"get": _admin("getCacheStats", "Response cache statistics", "Cache",
                                     ok("CacheStats"))}
    p[f"{A}/cache/clear"] = {"post": _admin("clearCache", "Clear response cache entries",
                                            "Cache", ok("CacheCleared"), body="CacheClear")}
    p[f"{A}/prices"] = {"get": _admin(
        "getBuiltinPrice", "Built-in list price of a model id", "Models", ok("Price"),
        params=[{"name": "model_id", "in": "query", "required": False,
                 "schema": {"type": "string", "default": ""},
                 "description": "An upstream model id (prefixes like us.anthropic. and org/ "
                                "are ignored)."}])}

    # usage analytics, request log, audit
    from app.services.usage_query import GROUPS, LOG_SORTS, RANGES

    def q(name, schema, description, **kw):
        return {"name": name, "in": "query", "required": False, "schema": schema,
                "description": description, **kw}

    def ignored(canonical: dict, what: str = "Any other value is ignored.") -> dict:
        return {"anyOf": [canonical, {"type": "string", "description": what}]}

    when = [
        q("range", ignored(enum(RANGES, default="24h"), "Any other value: 422, unless start/end "
                           "are given."), "A window ending now (default 24h)."),
        q("start", {"anyOf": [{"type": "string", "format": "date-time"},
                              {"type": "string", "format": "date"}, {"const": ""}]},
          "Custom window start (ISO 8601, UTC when no offset); replaces range. 422 when "
          "unparsable, missing while end is given, not before end, before 1970-01-02, or more "
          "than 400 days before end."),
        q("end", {"anyOf": [{"type": "string", "format": "date-time"},
                            {"type": "string", "format": "date"}, {"const": ""}]},
          "Custom window end (default now; at most 2200-01-01); needs start."),
    ]
    def id_q(name: str, description: str, lo: int | None = 0) -> dict:
        canonical = {"type": "integer", "maximum": INT64_MAX,
                     **({"minimum": lo} if lo is not None else {"minimum": -INT64_MAX - 1})}
        return q(name, {"anyOf": [canonical, {"const": "", "description": "No filter."}]},
                 description)

    roll_filters = [
        q("model", {"type": "string"}, "Only this public model name."),
        q("provider_id", {"anyOf": [{"type": "integer"}, {"type": "string", "description": (
            "Not an integer: matches nothing alone, 422 with another filter.")}]},
          "Only this provider (\"\": no filter)."),
        q("key_id", {"anyOf": [{"type": "integer"}, {"type": "string", "description": (
            "Not an integer: matches nothing alone, 422 with another filter.")}]},
          "Only this key (\"\": no filter)."),
        q("owner", {"type": "string"}, "Only keys of this owner (team)."),
    ]
    bool_q = {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": BOOL_STRING}]}
    log_filters = [
        q("start", {"anyOf": [{"type": "string", "format": "date-time"},
                              {"type": "string", "format": "date"}, {"const": ""}]},
          "Records at or after (ISO 8601); unparsable: 422."),
        q("end", {"anyOf": [{"type": "string", "format": "date-time"},
                            {"type": "string", "format": "date"}, {"const": ""}]},
          "Records before (ISO 8601); unparsable: 422."),
        id_q("key_id", "Only this key."),
        id_q("provider_id", "Only this provider."),
        id_q("status", "Only this HTTP status."),
        q("model", {"type": "string"}, "Only this public model name."),
        q("error_class", {"type": "string"}, "Only this error class (e.g. rate_limited)."),
        q("outcome", ignored(enum(("ok", "error"))), "ok: status < 400; error: >= 400."),
        q("cache", bool_q, "Only cache hits (true) or misses (false)."),
        q("stream", bool_q, "Only streamed (true) or non-streamed (false) requests."),
    ]
    p[f"{A}/usage/summary"] = {"get": _admin(
        "getUsageSummary", "Usage totals of a window, with the change against the one before",
        "Usage", ok("UsageSummary"), errors=("422",), params=when + roll_filters)}
    p[f"{A}/usage/timeseries"] = {"get": _admin(
        "getUsageTimeseries", "Usage per time bucket", "Usage", ok("UsageTimeseries"),
        errors=("422",), params=when + roll_filters + [
            q("group_by", {"anyOf": [enum(GROUPS), {"const": ""}]},
              "One series per model, provider, key or owner (\"\": a single series).")])}
    p[f"{A}/usage/breakdown"] = {"get": _admin(
        "getUsageBreakdown", "Usage per model, provider, key or owner", "Usage",
        ok("UsageBreakdown"), errors=("422",), params=when + roll_filters + [
            q("by", enum(GROUPS, default="model"), "Grouping (default model).")])}
    p[f"{A}/requests"] = {"get": _admin(
        "listRequests", "The request log", "Usage", ok("RequestPage"), errors=("422",),
        params=log_filters + [
            q("sort", enum(LOG_SORTS, default="time"), "Sort column."),
            q("order", ignored(enum(("asc", "desc"), default="desc"),
                               "Anything but asc: descending."), "Sort order."),
            q("page", ignored({"type": "integer", "default": 1},
                              "Not an integer: 1."), "Page (clamped to 1..10000)."),
            q("per_page", ignored({"type": "integer", "default": 50}, "Not an integer: 50."),
              "Rows per page (clamped to 1..500).")])}
    p[f"{A}/requests/export"] = {"get": {**_admin(
        "exportRequests", "Export the request log", "Usage",
        {"200": {"description": "The records, oldest first, streamed (CSV with a header row, or "
                                "one JSON object per line without `details`).",
                 "headers": _headers(),
                 "content": {"text/csv": {"schema": {"type": "string"}},
                             "application/x-ndjson": {"schema": {"type": "string"}}}}},
        errors=("422",), params=log_filters + [
            q("format", enum(("csv", "jsonl"), default="csv"), "csv or jsonl.")])}}
    p[f"{A}/requests/{{record_id}}"] = {"get": _admin(
        "getRequest", "One request of the log, with its logged bodies", "Usage",
        ok("RequestRecordDetail"), errors=("404",),
        params=[_id_param("record_id", "request record")])}
    p[f"{A}/audit"] = {"get": _admin(
        "listAudit", "The audit log of configuration changes", "Usage", ok("AuditList"),
        params=[q("actor", {"type": "string"}, "Only this actor (e.g. key:gw-abc…, master-key)."),
                q("action", {"type": "string"}, "Only this action (create, update, delete, ...)."),
                q("entity_type", {"type": "string"}, "Only this entity type (provider, model, "
                                                     "key, team, group, settings, ...)."),
                q("limit", ignored({"type": "integer", "default": 100}, "Not an integer: 100."),
                  "At most this many entries (clamped to 1..1000)."),
                q("before", ignored({"type": "integer"}, "Not an integer (or 0): no bound."),
                  "Only entries with a smaller id (paging).")])}

    p["/api/openapi.json"] = {"get": {
        "operationId": "getOpenAPIDocument", "tags": ["Meta"], "security": [],
        "summary": "This document",
        "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                              "content": {JSON: {"schema": {"type": "object"}}}}}}}
    return p


DESCRIPTION = """\
Two faces of the gateway:

* **/v1** speaks the OpenAI API (chat completions, embeddings, models): point any OpenAI SDK at
  this gateway with a gateway key (`gw-...`) as its API key. The gateway checks the fields it
  needs (model, messages, stream, number types, token counts, embeddings input) and forwards the
  others to the upstream provider, whose refusals come back as 400s in the same error shape.
* **/api/admin** is the JSON admin API: a key with the `admin` scope (or the
  `GATEWAY_MASTER_KEY`).

Every error is `{"error": {"message", "type", "param", "code"}}`. Every response carries
`x-request-id`.

Admin fields are lenient in documented ways: integer and number fields also take numeric strings,
and `null` or `""` for "not set"; booleans also take true/false/yes/no/on/off/y/n/1/0 (any case);
lists of strings also take one comma- or newline-separated string; text is trimmed before its
length is checked, and blank text counts as not given. The first branch of each `anyOf` is the
canonical form. Unknown fields are ignored, except in `limits` and in the settings document
(422). The console-user bodies (/api/admin/users) are strict instead: no unknown fields, no
lenient forms, no trimming (422 otherwise).
"""


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    error_responses = {f"E{c}": _err(d) for c, d in ERRORS.items() if c != "429"}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "LLM Gateway API",
            "version": "1",
            "summary": "One OpenAI-compatible front door to every provider, and its admin API.",
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/", "description": "This gateway"}],
        "tags": [
            {"name": "OpenAI-compatible", "description": "/v1: use any OpenAI SDK with a "
                                                         "gateway key as its API key."},
            {"name": "Providers"}, {"name": "Models"}, {"name": "Keys"}, {"name": "Teams"},
            {"name": "Users", "description": "Console users (admin keys only)."},
            {"name": "Routing"}, {"name": "Settings"}, {"name": "Cache"}, {"name": "Usage"},
            {"name": "Meta"},
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": error_responses,
            "headers": {
                "x-request-id": {"description": "The request id (the client's x-request-id when "
                                                "it is 1-128 characters of A-Za-z0-9._:-).",
                                 "required": True, "schema": {"type": "string"}},
                "Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "string"}},
                "x-cache": {"description": "HIT, MISS or BYPASS when the cache was considered.",
                            "schema": enum(("HIT", "MISS", "BYPASS"))},
                "x-gateway-attempts": {"description": "Deployments tried: provider/model=status;"
                                                      "...", "schema": {"type": "string"}},
                "x-gateway-budget-warning": {"description": "Present past a budget's soft "
                                                            "threshold.",
                                             "schema": {"type": "string"}},
                "x-gateway-redacted": {"description": "What the redact policy masked.",
                                       "schema": {"type": "string"}},
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A gateway key (gw-...). /api/admin needs a key "
                                              "with the admin scope, or GATEWAY_MASTER_KEY."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key",
                                 "description": "The same key, for clients that cannot send "
                                                "Authorization (used when Authorization is not "
                                                "a Bearer header)."},
            },
        },
    }


def build_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may modify it)."""
    return copy.deepcopy(_document())


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    from app.providers.common import dumps
    return Response(dumps(_document()), mimetype=JSON)
