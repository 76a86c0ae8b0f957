"""Sign-in and sign-out (routes are added to the parent blueprint as admin.login/admin.logout)."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.admin.forms import LoginForm
from app.services import users
from app.services.users import LoginThrottled


def safe_next(target: str | None) -> str | None:
    """Only a path on this site ("/models?q=x"), never "//evil.example" or "https://...": no open redirect."""
    if not target or not target.startswith("/"):
        return None
    decoded = unquote(target)  # "/%2F%2Fevil" or "/%5Cevil" is refused like what it decodes to
    for form in (target, decoded):
        if form.startswith("//") or "\\" in form or any(ord(ch) < 32 or ord(ch) == 127 for ch in form):
            return None
        parts = urlsplit(form)
        if parts.scheme or parts.netloc:
            return None
    return target


def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next")) or url_for("admin.index"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("admin/login.html", form=form), 422 if form.is_submitted() else 200
    try:
        user = users.authenticate(form.username.data, form.password.data, request.remote_addr or "?")
    except LoginThrottled as exc:
        form.form_errors.append(f"Sign-in is temporarily locked: {exc}.")
        return render_template("admin/login.html", form=form), 429
    if user is None:
        form.form_errors.append("Wrong username or password.")
        return render_template("admin/login.html", form=form), 401
    session.clear()  # fresh session (and CSRF token) for the signed-in user
    login_user(user)
    return redirect(safe_next(request.args.get("next")) or url_for("admin.index"), 303)


def logout():
    users.end_sessions(current_user)  # every copy of this session cookie stops working
    logout_user()
    session.clear()
    flash("You have been signed out.", "info")
    return redirect(url_for("admin.login"), 303)
