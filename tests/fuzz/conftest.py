"""Fixtures for the fuzz tests: an app wired like the proxy tests, a seeded configuration and an
OpenAI-shaped fake upstream at http://up.test (every other outbound host is unreachable)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
import responses

MAX_BODY = 1024 * 1024  # MAX_CONTENT_LENGTH of the fuzzed app: bigger bodies must get a 413


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: generated-request (schemathesis) and hostile-input "
                                       "tests against the WSGI app")


@dataclass
class FuzzEnv:
    app: object
    client: object
    admin_key: str
    chat_key: str
    doc: dict
    upstream: object
    # ids the fuzzer may aim at (per path parameter) and ids it must not modify or delete
    ids: dict[str, list] = field(default_factory=dict)
    protected: dict[str, set] = field(default_factory=dict)
    decoys: dict[str, int] = field(default_factory=dict)
    # tracebacks the app logged (app.errors) while the fuzzer ran: a 5xx's cause in the report
    server_errors: list = field(default_factory=list)

    @property
    def admin(self) -> dict:
        return {"Authorization": f"Bearer {self.admin_key}"}

    @property
    def chat(self) -> dict:
        return {"Authorization": f"Bearer {self.chat_key}"}


def serve_document(app) -> None:
    """The factory may not register the blueprint yet: do it before the first request."""
    if "openapi" not in app.blueprints:
        from app.openapi import bp
        app.register_blueprint(bp)


@pytest.fixture
def fuzz_env(app_factory):
    from app.openapi import build_document
    from app.services import groups, keys, models, providers, teams

    from tests.fuzz.fake_upstream import FakeUpstream, UPSTREAM_CHAT_ID, UPSTREAM_EMBED_ID

    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0, MAX_CONTENT_LENGTH=MAX_BODY,
                      HEALTH_CHECK_TIMEOUT=0.5)
    serve_document(app)
    doc = build_document()
    upstream = FakeUpstream(doc)
    # the app logs every 5xx with its traceback (which the fuzz test reports itself)
    quiet = logging.getLogger("app.errors")
    level, propagate = quiet.level, quiet.propagate
    quiet.setLevel(logging.ERROR)
    quiet.propagate = False  # kept by the handler below, not printed
    caught: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            caught.append(logging.Formatter().format(record)[-4000:])
    keeper = Keep()
    quiet.addHandler(keeper)
    # Seed in an app context of its own, then leave it: every request must get its own context
    # (and DB session), as in production, so one failed request cannot poison the next.
    with app.app_context():
        admin, admin_raw = keys.create({"name": "fuzz-admin", "scopes": ["admin"]}, actor="fuzz")
        chat, chat_raw = keys.create({"name": "fuzz-app", "scopes": ["chat", "embeddings",
                                                                     "models"]}, actor="fuzz")
        decoy_key, _ = keys.create({"name": "decoy", "owner": "decoy-team"}, actor="fuzz")
        up = providers.create({"name": "Up", "type": "openai-compatible",
                               "api_base": "http://up.test/v1", "api_key": "sk-up-1"}, actor="fuzz")
        mini = models.create({"provider_id": up.id, "model_id": UPSTREAM_CHAT_ID, "name": "mini",
                              "supports_tools": True, "supports_json": True,
                              "supports_vision": True}, actor="fuzz")
        embed = models.create({"provider_id": up.id, "model_id": UPSTREAM_EMBED_ID,
                               "kind": "embedding"}, actor="fuzz")
        decoy_p = providers.create({"name": "Decoy", "type": "openai",
                                    "api_base": "http://up.test/v1", "api_key": "sk-d"},
                                   actor="fuzz")
        decoy_m = models.create({"provider_id": decoy_p.id, "model_id": "gpt-4o",
                                 "name": "decoy-model"}, actor="fuzz")
        team = teams.create({"name": "decoy-team", "budget": {"amount_usd": "100"}},
                            actor="fuzz")
        groups.put("mini", {"strategy": "priority", "retries": 1}, actor="fuzz")
        from app.services import users
        console = [users.create(name, "fuzz-password-1", role, actor="fuzz", teams=teams_)
                   for name, role, teams_ in (("fuzz-root", "admin", None),
                                              ("fuzz-viewer", "viewer", None),
                                              ("fuzz-ta", "team_admin", ["decoy-team"]))]
        decoy_user = users.create("fuzz-decoy", "fuzz-password-1", "viewer", actor="fuzz")
        env = FuzzEnv(
            app=app, client=app.test_client(), admin_key=admin_raw, chat_key=chat_raw, doc=doc,
            upstream=upstream,
            ids={"key_id": [admin.id, chat.id, decoy_key.id],
                 "provider_id": [up.id, decoy_p.id],
                 "model_pk": [mini.id, embed.id, decoy_m.id],
                 "team_id": [team.id], "record_id": [1, 2, 3],
                 "user_id": [u.id for u in console]},
            # users are kept from DELETE only (it runs before GET and PATCH): PATCH gets real ones
            protected={"key_id": {admin.id, chat.id}, "provider_id": {up.id},
                       "model_pk": {mini.id, embed.id}, "user_id": {u.id for u in console}},
            decoys={"key_id": decoy_key.id, "provider_id": decoy_p.id, "model_pk": decoy_m.id,
                    "user_id": decoy_user.id},
            server_errors=caught)
        from app.extensions import db
        db.session.remove()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        upstream.install(mock)
        try:
            yield env
        finally:
            quiet.setLevel(level)
            quiet.propagate = propagate
            quiet.removeHandler(keeper)
