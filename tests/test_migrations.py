"""Migrations build the schema and stay expand-then-contract compatible."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.fernet import Fernet
from flask_migrate import downgrade, upgrade

from app import create_app

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def _app(tmp_path):
    return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'm.db'}",
                       "INSTANCE_PATH": str(tmp_path), "GATEWAY_SECRET_KEY": "x",
                       "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode()})


def test_upgrade_keeps_rows_written_by_the_previous_release(tmp_path):
    app = _app(tmp_path)
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="0001")
    con = sqlite3.connect(tmp_path / "m.db")
    con.execute("INSERT INTO providers (name, slug, type, api_base, config, connect_timeout, read_timeout,"
                " enabled, trust_level, health_status, created_at, updated_at)"
                " VALUES ('P', 'p', 'openai', 'http://x/v1', '{}', 5, 60, 1, 'public', 'unknown',"
                " '2026-01-01', '2026-01-01')")
    con.commit()
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    # an old (0001) worker still inserting its own columns into the new schema works
    con.execute("INSERT INTO usage_records (created_at, endpoint, prompt_tokens, completion_tokens,"
                " cached_tokens, tokens_estimated, cost_usd, status_code, cache_hit, stream)"
                " VALUES ('2026-01-01', 'chat', 1, 2, 0, 0, 0, 200, 0, 0)")
    con.commit()
    assert con.execute("SELECT name, limits FROM providers").fetchall() == [("P", None)]
    assert con.execute("SELECT owner FROM usage_records").fetchall() == [(None,)]
    con.close()


def test_downgrade_to_base_and_back(tmp_path):
    app = _app(tmp_path)
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        downgrade(directory=MIGRATIONS, revision="base")
        upgrade(directory=MIGRATIONS)
    con = sqlite3.connect(tmp_path / "m.db")
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"providers", "models", "gateway_keys", "usage_records", "teams", "audit_log",
            "health_checks", "users", "gateway_state"} <= tables
