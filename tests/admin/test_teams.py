"""Teams: list with this period's spend, create/edit/delete, viewer read-only, nav entry."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from app.extensions import db
from app.limits import Budget, Limits
from app.models import Team

from .helpers import element, squash, text

VALID = {"name": "research", "description": "ML research group", "budget_amount": "250",
         "budget_period": "month", "budget_soft_pct": "75"}


def fresh(team_id: int) -> Team | None:
    db.session.expire_all()
    return db.session.get(Team, team_id)


@pytest.fixture
def team(app):
    from app.services import teams
    return teams.create({"name": "platform", "description": "Infra",
                         "budget": {"amount_usd": "50", "period": "week", "soft_pct": 80}}, actor="t")


def spend(scope: str, budget: dict, cost: str, reserve_only: bool = False) -> None:
    """Charge `cost` to a budget scope through the counter store (as the proxy would)."""
    from app.services.spend import gate
    store = gate().store
    reserve = Decimal(cost) if reserve_only else Decimal(0)
    adm = store.admit(f"test:{scope}", Limits(), [Budget.from_dict(scope, budget)], 10, reserve,
                      time.time())
    if not reserve_only:
        store.settle(adm.ticket, 10, Decimal(cost), time.time())


# --- list ---------------------------------------------------------------------------------------

def test_nav_has_teams_under_configure(admin_client):
    body = text(admin_client.get("/"))
    nav = body[body.index("Configure"):body.index("Operate")]
    assert 'href="/teams"' in nav and "Teams" in nav


def test_list_empty(admin_client):
    r = admin_client.get("/teams")
    assert r.status_code == 200 and "No teams yet" in text(r) and 'href="/teams/new"' in text(r)
    assert 'aria-current="page"' in text(r).split('href="/teams"')[1][:80]


def test_list_shows_budget_spend_and_key_count(admin_client, team):
    from app.services import keys
    keys.create({"name": "a", "owner": "platform"}, actor="t")
    keys.create({"name": "b", "owner": "platform"}, actor="t")
    gone, _ = keys.create({"name": "c", "owner": "platform"}, actor="t")
    keys.revoke(gone, actor="t")
    keys.create({"name": "d", "owner": "someone else"}, actor="t")
    spend("team:platform", team.budget, "30")
    spend("team:platform", team.budget, "12.5", reserve_only=True)
    row = squash(element(text(admin_client.get("/teams")), f"team-{team.id}"))
    assert "platform" in row and "Infra" in row and "$50.00" in row and "/ week" in row
    assert "warns at 80%" in row
    assert "$30.00" in row and " of $50.00/week · 85%" in row  # (30 + 12.50 reserved) / 50
    assert 'class="meter is-warn meter-sm"' in row and 'data-width="60.0"' in row
    assert 'data-width="25.0"' in row  # the reserved part
    assert "resets in" in row
    assert '<td class="num">2</td>' in row  # revoked and other owners' keys are not counted


def test_list_team_without_budget(admin_client):
    from app.services import teams
    t = teams.create({"name": "free"}, actor="t")
    row = squash(element(text(admin_client.get("/teams")), f"team-{t.id}"))
    assert "no budget" in row and "meter" not in row


def test_list_over_budget(admin_client, team):
    spend("team:platform", team.budget, "60")
    row = squash(element(text(admin_client.get("/teams")), f"team-{team.id}"))
    assert "is-over" in row and "text-danger" in row and "· 120%" in row


# --- create -------------------------------------------------------------------------------------

def test_new_form(admin_client):
    body = text(admin_client.get("/teams/new"))
    for name in ("name", "description", "budget_amount", "budget_period", "budget_soft_pct"):
        assert f'name="{name}"' in body, name
    assert "Shared budget" in body


def test_create(admin_client, audit_rows):
    r = admin_client.post("/teams/new", data=VALID)
    assert r.status_code == 303 and r.headers["Location"] == "/teams"
    t = db.session.scalar(db.select(Team).where(Team.name == "research"))
    assert t.description == "ML research group"
    assert t.budget == {"amount_usd": "250", "period": "month", "soft_pct": 75}
    assert audit_rows("team", "create")[0].actor == "admin"
    body = text(admin_client.get("/teams"))
    assert "Team “research” created" in body


def test_create_without_budget(admin_client):
    r = admin_client.post("/teams/new", data={"name": "nobudget", "budget_period": "month"})
    assert r.status_code == 303
    assert db.session.scalar(db.select(Team).where(Team.name == "nobudget")).budget == {}


@pytest.mark.parametrize("data, field, message", [
    ({**VALID, "name": ""}, "name", "This field is required"),
    ({**VALID, "budget_amount": "-1"}, "budget_amount", "Number must be between"),
    ({**VALID, "budget_amount": "lots"}, "budget_amount", "Not a valid decimal"),
    ({**VALID, "budget_soft_pct": "0"}, "budget_soft_pct", "Number must be between 1 and 100"),
    ({**VALID, "budget_period": "year"}, "budget_period", "Not a valid choice"),
])
def test_create_invalid(admin_client, count, data, field, message):
    r = admin_client.post("/teams/new", data=data)
    assert r.status_code == 422
    html = text(r)
    block = html[html.index(f'for="{field}"') - 80:]
    assert "has-error" in block[:120] and message in block[:1500]
    assert count(Team) == 0


def test_duplicate_name_lands_on_the_name_field(admin_client, team, count):
    r = admin_client.post("/teams/new", data={**VALID, "name": "platform"})
    assert r.status_code == 422
    html = text(r)
    assert "a team named &#39;platform&#39; already exists" in html[html.index('for="name"'):][:1200]
    assert 'value="platform"' in html and count(Team) == 1


# --- edit / delete ------------------------------------------------------------------------------

def test_edit_prefilled(admin_client, team):
    body = text(admin_client.get(f"/teams/{team.id}/edit"))
    assert 'value="platform"' in body and "Infra" in body and 'value="50"' in body
    assert '<option selected value="week">' in body and 'value="80"' in body
    assert f'href="/teams/{team.id}/delete"' in body


def test_edit_saves_and_can_drop_the_budget(admin_client, team, audit_rows):
    r = admin_client.post(f"/teams/{team.id}/edit", data={"name": "platform", "description": "",
                                                          "budget_amount": "", "budget_period": "week"})
    assert r.status_code == 303
    t = fresh(team.id)
    assert t.budget == {} and not t.description
    assert "budget" in audit_rows("team", "update")[0].diff


def test_edit_invalid_keeps_input(admin_client, team):
    r = admin_client.post(f"/teams/{team.id}/edit", data={**VALID, "budget_soft_pct": "101"})
    assert r.status_code == 422 and 'value="research"' in text(r)
    assert fresh(team.id).name == "platform"


def test_edit_missing_team(admin_client):
    assert admin_client.get("/teams/99/edit").status_code == 404


def test_delete_confirm_then_delete(admin_client, team, audit_rows, count):
    from app.services import keys
    keys.create({"name": "a", "owner": "platform"}, actor="t")
    page = admin_client.get(f"/teams/{team.id}/delete")
    assert page.status_code == 200
    assert "Delete team “platform”?" in text(page) and "Its 1 key(s) keep working" in text(page)
    assert count(Team) == 1  # GET changes nothing
    r = admin_client.post(f"/teams/{team.id}/delete")
    assert r.status_code == 303 and r.headers["Location"] == "/teams"
    assert count(Team) == 0 and audit_rows("team", "delete")


# --- viewers ------------------------------------------------------------------------------------

def test_viewer_reads_but_cannot_change(viewer_client, team, count):
    body = text(viewer_client.get("/teams"))
    assert "platform" in body
    assert 'href="/teams/new"' not in body and f'href="/teams/{team.id}/edit"' not in body
    for url in ("/teams/new", f"/teams/{team.id}/edit", f"/teams/{team.id}/delete"):
        assert viewer_client.get(url).status_code == 403, url
        assert viewer_client.post(url, data=VALID).status_code == 403, url
    assert count(Team) == 1 and fresh(team.id).name == "platform"


def test_key_form_suggests_team_names(admin_client, team):
    body = text(admin_client.get("/keys/new"))
    assert 'list="team-names"' in body and '<option value="platform">' in body
