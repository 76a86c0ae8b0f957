"""SSRF guard for the gateway's own outbound calls (health checks, model import, the proxy): an
admin may point a provider anywhere, but a redirect is never followed (so the provider's key is
never sent to another host) and the response read is bounded."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import login


class _Server:
    def __init__(self, handler):
        self.hits: list[tuple[str, str, str | None]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                outer.hits.append((self.command, self.path, self.headers.get("Authorization")))
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                handler(self)
            do_GET = do_POST = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _ok(h):
    body = b'{"object":"list","data":[{"id":"stolen","object":"model"}]}'
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def other_host():
    s = _Server(_ok)
    yield s
    s.close()


@pytest.fixture
def redirector(other_host):
    def handler(h):
        h.send_response(302)
        h.send_header("Location", other_host.url + h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()
    s = _Server(handler)
    yield s
    s.close()


@pytest.fixture
def huge():
    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()  # no length: read until close
        chunk = b"[" + b"0," * 32768
        try:
            for _ in range(400):  # ~26 MB if nobody stops reading
                h.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    s = _Server(handler)
    yield s
    s.close()


def _provider(url, secret="sk-ssrf-SECRET-1"):
    from app.services import models, providers
    p = providers.create({"name": f"P {url}", "type": "openai-compatible", "api_base": url + "/v1",
                          "api_key": secret}, actor="test")
    models.create({"provider_id": p.id, "model_id": "m1", "name": f"m-{p.id}"}, actor="test")
    return p


def test_health_check_does_not_follow_a_redirect(sec_app, world, redirector, other_host):
    from app.services import health
    p = _provider(redirector.url)
    result = health.check(p, "manual")
    assert result["status"] == "unhealthy" and result["error"].startswith("HTTP 302")
    assert redirector.hits and other_host.hits == []  # the key never went to the other host


def test_model_import_does_not_follow_a_redirect(sec_app, world, redirector, other_host):
    p = _provider(redirector.url)
    admin = login(sec_app, "admin")
    r = admin.get(f"/providers/{p.id}/import")
    assert r.status_code >= 400 and "302" in r.get_data(as_text=True)
    assert "stolen" not in r.get_data(as_text=True) and other_host.hits == []


def test_proxy_does_not_follow_a_redirect(sec_app, world, redirector, other_host):
    from app.services import keys
    p = _provider(redirector.url)
    _, raw = keys.create({"name": "k", "scopes": ["chat"]}, actor="test")
    c = sec_app.test_client()
    r = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
               json={"model": f"m-{p.id}", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code >= 400 and "error" in r.json
    assert other_host.hits == []


def test_health_and_import_bound_the_response(app_factory, huge):
    from .conftest import sec_app_for
    app = sec_app_for(app_factory, HEALTH_MAX_RESPONSE_BYTES=200_000)
    with app.app_context():
        from app.services import health
        from app.services.errors import BadRequest
        p = _provider(huge.url)
        result = health.probe(p)
        assert result["status"] == "unhealthy" and "larger than 200000 bytes" in result["error"]
        with pytest.raises(BadRequest) as exc:
            health.upstream_models(p)
        assert "larger than 200000 bytes" in exc.value.message


def test_default_bound_is_a_few_megabytes():
    from app.services import health
    assert 1 << 20 <= health.MAX_RESPONSE_BYTES <= 16 << 20
