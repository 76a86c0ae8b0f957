"""End-to-end fixtures: the fake upstream process and the gateway under gunicorn + gevent.

One session starts:
  * ``fake_provider.py`` on a free port (every provider's wire format, error/slow/drip models);
  * the gateway (``flask db upgrade``, an admin key from ``flask create-key``, then gunicorn with
    one gevent worker) in a temporary instance folder with its own SQLite DB;
and configures it through the admin API only: one provider of each type pointing at the fake,
the same set of models on each (``<prefix>-chat``, ``<prefix>-embed``, ``<prefix>-err-401`` ...,
``<prefix>-slow``, ``<prefix>-drip``, ``<prefix>-drip-10``) and a chat key.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support.processes import (FAKE_PROVIDER, children_of, clean_env, migrate_and_admin_key,
                                     start_gunicorn, upstream, wait_until)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import fake_provider as fp  # noqa: E402

# loopback traffic must never go through a proxy from the environment
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

READ_TIMEOUT = 1.0          # provider read timeout (s): `slow` (3 s) must exceed it
CHAT_PRICE = (1.5, 2.5)     # USD per million input / output tokens
EMBED_PRICE = 0.1
BEHAVIOUR_MODELS = ("err-401", "err-404", "err-429", "err-500", "err-midstream", "slow", "drip",
                    "drip-10")

# provider type -> how the gateway is pointed at the fake and which upstream ids it serves
PROVIDERS: dict[str, dict] = {
    "openai-compatible": {
        "prefix": "oai", "chat": "gpt-4o-mini", "embed": "text-embedding-3-small",
        # a compatible server that speaks the Responses API too: /v1/responses passes through
        "provider": lambda fake: {"type": "openai-compatible", "api_base": f"{fake}/v1",
                                  "api_key": fp.OPENAI_KEY, "config": {"responses_api": True}},
        "secret": fp.OPENAI_KEY},
    "azure-openai": {
        "prefix": "az", "chat": "gpt-4o-deployment", "embed": "embeddings-deployment",
        "provider": lambda fake: {"type": "azure-openai", "api_base": fake, "api_key": fp.AZURE_KEY,
                                  "api_version": "2024-10-21"},
        "secret": fp.AZURE_KEY},
    "anthropic": {
        "prefix": "ant", "chat": "claude-haiku-4-5-20251001", "embed": None,
        "provider": lambda fake: {"type": "anthropic", "api_base": fake, "api_key": fp.ANTHROPIC_KEY},
        "secret": fp.ANTHROPIC_KEY},
    "ollama": {
        "prefix": "oll", "chat": "llama3.2", "embed": "all-minilm",
        "provider": lambda fake: {"type": "ollama", "api_base": fake},
        "secret": None},
    "bedrock": {
        "prefix": "br", "chat": "anthropic.claude-3-haiku-20240307-v1:0",
        "embed": "amazon.titan-embed-text-v2:0",
        "provider": lambda fake: {"type": "bedrock", "api_base": fake,
                                  "aws_access_key_id": fp.AWS_ACCESS_KEY_ID,
                                  "aws_secret_access_key": fp.AWS_SECRET_ACCESS_KEY,
                                  "config": {"region": fp.AWS_REGION}},
        "secret": fp.AWS_SECRET_ACCESS_KEY},
}
PROVIDER_TYPES = list(PROVIDERS)
EMBEDDING_TYPES = [t for t, p in PROVIDERS.items() if p["embed"]]


def pytest_generate_tests(metafunc):
    """`provider_type` runs a test once per provider type; `embedding_provider` per type with embeddings."""
    if "provider_type" in metafunc.fixturenames:
        metafunc.parametrize("provider_type", PROVIDER_TYPES)
    if "embedding_provider" in metafunc.fixturenames:
        metafunc.parametrize("embedding_provider", EMBEDDING_TYPES)


def pytest_collection_modifyitems(items):
    for item in items:  # belt and braces: every test under tests/e2e is an e2e test
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(pytest.mark.e2e)


@dataclass
class Gateway:
    base_url: str
    fake_url: str
    admin_key: str
    chat_key: str
    db_path: Path
    master_pid: int
    log_path: Path
    provider_ids: dict[str, int] = field(default_factory=dict)
    expect: dict = field(default_factory=dict)
    chat_price: tuple[float, float] = CHAT_PRICE
    embed_price: float = EMBED_PRICE
    read_timeout: float = READ_TIMEOUT

    wait = staticmethod(wait_until)

    @staticmethod
    def upstream_secret(provider_type: str) -> str | None:
        """The credential the gateway holds for this provider (must never reach a client)."""
        return PROVIDERS[provider_type]["secret"]

    # -- naming
    @staticmethod
    def upstream_model(provider_type: str, what: str) -> str:
        """The upstream id behind model(provider_type, what): the type's chat/embed id, else `what`."""
        return PROVIDERS[provider_type].get(what) or what if what in ("chat", "embed") else what

    @staticmethod
    def model(provider_type: str, what: str) -> str:
        """Public alias: model("anthropic", "chat") -> "ant-chat" (what: chat, embed, err-429, slow, drip...)."""
        return f"{PROVIDERS[provider_type]['prefix']}-{what}"

    # -- clients
    def client(self, **kw):
        import openai
        kw.setdefault("api_key", self.chat_key)
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 10.0)
        return openai.OpenAI(base_url=f"{self.base_url}/v1", **kw)

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        r = requests.request(method, f"{self.base_url}/api/admin{path}", json=body, timeout=10,
                             headers={"Authorization": f"Bearer {self.admin_key}"})
        assert r.status_code in (200, 201), f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    # -- the fake's counters
    def fake_stats(self) -> dict:
        return requests.get(f"{self.fake_url}/_stats", timeout=5).json()

    # -- usage_records
    def query(self, sql: str, params=()) -> list[dict]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def usage_rows(self, request_id: str, timeout: float = 5.0) -> list[dict]:
        """The usage rows for one request id, once the batched writer has flushed them."""
        rows = wait_until(lambda: self.query("SELECT * FROM usage_records WHERE request_id = ?",
                                             (request_id,)),
                          timeout, what=f"usage row for {request_id}")
        time.sleep(0.05)  # a duplicate would land in the same batch: re-read once
        return self.query("SELECT * FROM usage_records WHERE request_id = ?", (request_id,))

    def usage_row(self, request_id: str, timeout: float = 5.0) -> dict:
        rows = self.usage_rows(request_id, timeout)
        assert len(rows) == 1, f"expected exactly one usage row for {request_id}, got {rows}"
        return rows[0]

    def count_usage(self, model_name: str) -> int:
        return self.query("SELECT COUNT(*) AS n FROM usage_records WHERE model_name = ?",
                          (model_name,))[0]["n"]

    # -- processes
    def worker_pid(self) -> int:
        workers = children_of(self.master_pid, zombies=True)
        assert len(workers) == 1, f"expected one gunicorn worker, found {workers}"
        return workers[0]


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def e2e_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def fake_upstream(e2e_tmp):
    """The fake provider process; yields its base URL."""
    with upstream(FAKE_PROVIDER, e2e_tmp / "fake_provider.log") as url:
        yield url


