"""Gateway keys: list, create (the secret is shown once, on the result page), edit, revoke."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin.access import admin_only
from app.admin.forms import KEY_ALIASES, ConfirmForm, KeyForm, attempt
from app.services import keys as key_service

bp = Blueprint("keys", __name__, url_prefix="/keys")


def _render_form(form, key=None):
    return render_template("admin/keys/form.html", form=form, key=key), \
        422 if form.is_submitted() else 200


@bp.get("")
def index():
    return render_template("admin/keys/index.html", keys=key_service.list_all())


@bp.route("/new", methods=("GET", "POST"))
@admin_only
def new():
    form = KeyForm()
    form.creating = True
    if form.validate_on_submit():
        created = attempt(form, key_service.create, form.payload(), current_user.username,
                          aliases=KEY_ALIASES)
        if created is not None:
            key, raw = created
            # Rendered straight from the POST (never stored, never redirected with it): shown once.
            return (render_template("admin/keys/created.html", key=key, raw_key=raw), 201,
                    {"Cache-Control": "no-store"})
    return _render_form(form)


@bp.route("/<int:key_id>/edit", methods=("GET", "POST"))
@admin_only
def edit(key_id: int):
    key = key_service.get(key_id)
    form = KeyForm(data=KeyForm.initial(key))
    if form.validate_on_submit():
        if attempt(form, key_service.update, key, form.payload(), current_user.username,
                   aliases=KEY_ALIASES):
            flash(f"Key “{key.name}” saved.", "success")
            return redirect(url_for(".index"), 303)
    return _render_form(form, key)


@bp.route("/<int:key_id>/revoke", methods=("GET", "POST"))
@admin_only
def revoke(key_id: int):
    key = key_service.get(key_id)
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
