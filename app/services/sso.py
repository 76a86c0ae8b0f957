"""Single sign-on (OpenID Connect): settings from GATEWAY_OIDC_*, claims -> role, account upsert.

The protocol itself (discovery, authorization code + PKCE, state, nonce, ID-token signature and
claims) is Authlib's, in app/admin/sso.py; this module decides who the validated claims are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.extensions import db
from app.models import User, utcnow
from app.models.user import NO_PASSWORD, ROLES
from app.services import audit

DEFAULT_SCOPES = "openid email profile"
# when several groups map to roles, the strongest wins; team_admin teams are collected
STRENGTH = {"admin": 4, "operator": 3, "team_admin": 2, "viewer": 1}


class SSOError(Exception):
    """A sign-in refused for a reason the user should read (status: the page's HTTP status)."""

    def __init__(self, message: str, status: int = 403, reason: str = "denied"):
        super().__init__(message)
        self.message, self.status, self.reason = message, status, reason


class SSOConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Grant:
    """One ROLE_MAP entry: claim value (or "*") -> role (and team for team_admin)."""
    value: str
    role: str
    team: str | None = None


@dataclass
class Settings:
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str = DEFAULT_SCOPES
    role_claim: str = "groups"
    allowed_domains: tuple[str, ...] = ()
    role_map: tuple[Grant, ...] = field(default_factory=tuple)
    redirect_uri: str | None = None

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def parse_role_map(text: str | None) -> tuple[Grant, ...]:
    """'gw-admins=admin,gw-ops=operator,team-x-admins=team_admin:x,*=viewer' -> grants."""
    grants = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        value, sep, target = item.rpartition("=")
        value, target = value.strip(), target.strip()
        if not sep or not value:
            raise SSOConfigError(f"GATEWAY_OIDC_ROLE_MAP: '{item}' is not 'claim-value=role'")
        role, _, team = target.partition(":")
        if role not in ROLES:
            raise SSOConfigError(f"GATEWAY_OIDC_ROLE_MAP: '{role}' is not a role "
                                 f"(one of {', '.join(ROLES)})")
        if role == "team_admin" and not team.strip():
            raise SSOConfigError(f"GATEWAY_OIDC_ROLE_MAP: '{item}' needs a team: "
                                 "'value=team_admin:<team name>'")
        if role != "team_admin" and team:
            raise SSOConfigError(f"GATEWAY_OIDC_ROLE_MAP: only team_admin takes a team ('{item}')")
        grants.append(Grant(value, role, team.strip() or None))
    return tuple(grants)


def settings(config) -> Settings | None:
    """The SSO settings, or None when single sign-on is not configured (no issuer/client id)."""
    issuer, client_id = config.get("GATEWAY_OIDC_ISSUER"), config.get("GATEWAY_OIDC_CLIENT_ID")
    if not issuer or not client_id:
        return None
    domains = tuple(d.strip().lower().lstrip("@") for d in
                    (config.get("GATEWAY_OIDC_ALLOWED_DOMAINS") or "").split(",") if d.strip())
    return Settings(issuer=issuer.rstrip("/"), client_id=client_id,
                    client_secret=config.get("GATEWAY_OIDC_CLIENT_SECRET") or None,
                    scopes=config.get("GATEWAY_OIDC_SCOPES") or DEFAULT_SCOPES,
                    role_claim=config.get("GATEWAY_OIDC_ROLE_CLAIM") or "groups",
                    allowed_domains=domains,
                    role_map=parse_role_map(config.get("GATEWAY_OIDC_ROLE_MAP")),
                    redirect_uri=config.get("GATEWAY_OIDC_REDIRECT_URI") or None)


def _claim_values(claims: dict, name: str) -> list[str] | None:
    """The claim as a list of strings (a string claim is one value); None when absent.
    A dotted name reads nested claims ('realm_access.roles')."""
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return [str(value)]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if isinstance(v, (str, int))]
    return []


