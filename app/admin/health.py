"""Health dashboard: a self-refreshing table (polled every 5 s), check one or all now."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, url_for

from app.admin.htmx import is_fragment_request, render
from app.services import health as health_service
from app.services import providers as provider_service

bp = Blueprint("health", __name__, url_prefix="/health")


def _dashboard():
    providers = provider_service.list_all()
    return render("admin/health/index.html", "admin/health/_table.html", providers=providers,
                  history={p.id: health_service.history(p.id, limit=20)[::-1] for p in providers},
                  interval=current_app.config["HEALTH_CHECK_INTERVAL"])


def _after_check(message: str, category: str):
    if is_fragment_request():
        return _dashboard()
    flash(message, category)
    return redirect(url_for(".index"), 303)


@bp.get("")
def index():
    return _dashboard()


@bp.post("/<int:provider_id>/check")
def check(provider_id: int):
    p = provider_service.get(provider_id)
    result = health_service.check(p, trigger="manual")
    return _after_check(f"{p.name}: {result['status']}", "success" if result["status"] == "healthy" else "error")


@bp.post("/check-all")
def check_all():
    results = health_service.check_all(trigger="manual")
    healthy = sum(1 for _, r in results if r["status"] == "healthy")
    return _after_check(f"Checked {len(results)} enabled provider(s): {healthy} healthy.", "info")
