"""Gateway keys: created and shown once, limits and budget stored, edit, revoke."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

from app.extensions import db
from app.models import GatewayKey
from app.services.keys import hash_key

from .helpers import text

TOMORROW = (date.today() + timedelta(days=30)).isoformat()
VALID = {"name": "billing prod", "owner": "billing team", "scopes": ["chat", "embeddings"],
         "allowed_models": "gpt-4o-mini\nclaude, llama", "expires_at": TOMORROW,
         "rpm": "60", "rph": "", "rpd": "10000", "tpm": "90000", "tpd": "", "concurrency": "4",
         "budget_amount": "25.50", "budget_period": "week", "budget_soft_pct": "75",
         "allowed_ips": "10.0.0.0/8\n192.168.1.7"}


def fresh(key_id: int) -> GatewayKey | None:
    db.session.expire_all()
    return db.session.get(GatewayKey, key_id)


def created_key(response) -> str:
    match = re.search(r'id="new-key"[^>]*value="(gw-[^"]+)"', text(response))
    assert match, "no key on the result page"
    return match.group(1)


@pytest.fixture
def key(app):
    from app.services import keys
    row, _ = keys.create({"name": "ci runner", "owner": "platform", "limits": {"rpm": 10},
                          "budget": {"amount_usd": "5", "period": "day"}}, actor="test")
    return row


def test_list_shows_keys(admin_client, key):
    body = text(admin_client.get("/keys"))
    assert "ci runner" in body and "platform" in body and f"{key.prefix}…" in body
    assert "active" in body and "never" in body and "10 rpm" in body and "$5.00/day" in body
    assert key.key_hash not in body


def test_list_empty(admin_client):
    assert "No keys yet" in text(admin_client.get("/keys"))


def test_new_form(admin_client):
    body = text(admin_client.get("/keys/new"))
    for name in ("name", "owner", "scopes", "allowed_models", "expires_at", "rpm", "rph", "rpd", "tpm",
                 "tpd", "concurrency", "budget_amount", "budget_period", "budget_soft_pct", "allowed_ips"):
        assert f'name="{name}"' in body, name
    assert "Limits &amp; budget" in body
    assert body.count('type="checkbox"') >= 4  # one per scope


def test_create_shows_key_once(admin_client, audit_rows):
    r = admin_client.post("/keys/new", data=VALID)
    assert r.status_code == 201
    assert r.headers["Cache-Control"] == "no-store"
    raw = created_key(r)
    body = text(r)
    assert "will not be shown again" in body and "data-copy" in body
    k = db.session.scalar(db.select(GatewayKey).where(GatewayKey.name == "billing prod"))
    assert k.key_hash == hash_key(raw) and raw.startswith(k.prefix)
    assert k.owner == "billing team" and k.scopes == ["chat", "embeddings"]
    assert k.allowed_models == ["gpt-4o-mini", "claude", "llama"]
    assert k.expires_at == datetime.fromisoformat(TOMORROW)
    assert k.limits == {"rpm": 60, "rpd": 10000, "tpm": 90000, "concurrency": 4}
    assert k.budget == {"amount_usd": "25.50", "period": "week", "soft_pct": 75}
    assert k.allowed_ips == ["10.0.0.0/8", "192.168.1.7/32"]
    row = audit_rows("key", "create")[0]
    assert row.actor == "admin" and raw not in str(row.diff)
    # never again: not in the list, the edit page or the audit log
    for url in ("/keys", f"/keys/{k.id}/edit", "/audit", "/"):
        assert raw not in text(admin_client.get(url)), url


def test_create_defaults(admin_client):
    r = admin_client.post("/keys/new", data={"name": "minimal", "scopes": ["chat"]})
    assert r.status_code == 201
    k = db.session.scalar(db.select(GatewayKey).where(GatewayKey.name == "minimal"))
    assert k.limits == {} and k.budget == {} and k.allowed_models == [] and k.expires_at is None


@pytest.mark.parametrize("change,message", [
    ({"name": ""}, "This field is required"),
    ({"scopes": []}, "a key needs at least one scope"),
    ({"scopes": ["chat", "root"]}, "is not a valid choice"),
    ({"rpm": "0"}, "Number must be between 1 and"),
    ({"budget_soft_pct": "150"}, "Number must be between 1 and 100"),
    ({"budget_amount": "-3"}, "Number must be between 0 and"),
    ({"allowed_ips": "not-an-ip"}, "is not an IP address or CIDR"),
    ({"expires_at": "2001-01-01"}, "Choose a date after today"),
    ({"expires_at": "tomorrow"}, "Not a valid date value"),
])
def test_create_invalid_is_422(admin_client, count, change, message):
    r = admin_client.post("/keys/new", data={**VALID, **change})
    assert r.status_code == 422
    assert message in text(r)
    assert count(GatewayKey) == 0
    assert "gw-" not in text(r)


def test_viewer_cannot_create(viewer_client, count):
    assert viewer_client.get("/keys/new").status_code == 403
    assert viewer_client.post("/keys/new", data=VALID).status_code == 403
    assert count(GatewayKey) == 0


def test_edit_form_prefilled_without_secret(admin_client, key):
    body = text(admin_client.get(f"/keys/{key.id}/edit"))
    assert 'value="ci runner"' in body and 'value="platform"' in body and 'value="10"' in body
    assert 'value="5"' in body and key.key_hash not in body
    assert "cannot be shown" in body


def test_edit_key(admin_client, key, audit_rows):
    data = {**VALID, "name": "ci runner", "enabled": "y", "rpm": "", "budget_amount": ""}
    r = admin_client.post(f"/keys/{key.id}/edit", data=data)
    assert r.status_code == 303 and r.headers["Location"] == f"/keys/{key.id}"
    k = fresh(key.id)
    assert k.scopes == ["chat", "embeddings"] and k.owner == "billing team"
    assert "rpm" not in k.limits and k.budget == {}
    assert k.enabled and k.key_hash == key.key_hash  # the secret never changes
    assert "owner" in audit_rows("key", "update")[0].diff


def test_edit_can_disable(admin_client, key):
    r = admin_client.post(f"/keys/{key.id}/edit", data={"name": "ci runner", "scopes": ["chat"]})
    assert r.status_code == 303
    assert fresh(key.id).status == "disabled"


def test_edit_invalid_is_422(admin_client, key):
    r = admin_client.post(f"/keys/{key.id}/edit", data={"name": "ci runner", "scopes": [], "enabled": "y"})
    assert r.status_code == 422 and "at least one scope" in text(r)
    assert fresh(key.id).scopes == ["chat", "embeddings", "models"]


def test_viewer_cannot_edit(viewer_client, key):
    r = viewer_client.post(f"/keys/{key.id}/edit", data={"name": "x", "scopes": ["admin"], "enabled": "y"})
    assert r.status_code == 403 and fresh(key.id).name == "ci runner"


def test_revoke(admin_client, key, audit_rows):
    page = admin_client.get(f"/keys/{key.id}/revoke")
    assert page.status_code == 200 and "Revoke key “ci runner”?" in text(page)
    r = admin_client.post(f"/keys/{key.id}/revoke")
    assert r.status_code == 303
    assert fresh(key.id).status == "revoked"
    assert audit_rows("key", "revoke")
    body = text(admin_client.get("/keys"))
    assert "revoked" in body and f'href="/keys/{key.id}/revoke"' not in body


def test_viewer_cannot_revoke(viewer_client, key):
    assert viewer_client.post(f"/keys/{key.id}/revoke").status_code == 403
    assert fresh(key.id).status == "active"
