"""Console users: the accounts behind the console (list, create, change, delete) and password
sign-in with throttling.

What an account may look like (the admin API's request schemas in app/openapi.py are built from
the constants below, so the two cannot drift; the service accepts exactly what they accept):

* username: 1-80 characters, ASCII letters, digits and ``. _ @ + -``, starting with a letter or
  digit; unique ignoring case ("Admin" and "admin" would be two look-alike accounts); never
  changed (the audit trail names people by it).
* role: one of ROLES; a team_admin names at least one team, every other role none. Team names a
  change adds must be existing teams (app/models/team.py); names the account already has are
  kept even without a team row (single sign-on and the CLI may give owner names that have none).
* email: an address (something@somewhere, no spaces), or null / "" for none.
* password: 8-200 characters (what the sign-in form takes), not only whitespace, no control
  characters (a browser's password field cannot type them). Left out on creation, one is
  generated and returned once. A single-sign-on account has no local password: setting one is
  refused.

Changing an account's role, teams or password, and deleting it, ends its sessions (the session
epoch, see end_sessions). The last admin cannot be demoted or deleted, and nobody deletes their
own account. Every change is audited with the changed fields; a password only ever appears there
masked.
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models import GatewayKey, PlaygroundConversation, PlaygroundProfile, Team, User, utcnow
from app.models.user import ROLES
from app.services import audit, state
from app.services.errors import Conflict, NotFound, ValidationFailed

MIN_PASSWORD = 8
MAX_PASSWORD = 200          # the sign-in form's limit: a longer password could never be typed in
USERNAME_MAX = 80
EMAIL_MAX = 255
TEAM_NAME_MAX = 120         # teams.name
MAX_TEAMS = 100
# regexes in the subset Python and ECMA-262 agree on (the OpenAPI document uses them as is)
USERNAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,%d}" % (USERNAME_MAX - 1)
_ADDRESS_CHAR = r"[^\s@\x00-\x1f\x7f-\x9f\ufeff]"
EMAIL_PATTERN = rf"{_ADDRESS_CHAR}+@{_ADDRESS_CHAR}+"
PASSWORD_CONTROL = r"[\x00-\x1f\x7f]"
CREATE_FIELDS = ("username", "role", "teams", "email", "password")
UPDATE_FIELDS = ("role", "teams", "email", "password", "generate_password", "unlock")

# Per-IP failure counter (in-process): slows down guessing across many usernames. Per-user
# lockout is in the DB, so it holds across workers and hosts.
_ip_failures: dict[str, list[float]] = {}
_ip_lock = threading.Lock()


class LoginThrottled(Exception):
    pass


# ----------------------------------------------------------------------------- reading
def get(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", code="user_not_found")
    return user


def list_all() -> list[User]:
    return list(db.session.scalars(db.select(User).order_by(db.func.lower(User.username), User.id)))


def is_locked(user: User, now=None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def to_dict(user: User) -> dict[str, Any]:
    """The API's view of an account (never its password hash)."""
    return {"id": user.id, "username": user.username, "role": user.role, "teams": user.team_names,
            "email": user.email, "sso": user.is_sso, "issuer": user.oidc_issuer,
            "last_login_at": _iso(user.last_login_at), "locked": is_locked(user),
            "created_at": _iso(user.created_at)}


def snapshot(user: User) -> dict[str, Any]:
    """The audited fields (the password is audited separately, masked)."""
    return {"role": user.role, "teams": list(user.teams or []) if user.role == "team_admin" else [],
            "email": user.email, "locked": is_locked(user), "failed_logins": user.failed_logins or 0}


def admin_count() -> int:
    return db.session.scalar(db.select(db.func.count(User.id)).where(User.role == "admin")) or 0


# ----------------------------------------------------------------------------- validation
def _unknown(data: dict, allowed: tuple[str, ...]) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise ValidationFailed(f"unknown field(s): {', '.join(extra)} (allowed: {', '.join(allowed)})",
                               field=extra[0])


def _username(data: dict) -> str:
    value = data.get("username")
    if value is None:
        raise ValidationFailed("username is required", field="username")
    if not isinstance(value, str):
        raise ValidationFailed("username must be a string", field="username")
    if not re.fullmatch(USERNAME_PATTERN, value):
        raise ValidationFailed(f"username must be 1-{USERNAME_MAX} characters: letters, digits and "
                               ". _ @ + - (starting with a letter or digit)", field="username")
    return value


def _role(data: dict) -> str:
    value = data.get("role")
    if value is None:
        raise ValidationFailed(f"role is required (one of: {', '.join(ROLES)})", field="role")
    if not isinstance(value, str) or value not in ROLES:
        raise ValidationFailed(f"role must be one of: {', '.join(ROLES)}", field="role")
    return value


def _email(data: dict) -> str | None:
    value = data.get("email")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed("email must be a string or null", field="email")
    if len(value) > EMAIL_MAX:
        raise ValidationFailed(f"email must be at most {EMAIL_MAX} characters", field="email")
    if not re.fullmatch(EMAIL_PATTERN, value):
        raise ValidationFailed("email must be an address such as ops@example.com (no spaces)",
                               field="email")
    return value


