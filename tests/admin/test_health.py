"""Health dashboard: polling fragment, check now, check all, scheduling note, breakers."""
from __future__ import annotations

import pytest
import requests

from app.extensions import db
from app.models import HealthCheck, Provider

from .helpers import HTMX, MODEL_LIST, UPSTREAM, element, is_fragment, squash, text


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


# --- circuit breakers ---------------------------------------------------------------------------

def _trip(model_id: int, outcome: str, times: int = 1, detail: str | None = None) -> None:
    import time

    from app.services.router import router
    for _ in range(times):
        router().breaker.record(model_id, outcome, time.time(), detail=detail)


@pytest.fixture
def deployments(make_provider, make_model):
    """Provider Acme AI with two routed models and a disabled one."""
    p = make_provider(name="Acme AI")
    return {"p": p, "mini": make_model(p, model_id="gpt-4o-mini"),
            "big": make_model(p, model_id="gpt-4o"),
            "off": make_model(p, model_id="o1", enabled=False)}


def test_breaker_column_summarises_each_providers_deployments(admin_client, deployments):
    _trip(deployments["big"].id, "server_error", times=5)
    cell = squash(element(text(admin_client.get("/health")), f"breakers-{deployments['p'].id}"))
    assert "1 closed" in cell and "1 open" in cell and "disabled" not in cell  # o1 is not routed
    assert "gpt-4o" in cell and "probe in" in cell and "gpt-4o-mini" not in cell
    assert "<th>Breakers</th>" in text(admin_client.get("/health"))


def test_provider_without_models_has_no_breakers(admin_client, make_provider):
    p = make_provider(name="Empty")
    assert "no routed models" in element(text(admin_client.get("/health")), f"breakers-{p.id}")


def test_no_alert_while_nothing_is_disabled(admin_client, deployments):
    _trip(deployments["big"].id, "server_error", times=5)  # open is not disabled
    html = text(admin_client.get("/health"))
    assert '<div id="breaker-alert" class="breaker-alert-slot"></div>' in html


def test_disabled_deployment_raises_the_alert(admin_client, deployments):
    _trip(deployments["big"].id, "auth", detail="Incorrect API key provided")
    html = text(admin_client.get("/health"))
    alert = squash(element(html, "breaker-alert"))
    assert html.index('id="breaker-alert"') < html.index('id="health-table"')  # at the top
    assert "1 deployment is disabled: the upstream rejected the credentials" in alert
    assert "Fix the key, then reset the breaker." in alert and "Incorrect API key provided" in alert
    assert "Acme AI" in alert and "gpt-4o" in alert and "since just now" in alert
    assert f'href="/providers/{deployments["p"].id}/edit"' in alert
    assert f'hx-post="/health/deployments/{deployments["big"].id}/reset"' in alert
    assert "1 disabled" in element(html, f"breakers-{deployments['p'].id}")


def test_poll_carries_the_alert_out_of_band(admin_client, deployments):
    _trip(deployments["big"].id, "auth")
    body = text(admin_client.get("/health", headers=HTMX)).strip()
    assert body.startswith('<section id="health-table"')
    assert '<div id="breaker-alert" class="breaker-alert-slot" hx-swap-oob="true">' in body
    assert "1 deployment is disabled" in body


def test_reset_from_the_alert(admin_client, deployments, audit_rows):
    import time

    from app.services.router import router
    big = deployments["big"]
    _trip(big.id, "auth")
    r = admin_client.post(f"/health/deployments/{big.id}/reset", headers=HTMX)
    assert r.status_code == 200 and is_fragment(r)
    body = text(r)
    assert '<div id="breaker-alert" class="breaker-alert-slot" hx-swap-oob="true"></div>' in body
    assert "2 closed" in squash(element(body, f"breakers-{deployments['p'].id}"))
    assert router().breaker.state(big.id, time.time())["state"] == "closed"
    entry = audit_rows("model", "reset_breaker")[0]
    assert (entry.entity_id, entry.actor) == (big.id, "admin")


def test_reset_without_htmx_redirects_with_flash(admin_client, deployments):
    _trip(deployments["big"].id, "auth")
    r = admin_client.post(f"/health/deployments/{deployments['big'].id}/reset")
    assert r.status_code == 303 and r.headers["Location"] == "/health"
    assert "Breaker of Acme AI · gpt-4o reset" in text(admin_client.get("/health"))


def test_viewer_sees_the_alert_but_cannot_reset(viewer_client, deployments):
    import time

    from app.services.router import router
    _trip(deployments["big"].id, "auth")
    alert = element(text(viewer_client.get("/health")), "breaker-alert")
    assert "Fix the key, then reset the breaker" in alert and "Reset breaker" not in alert
    r = viewer_client.post(f"/health/deployments/{deployments['big'].id}/reset", headers=HTMX)
    assert r.status_code == 403
    assert router().breaker.state(deployments["big"].id, time.time())["state"] == "disabled"
