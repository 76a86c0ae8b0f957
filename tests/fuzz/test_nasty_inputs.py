"""Hand-made hostile requests: broken encodings, wrong content types, absurd nesting and sizes.
Every one must get a clean 4xx in the {"error": {...}} shape, never a 5xx or a traceback.
(The cases that used to break are regression tests in test_known_bugs.py too.)"""
from __future__ import annotations

import io
import json

import pytest

from tests.fuzz.conftest import MAX_BODY


MB = 1024 * 1024
CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
ADMIN_WRITES = [("post", "/api/admin/keys"), ("post", "/api/admin/providers"),
                ("patch", "/api/admin/settings"), ("put", "/api/admin/groups/g1"),
                ("post", "/api/admin/cache/clear"), ("post", "/api/admin/teams")]
V1_WRITES = [("post", CHAT), ("post", EMBED)]


def send(env, method, path, *, data=None, json_body=None, content_type="application/json",
         headers=None, **kw):
    auth = env.chat if path.startswith("/v1") else env.admin
    h = {**auth, **(headers or {})}
    if content_type is not None:
        h["Content-Type"] = content_type
    if json_body is not None:
        data = json.dumps(json_body)
    return getattr(env.client, method)(path, data=data, headers=h, **kw)


def assert_clean_error(r, *statuses):
    body = r.get_data()
    assert r.status_code in statuses, f"{r.status_code}: {body[:300]!r}"
    assert b"Traceback" not in body and b'File "' not in body
    assert r.mimetype == "application/json"
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


def chat(content="hi", **extra):
    return {"model": "mini", "messages": [{"role": "user", "content": content}], **extra}


# ------------------------------------------------------------------------------------ encodings
@pytest.mark.parametrize("method,path", V1_WRITES + ADMIN_WRITES)
@pytest.mark.parametrize("raw", [
    b"\xff\xfe\x00{", b'{"model": "mini\xc3\x28"}', b"\xed\xa0\x80", b'{"name": "\x80\x81"}',
    b"", b"null", b"[]", b"123", b'"text"', b"{", b'{"a": }', b"\x00" * 64])
def test_undecodable_or_non_object_bodies_are_400(fuzz_env, method, path, raw):
    r = send(fuzz_env, method, path, data=raw)
    assert_clean_error(r, 400)


def test_v1_refuses_non_json_strings(fuzz_env):
    # a lone surrogate escape and out-of-range numbers are not JSON that upstreams accept
    for raw in (b'{"model":"mini","messages":[{"role":"user","content":"\\ud800"}]}',
                b'{"model":"mini","messages":[{"role":"user","content":"x"}],"temperature":1e999}',
                b'{"model":"mini","messages":[{"role":"user","content":"x"}],"n":NaN}'):
        assert_clean_error(send(fuzz_env, "post", CHAT, data=raw), 400)


# ------------------------------------------------------------------------------------ content types
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/xml",
                                   "image/png"])
def test_v1_wrong_content_type_is_415(fuzz_env, ctype):
    for path in (CHAT, EMBED):
        err = assert_clean_error(send(fuzz_env, "post", path, data=json.dumps(chat()),
                                      content_type=ctype), 415)
        assert err["code"] == "unsupported_media_type"


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", None])
def test_admin_wrong_content_type_is_400(fuzz_env, ctype):
    for method, path in ADMIN_WRITES:
        r = send(fuzz_env, method, path, data=json.dumps({"name": "x"}), content_type=ctype)
        assert_clean_error(r, 400)


def test_json_suffix_content_types_are_json(fuzz_env):
    r = send(fuzz_env, "post", CHAT, data=json.dumps(chat()), content_type="application/vnd+json")
    assert r.status_code == 200, r.get_data()[:300]
    r = send(fuzz_env, "post", "/api/admin/teams", data=json.dumps({"name": "json-suffix"}),
             content_type="application/merge-patch+json")
    assert r.status_code == 201, r.get_data()[:300]


