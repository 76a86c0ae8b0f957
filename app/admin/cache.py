"""Response cache: hit/miss/size stats, and clearing entries (all, a model, a key, a glob)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField
from wtforms.validators import AnyOf, Length

from app.admin import access
from app.admin.forms import ConfirmForm, options
from app.admin.htmx import render
from app.extensions import db
from app.models import GatewayKey

from app.services import keys as key_service
from app.services import models as model_service
from app.services import settings as settings_service
from app.services import response_cache as cache_service
from app.services.response_cache import response_cache

bp = Blueprint("cache", __name__, url_prefix="/cache")
SCOPES = ("model", "key", "pattern")


def _optional_int(value):
    return int(value) if value not in (None, "") else None


class ClearForm(FlaskForm):
    """One of three small forms on the page, told apart by `by`; only its field is required."""

    by = HiddenField(validators=[AnyOf(SCOPES)])
    model = StringField("Model", [Length(max=200)], description="Exact public model name.")
    key_id = SelectField("Key", coerce=_optional_int, validate_choice=False,
                         description="Entries stored for this key's requests.")
    pattern = StringField("Glob pattern", [Length(max=200)],
                          description="On the model name: * any text, ? one character, "
                                      "[abc] one of these. Case-sensitive.")

    def field_for_scope(self):
        return {"model": self.model, "key": self.key_id, "pattern": self.pattern}.get(self.by.data)

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.by.errors:
            self.form_errors.append("Choose what to clear: a model, a key or a pattern.")
        field = self.field_for_scope()
        if field is not None and (field.data is None or str(field.data).strip() == ""):
            field.errors = [*field.errors, f"Choose the {field.label.text.lower()} to clear."]
            ok = False
        return ok

    def filters(self) -> dict:
        value = self.field_for_scope().data
        return {"key_id" if self.by.data == "key" else self.by.data:
                value.strip() if isinstance(value, str) else value}


def _clear(label: str, **filters) -> int:
    """Remove matching entries, audited (the entries themselves are not configuration)."""
    return cache_service.clear(current_user.username, label, **filters)


def _entries(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def _size(n: int) -> str:
    """Bytes for people: 512 B, 3.4 KB, 12.0 MB (binary units, as max_mb is)."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _page(form: ClearForm, status: int = 200):
    stats = response_cache().stats()
    form.key_id.choices = options([("", "Choose a key…")] + [
        (k.id, f"{k.name} · {k.prefix}…") for k in key_service.list_all()])
    used_pct = min(100.0, 100.0 * stats["bytes"] / stats["max_bytes"]) if stats["max_bytes"] else 0.0
    return render("admin/cache/index.html", "admin/cache/_stats.html", status=status, stats=stats,
                  size=_size(stats["bytes"]), max_size=_size(stats["max_bytes"]),
                  used_pct=used_pct, form=form, settings=settings_service.current()["cache"],
                  model_names=sorted({m.name for m in model_service.search()}))


@bp.get("")
@access.ops
def index():
    return _page(ClearForm())


@bp.post("/clear")
@access.ops
def clear():
    form = ClearForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    filters = form.filters()
    value = next(iter(filters.values()))
    removed = _clear(f"key {value}" if form.by.data == "key" else value, **filters)
    flash(f"Removed {_entries(removed)} for {_describe(form.by.data, value)}.",
          "success" if removed else "info")
    return redirect(url_for(".index"), 303)


def _describe(scope: str, value) -> str:
    if scope == "key":
        key = db.session.get(GatewayKey, value)
        return f"key “{key.name}”" if key else f"key #{value}"
    return f"model “{value}”" if scope == "model" else f"models matching “{value}”"


@bp.route("/clear-all", methods=("GET", "POST"))
@access.ops_form
def clear_all():
    form = ConfirmForm()
    if form.validate_on_submit():
        removed = _clear("all")
        flash(f"Cache cleared: removed {_entries(removed)}.", "success")
        return redirect(url_for(".index"), 303)
    entries = response_cache().stats()["entries"]
    return render("admin/confirm.html", form=form, danger=True, title="Clear the whole response cache?",
                  message=f"All {_entries(entries)} are removed for every model and key. Requests "
                          "go to the providers again (and are billed) until the cache refills.",
                  confirm_label="Clear all entries", cancel_url=url_for(".index"))
