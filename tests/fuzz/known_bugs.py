"""App bugs found by fuzzing: where they were, how they were fixed, which inputs trigger them.

KNOWN_BUGS (fixed) are regression tests in tests/fuzz/test_known_bugs.py, and the fuzzer sends
their inputs like any others. OPEN_BUGS (found, not fixed yet) are strict xfails there, and the
schemathesis run does not send inputs they `match` (so it stays green until something new
breaks); when one is fixed its xfail XPASSes: move it to KNOWN_BUGS.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlparse

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class KnownBug:
    name: str
    reason: str                       # what breaks, where, and the fix
    matches: Callable[[Any], bool]    # schemathesis Case -> bool: the fuzzer must not send it
    repro: Callable[[Any], Any]       # FuzzEnv -> Flask response that should be a clean 4xx/2xx


# ------------------------------------------------------------------------------------ helpers
def _big(value) -> bool:
    """An integer (or integer string) SQLite cannot bind."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > INT64_MAX
    if isinstance(value, float):
        return value.is_integer() and abs(value) > INT64_MAX
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return abs(int(text)) > INT64_MAX
        except ValueError:
            return False
    return False


def _body(case) -> dict:
    return case.body if isinstance(case.body, dict) else {}


def _query(case) -> dict:
    return case.query if isinstance(case.query, dict) else {}


