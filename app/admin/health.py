"""Health dashboard: a self-refreshing table (polled every 5 s), check one or all now.

Next to each provider's health check, its deployments' circuit breakers; a deployment whose
breaker is `disabled` (the upstream refused the key) raises an alert with a reset button.
"""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, url_for

from app.admin import access
from app.admin.groups import breaker_counts, deployment_views, reset_breaker
from app.admin.htmx import is_fragment_request, render
from app.services import groups as group_service
from app.services import health as health_service
from app.services import models as model_service
from app.services import providers as provider_service

bp = Blueprint("health", __name__, url_prefix="/health")


def _dashboard():
    providers = provider_service.list_all()
    deployments: dict[int, list[dict]] = {}
    for d in deployment_views([m for p in providers for m in p.models]):
        deployments.setdefault(d["model"].provider_id, []).append(d)
    tripped = {pid: [d for d in ds if d["breaker"] and d["breaker"]["state"] != "closed"]
               for pid, ds in deployments.items()}
    return render("admin/health/index.html", "admin/health/_live.html", providers=providers,
                  history={p.id: health_service.history(p.id, limit=20)[::-1] for p in providers},
                  interval=current_app.config["HEALTH_CHECK_INTERVAL"],
                  breakers={pid: breaker_counts(ds) for pid, ds in deployments.items()},
                  tripped=tripped, group_names={g.name for g in group_service.list_all()},
                  disabled=[d for ds in tripped.values() for d in ds
                            if d["breaker"]["state"] == "disabled"])


def _after_check(message: str, category: str):
    if is_fragment_request():
        return _dashboard()
    flash(message, category)
    return redirect(url_for(".index"), 303)


@bp.get("")
@access.ops
def index():
    return _dashboard()


@bp.post("/<int:provider_id>/check")
@access.ops
def check(provider_id: int):
    p = provider_service.get(provider_id)
    result = health_service.check(p, trigger="manual")
    return _after_check(f"{p.name}: {result['status']}", "success" if result["status"] == "healthy" else "error")


@bp.post("/check-all")
@access.ops
def check_all():
    results = health_service.check_all(trigger="manual")
    healthy = sum(1 for _, r in results if r["status"] == "healthy")
    return _after_check(f"Checked {len(results)} enabled provider(s): {healthy} healthy.", "info")


@bp.post("/deployments/<int:model_id>/reset")
@access.ops
def reset(model_id: int):
    m = model_service.get(model_id)
    reset_breaker(m)
    return _after_check(f"Breaker of {m.provider.name} · {m.model_id} reset: it takes traffic again.",
                        "success")
