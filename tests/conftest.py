"""Shared fixtures: an app on a temporary SQLite DB built by the real migrations."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def _migrated_template(tmp_root: Path) -> Path:
    """Run `flask db upgrade` once per session; each test copies the resulting file."""
    from flask_migrate import upgrade

    from app import create_app

    path = tmp_root / "template.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "TESTING": True,
                      "INSTANCE_PATH": str(tmp_root), "GATEWAY_SECRET_KEY": "t",
                      "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        from app.extensions import db
        with db.engine.connect() as conn:  # fold the WAL into the file before tests copy it
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.engine.dispose()
    return path


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    return _migrated_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def app_factory(tmp_path, template_db):
    """Build apps sharing one migrated DB file for this test (e.g. to change encryption keys)."""
    import shutil

    from app import create_app

    db_path = tmp_path / "gateway.db"
    shutil.copy(template_db, db_path)
    enc = Fernet.generate_key().decode()

    def make(**overrides):
        config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}", "TESTING": True,
                  "INSTANCE_PATH": str(tmp_path), "GATEWAY_SECRET_KEY": "test-secret",
                  "GATEWAY_ENCRYPTION_KEYS": enc, "WTF_CSRF_ENABLED": False,
                  "HEALTH_CHECK_TIMEOUT": 2.0, "LOGIN_MAX_FAILURES": 5}
        config.update(overrides)
        return create_app(config)

    return make


@pytest.fixture
def app(app_factory):
    app = app_factory()
    with app.app_context():
        yield app
        from app.extensions import db
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app):
    from app.services import users

    def make(username="admin", password="correct-horse-1", role="admin"):
        return users.create(username, password, role, actor="test")
    return make


@pytest.fixture
def admin_client(app, make_user):
    make_user("admin", "correct-horse-1", "admin")
    c = app.test_client()
    r = c.post("/login", data={"username": "admin", "password": "correct-horse-1"})
    assert r.status_code in (302, 303), r.data[:500]
    return c


@pytest.fixture
def viewer_client(app, make_user):
    make_user("viewer", "correct-horse-2", "viewer")
    c = app.test_client()
    r = c.post("/login", data={"username": "viewer", "password": "correct-horse-2"})
    assert r.status_code in (302, 303), r.data[:500]
    return c


@pytest.fixture
def admin_key(app):
    """A raw gateway key with the admin scope."""
    from app.services import keys
    _, raw = keys.create({"name": "automation", "scopes": ["admin"]}, actor="test")
    return raw


@pytest.fixture
def api(client, admin_key):
    """A test client wrapper that sends the admin key."""
    class Api:
        headers = {"Authorization": f"Bearer {admin_key}"}

        def get(self, url, **kw):
            return client.get(url, headers=self.headers, **kw)

        def post(self, url, json=None, **kw):
            return client.post(url, json=json, headers=self.headers, **kw)

        def patch(self, url, json=None, **kw):
            return client.patch(url, json=json, headers=self.headers, **kw)

        def put(self, url, json=None, **kw):
            return client.put(url, json=json, headers=self.headers, **kw)

        def delete(self, url, **kw):
            return client.delete(url, headers=self.headers, **kw)
    return Api()


@pytest.fixture
def make_provider(app):
    from app.services import providers

    def make(**data):
        payload = {"name": "Fake OpenAI", "type": "openai-compatible",
                   "api_base": "http://upstream.test/v1", "api_key": "sk-test-secret-123"}
        payload.update(data)
        return providers.create(payload, actor="test")
    return make


@pytest.fixture
def make_model(app):
    from app.services import models

    def make(provider, **data):
        payload = {"provider_id": provider.id, "model_id": "gpt-4o-mini",
                   "input_price_per_mtok": "0.15", "output_price_per_mtok": "0.60"}
        payload.update(data)
        return models.create(payload, actor="test")
    return make
