"""Read-only views of spend for the console: counter state per key/team/model/provider, usage
history (refusals, recent requests) and the budgets that need attention.

Nothing here writes: the counters are read with the store's ``state`` (a snapshot), usage rows
with plain SELECTs. The key's budgets and limits come from its DB row (what the admin just
saved), not from the proxy's cached snapshot, so the console never shows a stale budget.
If the counter store cannot be read (locked beyond its timeout) the state is ``None`` and the
console says so instead of failing the page.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any, Iterable

from sqlalchemy import func

from app.extensions import db
from app.limits import Budget, Limits
from app.models import GatewayKey, Team, UsageRecord, utcnow
from app.services.keys import LIMIT_FIELDS
from app.services.runtime import key_info as runtime_key_info
from app.services.runtime import KeyInfo, Snapshot
from app.services.spend import gate

log = logging.getLogger(__name__)
REFUSALS = {429: "rate_limited", 402: "budget_exceeded"}


def _team_budgets(owners: Iterable[str | None]) -> dict[str, dict[str, Any]]:
    """{team name: budget} for the given owner names that are teams with a budget."""
    names = {o for o in owners if o}
    if not names:
        return {}
    rows = db.session.execute(db.select(Team.name, Team.budget).where(Team.name.in_(names)))
    return {name: dict(budget) for name, budget in rows if budget}


def key_info(key: GatewayKey) -> KeyInfo:
    """The proxy's view of a key, built from the row (not the proxy's cached snapshot, which
    may lag a just-saved change and holds no revoked keys)."""
    return runtime_key_info(key)


def key_state(key: GatewayKey, teams: dict[str, dict[str, Any]] | None = None) -> dict | None:
    """The counter store's state for a key: its limits, in-flight count, own and team budgets.

    Budgets come back in order: the key's own first, then its team's; each carries ``kind``
    ("key" or "team") and ``name`` for display. ``teams`` lets a caller listing many keys pass
    {team name: budget} loaded once.
    """
    info = key_info(key)
    if teams is None:
        teams = _team_budgets([key.owner])
    snap = Snapshot(version=0, team_budgets=teams)
    try:
        state = gate().key_state(snap, info)
    except Exception:
        log.exception("limit store unreadable; spend for key %s not shown", key.id)
        return None
    for b in state["budgets"]:
        kind = b["scope"].split(":", 1)[0]
        b["kind"], b["name"] = kind, (key.owner if kind == "team" else key.name)
    return state


def key_states(keys: Iterable[GatewayKey]) -> dict[int, dict]:
    """key id -> state, for the keys with a budget of their own or through their team."""
    keys = list(keys)
    teams = _team_budgets(k.owner for k in keys)
    out = {}
    for k in keys:
        if k.revoked_at is None and (k.budget or k.owner in teams):
            state = key_state(k, teams)
            if state is not None:
                out[k.id] = state
    return out


def team_budget(team: Team) -> dict | None:
    """The team's budget for the current period (spent, reserved, reset) or None without one."""
    if not team.budget:
        return None
    budget = Budget.from_dict(f"team:{team.name}", team.budget)
    try:
        state = gate().store.state(f"team:{team.name}", Limits(), [budget], time.time())
    except Exception:
        log.exception("limit store unreadable; spend for team %s not shown", team.name)
        return None
    (view,) = state["budgets"]
    return {**view, "kind": "team", "name": team.name}


def subject_state(subject: str, limits: dict[str, Any] | None) -> dict | None:
    """Current counts for a global model/provider limit ("model:5", "provider:2"); None if unset."""
    if not any((limits or {}).get(f) is not None for f in LIMIT_FIELDS):
        return None
    parsed = Limits.from_dict(limits)
    try:
        return gate().store.state(subject, parsed, [], time.time())
    except Exception:
        log.exception("limit store unreadable; state of %s not shown", subject)
        return None


def refusals(key_id: int, hours: int = 24) -> dict[str, int]:
    """{"rate_limited": n, "budget_exceeded": n}: 429 and 402 answers in the last ``hours``."""
    since = utcnow() - timedelta(hours=hours)
    rows = db.session.execute(
        db.select(UsageRecord.status_code, func.count(UsageRecord.id))
        .where(UsageRecord.key_id == key_id, UsageRecord.created_at >= since,
               UsageRecord.status_code.in_(REFUSALS))
        .group_by(UsageRecord.status_code))
    counts = dict.fromkeys(REFUSALS.values(), 0)
    for status, n in rows:
        counts[REFUSALS[status]] = n
    return counts


def recent_requests(key_id: int, limit: int = 20) -> list[UsageRecord]:
    """The key's last ``limit`` requests, newest first."""
    return list(db.session.scalars(
        db.select(UsageRecord).where(UsageRecord.key_id == key_id)
        .order_by(UsageRecord.created_at.desc(), UsageRecord.id.desc()).limit(limit)))


def past_soft(budget: dict) -> bool:
    """At or past the warning threshold: (spent + reserved) >= soft_pct % of the amount."""
    committed = budget["spent_usd"] + budget["reserved_usd"]
    return committed * 100 >= budget["amount_usd"] * budget["soft_pct"]


def budget_alerts() -> list[dict[str, Any]]:
    """Keys (own budget) and teams at or past their soft threshold, fullest first.

    Each item: {"kind": "key"|"team", "id", "name", "budget": <state budget>}.
    """
    items: list[dict[str, Any]] = []
    keys = db.session.scalars(db.select(GatewayKey).where(GatewayKey.revoked_at.is_(None)))
    for k in keys:
        if not k.budget:
            continue
        state = key_state(k, teams={})  # a team's budget is listed once, as the team
        if state and state["budgets"] and past_soft(state["budgets"][0]):
            items.append({"kind": "key", "id": k.id, "name": k.name, "budget": state["budgets"][0]})
    for t in db.session.scalars(db.select(Team).order_by(Team.name)):
        view = team_budget(t)
        if view is not None and past_soft(view):
            items.append({"kind": "team", "id": t.id, "name": t.name, "budget": view})

    def fullness(item) -> Decimal:
        b = item["budget"]
        return (b["spent_usd"] + b["reserved_usd"]) / b["amount_usd"] if b["amount_usd"] else Decimal(10**9)
    return sorted(items, key=fullness, reverse=True)
