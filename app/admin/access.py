"""Who may use which route: every console and /api/admin view declares its roles here.

A declaration names the roles that may *read* (GET/HEAD/OPTIONS) and the roles that may *write*
(any other method) on a view; ``admin`` may always do both. A view with no declaration is refused
for everybody (admin included): default deny, so a new route cannot be forgotten open.

Roles:
  admin       everything
  operator    providers, models, routing, keys, health, usage, request logs, cache; reads the
              rest (settings, teams, audit) but cannot change settings or teams, and neither
              sees nor changes console users
  viewer      reads everything a console user can see, changes nothing
  team_admin  keys and usage of their own team(s) only (lists filtered, other teams' keys 404)

The presets below are the vocabulary routes use (``@access.ops``, ``@access.ops_form``, ...); the
route-walking test (tests/admin/test_roles_matrix.py) checks every registered route against them.
"""
from __future__ import annotations

from dataclasses import dataclass

ROLES = ("admin", "operator", "viewer", "team_admin")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Access:
    read: frozenset[str]
    write: frozenset[str]
    public: bool = False
    label: str = ""

    def allows(self, role: str | None, method: str) -> bool:
        if self.public:
            return True
        if role is None:
            return False
        return role in (self.read if method in SAFE_METHODS else self.write)


def allow(read=(), write=(), label: str = ""):
    """Declare a view's roles (admin is implied in both)."""
    rule = Access(frozenset(read) | {"admin"}, frozenset(write) | {"admin"}, label=label)

    def mark(view):
        view.access = rule
        return view
    return mark


def declaration(view) -> Access | None:
    return getattr(view, "access", None)


def public(view):
    """Anyone, signed in or not (the sign-in pages)."""
    view.access = Access(frozenset(ROLES), frozenset(ROLES), public=True, label="public")
    return view


# --- presets ------------------------------------------------------------------------------
STAFF = ("operator", "viewer")          # may read the operating pages
EVERYONE = ROLES

# every signed-in role, writes included (sign-out; the playground, whose calls go through each
# user's own key, limited like any other key)
any_role = allow(EVERYONE, EVERYONE, label="any_role")
# operating pages: operators change them, viewers read them
ops = allow(STAFF, ("operator",), label="ops")
# forms that exist only to change something ("new", "edit", "delete"): viewers get 403 even on GET
ops_form = allow(("operator",), ("operator",), label="ops_form")
# admin-owned configuration (settings, teams, audit): operators and viewers read, admins change
admin_area = allow(STAFF, (), label="admin_area")
# admin-only forms (GET included)
admin_only = allow((), (), label="admin_only")
# console users (accounts, roles, e-mail addresses, lockouts): admins only, reads included
users = allow((), (), label="users")
# keys: operators, and team admins for their own team's keys
keys = allow(STAFF + ("team_admin",), ("operator", "team_admin"), label="keys")
keys_form = allow(("operator", "team_admin"), ("operator", "team_admin"), label="keys_form")
# usage charts: staff, and team admins for their own team's usage
usage = allow(STAFF + ("team_admin",), ("operator",), label="usage")
# the overview page: everyone (team admins are sent on to their keys)
overview = allow(EVERYONE, (), label="overview")


def may(user, endpoint: str | None, write: bool = False) -> bool:
    """Whether this user may read (or write) the view behind `endpoint` (templates use this)."""
    from flask import current_app
    view = current_app.view_functions.get(endpoint or "")
    rule = declaration(view)
    if rule is None:
        return False
    role = getattr(user, "role", None) if getattr(user, "is_authenticated", False) else None
    return rule.allows(role, "POST" if write else "GET")


# the key scopes each role may grant (a key never gets more than its maker could do)
PROXY_SCOPES = frozenset({"chat", "embeddings", "models"})
GRANTABLE = {"admin": None,  # every scope
             "operator": PROXY_SCOPES | {"admin:operator", "admin:read"},
             "team_admin": PROXY_SCOPES, "viewer": frozenset()}


def check_grant(role: str, data: dict, key=None) -> None:
    """ValidationFailed when `data` would give a key a scope beyond what `role` may grant
    (scopes the key already has may stay)."""
    from app.services.errors import ValidationFailed
    allowed = GRANTABLE.get(role, frozenset())
    requested = data.get("scopes")
    if allowed is None or requested is None or not isinstance(requested, list):
        return
    extra = sorted({s for s in requested if isinstance(s, str)} - set(key.scopes or [] if key else [])
                   - allowed)
    if extra:
        raise ValidationFailed(f"your role ({role}) may not grant the scope(s) {', '.join(extra)}",
                               field="scopes")
