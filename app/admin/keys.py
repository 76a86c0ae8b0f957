"""Gateway keys: list, detail with live spend, create (the secret is shown once, on the result
page), edit, revoke."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin import queries
from app.admin import access
from app.admin.forms import KEY_ALIASES, ConfirmForm, KeyForm, attempt
from app.admin.htmx import is_fragment_request, render
from app.services import keys as key_service
from app.services import spend_view
from app.services import teams as team_service
from app.services.errors import NotFound, ValidationFailed

bp = Blueprint("keys", __name__, url_prefix="/keys")


def _team_admin() -> bool:
    return current_user.role == "team_admin"


def _get(key_id: int):
    """The key, if this user may see it: a team admin's view of another team's key is a 404."""
    key = key_service.get(key_id)
    if _team_admin() and key.owner not in current_user.team_names:
        raise NotFound(f"key {key_id} not found", code="key_not_found")
    return key


def _checked(payload: dict, key=None) -> dict:
    """Refuse scopes beyond the user's role, and (team admins) owners outside their teams."""
    access.check_grant(current_user.role, payload, key)
    if _team_admin():
        teams = current_user.team_names
        if not payload.get("owner") and len(teams) == 1 and key is None:
            payload["owner"] = teams[0]
        if payload.get("owner") not in teams:
            raise ValidationFailed(f"owner must be one of your teams ({', '.join(teams) or 'none'})",
                                   field="owner")
    return payload


def _create(payload: dict, actor: str):
    return key_service.create(_checked(payload), actor)


def _update(key, payload: dict, actor: str):
    return key_service.update(key, _checked(payload, key), actor)


def _render_form(form, key=None):
    teams = current_user.team_names if _team_admin() else [t.name for t in team_service.list_all()]
    return render_template("admin/keys/form.html", form=form, key=key, team_names=teams), \
        422 if form.is_submitted() else 200


@bp.get("")
@access.keys
def index():
    keys = key_service.list_all()
    if _team_admin():
        keys = [k for k in keys if k.owner in current_user.team_names]
    return render_template("admin/keys/index.html", keys=keys, spend=spend_view.key_states(keys))


@bp.get("/<int:key_id>")
@access.keys
def detail(key_id: int):
    """The key's settings and its Spend & limits card; htmx polls return only the card
    (plus the recent-requests table, swapped out of band)."""
    key = _get(key_id)
    return render("admin/keys/detail.html", "admin/keys/_spend.html", key=key,
                  team=queries.team_named(key.owner),
                  state=spend_view.key_state(key), refusals=spend_view.refusals(key.id),
                  recent=spend_view.recent_requests(key.id), oob=is_fragment_request())


@bp.route("/new", methods=("GET", "POST"))
@access.keys_form
def new():
    form = KeyForm()
    form.creating = True
    if form.validate_on_submit():
        created = attempt(form, _create, form.payload(), current_user.username,
                          aliases=KEY_ALIASES)
        if created is not None:
            key, raw = created
            # Rendered straight from the POST (never stored, never redirected with it): shown once.
            return (render_template("admin/keys/created.html", key=key, raw_key=raw), 201,
                    {"Cache-Control": "no-store"})
    return _render_form(form)


@bp.route("/<int:key_id>/edit", methods=("GET", "POST"))
@access.keys_form
def edit(key_id: int):
    key = _get(key_id)
    form = KeyForm(data=KeyForm.initial(key))
    if form.validate_on_submit():
        if attempt(form, _update, key, form.payload(), current_user.username,
                   aliases=KEY_ALIASES):
            flash(f"Key “{key.name}” saved.", "success")
            return redirect(url_for(".detail", key_id=key.id), 303)
    return _render_form(form, key)


@bp.route("/<int:key_id>/revoke", methods=("GET", "POST"))
@access.keys_form
def revoke(key_id: int):
    key = _get(key_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        key_service.revoke(key, current_user.username)
        flash(f"Key “{key.name}” ({key.prefix}…) revoked. Clients using it now get 401.", "success")
        return redirect(url_for(".index"), 303)
    return render_template("admin/confirm.html", form=form, danger=True,
                           title=f"Revoke key “{key.name}”?",
                           message=f"Requests with {key.prefix}… will be rejected immediately. "
                                   "The key stays listed (as revoked) so its usage history keeps an owner. "
                                   "This cannot be undone.",
                           confirm_label="Revoke key", cancel_url=url_for(".index"))
