from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.base import utcnow

ROLES = ("admin", "operator", "viewer", "team_admin")  # app/admin/access.py says what each may do
NO_PASSWORD = "!sso"  # password_hash of an account made by single sign-on: no password matches it


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # single sign-on: the identity provider's issuer and subject ("sub") of this account
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    # team_admin: the team names whose keys and usage this user manages
    teams: Mapped[list[str] | None] = mapped_column(JSON, default=list)

    # part of the id in the session cookie: signing out bumps it, so a copy of the old cookie
    # (the session is a signed cookie, not a server-side row) no longer signs anyone in
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    def get_id(self) -> str:
        return f"{self.id}:{self.session_epoch or 0}"

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        if not self.password_hash or self.password_hash == NO_PASSWORD:
            return False
        return check_password_hash(self.password_hash, password)

    @property
    def is_sso(self) -> bool:
        """Made by single sign-on: signs in at the identity provider, has no local password."""
        return self.oidc_issuer is not None or self.password_hash == NO_PASSWORD

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def team_names(self) -> list[str]:
        return list(self.teams or []) if self.role == "team_admin" else []
