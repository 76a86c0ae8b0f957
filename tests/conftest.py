"""Shared fixtures: an app on a temporary database built by the real migrations.

The database is SQLite by default. ``GATEWAY_TEST_DATABASE=postgresql`` runs the same tests on
PostgreSQL: a throwaway cluster started for the session (Debian's postgresql package), or an
existing server when the variable holds a URL (``postgresql://user@host:5432/postgres``; the
user must be allowed to create databases). Each test gets a database of its own, copied from a
migrated template.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TEST_DATABASE = os.environ.get("GATEWAY_TEST_DATABASE", "sqlite").strip() or "sqlite"
ON_POSTGRES = TEST_DATABASE.startswith("postgres")
_db_numbers = itertools.count(1)


def pytest_report_header(config):
    return f"gateway test database: {'PostgreSQL' if ON_POSTGRES else 'SQLite'}"


def pytest_collection_modifyitems(config, items):
    """The PostgreSQL pass runs every test that uses the app's database (the ``database_url``
    fixture, through ``app``, ``client``, ``app_factory``...); the others (pure functions, the
    e2e suites with their own gunicorn and SQLite files, the browser) do not depend on the
    database and run on the SQLite pass only. ``@pytest.mark.sqlite_only``: a test about the
    embedded file itself, skipped on the PostgreSQL pass."""
    if not ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="about the embedded SQLite file (GATEWAY_TEST_DATABASE=postgresql)")
    keep, dropped = [], []
    for item in items:
        if "database_url" not in getattr(item, "fixturenames", ()):
            dropped.append(item)
            continue
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


from tests.support.servers import Databases  # noqa: E402


class ExistingPostgres(Databases):
    """A server given by URL: databases are created and dropped through it."""

    def __init__(self, url: str):
        from sqlalchemy.engine import make_url
        self.base = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1)
                             if url.startswith("postgresql://") else url)

    def url_for(self, database: str) -> str:
        return self.base.set(database=database).render_as_string(hide_password=False)

    def execute(self, database: str, sql: str) -> None:
        import psycopg
        u = self.base
        with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username,
                             password=u.password, dbname=database, autocommit=True) as conn:
            conn.execute(sql)



@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """The PostgreSQL server of the PostgreSQL pass (None on the SQLite pass)."""
    if not ON_POSTGRES:
        yield None
        return
    if "://" in TEST_DATABASE:
        yield ExistingPostgres(TEST_DATABASE)
        return
    from tests.support.servers import postgres_server
    with postgres_server(tmp_path_factory.mktemp("pg")) as pg:
        yield pg


def _dispose(app) -> None:
    from app.extensions import db
    writer = app.extensions.get("gateway_usage_writer")
    if writer is not None:  # what is left is written now, not by atexit once the DB is gone
        writer.flush()
        writer.pending.clear()
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def _migrated_postgres(pg, tmp_root: Path) -> str:
    """Migrate a template database once per session; each test gets a copy."""
    from flask_migrate import upgrade

    from app import create_app

    name = f"gw_template_{os.getpid()}"
    pg.drop_database(name)
    url = pg.create_database(name)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True,
                      "INSTANCE_PATH": str(tmp_root), "GATEWAY_SECRET_KEY": "t",
                      "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode()})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    _dispose(app)
    return name


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
def template_db(tmp_path_factory, pg_server):
    if pg_server is not None:
        name = _migrated_postgres(pg_server, tmp_path_factory.mktemp("template"))
        yield name
        pool = _pools.pop(name, None)
        if pool is not None:
            pool.close()
        pg_server.drop_database(name)
        return
    yield _migrated_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def database_url(tmp_path, template_db, pg_server):
    """This test's own database (a copy of the migrated template), as a SQLAlchemy URL."""
    if pg_server is None:
        import shutil
        db_path = tmp_path / "gateway.db"
        shutil.copy(template_db, db_path)
        yield f"sqlite:///{db_path}"
        return
    pool = _database_pool(pg_server, template_db)
    name = pool.take()
    yield pg_server.url_for(name)
    pool.give_back(name)


class DatabasePool:
    """Copies of the template made ahead by a background thread (and dropped by it after use),
    so a test waits for neither CREATE DATABASE nor DROP DATABASE: the server does them on the
    other core while the previous test runs."""

    def __init__(self, pg, template: str, ready: int = 3):
        import queue
        import threading
        self.pg, self.template = pg, template
        self.ready: queue.Queue = queue.Queue(maxsize=ready)
        self.used: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        threading.Thread(target=self._make, daemon=True, name="test-db-maker").start()
        threading.Thread(target=self._drop, daemon=True, name="test-db-dropper").start()

    closed = False

    def _make(self) -> None:
        while not self.closed:
            name = f"gw_test_{os.getpid()}_{next(_db_numbers)}"
            try:
                self.pg.create_database(name, self.template)
            except BaseException as exc:  # surfaced by take()
                self.error = exc
                self.ready.put(None)
                return
            self.ready.put(name)

    def _drop(self) -> None:
        while True:
            name = self.used.get()
            try:
                self.pg.drop_database(name)
            except Exception:
                pass

    def take(self) -> str:
        name = self.ready.get(timeout=120)
        if name is None:
            raise RuntimeError(f"could not create a test database: {self.error!r}")
        return name

    def give_back(self, name: str) -> None:
        self.used.put(name)

    def close(self) -> None:
        """Drop what is left (on a shared server nothing of this session may stay behind)."""
        import time
        self.closed = True
        deadline = time.monotonic() + 10
        while not self.used.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        while not self.ready.empty():
            name = self.ready.get_nowait()
            if name:
                self.pg.drop_database(name)


_pools: dict = {}


def _database_pool(pg, template: str) -> DatabasePool:
    if template not in _pools:
        _pools[template] = DatabasePool(pg, template)
    return _pools[template]


@pytest.fixture
def app_factory(tmp_path, database_url):
    """Build apps sharing one migrated DB for this test (e.g. to change encryption keys)."""
    from app import create_app

    enc = Fernet.generate_key().decode()
    made = []

    def make(**overrides):
        config = {"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True,
                  "INSTANCE_PATH": str(tmp_path), "GATEWAY_SECRET_KEY": "test-secret",
                  "GATEWAY_ENCRYPTION_KEYS": enc, "WTF_CSRF_ENABLED": False,
                  "HEALTH_CHECK_TIMEOUT": 2.0, "LOGIN_MAX_FAILURES": 5}
        config.update(overrides)
        app = create_app(config)
        made.append(app)
        return app

    yield make
    if ON_POSTGRES:  # close the pools before the database is dropped
        for app in made:
            _dispose(app)


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
