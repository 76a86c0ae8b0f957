"""Configuration from GATEWAY_* environment variables, with development defaults.

In development, missing secrets (GATEWAY_SECRET_KEY, GATEWAY_ENCRYPTION_KEYS) are generated once
and persisted in the instance folder; in production (GATEWAY_ENV=production) a missing one stops
start-up with a message naming the variable.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = BASE_DIR / "instance"


class ConfigError(RuntimeError):
    """Raised when production configuration is incomplete."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _persisted_secret(instance: Path, filename: str, make) -> str:
    """Read a dev secret from the instance folder, creating it (0600) on first use."""
    path = instance / filename
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = make()
    # O_EXCL: when several workers race, one wins and the others read its value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def load_config(overrides: dict | None = None) -> dict:
    """Build the Flask config mapping from the environment."""
    overrides = overrides or {}
    env = overrides.get("GATEWAY_ENV") or _env("GATEWAY_ENV", "development")
    production = env == "production"
    instance = Path(overrides.get("INSTANCE_PATH") or _env("GATEWAY_INSTANCE_PATH") or DEFAULT_INSTANCE)

    def secret(name: str, filename: str, make) -> str:
        if name in overrides:
            return overrides[name]
        value = _env(name)
        if value:
            return value
        if production:
            raise ConfigError(f"{name} must be set when GATEWAY_ENV=production")
        return _persisted_secret(instance, filename, make)

    db_url = overrides.get("SQLALCHEMY_DATABASE_URI") or _env(
        "GATEWAY_DATABASE_URL", f"sqlite:///{instance / 'gateway.db'}")
    if production and not _env("GATEWAY_DATABASE_URL") and "SQLALCHEMY_DATABASE_URI" not in overrides:
        # an embedded SQLite in production is allowed, but it must be a deliberate choice
        pass

    cfg = {
        "GATEWAY_ENV": env,
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": secret("GATEWAY_SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(48)),
        "GATEWAY_ENCRYPTION_KEYS": secret("GATEWAY_ENCRYPTION_KEYS", "encryption_keys",
                                          lambda: Fernet.generate_key().decode()),
        "GATEWAY_MASTER_KEY": _env("GATEWAY_MASTER_KEY"),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": int(_env("GATEWAY_MAX_BODY_BYTES", str(20 * 1024 * 1024))),
        # a non-stream upstream answer larger than this is refused with a 502
        "MAX_UPSTREAM_BYTES": int(_env("GATEWAY_MAX_UPSTREAM_BYTES", str(64 * 1024 * 1024))),
        "LOGIN_MAX_FAILURES": int(_env("GATEWAY_LOGIN_MAX_FAILURES", "5")),
        "LOGIN_LOCKOUT_SECONDS": int(_env("GATEWAY_LOGIN_LOCKOUT_SECONDS", "300")),
        "HEALTH_CHECK_INTERVAL": int(_env("GATEWAY_HEALTH_INTERVAL", "60")),
        "HEALTH_CHECK_TIMEOUT": float(_env("GATEWAY_HEALTH_TIMEOUT", "5")),
        "GATEWAY_ADMIN_USER": _env("GATEWAY_ADMIN_USER"),
        "GATEWAY_ADMIN_PASSWORD": _env("GATEWAY_ADMIN_PASSWORD"),
        "CACHE_TTL_SECONDS": float(_env("GATEWAY_CACHE_TTL", "2")),
        "USAGE_FLUSH_INTERVAL": float(_env("GATEWAY_USAGE_FLUSH_INTERVAL", "1")),
        # usage records a worker keeps in memory while the DB refuses writes; beyond it the
        # oldest are dropped (counted in gateway_usage_dropped_total and logged)
        "USAGE_MAX_PENDING": int(_env("GATEWAY_USAGE_MAX_PENDING", "200000")),
        # whole non-stream exchange / wait for a stream's first bytes, on top of per-read timeouts
        "REQUEST_DEADLINE_SECONDS": float(_env("GATEWAY_REQUEST_DEADLINE", "600")),
        "GATEWAY_HTTP_CLIENT": _env("GATEWAY_HTTP_CLIENT", "gevent"),
        # counter store for rate limits and budgets: default a SQLite file beside the DB
        "LIMITS_STORE_URL": _env("GATEWAY_LIMITS_URL"),
        "METRICS_TOKEN": _env("GATEWAY_METRICS_TOKEN"),
        "LIMITS_SETTLE_INTERVAL": float(_env("GATEWAY_LIMITS_SETTLE_INTERVAL", "0.02")),
        # how long an in-flight request's slot/reservation survives a worker killed mid-request
        "LIMITS_LEASE_TTL": float(_env("GATEWAY_LIMITS_LEASE_TTL", "900")),
        # scale-out (docs/deploy.md): Redis for shared counters, response cache, breaker state
        # and config-change notifications; without it the embedded SQLite stores are used
        "REDIS_URL": _env("GATEWAY_REDIS_URL"),
        # what the proxy does while Redis is unreachable: "open" (local per-worker limits,
        # requests keep flowing) or "closed" (refuse with 503 until Redis is back)
        "REDIS_FAILURE": (_env("GATEWAY_REDIS_FAILURE", "open") or "open").strip().lower(),
        # PostgreSQL connection pool (per worker process); ignored for SQLite
        "DB_POOL_SIZE": int(_env("GATEWAY_DB_POOL_SIZE", "10")),
        "DB_MAX_OVERFLOW": int(_env("GATEWAY_DB_MAX_OVERFLOW", "20")),
        "DB_POOL_TIMEOUT": float(_env("GATEWAY_DB_POOL_TIMEOUT", "10")),
        # single sign-on (OpenID Connect) for the console: docs/sso.md
        **{name: _env(name) for name in (
            "GATEWAY_OIDC_ISSUER", "GATEWAY_OIDC_CLIENT_ID", "GATEWAY_OIDC_CLIENT_SECRET",
            "GATEWAY_OIDC_ALLOWED_DOMAINS", "GATEWAY_OIDC_ROLE_MAP", "GATEWAY_OIDC_SCOPES",
            "GATEWAY_OIDC_REDIRECT_URI")},
        "GATEWAY_OIDC_ROLE_CLAIM": _env("GATEWAY_OIDC_ROLE_CLAIM", "groups"),
    }
    cfg.update(overrides)
    cfg["SQLALCHEMY_DATABASE_URI"] = database_url(cfg["SQLALCHEMY_DATABASE_URI"])
    if "SQLALCHEMY_ENGINE_OPTIONS" not in overrides:
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(cfg)
    return cfg


def database_url(url: str) -> str:
    """PostgreSQL URLs go through psycopg 3 (gevent-aware from 3.1.14: its waits yield to other
    greenlets under monkey-patching), however they are spelled."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def engine_options(cfg: dict) -> dict:
    """SQLite: SQLAlchemy's defaults (a file, no pool to size). PostgreSQL: a pool per worker
    process sized by GATEWAY_DB_POOL_SIZE / _MAX_OVERFLOW / _TIMEOUT; connections are checked
    before use and recycled so a database failover or an idle-timeout proxy never hands a dead
    one to a request."""
    options: dict = {"pool_pre_ping": True}
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        options.update(pool_size=cfg["DB_POOL_SIZE"], max_overflow=cfg["DB_MAX_OVERFLOW"],
                       pool_timeout=cfg["DB_POOL_TIMEOUT"], pool_recycle=1800,
                       connect_args={"connect_timeout": 10,
                                     "application_name": "llm-gateway"})
    return options
