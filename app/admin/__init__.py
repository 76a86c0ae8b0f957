"""The admin console: a parent blueprint with one login guard, one child blueprint per resource.

Every child route is covered by `guard` (the parent's before_request runs for nested
blueprints): anonymous users are sent to the login page, and viewers get 403 on any write
(a non-GET request, or a view marked with `admin_only`, e.g. the "new" and "edit" forms).
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask_login import current_user

from app.admin import (audit, auth, cache, filters, groups, health, keys, models, overview,
                       playground, providers, requests, settings, teams, usage)
from app.admin.htmx import is_fragment_request
from app.extensions import db, login_manager
from app.models import User

bp = Blueprint("admin", __name__)

PUBLIC_ENDPOINTS = {"admin.login"}
ALWAYS_ALLOWED = {"admin.logout"}  # a viewer may always sign out
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

bp.add_url_rule("/", "index", overview.index)
bp.add_url_rule("/login", "login", auth.login, methods=("GET", "POST"))
bp.add_url_rule("/logout", "logout", auth.logout, methods=("POST",))
for child in (providers.bp, models.bp, keys.bp, teams.bp, groups.bp, settings.bp, health.bp,
              usage.bp, requests.bp, cache.bp, audit.bp, playground.bp):
    bp.register_blueprint(child)
filters.register(bp)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


login_manager.login_view = "admin.login"


@login_manager.unauthorized_handler
def unauthorized():
    """To the login page, remembering where the user was going (htmx: navigate, not swap)."""
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    login_url = url_for("admin.login", next=target)
    if is_fragment_request():
        response = current_app.make_response(("", 401))
        response.headers["HX-Redirect"] = login_url
        return response
    return redirect(login_url)


@bp.before_request
def guard():
    """Login for everything but the login page; admin role for every write."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return unauthorized()
    if request.endpoint in ALWAYS_ALLOWED or current_user.is_admin:
        return None
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "any_role", False):
        return None
    if request.method not in SAFE_METHODS or getattr(view, "admin_only", False):
        abort(403, "Your account is read-only (viewer role); ask an admin to make this change.")
    return None
