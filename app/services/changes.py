"""The one way configuration changes are saved: audited, cache version bumped, committed.

Every console/API/CLI write of providers, models, keys and teams goes through these, so no
change can skip its AuditLog row or leave the workers' in-memory snapshots stale.
"""
from __future__ import annotations

from typing import Any

from app.extensions import db
from app.services import audit, state


def created(obj, entity_type: str, name: str | None, after: dict[str, Any], actor: str) -> None:
    db.session.add(obj)
    db.session.flush()  # assigns obj.id for the audit row
    audit.record(actor, "create", entity_type, obj.id, name, audit.diff({}, after))
    state.bump()
    db.session.commit()


def updated(obj, entity_type: str, name: str | None, before: dict[str, Any],
            after: dict[str, Any], actor: str, action: str = "update") -> None:
    changes = audit.diff(before, after)
    if changes:
        audit.record(actor, action, entity_type, obj.id, name, changes)
        state.bump()
    db.session.commit()


def deleted(obj, entity_type: str, name: str | None, actor: str,
            details: dict[str, Any] | None = None) -> None:
    audit.record(actor, "delete", entity_type, obj.id, name, details or {})
    db.session.delete(obj)
    state.bump()
    db.session.commit()
