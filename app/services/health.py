"""Provider health checks (on demand, and scheduled with a cross-worker lease) and model listing.

The check itself is the adapter's cheapest authenticated call (`health_request`), sent with
`requests`: health checks are off the hot path. Any failure is "unhealthy" with a reason,
never an exception to the caller.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from typing import Any

import requests
from flask import current_app

from app.extensions import db
from app.models import HealthCheck, Provider, utcnow
from app.providers.base import UpstreamError, UpstreamRequest
from app.providers.registry import get_adapter
from app.services import providers as provider_service
from app.services import state
from app.services.errors import BadRequest
from app.services.secrets import SecretError

log = logging.getLogger(__name__)
HISTORY_KEEP = 500  # rows per provider


MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a health answer or a model list; config HEALTH_MAX_RESPONSE_BYTES


class ResponseTooLarge(requests.RequestException):
    """The upstream sent more than the bound: an admin may point a provider anywhere, but the
    gateway reads only so much of what answers there."""


def _send(req: UpstreamRequest, connect: float, read: float) -> requests.Response:
    """One request, no redirects followed (a 3xx is the answer, so a provider URL cannot bounce
    the gateway's credentials to another host), the body read up to a bound and a deadline."""
    limit = current_app.config.get("HEALTH_MAX_RESPONSE_BYTES") or MAX_RESPONSE_BYTES
    resp = requests.request(req.method, req.url, headers=req.headers, data=req.body,
                            timeout=(connect, read), allow_redirects=False, stream=True)
    deadline = time.monotonic() + connect + read
    body = bytearray()
    try:
        for chunk in resp.iter_content(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise ResponseTooLarge(f"response larger than {limit} bytes")
            if time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout("body not complete before the deadline")
    finally:
        resp.close()
    resp._content = bytes(body)
    return resp


def _describe(exc: Exception, timeout: float) -> str:
    if isinstance(exc, ResponseTooLarge):
        return str(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connect timeout after {timeout:g}s"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Connection refused" in text or "ECONNREFUSED" in text:
            return "connection refused"
        if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
            return "DNS lookup failed"
        return "connection failed"
    return f"{type(exc).__name__}"


def probe(provider: Provider) -> dict[str, Any]:
    """Run one live check; returns {"status", "latency_ms", "error"} without touching the DB."""
    timeout = min(provider.read_timeout, current_app.config["HEALTH_CHECK_TIMEOUT"])
    try:
        adapter = get_adapter(provider_service.provider_config(provider))
        req = adapter.health_request()
    except SecretError as exc:
        return {"status": "unhealthy", "latency_ms": None, "error": str(exc)}
    except (KeyError, ValueError, NotImplementedError) as exc:
        return {"status": "unknown", "latency_ms": None, "error": f"cannot check this provider: {exc}"}
    started = time.perf_counter()
    try:
        resp = _send(req, min(provider.connect_timeout, timeout), timeout)
    except (requests.RequestException, socket.error) as exc:
        return {"status": "unhealthy", "latency_ms": None, "error": _describe(exc, timeout)}
    latency = round((time.perf_counter() - started) * 1000, 1)
    if 200 <= resp.status_code < 300:
        return {"status": "healthy", "latency_ms": latency, "error": None}
    try:
        err: UpstreamError = adapter.parse_error(resp.status_code, dict(resp.headers), resp.content)
        message = err.message
    except Exception:  # a broken error body must still give a readable reason
        message = "unreadable error body"
    return {"status": "unhealthy", "latency_ms": latency, "http_status": resp.status_code,
            "error": f"HTTP {resp.status_code}: {message}"[:500]}


def _feed_breakers(provider: Provider, result: dict[str, Any]) -> None:
    """A health check is an attempt too: its outcome goes to every deployment's breaker, so a
    provider that went down is skipped (and one that came back is probed) without waiting for
    user traffic to find out."""
    from app.routing import classify
    from app.services.router import router
    error = result.get("error") or ""
    status = result.get("http_status")
    if result["status"] == "healthy":
        outcome = "ok"
    elif status is not None:
        outcome = classify(status)
    elif "timed out" in error or "timeout" in error:
        outcome = "timeout"
    elif result["status"] == "unhealthy" and result.get("latency_ms") is None and "GATEWAY_ENCRYPTION" not in error:
        outcome = "connect"
    else:
        return  # configuration problems (undecryptable secret) are not the upstream's state
    breaker, now = router().breaker, time.time()
    for model in provider.models:
        try:
            if outcome == "ok":
                router().record_ok(model.id, now)
            else:
                breaker.record(model.id, outcome, now, detail=f"health check: {error}"[:200])
        except Exception:
            log.warning("could not feed the breaker of model %s", model.id, exc_info=True)


def check(provider: Provider, trigger: str = "manual") -> dict[str, Any]:
    """Probe, store the result on the provider and in the history, feed the breakers."""
    result = probe(provider)
    _feed_breakers(provider, result)
    result.pop("http_status", None)
    now = utcnow()
    provider.health_status = result["status"]
    provider.health_latency_ms = result["latency_ms"]
    provider.health_error = result["error"]
    provider.health_checked_at = now
    db.session.add(HealthCheck(provider_id=provider.id, checked_at=now, status=result["status"],
                               latency_ms=result["latency_ms"], error=result["error"],
                               trigger=trigger))
    db.session.commit()
    _trim_history(provider.id)
    return {**result, "checked_at": now.isoformat() + "Z"}


def _trim_history(provider_id: int) -> None:
    cutoff = db.session.scalar(
        db.select(HealthCheck.id).where(HealthCheck.provider_id == provider_id)
        .order_by(HealthCheck.id.desc()).offset(HISTORY_KEEP).limit(1))
    if cutoff is not None:
        db.session.execute(db.delete(HealthCheck).where(HealthCheck.provider_id == provider_id,
                                                        HealthCheck.id <= cutoff))
        db.session.commit()


def check_all(trigger: str = "schedule") -> list[tuple[str, dict[str, Any]]]:
    results = []
    for provider in db.session.scalars(db.select(Provider).where(Provider.enabled.is_(True))
                                       .order_by(Provider.name)):
        results.append((provider.name, check(provider, trigger)))
    return results


def history(provider_id: int, limit: int = 20) -> list[HealthCheck]:
    return list(db.session.scalars(db.select(HealthCheck).where(HealthCheck.provider_id == provider_id)
                                   .order_by(HealthCheck.checked_at.desc(), HealthCheck.id.desc())
                                   .limit(limit)))


def run_scheduled_once(owner: str | None = None) -> bool:
    """Run checks if this worker wins the lease for this interval (one runner across workers/hosts)."""
    interval = current_app.config["HEALTH_CHECK_INTERVAL"]
    now = utcnow()
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    if not state.acquire_lease(owner, now, now + timedelta(seconds=max(interval - 1, 1))):
        return False
    check_all("schedule")
    return True


def scheduler_loop(app) -> None:
    """Body of the background greenlet started by gunicorn's post_worker_init hook."""
    import gevent

    interval = app.config["HEALTH_CHECK_INTERVAL"]
    if interval <= 0:
        return
    gevent.sleep(min(5, interval))
    while True:
        with app.app_context():
            try:
                run_scheduled_once()
            except Exception:  # keep the scheduler alive; the next round retries
                log.exception("scheduled health check failed")
                db.session.rollback()
            finally:
                db.session.remove()
        gevent.sleep(interval)


def upstream_models(provider: Provider) -> list[dict[str, Any]]:
    """What the upstream offers, for "Import models"; BadRequest with the reason on failure."""
    timeout = current_app.config["HEALTH_CHECK_TIMEOUT"] * 2
    try:
        adapter = get_adapter(provider_service.provider_config(provider))
        req = adapter.models_request()
        resp = _send(req, min(provider.connect_timeout, timeout), timeout)
    except SecretError as exc:
        raise BadRequest(str(exc), code="secret_unavailable") from None
    except NotImplementedError:
        raise BadRequest("this provider type cannot list its models", code="unsupported") from None
    except (requests.RequestException, socket.error) as exc:
        raise BadRequest(f"could not reach the upstream: {_describe(exc, timeout)}",
                         code="upstream_unreachable") from None
    if not 200 <= resp.status_code < 300:
        err = adapter.parse_error(resp.status_code, dict(resp.headers), resp.content)
        raise BadRequest(f"upstream answered HTTP {resp.status_code}: {err.message}",
                         code="upstream_error")
    try:
        models = adapter.parse_models(resp.content)
    except Exception:
        raise BadRequest("the upstream's model list could not be read", code="upstream_error") from None
    known = {m.model_id for m in provider.models}
    return [{**m, "registered": m["id"] in known} for m in models]
