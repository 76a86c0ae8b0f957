"""Key detail: settings, the live Spend & limits card, refusals and recent requests.

The numbers on the page are checked against counter-store state made here, either by calling
`gate().store.admit/settle` directly or by sending requests through the proxy to a faked
upstream (`responses`), as tests/proxy does.
"""
from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
import responses as responses_lib

from app.extensions import db
from app.limits import Budget, Limits
from app.models import UsageRecord, utcnow

from .helpers import HTMX, element, is_fragment, squash, text

CHAT_URL = "http://up.test/v1/chat/completions"
BODY = {"model": "mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}


@pytest.fixture
def app(app_factory):
    """Proxy-ready: requests transport (faked by `responses`), usage rows written at once."""
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0)
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def team(app):
    from app.services import teams
    return teams.create({"name": "research", "description": "ML research",
                         "budget": {"amount_usd": "100", "period": "month", "soft_pct": 90}}, actor="t")


def make_key(**data):
    from app.services import keys
    payload = {"name": "svc", "scopes": ["chat", "models"], **data}
    return keys.create(payload, actor="t")


@pytest.fixture
def route(app):
    from app.services import models, providers
    p = providers.create({"name": "Up", "type": "openai-compatible", "api_base": "http://up.test/v1",
                          "api_key": "sk-upstream-1"}, actor="t")
    return models.create({"provider_id": p.id, "model_id": "gpt-4o-mini-2024", "name": "mini",
                          "input_price_per_mtok": "0.15", "output_price_per_mtok": "0.60"}, actor="t")


def reply(pt=1000, ct=1000):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}


def admit(key, est_tokens: int, reserve: str, team_budget: dict | None = None):
    """One admission on the key's subject, against its own (and its team's) budget."""
    from app.services.spend import gate
    budgets = [Budget.from_dict(f"key:{key.id}", key.budget)] if key.budget else []
    if team_budget:
        budgets.append(Budget.from_dict(f"team:{key.owner}", team_budget))
    return gate().store.admit(f"key:{key.id}", Limits.from_dict(key.limits), budgets, est_tokens,
                              Decimal(reserve), time.time())


def settle(admission, tokens: int, cost: str):
    from app.services.spend import gate
    gate().store.settle(admission.ticket, tokens, Decimal(cost), time.time())


# --- settings -----------------------------------------------------------------------------------

def test_detail_shows_settings(admin_client, team):
    key, _ = make_key(owner="research", allowed_models=["gpt-4o-mini", "claude-*"],
                      allowed_ips=["10.0.0.0/8"], expires_at="2031-01-02T00:00:00Z",
                      limits={"rpm": 60, "concurrency": 4})
    r = admin_client.get(f"/keys/{key.id}")
    assert r.status_code == 200
    body = text(r)
    assert "<h1>svc</h1>" in body and f"{key.prefix}…" in body and key.key_hash not in body
    props = squash(element(body, "main"))
    for s in ("chat", "models", "<code>gpt-4o-mini</code>", "<code>claude-*</code>", "10.0.0.0/8",
              "2031-01-02 00:00 UTC", "60 rpm · 4 concurrent", "shares its budget"):
        assert s in props, s
    assert f'href="/teams#team-{team.id}"' in body
    assert f'href="/keys/{key.id}/edit"' in body and f'href="/keys/{key.id}/revoke"' in body


def test_list_links_to_detail(admin_client):
    key, _ = make_key()
    body = text(admin_client.get("/keys"))
    assert f'href="/keys/{key.id}"' in body and ">View<" in body


def test_detail_not_found(admin_client):
    r = admin_client.get("/keys/999")
    assert r.status_code == 404 and "Not found" in text(r)


def test_detail_for_viewer_is_read_only(viewer_client):
    key, _ = make_key(budget={"amount_usd": "5", "period": "day"})
    r = viewer_client.get(f"/keys/{key.id}")
    assert r.status_code == 200 and 'id="key-spend"' in text(r)
    assert f"/keys/{key.id}/edit" not in text(r) and f"/keys/{key.id}/revoke" not in text(r)


def test_detail_needs_login(client):
    key, _ = make_key()
    r = client.get(f"/keys/{key.id}")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = client.get(f"/keys/{key.id}", headers=HTMX)  # a poll after the session ended
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/login")