def _password(data: dict) -> str:
    value = data.get("password")
    if not isinstance(value, str):
        raise ValidationFailed("password must be a string", field="password")
    if len(value) < MIN_PASSWORD:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD} characters", field="password")
    if len(value) > MAX_PASSWORD:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD} characters", field="password")
    if not re.search(r"\S", value):
        raise ValidationFailed("password must not be only whitespace", field="password")
    if re.search(PASSWORD_CONTROL, value):
        raise ValidationFailed("password must not contain control characters (tabs, line breaks)",
                               field="password")
    return value


def _flag(data: dict, field: str) -> bool:
    value = data.get(field, False)
    if not isinstance(value, bool):
        raise ValidationFailed(f"{field} must be true or false", field=field)
    return value


def _team_list(data: dict) -> list[str]:
    value = data.get("teams")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationFailed("teams must be a list of team names", field="teams")
    if len(value) > MAX_TEAMS:
        raise ValidationFailed(f"teams has too many items (max {MAX_TEAMS})", field="teams")
    if any(not 1 <= len(t) <= TEAM_NAME_MAX for t in value):
        raise ValidationFailed(f"each team name must be 1-{TEAM_NAME_MAX} characters", field="teams")
    if len(set(value)) != len(value):
        raise ValidationFailed("teams names a team twice", field="teams")
    return value


def _teams_for(role: str, teams: list[str], kept: list[str] | tuple = ()) -> list[str]:
    """A team_admin has at least one team, each an existing team (or one the account already
    had: `kept`); every other role has none."""
    if role != "team_admin":
        if teams:
            raise ValidationFailed("teams are only for the team_admin role", field="teams")
        return []
    if not teams:
        raise ValidationFailed("a team_admin needs at least one team", field="teams")
    new = [t for t in teams if t not in kept]
    if new:
        known = set(db.session.scalars(db.select(Team.name).where(Team.name.in_(new))))
        missing = [t for t in new if t not in known]
        if missing:
            raise ValidationFailed(f"no team named {', '.join(repr(t) for t in missing)}; "
                                   "create it under Teams first", field="teams")
    return list(teams)


def _unique_username(username: str) -> None:
    clash = db.session.scalar(db.select(User.username).where(
        db.func.lower(User.username) == username.lower()))
    if clash is not None:
        raise Conflict(f"user '{clash}' already exists" + (
            " (usernames are compared ignoring case)" if clash != username else ""),
            field="username", code="user_exists")


def _guard_last_admin(user: User, doing: str) -> None:
    """Conflict when `user` is the only admin. The admin rows are locked (PostgreSQL) so two
    admins demoting each other at once cannot leave none."""
    admins = set(db.session.scalars(db.select(User.id).where(User.role == "admin")
                                    .with_for_update()))
    if admins <= {user.id}:
        raise Conflict(f"'{user.username}' is the last admin and cannot be {doing}; "
                       "make another user admin first", field="role", code="last_admin")


