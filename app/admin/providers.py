"""Providers: list, create/edit (per-type fields swapped by htmx), delete, test, import models."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.admin import queries
from app.admin import access
from app.admin.forms import ConfirmForm, LimitFields, attempt, plain_decimal, provider_form
from app.admin.htmx import is_fragment_request, render
from app.providers.registry import ADAPTERS, PRESETS, PROVIDER_TYPES
from app.services import health, models, spend_view
from app.services import providers as provider_service
from app.services.errors import BadRequest
from app.services.validation import clamp_id

bp = Blueprint("providers", __name__, url_prefix="/providers")
DEFAULT_TYPE = "openai"


def _resolve(choice: str | None) -> str | None:
    """A form's type choice ("groq") -> the adapter type it runs on ("openai-compatible")."""
    if choice in PRESETS and choice not in ADAPTERS:
        return PRESETS[choice]["type"]
    return choice if choice in ADAPTERS else None


def _type_choices() -> dict[str, list[tuple[str, str]]]:
    types = list(PROVIDER_TYPES)
    known = {value for value, _ in types}
    presets = sorted(((name, p.get("label", name)) for name, p in PRESETS.items() if name not in known),
                     key=lambda item: item[1].lower())
    return {"Provider APIs": types, "OpenAI-compatible services": presets}


def _api_base_hint(choice: str | None) -> str:
    """What a blank API base means for this type: the preset's/type's default, or required."""
    resolved = _resolve(choice)
    if choice in PRESETS and choice not in ADAPTERS:
        default = PRESETS[choice]["api_base"]
    else:
        default = provider_service.DEFAULT_BASES.get(resolved or "") or \
            getattr(ADAPTERS.get(resolved), "default_api_base", "")
    if default:
        return f"Leave blank to use {default}"
    if resolved == "bedrock":
        return "Leave blank to use https://bedrock-runtime.<region>.amazonaws.com"
    return "Required for this type, e.g. https://my-server.example.com/v1"


def _form(choice: str | None, **kwargs):
    resolved = _resolve(choice)
    adapter = ADAPTERS.get(resolved) if resolved else None
    optional = None
    if choice in PRESETS and choice not in ADAPTERS:  # Groq needs its key, a local vLLM does not
        optional = () if PRESETS[choice].get("requires_key", True) else ("api_key",)
    return provider_form(_type_choices(), adapter, optional_secrets=optional,
                         with_api_version=resolved in provider_service.DEFAULT_API_VERSIONS, **kwargs)


def _initial(p) -> dict:
    config = {k: v for k, v in (p.config or {}).items() if k != "preset"}
    return {**config, "name": p.name, "type": (p.config or {}).get("preset") or p.type,
            "api_base": p.api_base, "api_version": p.api_version, "trust_level": p.trust_level,
            "connect_timeout": p.connect_timeout, "read_timeout": p.read_timeout,
            "default_temperature": plain_decimal(p.default_temperature),
            "default_max_tokens": p.default_max_tokens, "enabled": p.enabled,
            **LimitFields.limits_initial(p.limits)}


def _render_form(form, provider=None):
    return render_template("admin/providers/form.html", form=form, provider=provider,
                           api_base_hint=_api_base_hint(form.type.data)), \
        422 if form.is_submitted() else 200


@bp.get("")
@access.ops
def index():
    return render("admin/providers/index.html", "admin/providers/_table.html",
                  providers=provider_service.list_all(), model_counts=queries.model_counts())


@bp.get("/fields")
@access.ops_form
def type_fields():
    """The per-type part of the form, swapped in when the Type select changes."""
    provider_id = clamp_id(request.args.get("provider_id", type=int))
    provider = provider_service.get(provider_id) if provider_id else None
    choice = request.args.get("type", DEFAULT_TYPE)
    return render("admin/providers/_type_fields.html", form=_form(choice), provider=provider,
                  oob_hint=_api_base_hint(choice))