def test_edit_returns_to_detail(admin_client):
    key, _ = make_key()
    page = text(admin_client.get(f"/keys/{key.id}/edit"))
    assert f'href="/keys/{key.id}"' in page  # back link and cancel


# --- spend & limits: numbers from the counter store ---------------------------------------------

def test_numbers_match_store_state(admin_client, team):
    key, _ = make_key(owner="research", limits={"rph": 10, "tpm": 1000, "concurrency": 3},
                      budget={"amount_usd": "10", "period": "month", "soft_pct": 50})
    first = admit(key, 300, "1.5", team.budget)
    settle(first, 200, "4")          # $4 spent; 200 real tokens replace the 300 pre-charged
    admit(key, 300, "1.5", team.budget)  # still in flight: $1.50 reserved, 300 tokens pre-charged

    body = text(admin_client.get(f"/keys/{key.id}"))
    own = squash(element(body, "budget-key"))
    assert "This key" in own and "$4.00" in own and "$10.00" in own and "reserved $1.50" in own
    assert 'class="meter is-warn"' in own              # 55 % committed, warns at 50 %
    assert "past 50%" in own
    assert 'data-width="40.0"' in own and 'data-width="15.0"' in own  # spent, reserved
    assert 'data-left="50"' in own                  # the soft-threshold tick
    assert "month: resets in" in own

    shared = squash(element(body, "budget-team"))
    assert "Team “research”" in shared and "$4.00" in shared and "$100.00" in shared
    assert 'class="meter is-ok"' in shared and "within budget" in shared and 'data-left="90"' in shared

    assert "<strong>2</strong> / 10" in squash(element(body, "limit-rph"))
    assert "<strong>500</strong> / 1,000" in squash(element(body, "limit-tpm"))
    assert "<strong>1</strong> / 3" in squash(element(body, "limit-concurrency"))
    assert "limit-rpm" not in body  # only the limits the key has


def test_over_budget_is_red(admin_client):
    key, _ = make_key(budget={"amount_usd": "2", "period": "day"})
    settle(admit(key, 10, "0.5"), 10, "2.5")
    own = squash(element(text(admin_client.get(f"/keys/{key.id}")), "budget-key"))
    assert 'class="meter is-over"' in own and "used up" in own
    assert 'data-width="100.0"' in own and "$2.50" in own


def test_key_without_limits(admin_client):
    key, _ = make_key()
    card = squash(element(text(admin_client.get(f"/keys/{key.id}")), "key-spend"))
    assert "No rate limits on this key" in card and "Set limits" in card
    assert "budget-key" not in card


def test_store_unreadable_shows_a_notice(admin_client, monkeypatch):
    from app.services.spend import Gate
    key, _ = make_key(budget={"amount_usd": "5", "period": "day"})

    def broken(self, snap, info):
        raise OSError("database is locked")
    monkeypatch.setattr(Gate, "key_state", broken)
    r = admin_client.get(f"/keys/{key.id}")
    assert r.status_code == 200 and "could not be read" in text(r)
    assert 'id="refusals-429"' in text(r)  # the rest of the card still renders
    assert admin_client.get("/keys").status_code == 200  # the list just drops the bar


# --- the polled fragment ------------------------------------------------------------------------

def test_spend_card_polls_every_10s(admin_client):
    key, _ = make_key(budget={"amount_usd": "5", "period": "day"})
    card = element(text(admin_client.get(f"/keys/{key.id}")), "key-spend")
    assert f'hx-get="/keys/{key.id}"' in card and 'hx-trigger="every 10s"' in card
    assert 'hx-swap="outerHTML"' in card


def test_htmx_poll_returns_the_card_only(admin_client):
    key, _ = make_key(budget={"amount_usd": "5", "period": "day"})
    settle(admit(key, 10, "0.1"), 10, "1.25")
    r = admin_client.get(f"/keys/{key.id}", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r) and "HX-Request" in r.headers["Vary"]
    body = text(r)
    assert body.lstrip().startswith('<section class="card" id="key-spend"')
    assert "$1.25" in element(body, "budget-key")
    # the recent-requests table rides along, swapped out of band
    assert 'id="key-requests" hx-swap-oob="true"' in body
    assert "<h1>" not in body and "Allowed models" not in body


