"""Routing groups: one public model name served by several deployments (Model rows).

List, create, a detail page per group (its deployments with live breaker state, priority and
weight edited inline, "Reset breaker"), the group's routing settings, delete.

Group names are public model names and may contain slashes ("openai/gpt-4o"), so the detail
page is `/groups/<path:name>` and every other route sits under `/groups/-/` (GitLab's
convention), where no group name can shadow it.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DecimalField, IntegerField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from app.admin import access
from app.admin.forms import ConfirmForm, attempt, options, plain_decimal
from app.admin.htmx import is_fragment_request, render
from app.services import groups as group_service
from app.services import models as model_service
from app.services.routing_state import live_states

bp = Blueprint("groups", __name__, url_prefix="/groups")

STRATEGY_HELP = {
    "priority": "Lowest priority number first; deployments with equal priority share its traffic "
                "by weight. Higher numbers are failovers.",
    "weighted": "Every deployment gets traffic in proportion to its weight (0 = only as a last "
                "resort).",
    "least-latency": "The deployment with the lowest time-to-first-byte average (EWMA) first; "
                     "unmeasured deployments are tried first so they get measured.",
    "least-busy": "The deployment with the fewest requests in flight (counted per worker) first.",
    "cost": "The cheapest deployment for the request's estimated tokens first.",
}
BREAKER_STATES = ("closed", "half-open", "open", "disabled")


# --- forms ---------------------------------------------------------------------------------------


def _names(text: str | None) -> list[str]:
    """Comma or newline separated names, blanks dropped, order kept."""
    return [n.strip() for n in (text or "").replace("\n", ",").split(",") if n.strip()]


class GroupSettingsForm(FlaskForm):
    strategy = RadioField("Strategy", choices=options((s, s) for s in group_service.STRATEGIES),
                          default="priority",
                          description="Deployments whose breaker is open are tried last, whatever "
                                      "the strategy.")
    fallbacks = TextAreaField("Fallbacks", [Optional(), Length(max=4000)], render_kw={"rows": 3},
                              description="Other public model names to try, in order, when every "
                                          "deployment of this group failed. One per line.")
    retries = IntegerField("Retries", [InputRequired("Enter a number from 0 to 10."),
                                       NumberRange(0, 10)], default=2,
                           description="Further attempts on other deployments after a failure.")
    timeout_s = DecimalField("Timeout", [Optional(), NumberRange(Decimal("0.1"), 3600)], places=None,
                           description="Whole-request deadline across attempts. Blank = the "
                                       "providers' own timeouts.")

    known_names: set[str] = set()

    def validate_fallbacks(self, field):
        unknown = [n for n in _names(field.data) if n not in self.known_names]
        if unknown:
            raise ValidationError(f"No model is named {', '.join(unknown)}; fallbacks must be "
                                  "public model names.")

    def payload(self) -> dict:
        return {"strategy": self.strategy.data, "fallbacks": _names(self.fallbacks.data),
                "retries": self.retries.data,
                "timeout_s": float(self.timeout_s.data) if self.timeout_s.data is not None else None}

    @classmethod
    def initial(cls, group) -> dict:
        return {"strategy": group.strategy, "fallbacks": "\n".join(group.fallbacks or []),
                "retries": group.retries, "timeout_s": plain_decimal(group.timeout_s)}


class NewGroupForm(GroupSettingsForm):
    name = StringField("Public model name", [DataRequired(), Length(max=200)],
                       description="What clients send as \"model\". Every enabled model with this "
                                   "name becomes one of the group's deployments.")

    def validate_name(self, field):
        if group_service.find((field.data or "").strip()) is not None:
            raise ValidationError("A group with this name already exists.")


class DeploymentForm(FlaskForm):
    priority = IntegerField("Priority", [InputRequired("Enter a number."), NumberRange(-1000, 1000)])
    weight = IntegerField("Weight", [InputRequired("Enter a number."), NumberRange(0, 1000)])


def _settings_form(**kwargs) -> GroupSettingsForm:
    form = (NewGroupForm if kwargs.pop("new", False) else GroupSettingsForm)(**kwargs)
    form.known_names = {m.name for m in model_service.search()}
    return form


# --- live routing state, shaped for the templates ------------------------------------------------


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None) if epoch else None


def deployment_view(m, live: dict | None, now: float) -> dict:
    """One deployment's row: the Model plus its breaker, latency and load (None: not routed)."""
    live = live or {}
    breaker = live.get("breaker")
    if breaker is not None:
        until = breaker.get("open_until")
        breaker = {**breaker, "open_until_at": _when(until), "since": _when(breaker.get("opened_at")),
                   "reopens_in": max(0.0, until - now) if until else None}
    return {"model": m, "routed": bool(live), "breaker": breaker,
            "latency_ms": live.get("latency_ms"), "in_flight": live.get("in_flight", 0)}


def deployment_views(models, live: dict[int, dict] | None = None) -> list[dict]:
    live = live_states() if live is None else live
    now = time.time()
    return [deployment_view(m, live.get(m.id), now) for m in models]


