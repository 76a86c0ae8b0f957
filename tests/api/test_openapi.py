"""The OpenAPI document: valid 3.1, in step with the Flask routes, and true to real responses."""
from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec

from app.openapi import build_document

PREFIXES = ("/v1", "/api/admin")
IGNORED_METHODS = {"HEAD", "OPTIONS"}


# ------------------------------------------------------------------------------------ helpers
def serve_document(app) -> None:
    """Register the blueprint if the factory does not (yet): it must happen before a request."""
    if "openapi" not in app.blueprints:
        from app.openapi import bp
        app.register_blueprint(bp)


class Doc:
    """The document plus a jsonschema validator for any of its (response/request) schemas."""

    def __init__(self, doc: dict):
        self.doc = doc

    def validator(self, schema: dict) -> Draft202012Validator:
        # local refs (#/components/...) resolve against the root: carry the components along
        return Draft202012Validator({**schema, "components": self.doc["components"]},
                                    format_checker=FormatChecker())

    def component(self, name: str) -> Draft202012Validator:
        return self.validator({"$ref": f"#/components/schemas/{name}"})

    def response(self, path: str, method: str, status: int, media: str = "application/json"):
        op = self.doc["paths"][path][method.lower()]
        resp = op["responses"][str(status)]
        if "$ref" in resp:
            resp = self.doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        return self.validator(resp["content"][media]["schema"])

    def request(self, path: str, method: str):
        op = self.doc["paths"][path][method.lower()]
        return self.validator(op["requestBody"]["content"]["application/json"]["schema"])


def assert_valid(validator: Draft202012Validator, instance) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def is_valid(validator: Draft202012Validator, instance) -> bool:
    return not any(True for _ in validator.iter_errors(instance))


def rule_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


@pytest.fixture
def doc():
    return Doc(build_document())


@pytest.fixture(autouse=True)
def _served(app):
    serve_document(app)


# ------------------------------------------------------------------------------------ document
def test_document_is_valid_openapi_31(doc):
    assert doc.doc["openapi"].startswith("3.1")
    validate_spec(doc.doc)


def test_every_schema_is_valid_json_schema(doc):
    for name, schema in doc.doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)


def test_served_document_is_the_built_one(client, doc):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == doc.doc