def resolve_role(s: Settings, claims: dict) -> tuple[str, list[str]]:
    """(role, team names) from the role claim; SSOError when the claim is missing or unmapped."""
    values = _claim_values(claims, s.role_claim)
    if values is None:
        raise SSOError(f"The identity provider did not send the '{s.role_claim}' claim, so no "
                       "console role can be given. Ask your identity-provider admin to add it to "
                       "the ID token or userinfo (GATEWAY_OIDC_ROLE_CLAIM names the claim).",
                       reason="missing_claim")
    matched = [g for g in s.role_map if g.value != "*" and g.value in values]
    if not matched:
        matched = [g for g in s.role_map if g.value == "*"]
    if not matched:
        shown = ", ".join(values[:10]) or "none"
        raise SSOError(f"None of your '{s.role_claim}' values ({shown}) is given a console role; "
                       "ask an admin to add one to GATEWAY_OIDC_ROLE_MAP.", reason="no_role")
    role = max((g.role for g in matched), key=STRENGTH.__getitem__)
    teams = sorted({g.team for g in matched if g.role == "team_admin" and g.team}) \
        if role == "team_admin" else []
    return role, teams


def check_domain(s: Settings, claims: dict) -> str | None:
    """The e-mail, after the allowed-domain check (SSOError when it fails)."""
    email = claims.get("email")
    email = email.strip() if isinstance(email, str) else None
    if not s.allowed_domains:
        return email
    if not email or "@" not in email:
        raise SSOError("The identity provider did not send an e-mail address, and only accounts "
                       f"from {', '.join(s.allowed_domains)} may sign in.", reason="missing_claim")
    if claims.get("email_verified") is False:
        raise SSOError(f"The e-mail address {email} is not verified at the identity provider.",
                       reason="unverified_email")
    domain = email.rsplit("@", 1)[1].lower()
    if domain not in s.allowed_domains:
        raise SSOError(f"Accounts from {domain} may not sign in here (allowed: "
                       f"{', '.join(s.allowed_domains)}).", reason="wrong_domain")
    return email


def sign_in(s: Settings, claims: dict) -> User:
    """The console account for these validated claims: created on first login, role, teams and
    e-mail refreshed from the claims on every login. Audited; commits."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SSOError("The identity provider's ID token has no subject ('sub').", status=400,
                       reason="missing_claim")
    email = check_domain(s, claims)
    role, teams = resolve_role(s, claims)
    user = db.session.scalar(db.select(User).where(User.oidc_issuer == s.issuer,
                                                   User.oidc_subject == subject))
    now = utcnow()
    if user is None:
        username = (email or claims.get("preferred_username") or subject)[:80]
        clash = db.session.scalar(db.select(User).where(User.username == username))
        if clash is not None:
            raise SSOError(f"A console account named '{username}' already exists and is not linked "
                           "to single sign-on; an admin must rename or remove it first.",
                           status=409, reason="username_taken")
        user = User(username=username, password_hash=NO_PASSWORD, role=role, teams=teams,
                    oidc_issuer=s.issuer, oidc_subject=subject, email=email, last_login_at=now)
        db.session.add(user)
        db.session.flush()
        audit.record(username, "create", "user", user.id, username,
                     {"role": [None, role], "teams": [None, teams], "source": [None, "sso"]})
    else:
        before = {"role": user.role, "teams": list(user.teams or []), "email": user.email}
        user.role, user.teams, user.email, user.last_login_at = role, teams, email, now
        changed = audit.diff(before, {"role": role, "teams": teams, "email": email})
        if changed:
            audit.record(user.username, "update", "user", user.id, user.username, changed)
    audit.record(user.username, "sso_login", "user", user.id, user.username,
                 {"issuer": [None, s.issuer], "role": [None, role]})
    db.session.commit()
    return user


def record_refusal(reason: str, detail: str, who: str | None = None) -> None:
    """An audit row for a refused single sign-on (wrong domain, no role, bad state, ...)."""
    audit.record(who or "anonymous", "sso_denied", "user", None, who,
                 {"reason": [None, reason], "detail": [None, detail[:300]]})
    db.session.commit()