# ------------------------------------------------------------------------------------ nesting
@pytest.mark.parametrize("path", [CHAT, EMBED])
@pytest.mark.parametrize("shape", ["array", "object", "in-field"])
def test_v1_json_nested_10000_levels_is_400(fuzz_env, path, shape):
    depth = 10_000
    if shape == "array":
        raw = "[" * depth + "]" * depth
    elif shape == "object":
        raw = '{"a":' * depth + "1" + "}" * depth
    else:
        raw = json.dumps(chat())[:-1] + ', "metadata": ' + "[" * depth + "]" * depth + "}"
    assert_clean_error(send(fuzz_env, "post", path, data=raw), 400)


@pytest.mark.parametrize("method,path", ADMIN_WRITES)
@pytest.mark.parametrize("shape", ["array", "object", "in-field"])
def test_admin_json_nested_10000_levels_is_400(fuzz_env, method, path, shape):
    depth = 10_000
    if shape == "array":
        raw = "[" * depth + "]" * depth
    elif shape == "object":
        raw = '{"a":' * depth + "1" + "}" * depth
    else:
        raw = '{"name": "deep", "tags": ' + "[" * depth + "]" * depth + "}"
    assert_clean_error(send(fuzz_env, method, path, data=raw), 400)


@pytest.mark.parametrize("method,path", ADMIN_WRITES)
def test_admin_refuses_non_json_values(fuzz_env, method, path):
    for raw in (b'{"name": "a\\ud800b"}', b'{"name": "n", "tags": {"a": NaN}}',
                b'{"name": "n", "config": {"x": Infinity}}', b'{"name": "n", "x": -Infinity}'):
        assert_clean_error(send(fuzz_env, method, path, data=raw), 400)


@pytest.mark.parametrize("method,path", ADMIN_WRITES)
def test_admin_json_nested_deep_but_parseable_is_refused(fuzz_env, method, path):
    depth = 500
    assert_clean_error(send(fuzz_env, method, path, data="[" * depth + "]" * depth), 400)
    nested = {"name": "deep", "tags": {"t": json.loads("[" * depth + "]" * depth)},
              "sensitivity": json.loads('{"a":' * depth + "1" + "}" * depth),
              "cache": json.loads("[" * depth + "]" * depth),
              "fallbacks": json.loads("[" * depth + "]" * depth),
              "pattern": json.loads("[" * depth + "]" * depth)}
    r = send(fuzz_env, method, path, json_body=nested)
    assert r.status_code < 500 and b"Traceback" not in r.get_data()
    if r.status_code >= 400:
        assert_clean_error(r, 400, 422)


# ------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("method,path", V1_WRITES + ADMIN_WRITES)
def test_bodies_over_the_limit_are_413(fuzz_env, method, path):
    five_mb = "x" * (5 * MB)
    body = chat(five_mb) if path == CHAT else {"model": "m", "input": five_mb, "name": five_mb}
    err = assert_clean_error(send(fuzz_env, method, path, json_body=body), 413)
    assert err["code"] == "request_too_large"


