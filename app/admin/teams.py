"""Teams: a budget shared by every key whose owner is the team's name. List, create/edit, delete."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin import queries
from app.admin import access
from app.admin.forms import TEAM_ALIASES, ConfirmForm, TeamForm, attempt
from app.services import spend_view
from app.services import teams as team_service

bp = Blueprint("teams", __name__, url_prefix="/teams")


def _render_form(form, team=None):
    return render_template("admin/teams/form.html", form=form, team=team), \
        422 if form.is_submitted() else 200


@bp.get("")
@access.admin_area
def index():
    teams = team_service.list_all()
    return render_template("admin/teams/index.html", teams=teams,
                           budgets={t.id: spend_view.team_budget(t) for t in teams},
                           key_counts=queries.team_key_counts())


@bp.route("/new", methods=("GET", "POST"))
@access.admin_only
def new():
    form = TeamForm()
    if form.validate_on_submit():
        team = attempt(form, team_service.create, form.payload(), current_user.username,
                       aliases=TEAM_ALIASES)
        if team is not None:
            flash(f"Team “{team.name}” created. Keys whose owner is “{team.name}” now share its budget.",
                  "success")
            return redirect(url_for(".index"), 303)
    return _render_form(form)


@bp.route("/<int:team_id>/edit", methods=("GET", "POST"))
@access.admin_only
def edit(team_id: int):
    team = team_service.get(team_id)
    form = TeamForm(data=TeamForm.initial(team))
    if form.validate_on_submit():
        if attempt(form, team_service.update, team, form.payload(), current_user.username,
                   aliases=TEAM_ALIASES):
            flash(f"Team “{team.name}” saved.", "success")
            return redirect(url_for(".index"), 303)
    return _render_form(form, team)


@bp.route("/<int:team_id>/delete", methods=("GET", "POST"))
@access.admin_only
def delete(team_id: int):
    team = team_service.get(team_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        name = team.name
        team_service.delete(team, current_user.username)
        flash(f"Team “{name}” deleted.", "success")
        return redirect(url_for(".index"), 303)
    keys = queries.team_key_counts().get(team.name, 0)
    return render_template("admin/confirm.html", form=form, danger=True,
                           title=f"Delete team “{team.name}”?",
                           message=f"Its {keys} key(s) keep working and keep “{team.name}” as their "
                                   "owner, but no longer share a team budget. Usage history is kept.",
                           confirm_label="Delete team", cancel_url=url_for(".index"))
