"""Read-only queries the console needs that no service offers (counts, audit pages)."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import func

from app.extensions import db
from app.models import AuditLog, GatewayKey, Model, Provider, Team, utcnow


def overview_counts() -> dict[str, dict[str, int]]:
    """Totals and enabled/active counts for the overview cards."""
    def count(column, *where) -> int:
        return db.session.scalar(db.select(func.count(column)).where(*where)) or 0

    now = utcnow()
    return {
        "providers": {"total": count(Provider.id), "enabled": count(Provider.id, Provider.enabled.is_(True))},
        "models": {"total": count(Model.id), "enabled": count(Model.id, Model.enabled.is_(True))},
        "keys": {"total": count(GatewayKey.id),
                 "active": count(GatewayKey.id, GatewayKey.revoked_at.is_(None),
                                 GatewayKey.enabled.is_(True),
                                 (GatewayKey.expires_at.is_(None)) | (GatewayKey.expires_at > now))},
    }


def health_summary(providers: list[Provider]) -> dict[str, int]:
    """{"healthy": n, "unhealthy": n, "unknown": n, "disabled": n}."""
    counts = Counter("disabled" if not p.enabled else p.health_status or "unknown" for p in providers)
    return {s: counts.get(s, 0) for s in ("healthy", "unhealthy", "unknown", "disabled")}


def model_counts() -> dict[int, int]:
    """Models per provider id, in one query (the list page would otherwise load every model)."""
    rows = db.session.execute(db.select(Model.provider_id, func.count(Model.id)).group_by(Model.provider_id))
    return {pid: n for pid, n in rows}


def audit_entity_types() -> list[str]:
    return list(db.session.scalars(db.select(AuditLog.entity_type).distinct().order_by(AuditLog.entity_type)))


def audit_page(page: int, per_page: int = 50, entity_type: str | None = None, actor: str | None = None):
    """Newest first; a flask-sqlalchemy Pagination (out-of-range pages are empty, not 404)."""
    stmt = db.select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
    if entity_type:
        stmt = stmt.where(AuditLog.entity_type == entity_type)
    if actor:
        stmt = stmt.where(AuditLog.actor == actor)
    return db.paginate(stmt, page=page, per_page=per_page, max_per_page=200, error_out=False)


def recent_audit(limit: int = 8) -> list[AuditLog]:
    return list(db.session.scalars(db.select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
                                   .limit(limit)))


def team_named(name: str | None) -> Team | None:
    """The team a key belongs to (its owner is the team's name), if there is one."""
    return db.session.scalar(db.select(Team).where(Team.name == name)) if name else None


def team_key_counts() -> dict[str, int]:
    """Non-revoked keys per owner name, in one query (teams are matched by name)."""
    rows = db.session.execute(
        db.select(GatewayKey.owner, func.count(GatewayKey.id))
        .where(GatewayKey.revoked_at.is_(None), GatewayKey.owner.is_not(None))
        .group_by(GatewayKey.owner))
    return {owner: n for owner, n in rows}
