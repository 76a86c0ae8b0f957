"""Audit log filters (actor, action, entity type, date range) and the field-by-field diff view."""
from __future__ import annotations

import re
from datetime import datetime

import pytest

from app.extensions import db
from app.models import AuditLog
from app.services import audit as audit_service

from .helpers import HTMX, SECRET, element, is_fragment, squash, text


def entry(actor, action, entity_type, name, diff, at, entity_id=1):
    db.session.add(AuditLog(actor=actor, action=action, entity_type=entity_type, entity_id=entity_id,
                            entity_name=name, diff=diff, at=at))


@pytest.fixture
def trail(app):
    entry("alice", "create", "key", "alpha-key", {"name": [None, "alpha-key"]}, datetime(2020, 3, 1, 9))
    entry("bob", "update", "key", "alpha-key", {"enabled": [True, False]}, datetime(2020, 3, 2, 23, 59))
    entry("alice", "delete", "model", "beta-model", {}, datetime(2020, 3, 3, 0, 0))
    entry("carol", "update", "provider", "gamma-provider", {"read_timeout": [60.0, 90.0]}, datetime(2020, 3, 5, 12))
    db.session.commit()


def names(html: str) -> list[str]:
    """Entity names of the listed entries, in order."""
    return re.findall(r'<span class="tag">[^<]+</span> ([^<]+?)\s*<span', element(html, "audit-table"))


@pytest.mark.parametrize("query,expected", [
    ("actor=alice", ["beta-model", "alpha-key"]),
    ("action=update", ["gamma-provider", "alpha-key"]),
    ("entity=key", ["alpha-key", "alpha-key"]),
    ("entity=key&action=create", ["alpha-key"]),
    ("start=2020-03-02&end=2020-03-03", ["beta-model", "alpha-key"]),  # both days whole, UTC
    ("start=2020-03-04&end=2020-12-31", ["gamma-provider"]),
    ("end=2020-03-01", ["alpha-key"]),
    ("start=2020-03-0&entity=key", ["alpha-key", "alpha-key"]),  # half-typed date: ignored
])
def test_filters(admin_client, trail, query, expected):
    html = text(admin_client.get(f"/audit?{query}"))
    assert names(html) == expected


def test_filter_form_offers_the_values_in_the_log(admin_client, trail):
    html = text(admin_client.get("/audit?action=delete&actor=alice"))
    assert '<option value="carol">carol</option>' in element(html, "audit-actor")
    assert '<option value="delete" selected>delete</option>' in element(html, "audit-action")
    assert '<option value="provider">provider</option>' in element(html, "audit-entity")
    assert 'id="audit-start" value=""' in html and "Reset" in html
    assert names(html) == ["beta-model"]


def test_filters_swap_only_the_table_and_pages_keep_them(admin_client, app):
    for i in range(60):
        audit_service.record("bot", "update", "key", i, f"k{i:02d}", {"name": ["x", f"k{i:02d}"]})
    audit_service.record("human", "update", "key", 99, "other", {"name": ["x", "y"]})
    db.session.commit()
    r = admin_client.get("/audit?actor=bot&action=update", headers=HTMX)
    assert is_fragment(r) and "other" not in text(r)
    assert 'href="/audit?page=2&amp;actor=bot&amp;action=update"' in text(r)
    second = text(admin_client.get("/audit?page=2&actor=bot&action=update"))
    assert "k05" in second and "other" not in second


def test_nothing_matches(admin_client, trail):
    body = text(admin_client.get("/audit?actor=nobody"))
    assert "No audit entries" in body and "Nothing matches these filters." in body


# ----------------------------------------------------------------------------- diffs
def diff_rows(html: str, row_id: int) -> list[tuple[str, str, str]]:
    cell = squash(element(html, f"audit-{row_id}"))
    return re.findall(r'<span class="change-field" role="cell">([^<]+)</span> '
                      r'<span class="change-old" role="cell">(.*?)</span> <span class="change-arrow"[^>]*>→</span> '
                      r'<span class="change-new" role="cell">(.*?)</span> </div>', cell)


def test_update_shows_each_field_old_to_new(admin_client, app):
    audit_service.record("ops", "update", "key", 7, "svc", audit_service.diff(
        {"name": "svc", "limits": {"rpm": 60, "tpm": None}, "scopes": ["chat"], "enabled": True, "owner": "a"},
        {"name": "svc", "limits": {"rpm": 120, "tpm": 5000}, "scopes": ["chat", "embeddings"], "enabled": False,
         "owner": None}))
    db.session.commit()
    row = db.session.scalar(db.select(AuditLog).order_by(AuditLog.id.desc()))
    html = text(admin_client.get("/audit"))
    assert diff_rows(html, row.id) == [
        ("enabled", "<del>yes</del>", "<ins>no</ins>"),
        ("limits.rpm", "<del>60</del>", "<ins>120</ins>"),
        ("limits.tpm", '<span class="change-none">not set</span>', "<ins>5000</ins>"),
        ("owner", "<del>a</del>", '<span class="change-none">removed</span>'),
        ("scopes", "<del>chat</del>", "<ins>chat, embeddings</ins>"),
    ]
    assert "Before" in element(html, f"audit-{row.id}") and "After" in element(html, f"audit-{row.id}")


def test_secret_changes_stay_masked(admin_client, make_provider):
    from app.services import providers
    p = make_provider(name="Acme AI", api_key=SECRET)
    providers.update(p, {"api_key": "sk-another-SECRET-0000", "read_timeout": 90}, actor="ops")
    html = text(admin_client.get("/audit?action=update"))
    row = db.session.scalar(db.select(AuditLog).where(AuditLog.action == "update"))
    rows = dict((field, (old, new)) for field, old, new in diff_rows(html, row.id))
    assert "<del>***</del>" in rows["api_key"][0] and "<ins>***</ins>" in rows["api_key"][1]
    assert "secret replaced" in rows["api_key"][1]
    assert rows["read_timeout"] == ("<del>60.0</del>", "<ins>90.0</ins>")
    assert SECRET not in html and "sk-another-SECRET-0000" not in html


def test_create_lists_values_and_delete_lists_facts(admin_client, make_provider):
    p = make_provider(name="Acme AI")
    db.session.add(AuditLog(actor="ops", action="delete", entity_type="provider", entity_id=p.id,
                            entity_name="Acme AI", diff={"models_deleted": ["m-one", "m-two"]}))
    db.session.commit()
    html = text(admin_client.get("/audit?entity=provider"))
    created = db.session.scalar(db.select(AuditLog).where(AuditLog.action == "create",
                                                          AuditLog.entity_type == "provider"))
    deleted = db.session.scalar(db.select(AuditLog).where(AuditLog.action == "delete"))
    create_cell = squash(element(html, f"audit-{created.id}"))
    assert "<li><span>name</span><code>Acme AI</code></li>" in create_cell and "<del>" not in create_cell
    delete_cell = squash(element(html, f"audit-{deleted.id}"))
    # a two-item list of facts is not mistaken for [old, new]
    assert "<li><span>models_deleted</span><code>m-one, m-two</code></li>" in delete_cell
    assert "<del>" not in delete_cell


def test_viewer_can_filter_the_audit_log(viewer_client, trail):
    r = viewer_client.get("/audit?actor=bob")
    assert r.status_code == 200 and names(text(r)) == ["alpha-key"]
