"""Health dashboard: polling fragment, check now, check all, scheduling note."""
from __future__ import annotations

import requests

from app.extensions import db
from app.models import HealthCheck, Provider

from .helpers import HTMX, MODEL_LIST, UPSTREAM, is_fragment, text


def test_dashboard_lists_providers_and_explains_scheduling(admin_client, make_provider):
    make_provider(name="Acme AI")
    make_provider(name="Off", enabled=False)
    body = text(admin_client.get("/health"))
    assert "Acme AI" in body and "Off" in body and "disabled" in body and "unknown" in body
    assert 'hx-trigger="every 5s"' in body and 'id="health-table"' in body
    assert "GATEWAY_HEALTH_INTERVAL" in body and "flask --app wsgi health-check" in body
    assert "greenlet" in body and "lease" in body and "Check all now" in body


def test_poll_returns_self_replacing_fragment(admin_client, make_provider):
    make_provider(name="Acme AI")
    r = admin_client.get("/health", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    body = text(r).strip()
    assert body.startswith('<section id="health-table"') and 'hx-swap="outerHTML"' in body
    assert "GATEWAY_HEALTH_INTERVAL" not in body


def test_check_now(admin_client, make_provider, upstream, count):
    p = make_provider(name="Acme AI")
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    r = admin_client.post(f"/health/{p.id}/check", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    assert "healthy" in text(r) and "spark-healthy" in text(r) and "1 of 1" in text(r)
    assert count(HealthCheck) == 1


def test_check_now_unreachable_shows_error(admin_client, make_provider, upstream):
    p = make_provider(name="Acme AI")
    upstream.get(f"{UPSTREAM}/models", body=requests.ConnectionError("Connection refused"))
    r = admin_client.post(f"/health/{p.id}/check", headers=HTMX)
    assert r.status_code == 200
    assert "unhealthy" in text(r) and "connection refused" in text(r)


def test_check_all(admin_client, make_provider, upstream):
    make_provider(name="A")
    make_provider(name="B", api_base="http://other.test/v1")
    make_provider(name="C", enabled=False)
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    upstream.get("http://other.test/v1/models", status=500, json={"error": {"message": "boom"}})
    r = admin_client.post("/health/check-all", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    db.session.expire_all()
    status = dict(db.session.execute(db.select(Provider.name, Provider.health_status)).all())
    assert status == {"A": "healthy", "B": "unhealthy", "C": "unknown"}
    assert "1 of 2 enabled providers healthy" in text(r)


def test_check_without_htmx_redirects_with_flash(admin_client, make_provider, upstream):
    p = make_provider(name="Acme AI")
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    r = admin_client.post(f"/health/{p.id}/check")
    assert r.status_code == 303 and r.headers["Location"] == "/health"
    assert "Acme AI: healthy" in text(admin_client.get("/health"))


def test_history_sparkline_shows_recent_checks(admin_client, make_provider, upstream):
    p = make_provider(name="Acme AI")
    upstream.get(f"{UPSTREAM}/models", json=MODEL_LIST)
    for _ in range(3):
        admin_client.post(f"/health/{p.id}/check", headers=HTMX)
    body = text(admin_client.get("/health"))
    assert body.count('class="spark-bar spark-healthy"') == 3


def test_viewer_reads_but_cannot_check(viewer_client, make_provider, count):
    p = make_provider()
    assert viewer_client.get("/health").status_code == 200
    assert "Check now" not in text(viewer_client.get("/health"))
    assert viewer_client.post(f"/health/{p.id}/check", headers=HTMX).status_code == 403
    assert viewer_client.post("/health/check-all", headers=HTMX).status_code == 403
    assert count(HealthCheck) == 0
