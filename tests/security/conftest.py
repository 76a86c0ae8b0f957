"""Security suite fixtures: an app holding one of everything (so every console route has a real
object to act on), clients per role, a whole-database snapshot, and a URL builder that walks
app.url_map."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest

PROVIDER_SECRET = "sk-prov-S3CRET-7f3a9c1e5b"  # distinctive: grepped for in every output
PASSWORD = "correct-horse-battery-1"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def sec_app_for(app_factory, **overrides):
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0, **overrides)

    @app.before_request
    def _fresh_user():  # requests share the test's app context, and so `g`'s cached user/token
        from flask import g
        g.pop("_login_user", None)
        g.pop("csrf_token", None)
    return app


@pytest.fixture(autouse=True)
def _fresh_login_throttle():
    from app.services import users
    users._ip_failures.clear()
    yield
    users._ip_failures.clear()


@pytest.fixture
def sec_app(app_factory):
    app = sec_app_for(app_factory)
    with app.app_context():
        yield app
        from app.extensions import db
        db.session.remove()


def populate(app) -> dict:
    """One provider, model, key, team, group, usage record, conversation, two users."""
    from app.extensions import db
    from app.models import PlaygroundConversation, UsageRecord, utcnow
    from app.services import groups, keys, models, providers, teams, users
    admin = users.create("admin", PASSWORD, "admin", actor="test")
    viewer = users.create("viewer", PASSWORD, "viewer", actor="test")
    p = providers.create({"name": "Fake OpenAI", "type": "openai-compatible",
                          "api_base": "http://upstream.test/v1", "api_key": PROVIDER_SECRET}, actor="test")
    m = models.create({"provider_id": p.id, "model_id": "gpt-4o-mini", "name": "mini",
                       "input_price_per_mtok": "0.15", "output_price_per_mtok": "0.60"}, actor="test")
    t = teams.create({"name": "growth"}, actor="test")
    k, raw = keys.create({"name": "web-app", "owner": "growth", "scopes": ["chat"]}, actor="test")
    g, _ = groups.put("mini", {"strategy": "priority"}, actor="test")
    now = utcnow()
    r = UsageRecord(created_at=now - timedelta(minutes=5), endpoint="chat", key_id=k.id,
                    model_name="mini", provider_id=p.id, prompt_tokens=10, completion_tokens=5,
                    cost_usd=Decimal("0.0001"), latency_ms=12.0, ttfb_ms=5.0, status_code=200,
                    cache_hit=False, stream=False, owner="growth", cached_tokens=0,
                    tokens_estimated=False, request_id="req_sec_1")
    db.session.add(r)
    conv = PlaygroundConversation(user_id=admin.id, title="Greeting", model="mini",
                                  params={}, messages=[{"role": "user", "content": "hi"}])
    db.session.add(conv)
    db.session.commit()
    w = {"admin": admin, "viewer": viewer, "provider": p, "model": m, "team": t, "key": k,
         "raw_key": raw, "group": g, "record": r, "conversation": conv}
    # plain values too: a request that removes the session detaches the objects above
    w["ids"] = {"provider_id": p.id, "model_id": m.id, "key_id": k.id, "team_id": t.id,
                "conversation_id": conv.id, "record_id": r.id, "name": g.name,
                "user_id": viewer.id}
    return w


@pytest.fixture
def world(sec_app):
    return populate(sec_app)


def login(app, username, password=PASSWORD):
    c = app.test_client()
    r = c.post("/login", data={"username": username, "password": password})
    assert r.status_code == 303, r.data[:300]
    return c


@pytest.fixture
def as_admin(sec_app, world):
    return login(sec_app, "admin")


@pytest.fixture
def as_viewer(sec_app, world):
    return login(sec_app, "viewer")


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table (fresh reads): equal snapshots mean nothing was written."""
    from app.extensions import db
    db.session.expire_all()
    out = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            out[table.name] = sorted(map(tuple, conn.execute(table.select()).fetchall()), key=repr)
    return out


def diff(before: dict, after: dict) -> dict:
    return {t: (len(before[t]), len(after.get(t, []))) for t in before if before[t] != after.get(t)}


ARGS = {"fmt": "csv", "chart_id": "requests", "filename": "css/app.css"}


def console_rules(app):
    """(endpoint, methods, rule) of every console route (the admin blueprint and its children)."""
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] == "admin":
            rules.append((rule.endpoint, sorted(rule.methods - {"HEAD", "OPTIONS"}), rule))
    return sorted(rules, key=lambda r: r[0])


def build(app, rule, w) -> str:
    with app.test_request_context():
        from flask import url_for
        values = {arg: w["ids"][arg] if arg in w["ids"] else ARGS[arg] for arg in rule.arguments}
        return url_for(rule.endpoint, **values)


def csrf_token(html: str) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)
