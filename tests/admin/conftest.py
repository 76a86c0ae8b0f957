"""Console test fixtures: a clean login throttle, a faked upstream, audit and row lookups."""
from __future__ import annotations

import pytest
import responses as responses_lib


@pytest.fixture(autouse=True)
def _fresh_login_throttle():
    """The per-IP failure counter is process-global; start and end every test clean."""
    from app.services import users
    users._ip_failures.clear()
    yield
    users._ip_failures.clear()


@pytest.fixture
def upstream():
    """`responses` faking http://upstream.test; unmatched URLs fail loudly."""
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def audit_rows(app):
    """audit_rows(entity_type, action=None) -> matching AuditLog rows, newest first."""
    from app.extensions import db
    from app.models import AuditLog

    def rows(entity_type: str, action: str | None = None):
        stmt = db.select(AuditLog).where(AuditLog.entity_type == entity_type)
        if action:
            stmt = stmt.where(AuditLog.action == action)
        return list(db.session.scalars(stmt.order_by(AuditLog.id.desc())))
    return rows


@pytest.fixture
def count(app):
    """count(Model) -> rows in that table (fresh query, not the identity map)."""
    from app.extensions import db

    def n(model) -> int:
        db.session.expire_all()
        return db.session.scalar(db.select(db.func.count()).select_from(model))
    return n
