"""Fault suite fixtures: the fault-injecting upstream (fault_upstream.py) and one gateway under
`gunicorn -k gevent -w 2`, configured through the admin API (the e2e_spend harness)."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for extra in (HERE, ROOT / "tests" / "e2e_spend"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from spend_harness import BIN, Gateway, _base_env, free_port, stop_group, tail, wait_until  # noqa: E402

from faults_env import BEHAVIOURS, DEADLINE, MAX_UPSTREAM, READ_TIMEOUT  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(str(HERE)):
            item.add_marker(pytest.mark.e2e)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: connection refused


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
    port = free_port()
    ulog = tmp / "fault_upstream.log"
    with open(ulog, "wb") as fh:
        upstream = subprocess.Popen([sys.executable, str(HERE / "fault_upstream.py"), "--port", str(port)],
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    up_url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{up_url}/_stats", timeout=1).ok, 15, 0.1, "fault upstream")

    instance = tmp / "gw"
    instance.mkdir()
    env = _base_env(instance)
    env.update({"GATEWAY_REQUEST_DEADLINE": str(DEADLINE), "GATEWAY_MAX_UPSTREAM_BYTES": str(MAX_UPSTREAM),
                "GATEWAY_WORKERS": "2"})
    flask = [str(BIN / "flask"), "--app", "wsgi"]
    done = subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(flask + ["create-key", "--name", "faults-admin", "--scopes", "admin"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    admin_key = done.stdout.strip().splitlines()[-1].strip()
    gport = free_port()
    glog = tmp / "gunicorn.log"
    with open(glog, "wb") as fh:
        proc = subprocess.Popen([str(BIN / "gunicorn"), "-k", "gevent", "-w", "2", "-b", f"127.0.0.1:{gport}",
                                 "--graceful-timeout", "10", "wsgi:app"], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    gw = Gateway(base_url=f"http://127.0.0.1:{gport}", port=gport, admin_key=admin_key, instance=instance,
                 proc=proc, log_path=glog, env=env)
    try:
        gw.wait_serving()
        gw.wait_workers(2)
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
        stop_group(proc, signal.SIGINT, 15)
        stop_group(upstream, signal.SIGTERM, 5)
        for c in fillers + [hole]:
            c.close()
        if proc.returncode not in (0, -2, None):
            print(tail(glog))
