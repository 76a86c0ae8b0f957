"""Owners/teams: a budget shared by every key whose `owner` is the team's name."""
from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models import GatewayKey, Team, User
from app.services import audit, changes
from app.services import validation as v
from app.services.errors import Conflict, NotFound
from app.services.keys import budget_from

FIELDS = ("name", "description", "budget")


def snapshot(t: Team) -> dict[str, Any]:
    return {f: getattr(t, f) for f in FIELDS}


def get(team_id: int) -> Team:
    team = db.session.get(Team, team_id)
    if team is None:
        raise NotFound(f"team {team_id} not found", code="team_not_found")
    return team


def list_all() -> list[Team]:
    return list(db.session.scalars(db.select(Team).order_by(Team.name)))


def to_dict(t: Team) -> dict[str, Any]:
    keys = db.session.scalar(db.select(db.func.count(GatewayKey.id)).where(
        GatewayKey.owner == t.name, GatewayKey.revoked_at.is_(None))) or 0
    return {"id": t.id, "name": t.name, "description": t.description, "budget": t.budget or None,
            "key_count": keys, "created_at": t.created_at.isoformat() + "Z",
            "updated_at": t.updated_at.isoformat() + "Z"}


def _apply(t: Team, data: dict, creating: bool) -> None:
    if creating or "name" in data:
        t.name = v.text(data, "name", required=True, max_len=120)
    if creating or "description" in data:
        t.description = v.text(data, "description", max_len=500)
    if creating or "budget" in data:
        t.budget = budget_from(data)


def _unique(t: Team) -> None:
    with db.session.no_autoflush:
        clash = db.session.scalar(db.select(Team.id).where(Team.name == t.name, Team.id != t.id))
    if clash is not None:
        raise Conflict(f"a team named '{t.name}' already exists", field="name", code="team_exists")


def create(data: dict, actor: str) -> Team:
    t = Team()
    _apply(t, dict(data), creating=True)
    _unique(t)
    changes.created(t, "team", t.name, snapshot(t), actor)
    return t


def update(t: Team, data: dict, actor: str) -> Team:
    before = snapshot(t)
    _apply(t, dict(data), creating=False)
    _unique(t)
    if t.name != before["name"]:  # the team's keys follow it (owner is how keys join a team)
        db.session.execute(db.update(GatewayKey).where(GatewayKey.owner == before["name"])
                           .values(owner=t.name))
        _rename_in_team_admins(before["name"], t.name, actor)
    changes.updated(t, "team", t.name, before, snapshot(t), actor)
    return t


def _rename_in_team_admins(old: str, new: str, actor: str) -> None:
    """Team admins of the renamed team keep managing it (their teams are team names)."""
    for user in db.session.scalars(db.select(User).where(User.role == "team_admin")):
        if old in (user.teams or []):
            before = list(user.teams)
            user.teams = list(dict.fromkeys(new if name == old else name for name in before))
            audit.record(actor, "update", "user", user.id, user.username,
                         {"teams": [before, user.teams]})


def delete(t: Team, actor: str) -> None:
    changes.deleted(t, "team", t.name, actor)
