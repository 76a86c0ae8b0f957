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


def test_migrations_build_exactly_the_models_schema_on_this_database(database_url, pg_server,
                                                                     tmp_path):
    """On each pass's database (SQLite, then PostgreSQL): an empty database upgraded to head has
    the models' schema exactly (what `flask db check` compares), and base -> head -> base ->
    head works with the tables really gone in between."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from app.extensions import db

    if pg_server is None:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        name = f"gw_migrations_{tmp_path.name}"[:60]
        pg_server.drop_database(name)
        url = pg_server.create_database(name)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(tmp_path),
                      "GATEWAY_SECRET_KEY": "x",
                      "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    try:
        with app.app_context():
            upgrade(directory=MIGRATIONS)
            with db.engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"compare_type": True})
                assert compare_metadata(ctx, db.metadata) == []
            downgrade(directory=MIGRATIONS, revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            upgrade(directory=MIGRATIONS)
            assert {"providers", "models", "gateway_keys", "usage_records", "usage_rollups",
                    "audit_log", "users"} <= set(inspect(db.engine).get_table_names())
            assert db.engine.dialect.name == ("sqlite" if pg_server is None else "postgresql")
    finally:
        with app.app_context():
            db.engine.dispose()
        if pg_server is not None:
            pg_server.drop_database(name)
