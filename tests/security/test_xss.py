"""Stored XSS: objects named with script payloads, written through the services, the JSON API
and the console forms, come out escaped on every console page that shows them."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from .conftest import build, console_rules, login

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_URL = "javascript:alert(1)"
RAW = (SCRIPT, "<script>alert", "<img src=x")  # as markup; as escaped text they are harmless


def payload_name(kind: str, i: int = 0) -> str:
    return f"{kind}{i} {SCRIPT} {IMG}"


@pytest.fixture
def poisoned(sec_app, world, api_key):
    """Payloads everywhere a name or text is stored and later shown."""
    from app.extensions import db
    from app.models import PlaygroundConversation, UsageRecord, utcnow
    from app.services import groups, keys, models, providers, teams
    p = providers.create({"name": payload_name("prov"), "type": "openai-compatible",
                          "api_base": "http://upstream.test/v1", "api_key": "sk-xss-1"}, actor=IMG)
    m = models.create({"provider_id": p.id, "model_id": f"m-{SCRIPT}", "name": "x-model",
                       "input_price_per_mtok": "1", "output_price_per_mtok": "1"}, actor="test")
    k, _ = keys.create({"name": payload_name("key"), "owner": SCRIPT, "scopes": ["chat"],
                        "tags": {"team": IMG}}, actor="test")
    teams.create({"name": payload_name("team"), "description": IMG}, actor="test")
    try:
        groups.put(f"grp-{SCRIPT}", {"strategy": "priority"}, actor="test")
    except Exception:  # group names may be restricted; the other objects still carry payloads
        db.session.rollback()
    # through the JSON API as well (the path automation uses)
    h = {"Authorization": f"Bearer {api_key}"}
    c = sec_app.test_client()
    r = c.post("/api/admin/providers", headers=h, json={
        "name": payload_name("apiprov"), "type": "openai-compatible",
        "api_base": "http://upstream.test/v1", "api_key": "sk-xss-2"})
    assert r.status_code == 201, r.get_data(as_text=True)
    now = utcnow()
    details = {"attempts": [{"deployment": SCRIPT, "status": 502, "outcome": "server_error",
                             "error": IMG, "ms": 1.0}],
               "routing": {"group": SCRIPT, "strategy": "priority", "order": [IMG]},
               "checks": [SCRIPT], "cache": "MISS"}
    db.session.add(UsageRecord(created_at=now - timedelta(minutes=1), endpoint="chat", key_id=k.id,
                               model_name=f"um-{SCRIPT}", provider_id=p.id, prompt_tokens=1,
                               completion_tokens=1, cost_usd=Decimal("0.001"), latency_ms=3.0,
                               ttfb_ms=1.0, status_code=502, error_class=IMG, cache_hit=False,
                               stream=False, owner=IMG, cached_tokens=0, tokens_estimated=False,
                               request_id="req_xss", details=details, attempts=f"{SCRIPT}=502"))
    db.session.add(PlaygroundConversation(
        user_id=world["admin"].id, title=payload_name("conv"), model=SCRIPT, system_prompt=IMG,
        params={}, messages=[{"role": "user", "content": SCRIPT},
                             {"role": "assistant", "content": f"**hi** {SCRIPT} {IMG} [x]({JS_URL})"}]))
    # a single-sign-on account: its username, e-mail, teams and issuer come from the identity
    # provider's claims, which no username rule checks
    from app.models import User
    from app.models.user import NO_PASSWORD
    sso_user = User(username=payload_name("sso"), password_hash=NO_PASSWORD, role="team_admin",
                    teams=[SCRIPT], email=IMG, oidc_issuer=f"https://idp.test/{SCRIPT}",
                    oidc_subject="sub-xss")
    db.session.add(sso_user)
    db.session.commit()
    return {"provider_id": p.id, "model_id": m.id, "key_id": k.id, "user_id": sso_user.id}


@pytest.fixture
def api_key(sec_app, world):
    from app.services import keys
    _, raw = keys.create({"name": "automation", "scopes": ["admin"]}, actor="test")
    return raw


def assert_escaped(html: str, where: str) -> None:
    # JSON blocks (<script type="application/json">) are data, not markup: checked separately
    markup = re.sub(r'<script type="application/json"[^>]*>.*?</script>', "", html, flags=re.S)
    for raw in RAW:
        assert raw not in markup, f"unescaped {raw!r} on {where}"
    assert 'href="javascript:' not in markup.lower(), where
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, flags=re.S):
        assert "</script" not in block.lower() and "<" not in block, f"JSON block breaks out on {where}"
        json.loads(block)


def test_every_page_escapes_stored_payloads(sec_app, world, poisoned):
    admin = login(sec_app, "admin")
    pages, seen_escaped = [], 0
    for endpoint, methods, rule in console_rules(sec_app):
        if "GET" not in methods or endpoint in ("admin.login", "admin.logout", "admin.requests.export",
                                                "admin.usage.chart_csv", "admin.playground.export"):
            continue
        url = build(sec_app, rule, {"ids": {**world["ids"], **poisoned}})
        pages.append(url)
        r = admin.get(url)
        if r.mimetype != "text/html":
            continue
        html = r.get_data(as_text=True)
        assert_escaped(html, url)
        seen_escaped += html.count("&lt;script&gt;") + html.count("&#34;&gt;&lt;img")
    for extra in ("/audit", "/requests", f"/requests/{_record_id()}", "/usage?group=owner",
                  "/usage?group=key", "/playground", "/teams", "/keys", "/providers", "/models",
                  "/users"):
        html = admin.get(extra).get_data(as_text=True)
        assert_escaped(html, extra)
        seen_escaped += html.count("&lt;script&gt;")
    assert seen_escaped > 20, "the payloads were not shown at all: the test would prove nothing"


def _record_id():
    from app.extensions import db
    from app.models import UsageRecord
    return db.session.scalar(db.select(UsageRecord.id).where(UsageRecord.request_id == "req_xss"))


def test_console_form_input_is_escaped_on_the_result_pages(sec_app, world):
    admin = login(sec_app, "admin")
    r = admin.post("/teams/new", data={"name": f"form {SCRIPT}", "description": IMG})
    assert r.status_code in (302, 303), r.get_data(as_text=True)[:300]
    r = admin.post("/keys/new", data={"name": f"formkey {IMG}", "scopes": ["chat"], "enabled": "y"})
    assert r.status_code == 201  # the page that shows the new key once
    assert_escaped(r.get_data(as_text=True), "key created page")
    for url in ("/teams", "/keys", "/audit"):
        html = admin.get(url).get_data(as_text=True)
        assert_escaped(html, url)
        assert "form &lt;script&gt;" in html or url == "/keys"
    # a rejected form echoes the input escaped too
    r = admin.post("/providers/new", data={"name": SCRIPT, "type": "openai-compatible",
                                           "api_base": JS_URL, "api_key": "sk"})
    assert r.status_code in (200, 400, 422)
    assert_escaped(r.get_data(as_text=True), "rejected provider form")


def test_provider_url_must_be_http(sec_app, world, api_key):
    """A javascript: or file: api_base is refused (it is shown as text and used for requests)."""
    c = sec_app.test_client()
    for bad in (JS_URL, "file:///etc/passwd", "data:text/html,x"):
        r = c.post("/api/admin/providers", headers={"Authorization": f"Bearer {api_key}"},
                   json={"name": f"bad {bad[:4]}", "type": "openai-compatible", "api_base": bad,
                         "api_key": "sk-x"})
        assert r.status_code in (400, 422), (bad, r.status_code)
        assert r.json["error"]["param"] == "api_base"


def test_playground_output_is_sanitised(sec_app, world, poisoned):
    from app.services.markdown import render
    html = str(render(f"# t\n{SCRIPT}\n{IMG}\n[x]({JS_URL})\n<a href='javascript:alert(1)'>y</a>"))
    assert "<script" not in html and "<img" not in html and "<a href='javascript" not in html
    assert not re.search(r"<a\b[^>]*href=[\"']?javascript", html)  # as text only, never a link
    admin = login(sec_app, "admin")
    html = admin.get("/playground").get_data(as_text=True)
    assert_escaped(html, "/playground")