def _parse_ts(value) -> datetime | None:
    """validation.timestamp, up to the step that overflows (raises OverflowError there)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _ts_overflows(value) -> bool:
    try:
        _parse_ts(value)
    except OverflowError:
        return True
    return False


USAGE = ("/api/admin/usage/summary", "/api/admin/usage/timeseries", "/api/admin/usage/breakdown")
LOG = ("/api/admin/requests", "/api/admin/requests/export")


def _window(case) -> tuple[datetime, datetime] | None:
    q = _query(case)
    start, end = q.get("start"), q.get("end")
    if not (start or end):
        return None
    try:
        s, e = _parse_ts(start), _parse_ts(end) or datetime.utcnow()
    except OverflowError:
        return None
    if s is None or s >= e:
        return None
    return s, e


# ------------------------------------------------------------------------------------ matchers
def _path_int_overflow(case) -> bool:
    return any(_big(v) for v in (case.path_parameters or {}).values())


def _field_int_overflow(case) -> bool:
    body, q = _body(case), _query(case)
    if case.path in ("/api/admin/models", "/api/admin/models/{model_pk}") and \
            case.method.upper() in ("POST", "PATCH") and _big(body.get("provider_id")):
        return True
    if case.path == "/api/admin/cache/clear":
        return _big(body.get("key_id"))
    if case.path == "/api/admin/models":
        return _big(q.get("provider_id"))
    if case.path == "/api/admin/audit":
        return _big(q.get("before"))
    if case.path in LOG + USAGE:
        return any(_big(q.get(name)) for name in ("key_id", "provider_id", "status"))
    return False


def _export_jsonl(case) -> bool:
    return case.path == "/api/admin/requests/export" and _query(case).get("format") == "jsonl"


def _window_overflow(case) -> bool:
    if case.path not in USAGE:
        return False
    w = _window(case)
    if w is None:
        return False
    s, e = w
    try:
        s - timedelta(seconds=299)
        s - (e - s) - timedelta(seconds=299)  # the previous window (summary's comparison)
        e + timedelta(days=1)
    except OverflowError:
        return True
    return False


def _timestamp_overflow(case) -> bool:
    body, q = _body(case), _query(case)
    if case.path.startswith("/api/admin/keys") and _ts_overflows(body.get("expires_at")):
        return True
    if case.path in USAGE + LOG:
        return _ts_overflows(q.get("start")) or _ts_overflows(q.get("end"))
    return False


def _bedrock_config(case) -> bool:
    body = _body(case)
    config = body.get("config")
    return (case.path == "/api/admin/providers" and body.get("type") == "bedrock"
            and not body.get("api_base") and bool(config) and not isinstance(config, dict))


def _bad_netloc(case) -> bool:
    value = _body(case).get("api_base")
    if not isinstance(value, str) or not case.path.startswith("/api/admin/providers"):
        return False
    try:
        urlparse(value.strip())
    except ValueError:
        return True
    return False


def _float_overflow(case) -> bool:
    def huge(value) -> bool:
        if isinstance(value, dict):
            return any(huge(v) for v in value.values())
        if isinstance(value, list):
            return any(huge(v) for v in value)
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1.7e308
    return case.path.startswith("/api/admin") and huge(case.body)


def _tool_calls(case) -> bool:
    if case.path != "/v1/chat/completions":
        return False
    messages = _body(case).get("messages")
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        calls = m.get("tool_calls")
        if calls and isinstance(calls, (int, float)):  # includes True
            return True
        if isinstance(calls, list):
            for tc in calls:
                if isinstance(tc, dict) and tc.get("function") and \
                        not isinstance(tc["function"], dict):
                    return True
    return False


def _usage_filter_not_int(case) -> bool:
    if case.path not in USAGE:
        return False
    q = _query(case)
    for name in ("provider_id", "key_id"):
        value = q.get(name)
        if value in (None, "") or isinstance(value, bool):
            continue
        if isinstance(value, int):
            continue
        try:
            int(str(value))
        except ValueError:
            return True
    return False


def _huge_timeseries(case) -> bool:
    if case.path != "/api/admin/usage/timeseries":
        return False
    w = _window(case)
    return w is not None and (w[1] - w[0]) > timedelta(days=3 * 366)


# ------------------------------------------------------------------------------------ repros
def _get(path):
    return lambda env: env.client.get(path, headers=env.admin)


def _post(path, body, chat=False):
    return lambda env: env.client.post(path, json=body, headers=env.chat if chat else env.admin)


def _deep_admin_body(env):
    nested = b"[" * 10_000 + b"]" * 10_000
    return env.client.post("/api/admin/keys", data=nested, headers={
        **env.admin, "Content-Type": "application/json"})


def _raw_admin(path, raw: bytes):
    return lambda env: env.client.post(path, data=raw, headers={
        **env.admin, "Content-Type": "application/json"})


def _strict_json(env):
    """Infinity/NaN are not JSON: a response carrying them is unreadable to strict clients."""
    import json

    r = env.client.post("/api/admin/keys", data=b'{"name": "n", "tags": {"a": NaN}}',
                        headers={**env.admin, "Content-Type": "application/json"})

    def refuse(token):
        raise ValueError(token)
    try:
        json.loads(r.get_data(), parse_constant=refuse)
    except ValueError:
        r.status_code = 599  # reported by the test as "not JSON"
    return r


def _budget_case(case) -> bool:
    def out_of_range(budget) -> bool:
        if not isinstance(budget, dict):
            return False
        value = budget.get("amount_usd")
        try:
            from decimal import Decimal
            d = Decimal(str(value))
        except Exception:
            return False
        return d.is_finite() and d != 0 and abs(d.adjusted()) > 900_000
    return case.path.startswith(("/api/admin/keys", "/api/admin/teams")) and \
        out_of_range(_body(case).get("budget"))


def _budget_then_key_info(env):
    r = env.client.post("/api/admin/keys", json={"name": "b", "budget": {
        "amount_usd": "1e1000000"}}, headers=env.admin)
    if r.status_code != 201:
        return r
    return env.client.get("/v1/key/info", headers={"Authorization": f"Bearer {r.get_json()['key']}"})


def _settings_then_chat(patch):
    def run(env):
        r = env.client.patch("/api/admin/settings", json=patch, headers=env.admin)
        assert r.status_code in (200, 422), r.get_data()
        return env.client.post("/v1/chat/completions", headers=env.chat, json={
            "model": "mini", "messages": [{"role": "user", "content": "hello"}]})
    return run


def _export_empty(env):
    return env.client.get("/api/admin/requests/export?format=jsonl&model=no-such-model",
                          headers=env.admin)


def _timeseries_size(env):
    r = env.client.get("/api/admin/usage/timeseries?start=0500-01-01&end=9000-01-01",
                       headers=env.admin)
    # a resource bug, not a 5xx: the answer must be bounded (a refusal is fine)
    if r.status_code == 200 and len(r.get_data()) > 5_000_000:
        r.status_code = 599  # reported by the test as "not bounded"
    return r


KNOWN_BUGS: list[KnownBug] = [
    KnownBug(
        "path-int-overflow",
        "An <int:...> path id above 2**63-1 reaches SQLite: OverflowError 'Python int too large "
        "to convert to SQLite INTEGER' -> 500 on every /api/admin/.../<int:id> route "
        "(db.session.get in the services' get()). Fix: bound the converter, e.g. in create_app "
        "`app.url_map.converters['int'] = BoundedInt` (IntegerConverter with max=2**63-1) so such "
        "paths are 404s.",
        _path_int_overflow, _get("/api/admin/keys/99999999999999999999")),
    KnownBug(
        "field-int-overflow",
        "Integer body/query fields used in SQL are unbounded: POST/PATCH /api/admin/models "
        "provider_id (services/models.py _apply: db.session.get(Provider, pid)), /api/admin/models"
        "?provider_id (api/models.py), cache/clear key_id (api/cache.py), audit ?before "
        "(api/usage.py audit_log), request-log key_id/provider_id/status (usage_query "
        "_log_filters) -> OverflowError -> 500. Fix: validation.integer gets hi=2**63-1 by "
        "default; parse the query ids with the same bound (422 or ignore).",
        _field_int_overflow,
        _post("/api/admin/models", {"provider_id": 99999999999999999999, "model_id": "x"})),
    KnownBug(
        "export-jsonl-empty",
        "GET /api/admin/requests/export?format=jsonl with no matching record: api/usage.py "
        "request_export calls next(lines) on an empty generator -> StopIteration -> 500 (CSV "
        "always has its header row). Fix: first = next(lines, '').",
        _export_jsonl, _export_empty),
    KnownBug(
        "usage-filter-not-integer",
        "Usage summary/timeseries/breakdown with provider_id or key_id that is not an integer "
        "(e.g. ?provider_id=abc&model=x): with two or more filters usage_query reads the raw "
        "records and calls int(value) -> ValueError -> 500 (with one filter the rollups compare "
        "strings and answer 200 with nothing). Fix: parse both with v.integer(lo=0, "
        "hi=2**63-1) in app/api/usage.py _filters (422).",
        _usage_filter_not_int, _get("/api/admin/usage/summary?provider_id=abc&model=mini")),
    KnownBug(
        "usage-window-overflow",
        "Usage windows near year 1: usage_query subtracts 299 s from the start (and the "
        "summary's previous window subtracts the whole span) -> OverflowError 'date value out "
        "of range' -> 500 (e.g. start=0001-01-01, or start=0700-01-01&end=2024-01-01 for the "
        "summary). Fix: window() refuses starts before e.g. 1970 (or catches OverflowError) "
        "with a 422.",
        _window_overflow, _get("/api/admin/usage/summary?start=0700-01-01&end=2024-01-01")),
    KnownBug(
        "timestamp-offset-overflow",
        "validation.timestamp: astimezone(timezone.utc) of 0001-01-01T00:00:00+01:00 (or "
        "9999-12-31T23:59:59-01:00) raises OverflowError -> 500 (keys expires_at, usage and "
        "request-log start/end). Fix: catch OverflowError there and raise ValidationFailed.",
        _timestamp_overflow,
        _post("/api/admin/keys", {"name": "k", "expires_at": "0001-01-01T00:00:00+01:00"})),
    KnownBug(
        "bedrock-config-not-object",
        "POST /api/admin/providers {type: bedrock, config: <string/list/number>} without "
        "api_base: services/providers.py _apply computes the default base with "
        "(data.get('config') or {}).get('region') before config is validated -> AttributeError "
        "-> 500. Fix: use the region only when config is a dict (v.mapping first).",
        _bedrock_config, _post("/api/admin/providers", {"name": "b", "type": "bedrock",
                                                        "config": "us-east-1"})),
    KnownBug(
        "url-invalid-host",
        "validation.url: urlparse raises ValueError ('Invalid IPv6 URL') for api_base values "
        "like http://[::1 -> 500. Fix: catch ValueError and raise the same ValidationFailed.",
        _bad_netloc, _post("/api/admin/providers", {"name": "u", "type": "openai",
                                                    "api_base": "http://[::1"})),
    KnownBug(
        "number-overflow",
        "validation.number: float(10**400) raises OverflowError (not caught with "
        "TypeError/ValueError) -> 500, e.g. default_temperature, timeouts, group timeout_s, "
        "sensitivity threshold. Fix: catch OverflowError too.",
        _float_overflow, _post("/api/admin/providers", {"name": "n", "type": "openai",
                                                        "default_temperature": 10**400})),
    KnownBug(
        "chat-tool-calls-shape",
        "POST /v1/chat/completions with messages[].tool_calls a number (or a tool call whose "
        "function is not an object): validate_chat does not look at tool_calls and "
        "services/completions.py estimate_prompt iterates/`.get`s them -> TypeError/"
        "AttributeError -> 500. Fix: validate tool_calls (array of objects, function an object) "
        "in validate_chat, or skip malformed ones in estimate_prompt.",
        _tool_calls, _post("/v1/chat/completions", {"model": "mini", "messages": [
            {"role": "assistant", "content": "x", "tool_calls": 5}]}, chat=True)),
    KnownBug(
        "admin-deep-json",
        "A JSON body nested 10,000 levels deep to any /api/admin write: app/api/__init__.py "
        "body() uses request.get_json(silent=True), whose stdlib parser raises RecursionError "
        "(not ValueError) -> 500 (the /v1 face uses orjson and answers 400). Fix: catch "
        "RecursionError in body() (400), or parse with app.providers.common.loads.",
        lambda case: False, _deep_admin_body),
    KnownBug(
        "admin-lone-surrogate",
        "A JSON string with a lone UTF-16 surrogate escape (\"\\ud800\") in any /api/admin "
        "write (key/team/provider names, cache/clear pattern, ...): the stdlib parser accepts "
        "it and SQLite fails to encode it (UnicodeEncodeError) -> 500. /v1 parses with orjson, "
        "which refuses it (400). Fix: parse admin bodies with app.providers.common.loads in "
        "app/api/__init__.py body() (also fixes admin-deep-json and admin-nan-infinity).",
        lambda case: False, _raw_admin("/api/admin/teams", b'{"name": "a\\ud800b"}')),
    KnownBug(
        "admin-nan-infinity",
        "/api/admin bodies accept the non-JSON literals NaN/Infinity (stdlib parser) in free-form "
        "values (key tags, provider config): they are stored and echoed back as NaN/Infinity, "
        "so the response (and every later listing, and /v1/key/info for tags) is not valid "
        "JSON. Fix: parse with app.providers.common.loads (orjson refuses them: 400).",
        lambda case: False, _strict_json),
    KnownBug(
        "budget-amount-out-of-range",
        "services/keys.py budget_from accepts any finite Decimal, e.g. amount_usd \"1e1000000\" "
        "(beyond the decimal context's Emax): GET /v1/key/info then fails with "
        "decimal.Overflow -> 500, and Gate.admit hits the same error, logs 'limit store "
        "unavailable; letting the request through' and fails open: the budget is silently not "
        "enforced. Fix: bound amount_usd (e.g. hi=Decimal(10**12)) in budget_from.",
        _budget_case, _budget_then_key_info),
    KnownBug(
        "sensitivity-threshold-null",
        "PATCH /api/admin/settings {sensitivity: {action: block, threshold: null}} is accepted "
        "(validate_sensitivity stores threshold None); then every chat request fails in "
        "services/inspection.py inspector_for: float(None) -> TypeError -> 500 (same with a "
        "key's sensitivity). Fix: refuse null in validate_sensitivity (or drop the key) and "
        "use policy.get('threshold') or 0.5 in inspector_for.",
        lambda case: False,
        _settings_then_chat({"sensitivity": {"action": "block", "threshold": None}})),
    KnownBug(
        "timeseries-unbounded",
        "GET /api/admin/usage/timeseries with a custom start/end builds one bucket per step for "
        "any span: start=0001-01-02&end=9999-12-30 is 3.65 million buckets, a ~900 MB response "
        "and ~15 s of CPU for one request (a denial of service by any admin key). Fix: cap the "
        "window (e.g. 400 days) or the bucket count (widen step) with a 422 beyond.",
        _huge_timeseries, _timeseries_size),
]


# ------------------------------------------------------------------------------------ still open
def _export_many_jsonl(env):
    """More than one yield_per batch (1,000 rows) of records, exported as JSON Lines."""
    from app.extensions import db
    from app.models import UsageRecord
    with env.app.app_context():
        db.session.add_all([UsageRecord(endpoint="chat", key_id=1, model_name="mini",
                                        status_code=200) for _ in range(1_100)])
        db.session.commit()
    try:
        r = env.client.get("/api/admin/requests/export?format=jsonl", headers=env.admin)
        r.get_data()
    except Exception as exc:  # raised while streaming, after the 200 and its headers went out
        from flask import Response
        return Response(f"stream aborted: {exc!r}"[:300], status=599)
    if r.get_data().count(b"\n") < 1_100:
        r.status_code = 599
    return r


# Found and not fixed yet: strict xfails in test_known_bugs.py; the fuzzer does not send these
# inputs. When one is fixed, its xfail XPASSes: move it to KNOWN_BUGS (a regression test).
def _huge_id_status(env):
    """Every method on an id beyond 64 bits must be a 404 (not a 405)."""
    huge = "99999999999999999999"
    for method, path in (("delete", f"/api/admin/keys/{huge}"),
                         ("patch", f"/api/admin/keys/{huge}"),
                         ("post", f"/api/admin/providers/{huge}/health"),
                         ("get", f"/api/admin/providers/{huge}/health")):
        r = getattr(env.client, method)(path, json={}, headers=env.admin)
        if r.status_code != 404:
            r.status_code = 599  # reported by the test as a wrong status
            return r
    return r


OPEN_BUGS: list[KnownBug] = []
KNOWN_BUGS.append(
    KnownBug(
        "path-int-overflow-405",
        "After the path-int-overflow fix (app/__init__.py BoundedInt, IntegerConverter with "
        "max=2**63-1), an id beyond 64 bits is a 404 for GET /api/admin/keys/<id> but a 405 "
        "'method not allowed' for DELETE/PATCH on it, and for both GET and POST "
        "/api/admin/providers/<id>/health: Werkzeug's matcher, when the converter rejects the "
        "value, still collects the methods of the rules whose pattern matched and raises "
        "MethodNotAllowed. "
        "Fix: let BoundedInt.to_python map out-of-range values to 0 (no row has id 0) instead "
        "of rejecting them, so every method reaches its view and gets the service's 404 "
        "(<thing>_not_found).",
        _path_int_overflow, _huge_id_status))

KNOWN_BUGS.append(
    KnownBug(
        "export-jsonl-over-1000-rows",
        "GET /api/admin/requests/export?format=jsonl when more than 1,000 records match: "
        "app/api/usage.py request_export runs `first = next(lines, '')` in the view, which (for "
        "jsonl, unlike csv whose first item is the header) starts the yield_per(1000) query in "
        "the view; the rest is streamed after the view returned, and fetching the 2nd batch "
        "raises sqlalchemy InvalidRequestError ('identity map is no longer valid. Has the "
        "owning Session been closed?'): the 200 is cut off after 1,000 rows (the server aborts "
        "the connection). Fix: validate the arguments up front without running the query (e.g. "
        "export() validates, then returns a generator), or have export() yield '' first for "
        "jsonl too, so the query runs inside stream_with_context like the csv one.",
        _export_jsonl, _export_many_jsonl))