def test_revoked_key_does_not_poll(admin_client):
    from app.services import keys
    key, _ = make_key()
    keys.revoke(key, actor="t")
    body = text(admin_client.get(f"/keys/{key.id}"))
    assert "every 10s" not in body and "revoked" in body
    assert f"/keys/{key.id}/edit" not in body


# --- through the proxy: refusals and recent requests --------------------------------------------

@responses_lib.activate
def test_refusals_and_recent_requests_via_proxy(app, admin_client, route):
    responses_lib.post(CHAT_URL, json=reply())  # 1000 + 1000 tokens = $0.00075
    key, raw = make_key(limits={"rpm": 1}, budget={"amount_usd": "0.001", "period": "day"})
    gw = app.test_client()
    auth = {"Authorization": f"Bearer {raw}"}
    statuses = [gw.post("/v1/chat/completions", headers=auth, json=body).status_code for body in
                (BODY, {**BODY, "max_tokens": 10}, BODY)]
    # rpm spent by the first call; the 3rd would also blow the budget, and a budget refusal wins
    assert statuses == [200, 429, 402]

    body = text(admin_client.get(f"/keys/{key.id}"))
    assert ">1</span>" in squash(element(body, "refusals-429"))
    assert ">1</span>" in squash(element(body, "refusals-402"))
    own = squash(element(body, "budget-key"))
    assert "$0.00075" in own and "$0.001" in own
    assert 'class="meter is-ok"' in own and "reserved $0.00" in own  # 75 %: below the default 80 %
    recent = element(body, "key-requests")
    rows = recent.split("<tbody>")[1].split("</tr>")[:-1]
    assert len(rows) == 3
    newest, _, oldest = (squash(r) for r in rows)
    assert ">402<" in newest and "budget exceeded" in newest
    assert ">200<" in oldest and "mini" in oldest and "1,000" in oldest and "$0.00075" in oldest
    assert ">429<" in squash(rows[1]) and "rate limited" in squash(rows[1])


def test_refusals_count_the_last_24h_only(admin_client):
    key, _ = make_key()
    now = utcnow()
    for status, error, age in ((429, "rate_limited", 1), (429, "rate_limited", 25),
                               (402, "budget_exceeded", 23), (402, "budget_exceeded", 30),
                               (500, "upstream_error", 1)):
        db.session.add(UsageRecord(key_id=key.id, model_name="m", status_code=status, error_class=error,
                                   created_at=now - timedelta(hours=age)))
    db.session.add(UsageRecord(key_id=key.id + 1, model_name="m", status_code=429, created_at=now))
    db.session.commit()
    body = text(admin_client.get(f"/keys/{key.id}"))
    assert ">1</span>" in squash(element(body, "refusals-429"))
    assert ">1</span>" in squash(element(body, "refusals-402"))


def test_recent_requests_keep_the_last_20(admin_client):
    key, _ = make_key()
    now = utcnow()
    for i in range(25):
        db.session.add(UsageRecord(key_id=key.id, model_name=f"model-{i:02d}", status_code=200,
                                   prompt_tokens=10, completion_tokens=i, cost_usd=Decimal("0.001"),
                                   latency_ms=120.0, created_at=now - timedelta(minutes=25 - i)))
    db.session.commit()
    recent = element(text(admin_client.get(f"/keys/{key.id}")), "key-requests")
    assert recent.count("<tr>") == 21  # header + 20
    assert "model-24" in recent and "model-05" in recent and "model-04" not in recent
    assert recent.index("model-24") < recent.index("model-05")  # newest first
    assert "120 ms" in recent and "$0.001" in recent


# --- keys list: compact spend bar ---------------------------------------------------------------

def test_list_spend_column(admin_client, team):
    spender, _ = make_key(name="spender", budget={"amount_usd": "10", "period": "week"})
    settle(admit(spender, 10, "0.1"), 10, "9")
    member, _ = make_key(name="member", owner="research")
    plain, _ = make_key(name="plain")
    body = text(admin_client.get("/keys"))
    row = squash(element(body, f"key-{spender.id}"))
    assert 'class="meter is-warn meter-sm"' in row and "$9.00" in row and " of $10.00/week · 90%" in row
    row = squash(element(body, f"key-{member.id}"))
    assert "team “research” budget" in row and " of $100.00/month" in row
    row = squash(element(body, f"key-{plain.id}"))
    assert "meter" not in row
