"""Audit log: newest first, paginated, filterable, diffs readable, secrets masked."""
from __future__ import annotations

from app.services import audit as audit_service

from .helpers import HTMX, SECRET, is_fragment, text


def test_audit_lists_changes_newest_first(admin_client, make_provider, make_model):
    p = make_provider(name="Acme AI", api_key=SECRET)
    make_model(p, model_id="first-model")
    make_model(p, model_id="second-model")
    body = text(admin_client.get("/audit"))
    assert body.index("second-model") < body.index("first-model") < body.index("Acme AI")
    assert "api_key" in body and "***" in body and SECRET not in body


def test_update_diff_shows_old_and_new(admin_client, make_provider):
    from app.services import providers
    p = make_provider(name="Acme AI")
    providers.update(p, {"read_timeout": 90}, actor="ops")
    body = text(admin_client.get("/audit"))
    assert "<del>60.0</del>" in body and "<ins>90.0</ins>" in body and "ops" in body


def test_audit_pagination(admin_client, app):
    from app.extensions import db
    for i in range(60):
        audit_service.record("bot", "update", "key", i, f"key-{i:02d}", {"name": [None, f"key-{i:02d}"]})
    db.session.commit()
    first = text(admin_client.get("/audit"))
    assert "key-59" in first and "key-05" not in first
    assert "Page 1 of 2" in first and 'href="/audit?page=2' in first
    second = text(admin_client.get("/audit?page=2"))
    assert "key-05" in second and "key-59" not in second
    assert text(admin_client.get("/audit?page=99")).count("key-") == 0


def test_audit_filters_and_fragment(admin_client, make_provider, make_model):
    p = make_provider(name="Acme AI")
    make_model(p)
    r = admin_client.get("/audit?entity=model", headers=HTMX)
    assert is_fragment(r)
    body = text(r)
    assert "gpt-4o-mini" in body and "Acme AI" not in body
    body = text(admin_client.get("/audit?actor=nobody"))
    assert "No audit entries" in body


def test_viewer_can_read_audit(viewer_client):
    r = viewer_client.get("/audit")
    assert r.status_code == 200 and "Audit log" in text(r)
