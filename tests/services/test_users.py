"""Console-user management in the service: the rules, the guards, what ends sessions, what the
audit trail keeps (never a password or its hash), and what deleting an account takes with it."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import (AuditLog, GatewayKey, PlaygroundConversation, PlaygroundProfile, User,
                        utcnow)
from app.models.user import NO_PASSWORD
from app.services import users
from app.services.errors import Conflict, NotFound, ValidationFailed

PASSWORD = "correct-horse-77"


@pytest.fixture
def teams(app):
    from app.services import teams as team_service
    return [team_service.create({"name": n}, actor="t") for n in ("research", "growth")]


def audit_rows(entity_type="user", entity_id=None):
    db.session.expire_all()
    stmt = db.select(AuditLog).where(AuditLog.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == entity_id)
    return list(db.session.scalars(stmt.order_by(AuditLog.id)))


def audit_text() -> str:
    return "\n".join(json.dumps(a.diff, sort_keys=True) + " " + (a.entity_name or "")
                     for a in audit_rows())


def fresh(user_id: int) -> User | None:
    db.session.expire_all()
    return db.session.get(User, user_id)


def add(**data):
    data.setdefault("role", "viewer")
    return users.add(data, actor="tester")


# ----------------------------------------------------------------------------- create
def test_create_with_a_generated_password_returns_it_once_and_audits_no_secret(app):
    user, generated = add(username="jane", role="operator", email="jane@example.com")
    assert isinstance(generated, str) and len(generated) >= 20
    assert fresh(user.id).check_password(generated)
    assert (user.role, user.email, user.team_names) == ("operator", "jane@example.com", [])
    row = audit_rows(entity_id=user.id)[-1]
    assert (row.actor, row.action, row.entity_name) == ("tester", "create", "jane")
    assert row.diff["role"] == [None, "operator"] and row.diff["password"] == [None, "generated"]
    assert generated not in audit_text() and fresh(user.id).password_hash not in audit_text()


def test_create_with_a_given_password(app):
    user, generated = add(username="sam", password=PASSWORD)
    assert generated is None and fresh(user.id).check_password(PASSWORD)
    assert audit_rows(entity_id=user.id)[-1].diff["password"] == [None, "set"]
    assert PASSWORD not in audit_text()


@pytest.mark.parametrize("password, message", [
    ("short", "at least 8"), ("x" * 201, "at most 200"), (" " * 12, "only whitespace"),
    ("tab\tinside-1", "control characters"), ("line\nbreak-12", "control characters"),
    (12345678, "must be a string")])
def test_password_rules(app, password, message):
    with pytest.raises(ValidationFailed, match=message) as exc:
        add(username="p", password=password)
    assert exc.value.field == "password"
    assert users.count() == 0


def test_password_of_exactly_the_limits_is_accepted(app):
    for name, password in (("a8", "12345678"), ("a200", "ü" * 200)):
        user, _ = add(username=name, password=password)
        assert fresh(user.id).check_password(password)


@pytest.mark.parametrize("username", [" jane", "jane ", "jane doe", "-jane", ".jane", "", "j" * 81,
                                      "jäne", "jane\n", "<script>", 5, None])
def test_username_rules(app, username):
    with pytest.raises(ValidationFailed) as exc:
        add(username=username, password=PASSWORD)
    assert exc.value.field == "username"


def test_usernames_are_unique_ignoring_case(app):
    add(username="jane.doe@example.com", password=PASSWORD)
    for clash in ("jane.doe@example.com", "Jane.Doe@Example.com"):
        with pytest.raises(Conflict) as exc:
            add(username=clash, password=PASSWORD)
        assert exc.value.code == "user_exists" and exc.value.field == "username"
    assert users.count() == 1


@pytest.mark.parametrize("data, field", [
    ({"role": "root"}, "role"), ({"role": None}, "role"), ({"role": ["admin"]}, "role"),
    ({"email": "not-an-address"}, "email"), ({"email": "a b@example.com"}, "email"),
    ({"email": "a" * 250 + "@x.com"}, "email"), ({"email": 5}, "email"),
    ({"is_admin": True}, "is_admin"), ({"password_hash": "x"}, "password_hash"),
    ({"teams": "research"}, "teams")])
def test_create_refuses_bad_fields(app, teams, data, field):
    with pytest.raises(ValidationFailed) as exc:
        users.add({"username": "x", "role": "viewer", **data}, actor="t")
    assert exc.value.field == field
    assert users.count() == 0


def test_team_admin_needs_existing_teams_and_other_roles_none(app, teams):
    for data, message in (({"role": "team_admin"}, "at least one team"),
                          ({"role": "team_admin", "teams": []}, "at least one team"),
                          ({"role": "team_admin", "teams": ["nope"]}, "no team named 'nope'"),
                          ({"role": "team_admin", "teams": ["research", "research"]}, "twice"),
                          ({"role": "viewer", "teams": ["research"]}, "only for the team_admin")):
        with pytest.raises(ValidationFailed, match=message) as exc:
            users.add({"username": "t", **data}, actor="t")
        assert exc.value.field == "teams"
    user, _ = users.add({"username": "t", "role": "team_admin", "teams": ["research", "growth"]},
                        actor="t")
    assert user.team_names == ["research", "growth"]
    user, _ = users.add({"username": "v", "role": "viewer", "teams": []}, actor="t")
    assert user.team_names == []


def test_to_dict_has_exactly_the_documented_fields_and_no_hash(app):
    user, _ = add(username="jane", email="jane@example.com")
    out = users.to_dict(user)
    assert set(out) == {"id", "username", "role", "teams", "email", "sso", "issuer",
                        "last_login_at", "locked", "created_at"}
    assert out["sso"] is False and out["locked"] is False and out["issuer"] is None
    assert user.password_hash not in json.dumps(out)


# ----------------------------------------------------------------------------- update
def test_role_team_and_password_changes_end_sessions_email_and_unlock_do_not(app, teams):
    user, _ = add(username="jane", password=PASSWORD)
    epoch = fresh(user.id).session_epoch
    users.update(fresh(user.id), {"email": "j@example.com"}, actor="t")
    assert fresh(user.id).session_epoch == epoch
    users.update(fresh(user.id), {"unlock": True}, actor="t")
    assert fresh(user.id).session_epoch == epoch
    users.update(fresh(user.id), {"role": "team_admin", "teams": ["research"]}, actor="t")
    assert fresh(user.id).session_epoch == epoch + 1
    users.update(fresh(user.id), {"teams": ["research", "growth"]}, actor="t")
    assert fresh(user.id).session_epoch == epoch + 2
    users.update(fresh(user.id), {"password": "another-pass-9"}, actor="t")
    assert fresh(user.id).session_epoch == epoch + 3
    assert fresh(user.id).check_password("another-pass-9")
    users.update(fresh(user.id), {"role": "team_admin"}, actor="t")  # nothing changes
    assert fresh(user.id).session_epoch == epoch + 3


def test_update_audits_the_changed_fields_and_masks_the_password(app, teams):
    user, _ = add(username="jane", password=PASSWORD)
    before = len(audit_rows(entity_id=user.id))
    users.update(fresh(user.id), {"role": "team_admin", "teams": ["growth"], "email": "j@x.io",
                                  "password": "new-secret-pass-1"}, actor="boss")
    rows = audit_rows(entity_id=user.id)
    assert len(rows) == before + 1
    diff = rows[-1].diff
    assert rows[-1].actor == "boss" and rows[-1].action == "update"
    assert diff == {"role": ["viewer", "team_admin"], "teams": [[], ["growth"]],
                    "email": [None, "j@x.io"], "password": ["***", "***"]}
    text = audit_text()
    assert "new-secret-pass-1" not in text and fresh(user.id).password_hash not in text
    users.update(fresh(user.id), {}, actor="boss")  # no change, no row
    assert len(audit_rows(entity_id=user.id)) == before + 1


def test_demoting_a_team_admin_drops_their_teams(app, teams):
    user, _ = users.add({"username": "t", "role": "team_admin", "teams": ["research"]}, actor="t")
    users.update(fresh(user.id), {"role": "viewer"}, actor="t")
    assert fresh(user.id).teams == [] and fresh(user.id).role == "viewer"
    with pytest.raises(ValidationFailed, match="at least one team"):
        users.update(fresh(user.id), {"role": "team_admin"}, actor="t")  # no teams to keep
    with pytest.raises(ValidationFailed, match="only for the team_admin"):
        users.update(fresh(user.id), {"teams": ["research"]}, actor="t")


def test_teams_an_account_already_has_are_kept_without_a_team_row(app, teams):
    """SSO or the CLI may give a team admin an owner name that has no team row: editing
    something else must not fail on it, but a new unknown name is refused."""
    user = users.create("cli-ta", PASSWORD, "team_admin", actor="cli", teams=["legacy-owner"])
    users.update(fresh(user.id), {"email": "a@b.c"}, actor="t")
    users.update(fresh(user.id), {"teams": ["legacy-owner", "research"]}, actor="t")
    assert fresh(user.id).teams == ["legacy-owner", "research"]
    with pytest.raises(ValidationFailed, match="no team named 'other'"):
        users.update(fresh(user.id), {"teams": ["legacy-owner", "other"]}, actor="t")


def test_generated_password_reset(app):
    user, _ = add(username="jane", password=PASSWORD)
    _, generated = users.update(fresh(user.id), {"generate_password": True}, actor="t")
    assert generated and fresh(user.id).check_password(generated)
    assert not fresh(user.id).check_password(PASSWORD)
    _, none = users.update(fresh(user.id), {"generate_password": False}, actor="t")
    assert none is None and fresh(user.id).check_password(generated)
    with pytest.raises(ValidationFailed, match="not both"):
        users.update(fresh(user.id), {"password": "a-new-one-12", "generate_password": True}, actor="t")
    assert generated not in audit_text()


def test_sso_accounts_get_no_password(app):
    sso = User(username="ops@example.com", password_hash=NO_PASSWORD, role="viewer",
               oidc_issuer="https://idp.example.com", oidc_subject="abc")
    db.session.add(sso)
    db.session.commit()
    for data in ({"password": "a-new-one-12"}, {"generate_password": True}):
        with pytest.raises(ValidationFailed, match="single sign-on") as exc:
            users.update(fresh(sso.id), data, actor="t")
        assert exc.value.field == "password"
    assert fresh(sso.id).password_hash == NO_PASSWORD and not fresh(sso.id).check_password("")
    users.update(fresh(sso.id), {"role": "operator"}, actor="t")  # role changes are fine
    assert fresh(sso.id).role == "operator"
    assert users.to_dict(fresh(sso.id))["sso"] is True


def test_unlock_clears_the_lockout(app):
    user, _ = add(username="jane", password=PASSWORD)
    u = fresh(user.id)
    u.failed_logins, u.locked_until = 3, utcnow() + timedelta(minutes=10)
    db.session.commit()
    assert users.to_dict(fresh(user.id))["locked"] is True
    users.update(fresh(user.id), {"unlock": True}, actor="t")
    u = fresh(user.id)
    assert (u.failed_logins, u.locked_until, users.to_dict(u)["locked"]) == (0, None, False)
    assert audit_rows(entity_id=user.id)[-1].diff == {"locked": [True, False],
                                                      "failed_logins": [3, 0]}
    with pytest.raises(ValidationFailed):
        users.update(fresh(user.id), {"unlock": "yes"}, actor="t")


def test_update_refuses_unknown_and_immutable_fields(app):
    user, _ = add(username="jane", password=PASSWORD)
    for field in ("username", "session_epoch", "locked_until", "oidc_issuer"):
        with pytest.raises(ValidationFailed) as exc:
            users.update(fresh(user.id), {field: "x"}, actor="t")
        assert exc.value.field == field
    assert fresh(user.id).username == "jane"


# ----------------------------------------------------------------------------- guards
def test_the_last_admin_cannot_be_demoted_or_deleted(app):
    root, _ = add(username="root", role="admin", password=PASSWORD)
    with pytest.raises(Conflict) as exc:
        users.update(fresh(root.id), {"role": "operator"}, actor="t")
    assert exc.value.code == "last_admin"
    with pytest.raises(Conflict) as exc:
        users.delete(fresh(root.id), actor="t")
    assert exc.value.code == "last_admin"
    assert fresh(root.id).role == "admin"
    second, _ = add(username="second", role="admin", password=PASSWORD)
    users.update(fresh(root.id), {"role": "operator"}, actor="t")  # another admin exists now
    assert fresh(root.id).role == "operator"
    with pytest.raises(Conflict):
        users.update(fresh(second.id), {"role": "viewer"}, actor="t")


def test_nobody_deletes_their_own_account(app):
    a, _ = add(username="a", role="admin", password=PASSWORD)
    b, _ = add(username="b", role="admin", password=PASSWORD)
    with pytest.raises(Conflict) as exc:
        users.delete(fresh(a.id), actor="a", acting_user_id=a.id)
    assert exc.value.code == "own_account" and fresh(a.id) is not None
    users.delete(fresh(b.id), actor="a", acting_user_id=a.id)
    assert fresh(b.id) is None
    with pytest.raises(NotFound):
        users.get(b.id)


# ----------------------------------------------------------------------------- delete
def test_delete_revokes_the_playground_key_and_cascades_conversations(app):
    from app.services import playground
    user, _ = add(username="chatty", password=PASSWORD)
    key = playground.key_for(fresh(user.id))
    for i in range(3):
        db.session.add(PlaygroundConversation(user_id=user.id, title=f"c{i}", model="m",
                                              params={}, messages=[]))
    db.session.commit()
    key_id, user_id = key.id, user.id
    users.delete(fresh(user_id), actor="boss")
    db.session.expire_all()
    assert db.session.get(User, user_id) is None
    revoked = db.session.get(GatewayKey, key_id)
    assert revoked.revoked_at is not None and revoked.status == "revoked"  # the row stays
    # ON DELETE CASCADE, on SQLite too (PRAGMA foreign_keys=ON on every connection)
    assert db.session.get(PlaygroundProfile, user_id) is None
    assert db.session.scalar(db.select(db.func.count(PlaygroundConversation.id))
                             .where(PlaygroundConversation.user_id == user_id)) == 0
    deleted = audit_rows(entity_id=user_id)[-1]
    assert deleted.action == "delete" and deleted.actor == "boss"
    assert deleted.diff["conversations"] == 3 and deleted.diff["playground_key"] == key.prefix
    revoke = audit_rows("key", key_id)[-1]
    assert revoke.action == "revoke" and revoke.diff["status"] == ["active", "revoked"]


def test_delete_without_a_playground_key(app):
    user, _ = add(username="quiet", password=PASSWORD)
    users.delete(fresh(user.id), actor="boss")
    assert fresh(user.id) is None
    assert "playground_key" not in audit_rows(entity_id=user.id)[-1].diff


# ----------------------------------------------------------------------------- neighbours
def test_renaming_a_team_carries_its_team_admins_along(app, teams):
    from app.services import teams as team_service
    ta, _ = users.add({"username": "ta", "role": "team_admin", "teams": ["research", "growth"]},
                      actor="t")
    team_service.update(teams[0], {"name": "science"}, actor="boss")
    assert fresh(ta.id).teams == ["science", "growth"]
    assert audit_rows(entity_id=ta.id)[-1].diff == {"teams": [["research", "growth"],
                                                              ["science", "growth"]]}


def test_the_cli_path_trims_and_keeps_its_messages(app):
    user = users.create("  root  ", "longenough1", "admin", actor="cli")
    assert user.username == "root"
    with pytest.raises(ValidationFailed, match="at least 8"):
        users.create("x", "short", "admin", actor="cli")
    with pytest.raises(Conflict, match="already exists"):
        users.create("ROOT", "longenough1", "admin", actor="cli")
