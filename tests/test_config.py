"""Configuration: dev secrets persisted once, production refuses to start without them."""
from __future__ import annotations

import pytest

from app.config import ConfigError, load_config


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("GATEWAY_SECRET_KEY", "GATEWAY_ENCRYPTION_KEYS", "GATEWAY_DATABASE_URL",
                 "GATEWAY_ENV", "GATEWAY_INSTANCE_PATH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_dev_secrets_are_generated_once_and_persisted(clean_env, tmp_path):
    a = load_config({"INSTANCE_PATH": str(tmp_path)})
    b = load_config({"INSTANCE_PATH": str(tmp_path)})
    assert a["SECRET_KEY"] == b["SECRET_KEY"] and len(a["SECRET_KEY"]) > 30
    assert a["GATEWAY_ENCRYPTION_KEYS"] == b["GATEWAY_ENCRYPTION_KEYS"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert a["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'gateway.db'}"
    other = load_config({"INSTANCE_PATH": str(tmp_path / "other")})
    assert other["SECRET_KEY"] != a["SECRET_KEY"]  # never a hard-coded value


@pytest.mark.parametrize("missing", ["GATEWAY_SECRET_KEY", "GATEWAY_ENCRYPTION_KEYS"])
def test_production_refuses_missing_secret_and_names_it(clean_env, tmp_path, missing):
    clean_env.setenv("GATEWAY_ENV", "production")
    clean_env.setenv("GATEWAY_SECRET_KEY", "s" * 40)
    clean_env.setenv("GATEWAY_ENCRYPTION_KEYS", "k")
    clean_env.delenv(missing)
    with pytest.raises(ConfigError, match=missing):
        load_config({"INSTANCE_PATH": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()


def test_env_overrides(clean_env, tmp_path):
    clean_env.setenv("GATEWAY_DATABASE_URL", "postgresql://u@h/db")
    clean_env.setenv("GATEWAY_SECRET_KEY", "abc")
    cfg = load_config({"INSTANCE_PATH": str(tmp_path)})
    # PostgreSQL always goes through psycopg 3 (gevent-aware), with a sized pool
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    assert cfg["SECRET_KEY"] == "abc"


@pytest.mark.parametrize("url", ["postgres://u:p@h:5433/db", "postgresql://u:p@h:5433/db",
                                 "postgresql+psycopg2://u:p@h:5433/db",
                                 "postgresql+psycopg://u:p@h:5433/db"])
def test_postgres_urls_use_psycopg3_with_the_configured_pool(clean_env, tmp_path, url):
    clean_env.setenv("GATEWAY_DATABASE_URL", url)
    clean_env.setenv("GATEWAY_DB_POOL_SIZE", "7")
    clean_env.setenv("GATEWAY_DB_MAX_OVERFLOW", "3")
    clean_env.setenv("GATEWAY_DB_POOL_TIMEOUT", "2.5")
    cfg = load_config({"INSTANCE_PATH": str(tmp_path)})
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@h:5433/db"
    opts = cfg["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (opts["pool_size"], opts["max_overflow"], opts["pool_timeout"]) == (7, 3, 2.5)
    assert opts["pool_pre_ping"] is True and opts["pool_recycle"] > 0


def test_sqlite_gets_no_pool_sizing(clean_env, tmp_path):
    cfg = load_config({"INSTANCE_PATH": str(tmp_path)})
    assert cfg["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True}


def test_create_app_has_no_side_effects(clean_env, tmp_path):
    from app import create_app
    db_file = tmp_path / "x.db"
    create_app({"INSTANCE_PATH": str(tmp_path), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}",
                "GATEWAY_SECRET_KEY": "a", "GATEWAY_ENCRYPTION_KEYS": "b"})
    assert not db_file.exists()


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode(app):
    from app.extensions import db
    assert db.session.execute(db.text("PRAGMA journal_mode")).scalar() == "wal"
    assert db.session.execute(db.text("PRAGMA busy_timeout")).scalar() == 5000
