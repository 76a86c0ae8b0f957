"""Schemathesis against the WSGI app: >= 10,000 generated requests (valid and invalid) to every
documented /v1 and /api/admin operation, held to the OpenAPI document.

Every response must: not be a 5xx, carry no Python traceback, use a documented status and
content type, match the documented schema (JSON bodies and each SSE event), and - for invalid
requests - be a refusal. Every error body has the {"error": {...}} shape.

Upstream calls go to tests/fuzz/fake_upstream.py. Examples are derandomized (the same run every
time); set FUZZ_RANDOM=1 for a fresh random run and FUZZ_EXAMPLES=n to change the per-operation
count (each operation runs n valid and FUZZ_NEGATIVE_FACTOR x n, default 2n, invalid examples;
the chat and embeddings bodies twice as many). The run prints what it sent per operation and
mode, and must send >= 10,000 requests that are invalid under the served document (counted
with really_negative), with zero 5xx.

Inputs that hit a bug still open (known_bugs.OPEN_BUGS, each with its strict-xfail test in
test_known_bugs.py) are counted, not sent, so this test stays green until a new problem appears.
"""
from __future__ import annotations

import copy
import json
import os
import re
import time
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import errors as hypothesis_errors
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.fuzz.known_bugs import OPEN_BUGS  # fixed ones (KNOWN_BUGS) are fuzzed like the rest

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
# the proxy's request bodies are the product: they get more examples
PROXY_BODY_EXAMPLES = int(os.environ.get("FUZZ_PROXY_EXAMPLES", str(EXAMPLES * 2)))
# invalid requests are what the hardening issue counts: NEGATIVE_FACTOR x as many of them
NEGATIVE_FACTOR = float(os.environ.get("FUZZ_NEGATIVE_FACTOR", "2"))
MIN_REQUESTS = 10_000
MIN_MALFORMED = 10_000  # requests invalid under the served document, across /v1 and /api/admin
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
CHAT_MODELS = ["mini", "mini", "auto", "gpt-4o-mini-2024", "decoy-model"]
EMBED_MODELS = ["text-embedding-3-small", "text-embedding-3-small", "mini"]


class Run:
    def __init__(self):
        self.requests = 0
        self.by_operation: Counter = Counter()
        self.op_statuses: dict[str, Counter] = defaultdict(Counter)
        self.statuses: Counter = Counter()
        self.failures: dict[str, list[str]] = defaultdict(list)
        self.known: Counter = Counter()
        self.skipped: list[str] = []
        self.timing: dict[str, tuple[int, float]] = {}
        self.call_time = self.check_time = 0.0
        self.malformed = 0                      # sent requests invalid under the served document
        self.malformed_by_operation: Counter = Counter()
        self.malformed_statuses: Counter = Counter()

    def fail(self, label: str, message: str) -> None:
        if len(self.failures[label]) < 3:  # a few examples per operation are enough
            self.failures[label].append(message[:3000])
        else:
            self.failures[label].append("")

    def report(self) -> str:
        lines = []
        for label, msgs in sorted(self.failures.items()):
            lines.append(f"=== {label}: {len(msgs)} failing request(s)")
            lines.extend(m for m in msgs if m)
        return "\n".join(lines)


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _negative(case, location: str) -> bool:
    from schemathesis.core.parameters import ParameterLocation
    info = case.meta.components.get(ParameterLocation(location)) if case.meta else None
    return info is not None and info.mode.is_negative


def steer(case, data, env) -> None:
    """Aim part of the generated requests at things that exist, and keep the fuzzer's own keys
    and the upstream route it depends on from being revoked or rewired. Invalid (negative) path
    values are left alone, except that the protected ids are never modified or deleted."""
    params = case.path_parameters or {}
    aim = not _negative(case, "path")
    for name, value in list(params.items()):
        if name in env.ids and _is_id(value):
            if aim and data.draw(st.booleans(), label=f"existing {name}"):
                value = data.draw(st.sampled_from(env.ids[name]), label=name)
            guarded = {"DELETE"} if name == "user_id" else MUTATING
            if case.method.upper() in guarded and value in env.protected.get(name, ()):
                value = env.decoys[name]
            params[name] = value
    if case.path == "/v1/models/{model_id}" and aim and data.draw(st.booleans()):
        params["model_id"] = data.draw(st.sampled_from(CHAT_MODELS + EMBED_MODELS))
    body = case.body
    if isinstance(body, dict):
        model = body.get("model")
        if case.path in ("/v1/chat/completions", "/v1/responses", "/v1/messages",
                         "/v1/messages/count_tokens") and isinstance(model, str) \
                and model.strip():
            if data.draw(st.integers(0, 9), label="real model") < 8:
                body["model"] = data.draw(st.sampled_from(CHAT_MODELS))
        if case.path == "/v1/embeddings" and isinstance(model, str) and model.strip():
            if data.draw(st.integers(0, 9), label="real model") < 8:
                body["model"] = data.draw(st.sampled_from(EMBED_MODELS))
        if case.path.startswith("/api/admin/users") and isinstance(body.get("teams"), list) \
                and body["teams"] and data.draw(st.booleans(), label="existing team"):
            body["teams"] = ["decoy-team"]  # the only team: a team_admin body can then succeed
        if case.path == "/api/admin/models" and _is_id(body.get("provider_id")):
            if data.draw(st.booleans(), label="existing provider"):
                body["provider_id"] = data.draw(st.sampled_from(env.ids["provider_id"]))