def breaker_counts(views: list[dict]) -> dict[str, int]:
    """{"closed": 2, "open": 1, ...} over the routed deployments, in BREAKER_STATES order."""
    counts = Counter(v["breaker"]["state"] for v in views if v["breaker"])
    return {s: counts[s] for s in BREAKER_STATES if counts[s]}


def reset_breaker(m) -> None:
    """Close a deployment's breaker (also ends `disabled` once a bad key is fixed); audited."""
    group_service.reset_breaker(m, current_user.username)


# --- pages ---------------------------------------------------------------------------------------


@bp.get("")
@access.ops
def index():
    models = model_service.search()
    by_name: dict[str, list] = {}
    for m in models:
        by_name.setdefault(m.name, []).append(m)
    groups = group_service.list_all()
    live = live_states()
    rows = {g.name: deployment_views(by_name.get(g.name, []), live) for g in groups}
    grouped = set(rows)
    ungrouped = sorted(n for n, ms in by_name.items() if len(ms) > 1 and n not in grouped)
    return render("admin/groups/index.html", groups=groups, rows=rows, by_name=by_name,
                  counts={name: breaker_counts(v) for name, v in rows.items()},
                  ungrouped=ungrouped, strategy_help=STRATEGY_HELP)


@bp.route("/-/new", methods=("GET", "POST"))
@access.ops_form
def new():
    form = _settings_form(new=True, data={"name": request.args.get("name", "")})
    if form.validate_on_submit():
        created = attempt(form, group_service.put, form.name.data, form.payload(),
                          current_user.username)
        if created is not None:
            group, _ = created
            flash(f"Group “{group.name}” created with {len(group_service.deployments(group.name))} "
                  "deployment(s).", "success")
            return redirect(url_for(".detail", name=group.name), 303)
    names = sorted(form.known_names - {g.name for g in group_service.list_all()})
    return render("admin/groups/new.html", status=422 if form.is_submitted() else 200, form=form,
                  names=names, strategy_help=STRATEGY_HELP)


@bp.route("/<path:name>", methods=("GET", "POST"))
@access.ops
def detail(name: str):
    group = group_service.get(name)
    form = _settings_form(data=GroupSettingsForm.initial(group))
    if form.validate_on_submit():
        if attempt(form, group_service.put, group.name, form.payload(), current_user.username):
            flash(f"Routing of “{group.name}” saved.", "success")
            return redirect(url_for(".detail", name=group.name), 303)
    views = deployment_views(group_service.deployments(group.name))
    return render("admin/groups/detail.html", status=422 if form.is_submitted() else 200,
                  group=group, form=form, deployments=views, counts=breaker_counts(views),
                  strategy_help=STRATEGY_HELP)


@bp.route("/-/delete/<path:name>", methods=("GET", "POST"))
@access.ops_form
def delete(name: str):
    group = group_service.get(name)
    form = ConfirmForm()
    if form.validate_on_submit():
        group_service.delete(group, current_user.username)
        flash(f"Group “{name}” deleted.", "success")
        return redirect(url_for(".index"), 303)
    n = len(group_service.deployments(name))
    return render("admin/confirm.html", form=form, danger=True, title=f"Delete group “{name}”?",
                  message=f"Its {n} deployment(s) keep their models and keep serving “{name}” with "
                          "the default routing (priority, 2 retries, no fallbacks). Adding another "
                          "enabled model with this name will need the group again.",
                  confirm_label="Delete group", cancel_url=url_for(".detail", name=name))


# --- one deployment: inline priority/weight, breaker reset ---------------------------------------


def _row(m, **context):
    return render("admin/groups/_deployment.html",
                  d=deployment_view(m, live_states().get(m.id), time.time()), **context)


@bp.get("/-/deployments/<int:model_id>/row")
@access.ops
def deployment_row(model_id: int):
    """The read-only row again (the inline editor's Cancel)."""
    return _row(model_service.get(model_id))


@bp.route("/-/deployments/<int:model_id>", methods=("GET", "POST"))
@access.ops_form
def deployment(model_id: int):
    """Priority and weight: an editable table row for htmx, a small form page without it."""
    m = model_service.get(model_id)
    form = DeploymentForm(data={"priority": m.priority, "weight": m.weight})
    if form.validate_on_submit():
        if attempt(form, model_service.update, m, {"priority": form.priority.data,
                                                   "weight": form.weight.data}, current_user.username):
            if is_fragment_request():
                return _row(m, saved=True)
            flash(f"{m.provider.name} · {m.model_id}: priority {m.priority}, weight {m.weight}.", "success")
            return redirect(url_for(".detail", name=m.name), 303)
    # htmx only swaps 2xx: an invalid inline edit comes back as 200 with the errors in the row
    status = 422 if form.is_submitted() and not is_fragment_request() else 200
    return render("admin/groups/deployment.html", "admin/groups/_deployment_edit.html",
                  status=status, form=form, m=m)


@bp.post("/-/deployments/<int:model_id>/reset")
@access.ops
def reset(model_id: int):
    m = model_service.get(model_id)
    reset_breaker(m)
    if is_fragment_request():
        return _row(m, saved=True)
    flash(f"Breaker of {m.provider.name} · {m.model_id} reset: it takes traffic again.", "success")
    return redirect(url_for(".detail", name=m.name), 303)
