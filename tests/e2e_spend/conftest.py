"""Fixtures of the spend-control e2e suite (the processes and helpers are in spend_harness.py)."""
from __future__ import annotations

import shutil
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from spend_harness import (IN_PRICE, MODELS, OUT_PRICE, Gateway, _base_env, fake_provider,  # noqa: E402
                           fp, start_gateway)
from tests.support.processes import migrate_and_admin_key  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:  # every test in this folder starts processes
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(pytest.mark.e2e)


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def spend_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e_spend")


@pytest.fixture(scope="session")
def spend_fake(spend_tmp) -> str:
    """The fake upstream process; yields its base URL."""
    with fake_provider(spend_tmp) as url:
        yield url


@pytest.fixture(scope="session")
def spend_template(spend_tmp) -> tuple[Path, str]:
    """A migrated instance folder with an admin key, copied for every gateway."""
    instance = spend_tmp / "template"
    instance.mkdir()
    admin_key = migrate_and_admin_key(_base_env(instance), "spend-admin")
    with sqlite3.connect(instance / "gw.db") as conn:  # fold the WAL into the file we copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return instance, admin_key


@pytest.fixture(scope="session")
def gateway_factory(spend_tmp, spend_template, spend_fake):
    """start(name, **env) -> a configured Gateway under `gunicorn -k gevent -w 2`; all stopped at the end."""
    template, admin_key = spend_template
    started: list[Gateway] = []

    def start(name: str, workers: int = 2, **env_overrides) -> Gateway:
        instance = spend_tmp / f"gw-{name}"
        shutil.copytree(template, instance)
        env = _base_env(instance)
        env.update({k: str(v) for k, v in env_overrides.items()})
        env["GATEWAY_WORKERS"] = str(workers)
        gw = start_gateway(instance, env, admin_key, spend_tmp / f"gunicorn-{name}.log",
                           workers=workers)
        started.append(gw)
        prov = gw.admin("POST", "/providers", {
            "name": "spend-fake", "type": "openai-compatible", "api_base": f"{spend_fake}/v1",
            "api_key": fp.OPENAI_KEY, "connect_timeout": 2.0, "read_timeout": 10.0})
        for public, upstream in MODELS.items():
            gw.admin("POST", "/models", {"provider_id": prov["id"], "model_id": upstream,
                                         "name": public, "kind": "chat",
                                         "input_price_per_mtok": IN_PRICE,
                                         "output_price_per_mtok": OUT_PRICE})
        return gw

    yield start
    for gw in started:
        gw.stop(signal.SIGINT, 15)


@pytest.fixture(scope="session")
def spend_gw(gateway_factory) -> Gateway:
    """The shared two-worker gateway (usage flushed every 0.1 s)."""
    return gateway_factory("shared")