def typed_events(content: bytes, problems: list[str]) -> tuple[list[str], list[tuple[int, str, dict]]]:
    """The SSE blocks of a typed stream (`event: <name>` + `data: <JSON>`) and (index, name,
    data) of each well-formed one; a malformed block is reported in ``problems``."""
    blocks = [b for b in content.decode("utf-8").split("\n\n") if b.strip()]
    events = []
    for i, block in enumerate(blocks):
        lines = block.split("\n")
        if len(lines) != 2 or not lines[0].startswith("event: ") or not lines[1].startswith("data: "):
            problems.append(f"event {i} is not `event:` + `data:`: {block[:100]!r}")
            continue
        try:
            obj = json.loads(lines[1][6:])
        except ValueError:
            problems.append(f"event {i} is not JSON")
            continue
        events.append((i, lines[0][7:], obj))
    return blocks, events


def responses_stream_problems(content: bytes) -> list[str]:
    """Typed Responses events: `event:` = the data's type, sequence numbers 0..n-1, one terminal
    event (response.completed / .incomplete / .failed) at the end."""
    problems, seq = [], []
    blocks, events = typed_events(content, problems)
    for i, name, obj in events:
        if obj.get("type") != name:
            problems.append(f"event {i}: event name and type differ")
        seq.append(obj.get("sequence_number"))
    if seq != list(range(len(seq))):
        problems.append(f"sequence numbers are not 0..n-1: {seq[:20]}")
    last = blocks[-1].split("\n")[0][7:] if blocks else ""
    if last not in ("response.completed", "response.incomplete", "response.failed"):
        problems.append(f"stream does not end with a terminal event: {last!r}")
    return problems


ANTHROPIC_EVENTS = {"message_start", "content_block_start", "content_block_delta", "content_block_stop",
                    "message_delta", "message_stop", "ping", "error"}


def anthropic_stream_problems(content: bytes) -> list[str]:
    """Anthropic's events: `event:` = the data's type, message_start first, then one terminal
    event (message_stop, or an in-band error) at the end and nothing after it."""
    problems, names = [], []
    for i, name, obj in typed_events(content, problems)[1]:
        if name not in ANTHROPIC_EVENTS or obj.get("type") != name:
            problems.append(f"event {i}: unknown event or name and type differ: {name!r}")
        names.append(name)
    if names and names[0] not in ("message_start", "error"):
        problems.append(f"stream does not start with message_start: {names[0]!r}")
    if not names or names[-1] not in ("message_stop", "error"):
        problems.append(f"stream does not end with message_stop or error: {names[-1:]!r}")
    if "error" in names[:-1] or "message_stop" in names[:-1]:
        problems.append("events after the terminal event")
    return problems


def own_checks(case, response, error_validator, event_validator,
               anthropic_error_validator=None) -> list[str]:
    """Checks beyond schemathesis': no traceback, error shape everywhere (Anthropic's on the
    Anthropic door), well-formed streams."""
    problems = []
    content = response.content or b""
    if TRACEBACK.search(content):
        problems.append("a Python traceback in the body")
    if response.status_code == 405:  # schemathesis skips its checks for 405s: not here
        problems.append("405 for a documented method")
    ctype = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if response.status_code >= 400:
        try:
            body = json.loads(content)
        except ValueError:
            problems.append(f"error body is not JSON ({ctype}): {content[:200]!r}")
        else:
            anthropic = case.path.startswith("/v1/messages") and anthropic_error_validator
            errors = list((anthropic_error_validator if anthropic else error_validator)
                          .iter_errors(body))
            if errors:
                problems.append(f"error body not in the error shape: {errors[0].message}")
    if ctype == "text/event-stream" and case.path == "/v1/responses":
        problems += responses_stream_problems(content)
    elif ctype == "text/event-stream" and case.path == "/v1/messages":
        problems += anthropic_stream_problems(content)
    elif ctype == "text/event-stream":
        events = [line[6:] for line in content.decode("utf-8").split("\n")
                  if line.startswith("data: ")]
        if not events:
            problems.append("empty event stream")
        for i, data in enumerate(events):
            if data == "[DONE]":
                if i != len(events) - 1:
                    problems.append("[DONE] is not the last event")
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                problems.append(f"event {i} is not JSON: {data[:100]}")
                continue
            errors = list(event_validator.iter_errors(obj))
            if errors:
                problems.append(f"event {i} is neither a chunk nor an error: {errors[0].message}")
            if "error" in obj and i != len(events) - 1:
                problems.append("events after an in-band error")
        if events and events[-1] != "[DONE]" and '"error"' not in events[-1]:
            problems.append(f"stream ends without [DONE] or an error: ...{content[-300:]!r}")
    return problems


