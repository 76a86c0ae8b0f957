"""Overview: counts, health summary, recent changes, the usage placeholder."""
from __future__ import annotations

from .helpers import text


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


def test_overview_for_viewer(viewer_client):
    body = text(viewer_client.get("/"))
    assert "Overview" in body and "viewer" in body