@bp.route("/new", methods=("GET", "POST"))
@access.ops_form
def new():
    form = _form(request.form.get("type") or request.args.get("type") or DEFAULT_TYPE,
                 data={"type": request.args.get("type") or DEFAULT_TYPE})
    if form.validate_on_submit():
        p = attempt(form, provider_service.create, form.payload(), current_user.username)
        if p is not None:
            flash(f"Provider “{p.name}” created. Test the connection, then import its models.", "success")
            return redirect(url_for(".detail", provider_id=p.id), 303)
    return _render_form(form)


@bp.get("/<int:provider_id>")
@access.ops
def detail(provider_id: int):
    p = provider_service.get(provider_id)
    return render_template("admin/providers/detail.html", provider=p,
                           history=health.history(p.id, limit=20),
                           limit_state=spend_view.subject_state(f"provider:{p.id}", p.limits))


@bp.route("/<int:provider_id>/edit", methods=("GET", "POST"))
@access.ops_form
def edit(provider_id: int):
    p = provider_service.get(provider_id)
    initial = _initial(p)
    form = _form(request.form.get("type") or initial["type"], data=initial)
    if form.validate_on_submit():
        payload = form.payload(p.config if form.type.data == initial["type"] else {})
        if attempt(form, provider_service.update, p, payload, current_user.username):
            flash(f"Provider “{p.name}” saved.", "success")
            return redirect(url_for(".detail", provider_id=p.id), 303)
    return _render_form(form, p)


@bp.route("/<int:provider_id>/delete", methods=("GET", "POST"))
@access.ops_form
def delete(provider_id: int):
    p = provider_service.get(provider_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        name = p.name
        provider_service.delete(p, current_user.username)
        flash(f"Provider “{name}” and its models were deleted.", "success")
        return redirect(url_for(".index"), 303)
    return render_template("admin/confirm.html", form=form, danger=True,
                           title=f"Delete provider “{p.name}”?",
                           message=f"This also deletes its {len(p.models)} model(s). Clients using "
                                   "those model names will get errors. This cannot be undone.",
                           confirm_label="Delete provider", cancel_url=url_for(".detail", provider_id=p.id))


@bp.post("/<int:provider_id>/toggle")
@access.ops
def toggle(provider_id: int):
    p = provider_service.get(provider_id)
    provider_service.update(p, {"enabled": not p.enabled}, current_user.username)
    if not is_fragment_request():
        flash(f"Provider “{p.name}” {'enabled' if p.enabled else 'disabled'}.", "success")
        return redirect(url_for(".index"), 303)
    return render("admin/providers/_row.html", provider=p, model_count=len(p.models))


@bp.post("/<int:provider_id>/test")
@access.ops
def test(provider_id: int):
    """Run a live health check now and show the outcome inline."""
    p = provider_service.get(provider_id)
    result = health.check(p, trigger="manual")
    if not is_fragment_request():
        flash(f"{p.name}: {result['status']}" + (f" — {result['error']}" if result["error"] else ""),
              "success" if result["status"] == "healthy" else "error")
        return redirect(url_for(".detail", provider_id=p.id), 303)
    return render("admin/providers/_test_result.html", provider=p, result=result, oob=True,
                  history=health.history(p.id, limit=20))


@bp.route("/<int:provider_id>/import", methods=("GET", "POST"))
@access.ops_form
def import_models(provider_id: int):
    """Tick models from the upstream's own list and register them in one go."""
    p = provider_service.get(provider_id)
    form, error, upstream = ConfirmForm(), None, []
    try:
        upstream = health.upstream_models(p)
    except BadRequest as exc:
        error = exc.message
    if form.validate_on_submit() and error is None:
        ticked = set(request.form.getlist("model"))
        entries = [m for m in upstream if m["id"] in ticked and not m["registered"]]
        created = attempt(form, models.import_models, p, entries, current_user.username) if entries else None
        if created is not None:
            flash(f"Imported {len(created)} model(s) from {p.name}.", "success")
            return redirect(url_for(".detail", provider_id=p.id), 303)
        if not entries:
            form.form_errors.append("Tick at least one model that is not registered yet.")
    status = 502 if error else 422 if form.is_submitted() else 200
    return render_template("admin/providers/import.html", provider=p, form=form, error=error,
                           upstream=upstream), status
