"""Fault suite fixtures: the fault-injecting upstream (fault_upstream.py) and one gateway under
`gunicorn -k gevent -w 2`, configured through the admin API (the e2e_spend harness)."""
from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for extra in (HERE, ROOT / "tests" / "e2e_spend"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from spend_harness import _base_env, start_gateway  # noqa: E402
from tests.support.processes import free_port, migrate_and_admin_key, start_upstream, stop_group, tail  # noqa: E402

from faults_env import BEHAVIOURS, DEADLINE, MAX_UPSTREAM, READ_TIMEOUT  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(pytest.mark.e2e)


def closed_port() -> int:
    return free_port()  # closed again once found: connection refused


def full_backlog() -> tuple[socket.socket, list[socket.socket]]:
    """A listener that never accepts, its accept queue filled: further SYNs are dropped, so a
    connect to it times out (a real connect timeout, on loopback)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(lsock.getsockname())
        fillers.append(c)
    return lsock, fillers


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e_faults")
    hole, fillers = full_backlog()
    upstream, up_url = start_upstream(HERE / "fault_upstream.py", tmp / "fault_upstream.log",
                                      what="fault upstream")
    gw = None
    instance = tmp / "gw"
    instance.mkdir()
    env = _base_env(instance)
    env.update({"GATEWAY_REQUEST_DEADLINE": str(DEADLINE), "GATEWAY_MAX_UPSTREAM_BYTES": str(MAX_UPSTREAM),
                "GATEWAY_WORKERS": "2"})
    try:
        admin_key = migrate_and_admin_key(env, "faults-admin")
        gw = start_gateway(instance, env, admin_key, tmp / "gunicorn.log", workers=2,
                           args=("--graceful-timeout", "10"))
        prov = gw.admin("POST", "/providers", {"name": "faulty", "type": "openai-compatible",
                                               "api_base": f"{up_url}/v1", "api_key": "sk-fault",
                                               "connect_timeout": 1.0, "read_timeout": READ_TIMEOUT})
        for b in BEHAVIOURS:
            gw.admin("POST", "/models", {"provider_id": prov["id"], "model_id": b, "name": f"f-{b}",
                                         "input_price_per_mtok": 1, "output_price_per_mtok": 2})
        for name, base in (("refused", f"http://127.0.0.1:{closed_port()}/v1"),
                           ("dns", "http://gateway-fault.invalid/v1"),
                           ("blackhole", f"http://127.0.0.1:{hole.getsockname()[1]}/v1")):
            p = gw.admin("POST", "/providers", {"name": name, "type": "openai-compatible", "api_base": base,
                                                "api_key": "sk-fault", "connect_timeout": 1.0,
                                                "read_timeout": READ_TIMEOUT})
            gw.admin("POST", "/models", {"provider_id": p["id"], "model_id": "ok", "name": f"net-{name}"})
        _, raw = gw.make_key("faults", None)
        gw.key = raw
        gw.upstream_url = up_url
        yield gw
    finally:
        if gw is not None:
            gw.stop(signal.SIGINT, 15)
        stop_group(upstream, signal.SIGTERM, 5)
        for c in fillers + [hole]:
            c.close()
        if gw is not None and gw.proc.returncode not in (0, -2, None):
            print(tail(gw.log_path))
