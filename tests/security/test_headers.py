"""Security headers on console pages (and the basics on every response), and templates that the
CSP does not break: no inline scripts, event handlers or style attributes."""
from __future__ import annotations

import re
from pathlib import Path

from .conftest import build, console_rules, login

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def csp_directives(value: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in value.split(";") if d.strip()}


def check_console_headers(r, where):
    csp = csp_directives(r.headers.get("Content-Security-Policy", ""))
    assert csp.get("default-src") == "'self'", where
    assert csp.get("script-src") == "'self'" and csp.get("style-src") == "'self'", where
    assert csp.get("frame-ancestors") == "'none'" and csp.get("object-src") == "'none'", where
    assert csp.get("base-uri") == "'self'" and csp.get("form-action") == "'self'", where
    assert not any("unsafe" in v or "*" in v.split() or "http" in v for v in csp.values()), where
    assert r.headers["X-Frame-Options"] == "DENY", where
    assert r.headers["X-Content-Type-Options"] == "nosniff", where
    assert r.headers["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin", "no-referrer")


def test_every_console_page_has_the_headers(sec_app, world):
    admin = login(sec_app, "admin")
    seen = 0
    for endpoint, methods, rule in console_rules(sec_app):
        if "GET" not in methods:
            continue
        r = admin.get(build(sec_app, rule, world))
        if r.mimetype == "text/html":
            check_console_headers(r, endpoint)
            seen += 1
    assert seen > 25
    anon = sec_app.test_client()
    check_console_headers(anon.get("/login"), "/login")
    check_console_headers(anon.get("/no-such-page"), "404 page")


def test_json_and_static_responses_are_nosniff(sec_app, world):
    c = sec_app.test_client()
    for url in ("/v1/models", "/api/admin/providers", "/healthz", "/static/js/app.js", "/openapi.json"):
        r = c.get(url)
        assert r.headers["X-Content-Type-Options"] == "nosniff", url


def test_templates_have_no_inline_code_or_styles():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        html = path.read_text()
        for m in re.finditer(r"<script\b([^>]*)>", html):
            attrs = m.group(1)
            if "src=" not in attrs and 'type="application/json"' not in attrs:
                offenders.append(f"{path.name}: inline <script{attrs}>")
        if re.search(r"<style\b", html):
            offenders.append(f"{path.name}: <style>")
        for m in re.finditer(r"\s(style|on[a-z]+)=[\"']", html):
            offenders.append(f"{path.name}: {m.group(1)}= attribute")
        if "javascript:" in html:
            offenders.append(f"{path.name}: javascript: URL")
    assert not offenders, "\n".join(offenders)


def test_static_js_sets_no_style_attribute_or_evals():
    js = "\n".join(p.read_text() for p in (TEMPLATES.parent / "static" / "js").glob("*.js"))
    assert "setAttribute(\"style\"" not in js and "eval(" not in js and "new Function" not in js
    assert "insertAdjacentHTML" not in js