def test_routes_and_document_match(app, doc):
    """Every /v1 and /api/admin route is documented, and every documented operation exists."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIXES):
            for method in rule.methods - IGNORED_METHODS:
                routes.add((rule_to_openapi(rule.rule), method.lower()))
    documented = {(path, method) for path, item in doc.doc["paths"].items()
                  for method in item if method in ("get", "post", "put", "patch", "delete")
                  and path.startswith(PREFIXES)}
    assert routes - documented == set(), "routes missing from the document"
    assert documented - routes == set(), "documented operations with no route"


def test_operations_are_complete(doc):
    ids = set()
    for path, item in doc.doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op["operationId"] not in ids
            ids.add(op["operationId"])
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), (path, method)
            if path.startswith(PREFIXES):
                assert "401" in codes, (path, method)
                assert op["security"], (path, method)
            if path.startswith("/api/admin"):
                assert "403" in codes, (path, method)
            if "requestBody" in op:
                assert {"400", "413"} <= codes, (path, method)
            # path parameters are declared for every {template}
            params = item.get("parameters", []) + op.get("parameters", [])
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == set(re.findall(r"{([a-z_]+)}", path)), (path, method)


# ------------------------------------------------------------------------------------ responses
PROVIDER = {"name": "OpenAI prod", "type": "openai", "api_base": "https://api.openai.com/v1",
            "api_key": "sk-live-SECRET-abc123", "config": {"organization": "org-1"},
            "limits": {"rpm": 60}}


def test_provider_create_and_list_match_the_schema(api, doc):
    r = api.post("/api/admin/providers", json=PROVIDER)
    assert r.status_code == 201, r.get_json()
    assert_valid(doc.response("/api/admin/providers", "post", 201), r.get_json())
    r = api.get("/api/admin/providers")
    assert r.status_code == 200
    assert_valid(doc.response("/api/admin/providers", "get", 200), r.get_json())
    assert len(r.get_json()["data"]) == 1


def test_key_create_matches_the_schema(api, doc):
    body = {"name": "svc", "owner": "research", "scopes": ["chat", "models"],
            "expires_at": "2030-01-01T00:00:00Z", "limits": {"rpm": 10, "concurrency": 2},
            "budget": {"amount_usd": "12.50", "period": "week"}, "allowed_ips": ["10.0.0.0/8"],
            "tags": {"env": "prod", "tier": 2}, "sensitivity": {"action": "block"}}
    assert_valid(doc.request("/api/admin/keys", "post"), body)
    r = api.post("/api/admin/keys", json=body)
    assert r.status_code == 201, r.get_json()
    assert_valid(doc.response("/api/admin/keys", "post", 201), r.get_json())
    r = api.get("/api/admin/keys")
    assert_valid(doc.response("/api/admin/keys", "get", 200), r.get_json())


def test_validation_error_matches_the_schema(api, doc):
    r = api.post("/api/admin/keys", json={"name": "x", "scopes": ["nope"]})
    assert r.status_code == 422
    assert_valid(doc.response("/api/admin/keys", "post", 422), r.get_json())
    assert r.get_json()["error"]["param"] == "scopes"
    r = api.get("/api/admin/providers/12345")
    assert r.status_code == 404
    assert_valid(doc.response("/api/admin/providers/{provider_id}", "get", 404), r.get_json())


def test_other_admin_responses_match_the_schema(api, doc, make_provider, make_model):
    p = make_provider()
    m = make_model(p)
    checks = [
        ("/api/admin/models", "get", 200, api.get("/api/admin/models")),
        ("/api/admin/models/{model_pk}", "get", 200, api.get(f"/api/admin/models/{m.id}")),
        ("/api/admin/groups/{name}", "put", 201,
         api.put(f"/api/admin/groups/{m.name}", json={"strategy": "weighted"})),
        ("/api/admin/groups", "get", 200, api.get("/api/admin/groups")),
        ("/api/admin/deployments/{model_pk}/breaker/reset", "post", 200,
         api.post(f"/api/admin/deployments/{m.id}/breaker/reset")),
        ("/api/admin/teams", "post", 201,
         api.post("/api/admin/teams", json={"name": "t", "budget": {"amount_usd": 5}})),
        ("/api/admin/settings", "get", 200, api.get("/api/admin/settings")),
        ("/api/admin/settings", "patch", 200,
         api.patch("/api/admin/settings", json={"cache": {"default_ttl": 60}})),
        ("/api/admin/cache", "get", 200, api.get("/api/admin/cache")),
        ("/api/admin/cache/clear", "post", 200, api.post("/api/admin/cache/clear", json={})),
        ("/api/admin/prices", "get", 200, api.get("/api/admin/prices?model_id=gpt-4o")),
        ("/api/admin/prices", "get", 200, api.get("/api/admin/prices?model_id=nope")),
        ("/api/admin/providers/{provider_id}/health", "post", 200,
         api.post(f"/api/admin/providers/{p.id}/health")),
        ("/api/admin/providers/{provider_id}/health", "get", 200,
         api.get(f"/api/admin/providers/{p.id}/health")),
        ("/api/admin/models/{model_pk}", "delete", 200, api.delete(f"/api/admin/models/{m.id}")),
    ]
    for path, method, status, r in checks:
        assert r.status_code == status, (path, r.get_json())
        assert_valid(doc.response(path, method, status), r.get_json())


@pytest.fixture
def gw(app_factory):
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0)
    serve_document(app)
    with app.app_context():
        yield app


def test_v1_responses_match_the_schema(gw, doc):
    from app.services import keys, models, providers
    p = providers.create({"name": "Up", "type": "openai-compatible",
                          "api_base": "http://up.test/v1", "api_key": "sk-up"}, actor="t")
    models.create({"provider_id": p.id, "model_id": "gpt-4o-mini-2024", "name": "mini"}, actor="t")
    _, raw = keys.create({"name": "app", "budget": {"amount_usd": "3"}, "limits": {"rpm": 5}},
                         actor="t")
    c = gw.test_client()
    auth = {"Authorization": f"Bearer {raw}"}
    r = c.get("/v1/models", headers=auth)
    assert r.status_code == 200
    assert_valid(doc.response("/v1/models", "get", 200), r.get_json())
    assert [m["id"] for m in r.get_json()["data"]] == ["mini"]
    r = c.get("/v1/models/mini", headers=auth)
    assert_valid(doc.response("/v1/models/{model_id}", "get", 200), r.get_json())
    r = c.get("/v1/models/nope", headers=auth)
    assert r.status_code == 404
    assert_valid(doc.response("/v1/models/{model_id}", "get", 404), r.get_json())
    for path in ("/v1/key/info", "/v1/usage"):
        r = c.get(path, headers=auth)
        assert r.status_code == 200
        assert_valid(doc.response(path, "get", 200), r.get_json())
    r = c.get("/v1/models")
    assert r.status_code == 401
    assert_valid(doc.response("/v1/models", "get", 401), r.get_json())


# ------------------------------------------------------------------------------------ requests
# (body, status the app answers): the request schema accepts a body iff the app does not
# answer 422 (the lenient forms the validators take are documented too).
KEY_BODIES = [
    ({"name": "a"}, 201),
    ({"name": "  a  "}, 201),
    ({"name": "   "}, 422),
    ({"name": "a" * 120}, 201),
    ({"name": "a" * 121}, 422),
    ({"name": "  " + "a" * 120 + "  "}, 201),
    ({"name": 5}, 422),
    ({}, 422),
    ({"name": "a", "scopes": "chat, models"}, 201),
    ({"name": "a", "scopes": ["chat", " admin ", ""]}, 201),
    ({"name": "a", "scopes": ["root"]}, 422),
    ({"name": "a", "scopes": []}, 422),
    ({"name": "a", "scopes": [""]}, 422),
    ({"name": "a", "scopes": None}, 422),
    ({"name": "a", "scopes": ", ,"}, 422),
    ({"name": "a", "enabled": "yes"}, 201),
    ({"name": "a", "enabled": "OFF"}, 201),
    ({"name": "a", "enabled": ""}, 201),
    ({"name": "a", "enabled": "maybe"}, 422),
    ({"name": "a", "enabled": 1}, 422),
    ({"name": "a", "limits": {"rpm": "30"}}, 201),
    ({"name": "a", "limits": {"rpm": 30.0}}, 201),
    ({"name": "a", "limits": {"rpm": 30.5}}, 422),
    ({"name": "a", "limits": {"rpm": 0}}, 422),
    ({"name": "a", "limits": {"rpm": ""}}, 201),
    ({"name": "a", "limits": {"rpm": True}}, 422),
    ({"name": "a", "limits": {"rps": 1}}, 422),
    ({"name": "a", "limits": []}, 422),
    ({"name": "a", "budget": {}}, 201),
    ({"name": "a", "budget": {"amount_usd": "0.5"}}, 201),
    ({"name": "a", "budget": {"amount_usd": -1}}, 422),
    ({"name": "a", "budget": {"period": "day"}}, 422),
    ({"name": "a", "budget": {"amount_usd": 1, "period": None}}, 422),
    ({"name": "a", "budget": {"amount_usd": 1, "soft_pct": 101}}, 422),
    ({"name": "a", "budget": 5}, 422),
    ({"name": "a", "expires_at": "2031-05-01T10:00:00+02:00"}, 201),
    ({"name": "a", "expires_at": ""}, 201),
    ({"name": "a", "expires_at": "tomorrow"}, 422),
    ({"name": "a", "tags": {"team": "x", "n": 1, "b": True}}, 201),
    ({"name": "a", "tags": {"team": None}}, 422),
    ({"name": "a", "tags": {"k" * 65: "x"}}, 422),
    ({"name": "a", "sensitivity": {"action": "redact", "threshold": "0.7"}}, 201),
    ({"name": "a", "sensitivity": {"action": None}}, 422),
    ({"name": "a", "sensitivity": {"threshold": 2}}, 422),
    ({"name": "a", "sensitivity": "block"}, 422),
]


def test_key_request_schema_agrees_with_the_validators(api, doc):
    v = doc.request("/api/admin/keys", "post")
    for body, status in KEY_BODIES:
        r = api.post("/api/admin/keys", json=body)
        assert r.status_code == status, (body, r.get_json())
        assert is_valid(v, body) == (status != 422), body


PROVIDER_BODIES = [
    ({"name": "a", "type": "openai"}, 201),
    ({"name": "b", "type": "groq", "api_base": None}, 201),
    ({"name": "c", "type": "openai-compatible"}, 422),
    ({"name": "d", "type": "openai-compatible", "api_base": "ftp://x"}, 422),
    ({"name": "e", "type": "openai-compatible", "api_base": " HTTP://h:8080/v1/ "}, 201),
    ({"name": "f", "type": "nope"}, 422),
    ({"name": "g", "type": "bedrock"}, 422),
    ({"name": "h", "type": "bedrock", "config": {"region": "eu-west-1"}}, 201),
    ({"name": "i", "type": "bedrock", "config": {"region": "Europe"}}, 422),
    ({"name": "j", "type": "openai", "config": {"api_key": "sk"}}, 422),
    ({"name": "k", "type": "openai", "config": {"api_key": ""}}, 201),
    ({"name": "l", "type": "openai", "config": {"nested": {"a": 1}}}, 422),
    ({"name": "m", "type": "openai", "default_temperature": "1.5"}, 201),
    ({"name": "n", "type": "openai", "default_temperature": 2.5}, 422),
    ({"name": "o", "type": "openai", "read_timeout": None}, 201),
    ({"name": "p", "type": "openai", "trust_level": None}, 422),
    ({"name": "q", "type": "openai", "api_key": 5}, 422),
    ({"name": "r", "type": "openai", "clear_secret": [1]}, 201),
]


def test_provider_request_schema_agrees_with_the_validators(api, doc):
    v = doc.request("/api/admin/providers", "post")
    for body, status in PROVIDER_BODIES:
        r = api.post("/api/admin/providers", json=body)
        assert r.status_code == status, (body, r.get_json())
        assert is_valid(v, body) == (status != 422), body


def test_chat_request_schema_covers_the_gateway_checks(doc):
    v = doc.request("/v1/chat/completions", "post")
    ok = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}
    assert is_valid(v, ok)
    assert is_valid(v, {**ok, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]}],
        "stream": True, "stream_options": {"include_usage": True}, "temperature": 0,
        "max_completion_tokens": 5, "n": 1, "stop": ["\n"], "seed": 1,
        "response_format": {"type": "json_object"}, "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "parallel_tool_calls": False, "user": "u", "logprobs": False})
    for bad in ({"messages": ok["messages"]}, {"model": " ", "messages": ok["messages"]},
                {**ok, "messages": []}, {**ok, "messages": ["hi"]},
                {**ok, "messages": [{"content": "x"}]}, {**ok, "stream": "yes"},
                {**ok, "stream": None}, {**ok, "temperature": "0"}, {**ok, "max_tokens": 0},
                {**ok, "n": True}):
        assert not is_valid(v, bad), bad