@pytest.mark.parametrize("method,path", V1_WRITES + ADMIN_WRITES)
def test_chunked_bodies_over_the_limit_are_413(fuzz_env, method, path):
    """No Content-Length (chunked upload, wsgi.input_terminated as gunicorn sets it): Werkzeug
    stops reading at MAX_CONTENT_LENGTH without raising, so the truncated JSON is a 400, not a
    413 (reported; a clean 4xx either way)."""
    raw = json.dumps(chat("y" * (2 * MB))).encode()
    auth = fuzz_env.chat if path.startswith("/v1") else fuzz_env.admin
    r = getattr(fuzz_env.client, method)(
        path, input_stream=io.BytesIO(raw), headers={**auth, "Content-Type": "application/json",
                                                      "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})
    assert_clean_error(r, 400, 413)


def test_bodies_just_under_the_limit_are_handled(fuzz_env):
    big = "z" * (MAX_BODY - 4096)
    r = send(fuzz_env, "post", CHAT, json_body=chat(big))
    assert r.status_code == 200, r.get_data()[:300]
    assert r.get_json()["usage"]["prompt_tokens"] > 0
    err = assert_clean_error(send(fuzz_env, "post", "/api/admin/keys", json_body={"name": big}),
                             422)
    assert err["param"] == "name"
    r = send(fuzz_env, "post", EMBED, json_body={"model": "text-embedding-3-small", "input": big})
    assert r.status_code == 200, r.get_data()[:300]


def test_huge_arrays_are_refused(fuzz_env):
    env = fuzz_env
    err = assert_clean_error(send(env, "post", CHAT, json_body={
        "model": "mini", "messages": [{"role": "user"}] * 10_001}), 400)
    assert err["param"] == "messages"
    err = assert_clean_error(send(env, "post", EMBED, json_body={
        "model": "text-embedding-3-small", "input": ["a"] * 2049}), 400)
    assert err["param"] == "input"
    assert_clean_error(send(env, "post", EMBED, json_body={
        "model": "text-embedding-3-small", "input": list(range(100_000))}), 400)
    assert_clean_error(send(env, "post", "/api/admin/keys", json_body={
        "name": "k", "scopes": ["chat"] * 100_000}), 422)
    assert_clean_error(send(env, "post", "/api/admin/keys", json_body={
        "name": "k", "allowed_models": [str(i) for i in range(501)]}), 422)
    assert_clean_error(send(env, "put", "/api/admin/groups/g2", json_body={
        "fallbacks": [f"m{i}" for i in range(11)]}), 422)
    assert_clean_error(send(env, "patch", "/api/admin/settings", json_body={
        "sensitivity": {"patterns": ["a"] * 101}}), 422)
    assert_clean_error(send(env, "post", "/api/admin/keys", data="[" + ",".join(
        ["0"] * 200_000) + "]"), 400)


def test_huge_numbers_and_odd_values(fuzz_env):
    env = fuzz_env
    for extra in ({"max_tokens": 10**30}, {"n": -1}, {"temperature": True},
                  {"stream": "true"}, {"messages": [{"role": 1}]}, {"model": ""}):
        assert_clean_error(send(env, "post", CHAT, json_body={**chat(), **extra}), 400)
    for body in ({"name": "k", "limits": {"rpm": 10**13}},
                 {"name": "k", "budget": {"amount_usd": "NaN"}},
                 {"name": "k", "budget": {"amount_usd": "-Infinity"}},
            {"name": "k", "expires_at": "9999-99-99"}, {"name": "\x00" * 121}):
        assert_clean_error(send(env, "post", "/api/admin/keys", json_body=body), 422)


def test_hostile_headers(fuzz_env):
    env = fuzz_env
    for value in ("Bearer " + "a" * 10_000, "Bearer gw-" + "\u00e9" * 50, "Basic Zm9vOmJhcg==",
                  "Bearer", "bearer  ", "\t"):
        for path in ("/v1/models", "/api/admin/keys", "/v1/key/info"):
            assert_clean_error(env.client.get(path, headers={"Authorization": value}), 401)
    r = env.client.post(CHAT, json=chat(), headers={
        **env.chat, "x-request-id": "x" * 5000, "x-gateway-cache-ttl": "soon",
        "x-gateway-cache": "\u00ff" * 100})
    err = assert_clean_error(r, 400)
    assert err["code"] == "invalid_header"
    assert len(r.headers["x-request-id"]) < 64  # an insane id is replaced, not echoed


def test_path_oddities(fuzz_env):
    env = fuzz_env
    for path in ("/v1/models/" + "m" * 10_000, "/v1/models/%00", "/v1/models/%ff%fe",
                 "/v1/models/..%2f..%2fapi%2fadmin%2fkeys", "/v1/chat/completions/x",
                 "/api/admin/keys/-1", "/api/admin/keys/1.5", "/api/admin/keys/%31%00",
                 "/api/admin/groups/" + "g" * 5000):
        r = env.client.get(path, headers=env.chat if path.startswith("/v1") else env.admin)
        assert_clean_error(r, 404, 405)
    assert_clean_error(env.client.put("/api/admin/groups/" + "g" * 201, json={},
                                      headers=env.admin), 422)
