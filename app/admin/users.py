"""Console users: list, create (a generated password is shown once, on the result page), edit
(role, teams, e-mail, password reset), unlock, delete. Admins only (access.users)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_user

from app.admin import access
from app.admin.forms import ConfirmForm, EditUserForm, NewUserForm, attempt
from app.extensions import db
from app.models import GatewayKey, PlaygroundConversation, PlaygroundProfile
from app.services import teams as team_service
from app.services import users as user_service
from app.services.errors import ServiceError

bp = Blueprint("users", __name__, url_prefix="/users")

NO_STORE = {"Cache-Control": "no-store"}


def _team_choices(form, user=None) -> None:
    names = [t.name for t in team_service.list_all()]
    kept = [n for n in (user.teams or []) if n not in names] if user is not None else []
    form.set_team_choices(names + kept)  # a name the account already has stays choosable


def _render_form(form, user=None, status=None):
    context = {"form": form, "user": user, "has_teams": bool(form.teams.choices)}
    if user is not None:
        context["locked"] = user_service.is_locked(user)
        context["unlock_form"] = ConfirmForm()
    return render_template("admin/users/form.html", **context), \
        status or (422 if form.is_submitted() else 200)


def _password_page(user, password: str, created: bool):
    """Rendered straight from the POST (never stored, never redirected with it): shown once."""
    return (render_template("admin/users/password.html", user=user, password=password,
                            created=created), 201 if created else 200, NO_STORE)


@bp.get("")
@access.users
def index():
    return render_template("admin/users/index.html", users=user_service.list_all(),
                           is_locked=user_service.is_locked)


@bp.route("/new", methods=("GET", "POST"))
@access.users
def new():
    form = NewUserForm()
    _team_choices(form)
    if form.validate_on_submit():
        created = attempt(form, user_service.add, form.payload(), current_user.username)
        if created is not None:
            user, generated = created
            if generated is not None:
                return _password_page(user, generated, created=True)
            flash(f"User “{user.username}” created ({user.role}). They sign in with the password "
                  "you set.", "success")
            return redirect(url_for(".index"), 303)
    return _render_form(form)


@bp.route("/<int:user_id>/edit", methods=("GET", "POST"))
@access.users
def edit(user_id: int):
    user = user_service.get(user_id)
    form = EditUserForm(data=EditUserForm.initial(user))
    _team_choices(form, user)
    if form.validate_on_submit():
        epoch = user.session_epoch
        saved = attempt(form, user_service.update, user, form.payload(user), current_user.username)
        if saved is not None:
            user, generated = saved
            ended = user.session_epoch != epoch
            if user.id == current_user.id and ended:
                login_user(user)  # this session goes on with the new epoch; the others end
            if generated is not None:
                return _password_page(user, generated, created=False)
            flash(f"User “{user.username}” saved." + (
                " Their other sessions were signed out." if ended and user.id == current_user.id
                else " They were signed out everywhere." if ended else ""), "success")
            if not access.may(current_user, "admin.users.index"):  # demoted themselves
                return redirect(url_for("admin.index"), 303)
            return redirect(url_for(".index"), 303)
    return _render_form(form, user)


@bp.post("/<int:user_id>/unlock")
@access.users
def unlock(user_id: int):
    user = user_service.get(user_id)
    if ConfirmForm().validate_on_submit():
        user_service.update(user, {"unlock": True}, current_user.username)
        flash(f"User “{user.username}” unlocked: they can sign in again.", "success")
    return redirect(url_for(".edit", user_id=user.id), 303)


def _delete_message(user) -> str:
    profile = db.session.get(PlaygroundProfile, user.id)
    key = db.session.get(GatewayKey, profile.key_id) if profile is not None else None
    chats = db.session.scalar(db.select(db.func.count(PlaygroundConversation.id))
                              .where(PlaygroundConversation.user_id == user.id)) or 0
    parts = [f"{user.username} is signed out at once and can no longer sign in"
             + (" here (their identity-provider account is not touched; they would get a new "
                "console account at their next single sign-on unless the identity provider "
                "stops giving them a role)" if user.is_sso else "") + "."]
    if key is not None and key.revoked_at is None:
        parts.append(f"Their playground key ({key.prefix}…) is revoked.")
    parts.append(f"Their {chats} saved playground conversation(s) are deleted." if chats else
                 "They have no saved playground conversations.")
    parts.append("The audit log keeps their name. This cannot be undone.")
    return " ".join(parts)


@bp.route("/<int:user_id>/delete", methods=("GET", "POST"))
@access.users
def delete(user_id: int):
    user = user_service.get(user_id)
    form = ConfirmForm()
    status = 200
    if not form.is_submitted():  # say up front what the button would refuse
        if user.id == current_user.id:
            form.form_errors.append("You cannot delete your own account; another admin can.")
        elif user.role == "admin" and user_service.admin_count() <= 1:
            form.form_errors.append(f"“{user.username}” is the last admin; make another user "
                                    "admin first.")
    if form.validate_on_submit():
        name = user.username
        try:
            user_service.delete(user, current_user.username, acting_user_id=current_user.id)
        except ServiceError as exc:
            db.session.rollback()
            form.form_errors.append(exc.message)
            status = exc.status
        else:
            flash(f"User “{name}” deleted.", "success")
            return redirect(url_for(".index"), 303)
    return render_template("admin/confirm.html", form=form, danger=True,
                           title=f"Delete user “{user.username}”?", message=_delete_message(user),
                           confirm_label="Delete user", cancel_url=url_for(".edit", user_id=user.id)), status
