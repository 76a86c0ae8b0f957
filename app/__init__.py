"""Application factory: config, extensions, blueprints. No DB writes, network or migrations."""
from __future__ import annotations

import logging
import sqlite3

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import dbtext  # noqa: F401  (binds text every database can store)
from app.config import BASE_DIR, load_config
from app.extensions import csrf, db, login_manager, migrate


def create_app(overrides: dict | None = None) -> Flask:
    config = load_config(overrides)
    app = Flask(__name__, instance_path=config["INSTANCE_PATH"],
                template_folder=str(BASE_DIR / "templates"), static_folder=str(BASE_DIR / "static"))
    app.config.update(config)
    app.url_map.converters["int"] = BoundedInt
    if not app.debug:
        logging.basicConfig(level=logging.INFO)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True,
                     compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)

    from app import cli, errors, openapi, ops, security
    from app.admin import bp as admin_bp
    from app.api import bp as api_bp
    from app.proxy import bp as proxy_bp
    from app.proxy.messages import bp as messages_bp
    from app.proxy.responses import bp as responses_bp

    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(proxy_bp)
    app.register_blueprint(responses_bp)
    app.register_blueprint(messages_bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(openapi.bp)
    ops.install_request_ids(app)
    security.install_headers(app)
    csrf.exempt(api_bp)
    csrf.exempt(proxy_bp)
    csrf.exempt(responses_bp)
    csrf.exempt(messages_bp)
    errors.register(app)
    cli.register(app)
    return app


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """WAL + busy timeout on every SQLite connection: readers never block the writer."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


from werkzeug.routing import IntegerConverter  # noqa: E402


class BoundedInt(IntegerConverter):
    """<int:...> ids an INTEGER column can hold: a larger one becomes 0 (no row has it), so every
    method still reaches its view and answers the service's 404 instead of an overflow."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if -(2**31) < number < 2**31 else 0  # INTEGER ids (32-bit on PostgreSQL)
