"""flask CLI commands."""
from __future__ import annotations

from app.extensions import db
from app.models import GatewayKey, Model, Provider, User
from app.services import keys


def test_create_admin_and_duplicate(app):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["create-admin", "--username", "root", "--password", "longenough1"])
    assert r.exit_code == 0, r.output
    user = db.session.scalars(db.select(User)).one()
    assert user.role == "admin" and user.check_password("longenough1")
    r = runner.invoke(args=["create-admin", "--username", "root", "--password", "longenough1"])
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(args=["create-admin", "--username", "x", "--password", "short"])
    assert r.exit_code == 1 and "at least 8" in r.output


def test_create_admin_with_the_new_roles(app):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["create-admin", "--username", "ops", "--password", "longenough1",
                            "--role", "operator"])
    assert r.exit_code == 0 and "created operator 'ops'" in r.output
    r = runner.invoke(args=["create-admin", "--username", "ta", "--password", "longenough1",
                            "--role", "team_admin"])
    assert r.exit_code == 1 and "needs at least one --team" in r.output
    r = runner.invoke(args=["create-admin", "--username", "ta", "--password", "longenough1",
                            "--role", "team_admin", "--team", "x", "--team", "y"])
    assert r.exit_code == 0, r.output
    user = db.session.scalar(db.select(User).where(User.username == "ta"))
    assert (user.role, user.teams) == ("team_admin", ["x", "y"])


def test_create_key_prints_only_the_key(app):
    r = app.test_cli_runner().invoke(args=["create-key", "--name", "ci", "--scopes", "admin"])
    assert r.exit_code == 0, r.output
    raw = r.output.strip()
    assert raw.startswith("gw-") and "\n" not in raw
    k = keys.find_by_secret(raw)
    assert k is not None and k.scopes == ["admin"] and k.name == "ci"
    r = app.test_cli_runner().invoke(args=["create-key", "--name", "x", "--scopes", "bogus"])
    assert r.exit_code == 1 and "bogus" in r.output


def test_ensure_admin_from_env_and_generate(app_factory):
    app = app_factory(GATEWAY_ADMIN_USER="boss", GATEWAY_ADMIN_PASSWORD="pa55word-long")
    r = app.test_cli_runner().invoke(args=["ensure-admin"])
    assert "created admin 'boss'" in r.output
    r = app.test_cli_runner().invoke(args=["ensure-admin", "--generate"])
    assert "1 console user(s) exist" in r.output


def test_ensure_admin_generates_printed_password(app):
    r = app.test_cli_runner().invoke(args=["ensure-admin", "--generate"])
    assert r.exit_code == 0
    line = next(l for l in r.output.splitlines() if "password:" in l)
    password = line.split("password:")[1].strip()
    user = db.session.scalars(db.select(User)).one()
    assert user.username == "admin" and user.check_password(password)


def test_seed_demo_is_idempotent(app):
    runner = app.test_cli_runner()
    for _ in range(2):
        r = runner.invoke(args=["seed-demo", "--base-url", "http://127.0.0.1:18000/v1",
                                "--model", "fake-model", "--model", "fake-embed"])
        assert r.exit_code == 0, r.output
    p = db.session.scalars(db.select(Provider)).one()
    assert p.api_base == "http://127.0.0.1:18000/v1" and p.type == "openai-compatible"
    kinds = {m.model_id: m.kind for m in db.session.scalars(db.select(Model))}
    assert kinds == {"fake-model": "chat", "fake-embed": "embedding"}


def test_generate_encryption_key(app):
    from cryptography.fernet import Fernet
    out = app.test_cli_runner().invoke(args=["generate-encryption-key"]).output.strip()
    Fernet(out.encode())  # valid key


def test_create_key_with_limits_and_budget(app):
    r = app.test_cli_runner().invoke(args=["create-key", "--name", "b", "--limits", '{"rpm": 5}',
                                           "--budget", '{"amount_usd": 3, "period": "day"}'])
    assert r.exit_code == 0, r.output
    k = keys.find_by_secret(r.output.strip())
    assert k.limits == {"rpm": 5} and k.budget["period"] == "day"
    r = app.test_cli_runner().invoke(args=["create-key", "--name", "b", "--limits", "{bad"])
    assert r.exit_code == 1 and "--limits must be JSON" in r.output


def test_set_setting(app):
    r = app.test_cli_runner().invoke(args=["set-setting", "cache.enabled", "false"])
    assert r.exit_code == 0 and '"enabled": false' in r.output
    from app.services import settings
    assert settings.current()["cache"]["enabled"] is False
    r = app.test_cli_runner().invoke(args=["set-setting", "sensitivity.action", "explode"])
    assert r.exit_code == 1 and "action must be one of" in r.output


def test_seed_usage_builds_consistent_rollups(app):
    from app.models import UsageRecord, UsageRollup
    r = app.test_cli_runner().invoke(args=["seed-usage", "--rows", "3000", "--days", "2"])
    assert r.exit_code == 0 and "inserted 3,000" in r.output
    raw = db.session.execute(db.select(db.func.count(UsageRecord.id), db.func.sum(UsageRecord.prompt_tokens))).one()
    # each row's random draws are taken once: a 200 never carries an error class
    assert db.session.scalar(db.select(db.func.count(UsageRecord.id)).where(
        UsageRecord.status_code == 200, UsageRecord.error_class.is_not(None))) == 0
    for dim in ("model", "provider", "key", "owner"):
        rolled = db.session.execute(db.select(db.func.sum(UsageRollup.requests), db.func.sum(UsageRollup.prompt_tokens))
                                    .where(UsageRollup.dim == dim)).one()
        assert tuple(rolled) == tuple(raw), dim
