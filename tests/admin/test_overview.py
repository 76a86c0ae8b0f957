"""Overview: counts, health summary, recent changes, the last 24 hours of usage."""
from __future__ import annotations

from .helpers import element, squash, text


def test_overview_empty_shows_onboarding(admin_client):
    body = text(admin_client.get("/"))
    assert "Get started" in body and "/v1" in body and 'id="usage-panel"' in body
    assert "No providers yet" in body


def test_overview_counts_and_health(admin_client, make_provider, make_model, app):
    from app.extensions import db
    from app.services import keys
    p = make_provider(name="Acme AI")
    make_model(p)
    make_model(p, model_id="gpt-4o", enabled=False)
    make_provider(name="Off", enabled=False)
    keys.create({"name": "k1"}, actor="test")
    revoked, _ = keys.create({"name": "k2"}, actor="test")
    keys.revoke(revoked, actor="test")
    p.health_status = "unhealthy"
    db.session.commit()
    body = text(admin_client.get("/"))
    assert "Get started" not in body
    assert '<span class="stat-value">2</span>' in body and "1 enabled" in body  # providers, models
    assert "active of 2" in body
    assert "1 unhealthy" in body and "Acme AI" in body
    assert "Recent changes" in body and "revoke" in body


def test_overview_usage_panel_shows_the_last_day(admin_client, app):
    import re
    from datetime import timedelta

    from app.models import utcnow

    from .test_usage import rec, write
    body = text(admin_client.get("/"))
    assert "No requests in the last 24 hours" in squash(element(body, "usage-panel"))
    now = utcnow()
    write(app, [rec(now - timedelta(hours=1), model="busy-model", cost="0.25"),
                rec(now - timedelta(hours=2), model="busy-model", cost="0.25", status=500,
                    error_class="upstream_error"),
                rec(now - timedelta(hours=3), model="quiet-model", cost="0.5"),
                rec(now - timedelta(hours=30), model="quiet-model", cost="9")])  # the day before
    html = element(text(admin_client.get("/")), "usage-panel")
    panel = squash(re.sub(r"<[^>]+>", " ", html))
    assert "No requests" not in panel
    assert "Requests 3" in panel and "$1.00" in panel          # the last 24 hours only
    assert panel.index("busy-model") < panel.index("quiet-model")   # busiest first
    assert "50.00%" in panel                                   # busy-model: 1 error in 2
    assert "▼" in panel                                        # cost: $1.00 against $9.00
    assert 'href="/usage?range=24h"' in html and 'href="/requests?model=busy-model"' in html


def test_overview_for_viewer(viewer_client):
    body = text(viewer_client.get("/"))
    assert "Overview" in body and "viewer" in body


# --- budgets card -------------------------------------------------------------------------------

def _charge(scope: str, budget: dict, cost: str, reserve: str = "0") -> None:
    """Spend `cost` (and hold `reserve`) on a budget scope through the counter store."""
    import time
    from decimal import Decimal

    from app.limits import Budget, Limits
    from app.services.spend import gate
    store = gate().store
    adm = store.admit(f"t:{scope}", Limits(), [Budget.from_dict(scope, budget)], 1, Decimal(0), time.time())
    store.settle(adm.ticket, 1, Decimal(cost), time.time())
    if reserve != "0":
        store.admit(f"t:{scope}", Limits(), [Budget.from_dict(scope, budget)], 1, Decimal(reserve), time.time())


def test_budgets_card_empty(admin_client):
    body = text(admin_client.get("/"))
    assert 'id="budget-alerts"' in body and "No key or team is near its budget" in body


def test_budgets_card_lists_keys_and_teams_past_soft(admin_client, app):
    from app.services import keys, teams

    from .helpers import element, squash
    month = {"amount_usd": "10", "period": "month", "soft_pct": 80}
    hot, _ = keys.create({"name": "hot key", "budget": month}, actor="t")
    calm, _ = keys.create({"name": "calm key", "budget": month}, actor="t")
    reserved, _ = keys.create({"name": "reserved key", "budget": month}, actor="t")
    gone, _ = keys.create({"name": "gone key", "budget": month}, actor="t")
    team = teams.create({"name": "research", "budget": {"amount_usd": "100", "period": "week"}}, actor="t")
    _charge(f"key:{hot.id}", month, "12")             # over: 120 %
    _charge(f"key:{calm.id}", month, "7.99")          # 79.9 %: below 80 %
    _charge(f"key:{reserved.id}", month, "6", "2")    # 6 spent + 2 reserved = 80 %: at the threshold
    _charge(f"key:{gone.id}", month, "9")
    keys.revoke(gone, actor="t")
    _charge("team:research", team.budget, "85")       # 85 % of a week, soft 80 %

    card = squash(element(text(admin_client.get("/")), "budget-alerts"))
    assert "hot key" in card and "reserved key" in card and "research" in card
    assert "calm key" not in card and "gone key" not in card
    assert f'href="/keys/{hot.id}"' in card and f'href="/teams#team-{team.id}"' in card
    assert '<span class="count count-warn">3</span>' in card
    assert card.index("hot key") < card.index("research") < card.index("reserved key")  # fullest first
    assert "used up" in card and "past 80%" in card
    assert "$12.00" in card and " of $10.00/month · 120%" in card and " of $100.00/week · 85%" in card


def test_team_budget_is_not_repeated_per_key(admin_client):
    from app.services import keys, teams

    from .helpers import element
    team = teams.create({"name": "ops", "budget": {"amount_usd": "10", "period": "day"}}, actor="t")
    keys.create({"name": "ops key", "owner": "ops"}, actor="t")
    _charge("team:ops", team.budget, "9.5")
    card = element(text(admin_client.get("/")), "budget-alerts")
    assert "ops key" not in card and card.count("/teams#team-") == 1
