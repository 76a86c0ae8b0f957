"""Models (what clients may name as "model"): searchable list, create/edit, delete, toggle."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.admin import access
from app.admin.forms import (CAPABILITIES, ConfirmForm, LimitFields, ModelForm, attempt, options,
                             plain_decimal)
from app.admin.htmx import is_fragment_request, render
from app.models.model import KINDS
from app.services import models as model_service
from app.services import prices
from app.services import providers as provider_service
from app.services.validation import clamp_id

bp = Blueprint("models", __name__, url_prefix="/models")
PRICES = ("input_price_per_mtok", "output_price_per_mtok", "cached_input_price_per_mtok")


def _form(**kwargs) -> ModelForm:
    form = ModelForm(**kwargs)
    form.provider_id.choices = options((p.id, p.name) for p in provider_service.list_all())
    return form


def _initial(m) -> dict:
    data = {name: getattr(m, name) for name in model_service.FIELDS}
    data.update({name: plain_decimal(getattr(m, name)) for name in PRICES})
    data.update(LimitFields.limits_initial(m.limits))
    return data


def _render_form(form, model=None):
    return render_template("admin/models/form.html", form=form, model=model,
                           capabilities=CAPABILITIES, autofilled={}, listed=None), \
        422 if form.is_submitted() else 200


def _suggest_prices(args) -> tuple[dict, dict, dict | None]:
    """Price field values for the typed upstream id: (values, autofilled, list price or None).

    A field is ours to fill when it is blank, or still holds exactly what an earlier suggestion
    put there (sent back as autofill_<field>), so typing "gpt-4o" then "-mini" updates the
    suggestion. Anything else is the admin's and is never touched.
    """
    listed = prices.lookup(args.get("model_id", "")) if args.get("model_id", "").strip() else None
    values, autofilled = {}, {}
    for name in PRICES:
        current = (args.get(name) or "").strip()
        ours = (args.get(f"autofill_{name}") or "").strip()
        if current and current != ours:
            values[name] = current
            continue
        suggestion = plain_decimal(listed[name]) if listed and listed[name] is not None else None
        values[name] = suggestion
        if suggestion is not None:
            autofilled[name] = str(suggestion)
    return values, autofilled, listed


@bp.get("")
@access.ops
def index():
    filters = {"q": request.args.get("q", "").strip(),
               "provider_id": clamp_id(request.args.get("provider_id", type=int)),
               "kind": request.args.get("kind") if request.args.get("kind") in KINDS else None}
    return render("admin/models/index.html", "admin/models/_table.html",
                  models=model_service.search(**filters), filters=filters,
                  providers=provider_service.list_all(), kinds=KINDS)


@bp.get("/prices")
@access.ops_form
def price_fields():
    """The pricing fields again, blanks filled with the built-in list price (htmx, on typing
    the upstream model id)."""
    values, autofilled, listed = _suggest_prices(request.args)
    return render("admin/models/_prices.html", form=_form(data=values), autofilled=autofilled,
                  listed=listed, model_id=request.args.get("model_id", "").strip())


@bp.route("/new", methods=("GET", "POST"))
@access.ops_form
def new():
    form = _form(data={"provider_id": clamp_id(request.args.get("provider_id", type=int))})
    if form.validate_on_submit():
        m = attempt(form, model_service.create, form.payload(), current_user.username)
        if m is not None:
            flash(f"Model “{m.name}” created.", "success")
            return redirect(url_for(".index"), 303)
    return _render_form(form)


@bp.route("/<int:model_id>/edit", methods=("GET", "POST"))
@access.ops_form
def edit(model_id: int):
    m = model_service.get(model_id)
    form = _form(data=_initial(m))
    if form.validate_on_submit():
        if attempt(form, model_service.update, m, form.payload(), current_user.username):
            flash(f"Model “{m.name}” saved.", "success")
            return redirect(url_for(".index"), 303)
    return _render_form(form, m)


@bp.route("/<int:model_id>/delete", methods=("GET", "POST"))
@access.ops_form
def delete(model_id: int):
    m = model_service.get(model_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        name = m.name
        model_service.delete(m, current_user.username)
        flash(f"Model “{name}” deleted.", "success")
        return redirect(url_for(".index"), 303)
    return render_template("admin/confirm.html", form=form, danger=True,
                           title=f"Delete model “{m.name}”?",
                           message=f"Clients sending model “{m.name}” will get a 404 unless another "
                                   "enabled model has the same name. Usage history is kept.",
                           confirm_label="Delete model", cancel_url=url_for(".index"))


@bp.post("/<int:model_id>/toggle")
@access.ops
def toggle(model_id: int):
    m = model_service.get(model_id)
    form = ConfirmForm()
    updated = attempt(form, model_service.update, m, {"enabled": not m.enabled}, current_user.username)
    if not is_fragment_request():
        flash(form.form_errors[0] if updated is None else
              f"Model “{m.name}” {'enabled' if m.enabled else 'disabled'}.",
              "error" if updated is None else "success")
        return redirect(url_for(".index"), 303)
    return render("admin/models/_row.html", model=m,
                  error=form.form_errors[0] if updated is None else None)