@pytest.fixture(scope="session")
def gateway(e2e_tmp, fake_upstream) -> Gateway:
    """The gateway under gunicorn (1 gevent worker), configured through the admin API."""
    instance = e2e_tmp / "instance"
    instance.mkdir()
    db_path = instance / "gw.db"
    env = clean_env(GATEWAY_INSTANCE_PATH=str(instance), GATEWAY_DATABASE_URL=f"sqlite:///{db_path}",
                    GATEWAY_CACHE_TTL="0.2", GATEWAY_USAGE_FLUSH_INTERVAL="0.1",
                    GATEWAY_HEALTH_INTERVAL="0", GATEWAY_WORKERS="1", GATEWAY_LOG_LEVEL="warning",
                    PYTHONUNBUFFERED="1")
    admin_key = migrate_and_admin_key(env, "e2e-admin")

    log = e2e_tmp / "gunicorn.log"
    server = start_gunicorn(env, workers=1, log_path=log, ready_path="/v1/models", ready_status=401)
    try:
        gw = Gateway(base_url=server.url, fake_url=fake_upstream, admin_key=admin_key, chat_key="",
                     db_path=db_path, master_pid=server.pid, log_path=log,
                     expect=fp.expectations(fp.Fixtures(fp.DEFAULT_FIXTURES)))
        _configure(gw)
        yield gw
    finally:
        server.stop()  # SIGINT (15 s grace): gunicorn's quick shutdown


def _configure(gw: Gateway) -> None:
    names = []
    for ptype, spec in PROVIDERS.items():
        prov = gw.admin("POST", "/providers", {
            "name": f"e2e-{ptype}", **spec["provider"](gw.fake_url),
            "connect_timeout": 2.0, "read_timeout": READ_TIMEOUT})
        gw.provider_ids[ptype] = prov["id"]
        models = [("chat", spec["chat"], "chat", CHAT_PRICE)]
        if spec["embed"]:
            models.append(("embed", spec["embed"], "embedding", (EMBED_PRICE, 0)))
        models += [(b, b, "chat", CHAT_PRICE) for b in BEHAVIOUR_MODELS]
        for what, upstream, kind, (pin, pout) in models:
            name = gw.model(ptype, what)
            gw.admin("POST", "/models", {"provider_id": prov["id"], "model_id": upstream, "name": name,
                                         "kind": kind, "input_price_per_mtok": pin,
                                         "output_price_per_mtok": pout})
            names.append(name)
    gw.chat_key = gw.admin("POST", "/keys", {"name": "e2e-chat",
                                             "scopes": ["chat", "embeddings", "models"]})["key"]

    def all_visible():  # the worker's config cache (TTL 0.2 s) has picked everything up
        r = requests.get(f"{gw.base_url}/v1/models", timeout=5,
                         headers={"Authorization": f"Bearer {gw.chat_key}"})
        return r.ok and set(names) <= {m["id"] for m in r.json()["data"]}
    wait_until(all_visible, 10, 0.1, "the configured models to be served")


@pytest.fixture(scope="session")
def client(gateway):
    """The official OpenAI SDK pointed at the gateway (no retries)."""
    return gateway.client()


@pytest.fixture(scope="session")
def expect(gateway) -> dict:
    """What each provider's canned answers must look like after translation (from the fixtures)."""
    return gateway.expect
