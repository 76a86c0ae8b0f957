"""flask CLI commands: users, keys, encryption key rotation, demo seed, health checks."""
from __future__ import annotations

import json
import secrets
import sys
import time

import click
from cryptography.fernet import Fernet
from flask import Flask, current_app

from app.services import health, keys, models, providers, users
from app.services.errors import ServiceError


def _fail(exc: ServiceError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)


def ensure_admin_from_env(app: Flask) -> str | None:
    """Create the admin from GATEWAY_ADMIN_USER/PASSWORD when no user exists yet."""
    username, password = app.config.get("GATEWAY_ADMIN_USER"), app.config.get("GATEWAY_ADMIN_PASSWORD")
    if not (username and password) or users.count() > 0:
        return None
    users.create(username, password, "admin", actor="startup")
    return username


def register(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.option("--username", prompt=True)
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    @click.option("--role", type=click.Choice(["admin", "operator", "viewer", "team_admin"]),
                  default="admin")
    @click.option("--team", "teams", multiple=True,
                  help="team_admin: a team whose keys and usage the user manages (repeatable)")
    def create_admin(username, password, role, teams):
        """Create a console user (admin by default)."""
        if role == "team_admin" and not teams:
            _fail(ServiceError("a team_admin needs at least one --team"))
        try:
            users.create(username, password, role, actor="cli", teams=sorted(set(teams)))
        except ServiceError as exc:
            _fail(exc)
        click.echo(f"created {role} '{username}'" + (f" for team(s) {', '.join(sorted(set(teams)))}"
                                                      if role == "team_admin" else ""))

    @app.cli.command("ensure-admin")
    @click.option("--generate", is_flag=True,
                  help="with no user and no GATEWAY_ADMIN_* set, create 'admin' with a random password and print it")
    def ensure_admin(generate):
        """Create the admin from GATEWAY_ADMIN_USER/GATEWAY_ADMIN_PASSWORD if no user exists."""
        try:
            created = ensure_admin_from_env(current_app)
            if created:
                click.echo(f"created admin '{created}' from GATEWAY_ADMIN_USER")
            elif users.count() == 0 and generate:
                password = secrets.token_urlsafe(12)
                users.create("admin", password, "admin", actor="startup")
                click.echo("=" * 60)
                click.echo("  created the first console user (shown once):")
                click.echo("    username: admin")
                click.echo(f"    password: {password}")
                click.echo("=" * 60)
            else:
                click.echo(f"{users.count()} console user(s) exist; no admin created")
        except ServiceError as exc:
            _fail(exc)

    @app.cli.command("create-key")
    @click.option("--name", required=True)
    @click.option("--scopes", default="chat,embeddings,models", show_default=True,
                  help="comma-separated: chat, embeddings, models, admin")
    @click.option("--owner", default=None)
    @click.option("--models", "allowed", default="", help="comma-separated allowed models (empty = all)")
    @click.option("--limits", "limits_json", default=None,
                  help='JSON, e.g. \'{"rpm": 60, "tpm": 100000, "concurrency": 4}\'')
    @click.option("--budget", "budget_json", default=None,
                  help='JSON, e.g. \'{"amount_usd": 10, "period": "month"}\'')
    def create_key(name, scopes, owner, allowed, limits_json, budget_json):
        """Create a gateway key; prints only the key (shown this once)."""
        try:
            data = {"name": name, "scopes": scopes, "owner": owner, "allowed_models": allowed}
            for field, raw_json in (("limits", limits_json), ("budget", budget_json)):
                if raw_json:
                    try:
                        data[field] = json.loads(raw_json)
                    except ValueError:
                        raise ServiceError(f"--{field} must be JSON") from None
            _, raw = keys.create(data, actor="cli")
        except ServiceError as exc:
            _fail(exc)
        click.echo(raw)

    @app.cli.command("rotate-encryption-key")
    def rotate_encryption_key():
        """Re-encrypt all provider secrets with the newest key in GATEWAY_ENCRYPTION_KEYS."""
        rotated, errors = providers.rotate_all(actor="cli")
        click.echo(f"re-encrypted {rotated} secret(s) with key {_current_key_id()}")
        for err in errors:
            click.echo(f"error: {err}", err=True)
        if errors:
            sys.exit(1)

    @app.cli.command("generate-encryption-key")
    def generate_encryption_key():
        """Print a new Fernet key to put first in GATEWAY_ENCRYPTION_KEYS."""
        click.echo(Fernet.generate_key().decode())

    @app.cli.command("seed-demo")
    @click.option("--base-url", default="http://127.0.0.1:18000/v1", show_default=True,
                  help="an OpenAI-compatible upstream, e.g. shared/bench/fake_upstream.py")
    @click.option("--name", default="Demo (fake upstream)", show_default=True)
    @click.option("--model", "model_ids", multiple=True, default=("fake-model",), show_default=True)
    def seed_demo(base_url, name, model_ids):
        """Create a demo OpenAI-compatible provider and models pointing at a local fake upstream."""
        existing = next((p for p in providers.list_all() if p.name == name), None)
        try:
            provider = existing or providers.create(
                {"name": name, "type": "openai-compatible", "api_base": base_url,
                 "api_key": "sk-demo-not-a-real-key", "trust_level": "local"}, actor="seed")
            for mid in model_ids:
                if not any(m.model_id == mid for m in provider.models):
                    models.create({"provider_id": provider.id, "model_id": mid,
                                   "kind": "embedding" if "embed" in mid else "chat",
                                   "supports_tools": True, "input_price_per_mtok": "0.15",
                                   "output_price_per_mtok": "0.60"}, actor="seed")
        except ServiceError as exc:
            _fail(exc)
        click.echo(f"provider '{provider.name}' (id {provider.id}) -> {base_url}, "
                   f"models: {', '.join(model_ids)}")

    @app.cli.command("set-setting")
    @click.argument("path")
    @click.argument("value")
    def set_setting(path, value):
        """Change a gateway setting, e.g. `set-setting cache.enabled false` (VALUE is JSON)."""
        from app.services import settings
        section, _, field = path.partition(".")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value  # a bare string
        try:
            result = settings.update({section: {field: parsed}}, actor="cli")
        except ServiceError as exc:
            _fail(exc)
        click.echo(json.dumps(result.get(section), sort_keys=True))

    @app.cli.command("prune-usage")
    @click.option("--days", type=int, default=90, show_default=True, help="keep this many days of raw records")
    @click.option("--batch", type=int, default=5000, show_default=True)
    @click.option("--body-days", type=int, default=7, show_default=True,
                  help="keep logged request/response bodies this many days")
    @click.option("--responses-days", type=int, default=30, show_default=True,
                  help="keep stored Responses API objects (store: true) this many days")
    def prune_usage(days, batch, body_days, responses_days):
        """Delete raw usage records older than --days in bounded batches (rollups are kept),
        and logged bodies older than --body-days."""
        from app.services.usage_query import prune, prune_bodies
        click.echo(f"deleted {prune(days, batch)} usage record(s) older than {days} day(s)")
        click.echo(f"deleted {prune_bodies(body_days)} logged body/bodies older than {body_days} day(s)")
        from app.services.responses_api import prune as prune_responses
        click.echo(f"deleted {prune_responses(responses_days, batch)} stored response(s) older than "
                   f"{responses_days} day(s)")

    @app.cli.command("seed-usage")
    @click.option("--rows", type=int, default=100_000, show_default=True)
    @click.option("--days", type=int, default=30, show_default=True)
    @click.option("--batch", type=int, default=20_000, show_default=True)
    def seed_usage(rows, days, batch):
        """Generate synthetic usage records (and their rollups) for load-testing the dashboard."""
        from app.services.seeding import seed_usage as run
        started = time.time()
        made = run(rows, days, batch, progress=lambda n: click.echo(f"  {n:,} rows", err=True))
        click.echo(f"inserted {made:,} usage record(s) over {days} day(s) in {time.time() - started:.1f}s")

    @app.cli.command("health-check")
    @click.option("--loop", is_flag=True, help="keep running every GATEWAY_HEALTH_INTERVAL seconds")
    def health_check(loop):
        """Check every enabled provider now (cron-able), or forever with --loop."""
        while True:
            for name, result in health.check_all("cli"):
                extra = f" {result['latency_ms']} ms" if result["latency_ms"] is not None else ""
                err = f" ({result['error']})" if result["error"] else ""
                click.echo(f"{name}: {result['status']}{extra}{err}")
            if not loop:
                break
            time.sleep(current_app.config["HEALTH_CHECK_INTERVAL"])


def _current_key_id() -> str:
    from app.services.secrets import get_box
    return get_box().current_id