def _close(schema) -> None:
    """additionalProperties: false on every `type: object` schema that lists properties and
    says nothing about others (the gateway ignores or forwards unknown fields either way).
    Untyped subschemas (if/then clauses) are left alone: closing them would change meaning."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema and \
                schema.get("type") == "object":
            schema["additionalProperties"] = False
        for value in schema.values():
            _close(value)
    elif isinstance(schema, list):
        for value in schema:
            _close(value)


def _refs(schema, found: set) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in schema.values():
            _refs(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _refs(value, found)


def fuzz_document(doc: dict) -> dict:
    """The served document, with request bodies closed to unknown fields for generation.

    Unknown fields are ignored (admin) or forwarded (/v1), so generating piles of random extra
    keys and nested JSON only costs time (it made a chat example ~5x slower): the fuzzer spends
    it on the documented fields instead. Response schemas are untouched.
    """
    doc = copy.deepcopy(doc)
    schemas = doc["components"]["schemas"]
    # ToolCall is shared with the chat response: the request side gets its own closed copy
    schemas["ToolCallRequest"] = copy.deepcopy(schemas["ToolCall"])
    schemas["ChatMessage"]["properties"]["tool_calls"]["items"] = {
        "$ref": "#/components/schemas/ToolCallRequest"}
    names: set = set()
    for item in doc["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "requestBody" in op:
                _refs(op["requestBody"], names)
    todo = list(names)
    while todo:  # everything a request body refers to, transitively
        found: set = set()
        _refs(schemas[todo.pop()], found)
        todo.extend(found - names)
        names |= found
    for name in names:
        _close(schemas[name])
    return doc


def really_negative(case, body_validators: dict) -> bool:
    """Is the case invalid under the *served* document? (Generation uses closed request bodies,
    so a body that is "negative" only by an unknown field is valid for the real contract.)"""
    from schemathesis.core.parameters import ParameterLocation
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    negative = {loc for loc, info in meta.components.items() if info.mode.is_negative}
    if negative and negative <= {ParameterLocation.BODY}:
        validator = body_validators.get((case.method.upper(), case.path))
        if validator is not None and validator.is_valid(case.body):
            return False
    return True


def _validator(doc, schema) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": doc["components"]})


def run_operation(op, mode, env, run: Run, error_validator, event_validator, bodies,
                  anthropic_error_validator) -> None:
    label = f"{op.method.upper()} {op.path} [{mode.value}]"
    headers = env.chat if op.path.startswith("/v1") else env.admin
    try:
        strategy = op.as_strategy(generation_mode=mode)
    except Exception as exc:  # e.g. no way to make an invalid request for this operation
        run.skipped.append(f"{label}: {type(exc).__name__}")
        return

    examples = PROXY_BODY_EXAMPLES if op.path in ("/v1/chat/completions", "/v1/embeddings") \
        else EXAMPLES
    if mode == GenerationMode.NEGATIVE:
        examples = int(examples * NEGATIVE_FACTOR)

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              derandomize=not os.environ.get("FUZZ_RANDOM"),
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, data=st.data())
    def one(case, data):
        steer(case, data, env)
        for bug in OPEN_BUGS:  # inputs of bugs still open are counted, not sent
            try:
                hit = bug.matches(case)
            except Exception as exc:  # a broken matcher must not hide (or stop) the run
                run.fail(label, f"known-bug matcher {bug.name} crashed: {exc!r}")
                hit = False
            if hit:
                run.known[bug.name] += 1
                return
        t0 = time.monotonic()
        logged = len(env.server_errors)
        response = case.call(headers=headers)
        run.call_time += time.monotonic() - t0
        run.requests += 1
        run.by_operation[label] += 1
        run.op_statuses[label][response.status_code] += 1
        run.statuses[response.status_code] += 1
        if really_negative(case, bodies):
            run.malformed += 1
            run.malformed_by_operation[label] += 1
            run.malformed_statuses[response.status_code] += 1
        t0 = time.monotonic()
        problems = own_checks(case, response, error_validator, event_validator,
                              anthropic_error_validator)
        # negative_data_rejection (the document is stricter than the app for a few free-form
        # fields, e.g. group settings) is not enforced yet; 5xx, tracebacks, error shape,
        # status codes and response schemas are
        checks = CHECKS
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # FailureGroup: failed checks
            problems.append(str(exc))
        run.check_time += time.monotonic() - t0
        if problems:
            cause = "".join(f"\n-- logged by the app:\n{t}" for t in env.server_errors[logged:][:2])
            run.fail(label, ("\n".join(problems) + f"\n-- request: {case.method} "
                     f"{case.formatted_path} query={case.query!r} body={case.body!r}")[:2500] + cause)

    started, before = time.monotonic(), run.requests
    try:
        one()
    except (hypothesis_errors.Unsatisfiable, hypothesis_errors.FailedHealthCheck) as exc:
        run.skipped.append(f"{label}: {type(exc).__name__}")
    run.timing[label] = (run.requests - before, time.monotonic() - started)


def test_generated_requests_conform_to_the_document(fuzz_env):
    env = fuzz_env
    served = env.client.get("/api/openapi.json").get_json()
    assert served == env.doc
    schema = schemathesis.openapi.from_dict(fuzz_document(served))
    schema.app = env.app  # requests go to the WSGI app in-process
    # the fuzzer sends real keys itself: no generated (and so no invalid) credentials
    schema.config.generation.update(with_security_parameters=False)
    schema.config.max_stream_events = 1_000_000  # read whole streams (default: 20 events)
    # 402 (budget) and 413 (too large) are documented refusals too
    schema.config.checks.negative_data_rejection.expected_statuses = [
        "400", "401", "402", "403", "404", "405", "409", "413", "415", "422", "429"]
    error_validator = _validator(env.doc, {"$ref": "#/components/schemas/Error"})
    anthropic_error_validator = _validator(env.doc, {"$ref": "#/components/schemas/AnthropicError"})
    event_validator = _validator(env.doc, {"anyOf": [
        {"$ref": "#/components/schemas/ChatCompletionChunk"},
        {"$ref": "#/components/schemas/Error"}]})
    bodies = {(method.upper(), path): _validator(served, op["requestBody"]["content"][
        "application/json"]["schema"]) for path, item in served["paths"].items()
        for method, op in item.items() if isinstance(op, dict) and "requestBody" in op}
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith(("/v1", "/api/admin"))]
    # the proxy first: the admin half rewires the configuration as it goes
    operations.sort(key=lambda op: (not op.path.startswith("/v1"), op.path, op.method))
    assert len(operations) >= 45 and all(op.app is env.app for op in operations)
    run = Run()
    started = time.monotonic()
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(op, mode, env, run, error_validator, event_validator, bodies,
                          anthropic_error_validator)
    elapsed = time.monotonic() - started
    per_area = Counter()
    for label, n in run.malformed_by_operation.items():
        per_area["/api/admin" if " /api/admin" in label else "/v1"] += n
    summary = (f"{run.requests} requests ({run.malformed} malformed: {dict(per_area)}, their statuses "
               f"{dict(sorted(run.malformed_statuses.items()))}) in {elapsed:.0f}s ({run.requests / elapsed:.0f}/s) over "
               f"{len(operations)} operations; statuses {dict(sorted(run.statuses.items()))}; "
               f"upstream calls {env.upstream.calls} (refused {env.upstream.refused}); "
               f"known-bug inputs not sent {dict(run.known)}; skipped {run.skipped}; "
               f"time in calls {run.call_time:.0f}s, in checks {run.check_time:.0f}s")
    print("\n" + summary)
    print(f"{'sent':>6} {'malformed':>9}  operation [mode]  statuses")
    for label in sorted(run.by_operation):
        print(f"{run.by_operation[label]:6d} {run.malformed_by_operation[label]:9d}  {label}  "
              f"{dict(sorted(run.op_statuses[label].items()))}")
    fivexx = sum(n for status, n in run.statuses.items() if status >= 500)
    print(f"totals: {run.requests} sent, {run.malformed} malformed, {fivexx} x 5xx")
    if os.environ.get("FUZZ_TIMING"):
        for label, (n, secs) in sorted(run.timing.items(), key=lambda x: -x[1][1]):
            print(f"{secs:6.2f}s {n:5d} {label} {dict(run.op_statuses[label])}")
    assert not run.failures, f"{summary}\n{run.report()}"
    assert run.requests >= MIN_REQUESTS, summary
    assert run.malformed >= MIN_MALFORMED, summary
    assert not any(status >= 500 for status in run.statuses), summary
    assert env.upstream.calls > 500, summary  # the proxy path was really exercised
