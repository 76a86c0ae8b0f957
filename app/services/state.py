"""Cross-worker configuration version: bumped on change, polled (cheaply) by caches."""
from __future__ import annotations

from datetime import datetime

from flask import current_app, has_app_context
from sqlalchemy import update

from app.extensions import db
from app.models import GatewayState
from app.services import notify

STATE_ID = 1


def _ensure_row() -> None:
    if db.session.get(GatewayState, STATE_ID) is None:
        db.session.add(GatewayState(id=STATE_ID, config_version=0))
        db.session.flush()


def bump() -> None:
    """Mark configuration as changed; committed with the caller's transaction.

    With GATEWAY_REDIS_URL set, the new version is also published on Redis (``gw:config``)
    once that transaction commits, so every host reloads at once instead of at its next poll
    (app.services.notify; nothing is published if the transaction rolls back).
    """
    _ensure_row()
    db.session.execute(update(GatewayState).where(GatewayState.id == STATE_ID)
                       .values(config_version=GatewayState.config_version + 1))
    url = current_app.config.get("REDIS_URL") if has_app_context() else None
    if url:
        notify.install()
        notify.note(db.session, url, version())


def version() -> int:
    value = db.session.scalar(db.select(GatewayState.config_version)
                              .where(GatewayState.id == STATE_ID))
    return value or 0


def acquire_lease(owner: str, now: datetime, until: datetime) -> bool:
    """Atomically take the health-check lease if it expired; True when this caller has it."""
    _ensure_row()
    db.session.commit()
    result = db.session.execute(
        update(GatewayState)
        .where(GatewayState.id == STATE_ID)
        .where((GatewayState.health_lease_until.is_(None)) | (GatewayState.health_lease_until <= now))
        .values(health_lease_until=until, health_lease_owner=owner))
    db.session.commit()
    return result.rowcount == 1