def generate_password() -> str:
    """24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def _commit(username: str) -> None:
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent create of the same name won the race
        db.session.rollback()
        raise Conflict(f"user '{username}' already exists", field="username",
                       code="user_exists") from None


# ----------------------------------------------------------------------------- changes
def _insert(username: str, role: str, teams: list[str], email: str | None, password: str,
            actor: str, generated: bool) -> User:
    _unique_username(username)
    user = User(username=username, role=role, teams=teams, email=email)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    facts: dict[str, Any] = {"role": [None, role]}
    if teams:
        facts["teams"] = [None, teams]
    if email:
        facts["email"] = [None, email]
    facts["password"] = [None, "generated" if generated else "set"]
    audit.record(actor, "create", "user", user.id, username, facts)
    _commit(username)
    return user


def add(data: dict, actor: str) -> tuple[User, str | None]:
    """A new local account from `data` (CREATE_FIELDS); returns it and the generated password
    (None when one was given): the only time a password is ever handed out."""
    _unknown(data, CREATE_FIELDS)
    username = _username(data)
    role = _role(data)
    teams = _teams_for(role, _team_list(data) if "teams" in data else [])
    email = _email(data)
    if data.get("password") is None:
        password = generated = generate_password()
    else:
        password, generated = _password(data), None
    return _insert(username, role, teams, email, password, actor, generated is not None), generated


def create(username: str, password: str, role: str = "admin", actor: str = "cli",
           teams: list[str] | None = None) -> User:
    """The CLI's and the startup's way in (`flask create-admin`, GATEWAY_ADMIN_USER): the same
    rules, except that the username is trimmed and team names are not checked against the
    teams (the CLI's --team may name an owner that has no team row)."""
    data = {"username": username.strip() if isinstance(username, str) else username,
            "password": password, "role": role}
    username = _username(data)
    role = _role(data)
    password = _password(data)
    return _insert(username, role, list(teams or []) if role == "team_admin" else [], None,
                   password, actor, generated=False)


def update(user: User, data: dict, actor: str) -> tuple[User, str | None]:
    """Change role, teams, email, password (given or generate_password) or unlock (UPDATE_FIELDS;
    only the fields sent change). Returns the account and the generated password, if any."""
    _unknown(data, UPDATE_FIELDS)
    before = snapshot(user)
    role = _role(data) if "role" in data else user.role
    if "teams" in data:
        teams = _team_list(data)
    else:  # a team_admin keeps their teams; another role turned team_admin has none yet
        teams = before["teams"] if role == "team_admin" else []
    teams = _teams_for(role, teams, kept=before["teams"])
    email = _email(data) if "email" in data else user.email
    unlock = _flag(data, "unlock")
    generate = _flag(data, "generate_password")
    password = _password(data) if "password" in data else None
    if password is not None and generate:
        raise ValidationFailed("send either password or generate_password, not both",
                               field="generate_password")
    if (password is not None or generate) and user.is_sso:
        raise ValidationFailed(f"'{user.username}' signs in with single sign-on "
                               f"({user.oidc_issuer}) and has no local password to set",
                               field="password")
    if before["role"] == "admin" and role != "admin":
        _guard_last_admin(user, "demoted")
    generated = generate_password() if generate else None
    password = password or generated

    user.role, user.teams, user.email = role, teams, email
    if unlock:
        user.failed_logins, user.locked_until = 0, None
    if password is not None:
        user.set_password(password)
    changes = audit.diff(before, snapshot(user))
    if password is not None:
        changes["password"] = [audit.MASK, audit.MASK]
    if role != before["role"] or teams != before["teams"] or password is not None:
        user.session_epoch = (user.session_epoch or 0) + 1  # their sessions end
    if changes:
        audit.record(actor, "update", "user", user.id, user.username, changes)
    db.session.commit()
    return user, generated


def delete(user: User, actor: str, *, acting_user_id: int | None = None) -> None:
    """Delete the account (its sessions end with it), revoke its playground key; its playground
    conversations go with it (ON DELETE CASCADE). One transaction."""
    if acting_user_id is not None and user.id == acting_user_id:
        raise Conflict("you cannot delete your own account; another admin can",
                       code="own_account")
    if user.role == "admin":
        _guard_last_admin(user, "deleted")
    details: dict[str, Any] = {"role": user.role, "sign_in": user.oidc_issuer or "password",
                               "conversations": db.session.scalar(
                                   db.select(db.func.count(PlaygroundConversation.id))
                                   .where(PlaygroundConversation.user_id == user.id)) or 0}
    profile = db.session.get(PlaygroundProfile, user.id)
    key = db.session.get(GatewayKey, profile.key_id) if profile is not None else None
    if key is not None and key.revoked_at is None:
        status = key.status
        key.revoked_at, key.enabled = utcnow(), False
        audit.record(actor, "revoke", "key", key.id, key.name,
                     {"status": [status, key.status], "reason": [None, f"user {user.username} deleted"]})
        state.bump()  # every worker stops accepting the key
        details["playground_key"] = key.prefix
    audit.record(actor, "delete", "user", user.id, user.username, details)
    db.session.delete(user)
    db.session.commit()


# ----------------------------------------------------------------------------- sign-in
def count() -> int:
    return db.session.scalar(db.select(db.func.count(User.id))) or 0


def _ip_blocked(ip: str) -> bool:
    window = current_app.config["LOGIN_LOCKOUT_SECONDS"]
    limit = current_app.config["LOGIN_MAX_FAILURES"] * 4
    now = time.monotonic()
    with _ip_lock:
        recent = [t for t in _ip_failures.get(ip, []) if now - t < window]
        _ip_failures[ip] = recent
        return len(recent) >= limit


def _ip_fail(ip: str) -> None:
    with _ip_lock:
        _ip_failures.setdefault(ip, []).append(time.monotonic())


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(generate_password_hash("not-a-password"))
    return _DUMMY[0]


def authenticate(username: str, password: str, ip: str) -> User | None:
    """The user on success, None on bad credentials; LoginThrottled when locked out."""
    if _ip_blocked(ip):
        raise LoginThrottled("too many failed sign-ins from this address; try again later")
    user = db.session.scalar(db.select(User).where(User.username == (username or "").strip()))
    now = utcnow()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        raise LoginThrottled("too many failed sign-ins for this account; try again later")
    if user is None:
        check_password_hash(_dummy_hash(), password or "")  # same work as a real check: no username oracle
    if user is None or not user.check_password(password or ""):
        _ip_fail(ip)
        if user is not None:
            user.failed_logins = (user.failed_logins or 0) + 1
            if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
                user.locked_until = now + timedelta(seconds=current_app.config["LOGIN_LOCKOUT_SECONDS"])
                user.failed_logins = 0
                audit.record(user.username, "lockout", "user", user.id, user.username, {})
            db.session.commit()
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(user.username, "login", "user", user.id, user.username, {})
    db.session.commit()
    return user


def end_sessions(user: User) -> None:
    """Sign-out: bump the user's session epoch, so every copy of their session cookie (it is a
    signed cookie, not a server-side row) stops signing anyone in."""
    if getattr(user, "is_authenticated", False) and isinstance(user, User):
        user.session_epoch = (user.session_epoch or 0) + 1
        db.session.commit()
