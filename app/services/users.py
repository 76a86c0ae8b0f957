"""Console users: creation, password login with throttling."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models import User, utcnow
from app.models.user import ROLES
from app.services import audit
from app.services import validation as v
from app.services.errors import Conflict, ValidationFailed

MIN_PASSWORD = 8

# Per-IP failure counter (in-process): slows down guessing across many usernames. Per-user
# lockout is in the DB, so it holds across workers and hosts.
_ip_failures: dict[str, list[float]] = {}
_ip_lock = threading.Lock()


class LoginThrottled(Exception):
    pass


def create(username: str, password: str, role: str = "admin", actor: str = "cli") -> User:
    data = {"username": username, "password": password, "role": role}
    username = v.text(data, "username", required=True, max_len=80)
    v.choice(data, "role", ROLES)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD} characters",
                               field="password")
    if db.session.scalar(db.select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user '{username}' already exists", field="username")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "create", "user", user.id, username, {"role": [None, role]})
    db.session.commit()
    return user


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
