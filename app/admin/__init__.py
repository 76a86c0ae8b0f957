"""The admin console: a parent blueprint with one login guard, one child blueprint per resource.

Every child route is covered by `guard` (the parent's before_request runs for nested
blueprints): anonymous users are sent to the login page, and each view's role declaration
(app/admin/access.py) decides what a signed-in role may read and write. A view without a
declaration is refused for everybody (default deny).
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, request, url_for
from flask_login import current_user

from app.admin import (access, audit, auth, cache, filters, groups, health, keys, models,
                       overview, playground, providers, requests, settings, sso, teams, usage,
                       users)
from app.admin.htmx import is_fragment_request
from app.extensions import db, login_manager
from app.models import User

bp = Blueprint("admin", __name__)

bp.add_url_rule("/", "index", access.overview(overview.index))
bp.add_url_rule("/login", "login", access.public(auth.login), methods=("GET", "POST"))
bp.add_url_rule("/login/sso", "sso_login", access.public(sso.start))
bp.add_url_rule("/login/sso/callback", "sso_callback", access.public(sso.callback))
bp.add_url_rule("/logout", "logout", access.any_role(auth.logout), methods=("POST",))
for child in (providers.bp, models.bp, keys.bp, teams.bp, users.bp, groups.bp, settings.bp,
              health.bp, usage.bp, requests.bp, cache.bp, audit.bp, playground.bp):
    bp.register_blueprint(child)
filters.register(bp)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """"<id>:<session_epoch>" (a bare "<id>" from before epochs counts as epoch 0)."""
    ident, _, epoch = user_id.partition(":")
    if not ident.isdigit() or not (epoch or "0").isdigit():
        return None
    user = db.session.get(User, int(ident))
    return user if user is not None and (user.session_epoch or 0) == int(epoch or "0") else None


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
    """Sign-in for everything but the sign-in pages; then the view's declared roles."""
    view = current_app.view_functions.get(request.endpoint or "")
    rule = access.declaration(view)
    if rule is not None and rule.public:
        return None
    if not current_user.is_authenticated:
        return unauthorized()
    if rule is None:  # default deny: a route nobody declared is refused, admins included
        abort(403, "This page has no role declaration, so nobody may use it.")
    if rule.allows(current_user.role, request.method):
        return None
    if current_user.role == "viewer":
        abort(403, "Your account is read-only (viewer role); ask an admin to make this change.")
    abort(403, f"Your role ({current_user.role}) may not "
               f"{'open this page' if request.method in access.SAFE_METHODS else 'make this change'}; "
               "ask an admin.")


@bp.app_context_processor
def role_helpers():
    """`can(endpoint)` / `can(endpoint, write=True)` and `can_write` (for the current page)."""
    def can(endpoint: str, write: bool = False) -> bool:
        return access.may(current_user, endpoint, write)
    config = current_app.config
    return {"can": can, "can_write": access.may(current_user, request.endpoint, True)
            if request else False,
            "sso_enabled": bool(config.get("GATEWAY_OIDC_ISSUER") and config.get("GATEWAY_OIDC_CLIENT_ID"))}
