"""Browser fixtures: the real app under gunicorn + gevent, a fake upstream, Debian's Chromium."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
FAKE_UPSTREAM = Path(__file__).resolve().parents[3] / "shared" / "bench" / "fake_upstream.py"
CHROMIUM = Path("/usr/bin/chromium")
BIN = Path(sys.executable).parent  # the venv's bin: gunicorn and flask live next to python
ADMIN_USER, ADMIN_PASSWORD = "e2e-admin", "e2e-password-123"
SCREENS = Path("/tmp/screens")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before serving {url}")
        try:
            if requests.get(url, timeout=1, allow_redirects=False).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM),
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


@pytest.fixture(scope="session")
def screens() -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    return SCREENS


@pytest.fixture(scope="session")
def fake_upstream(tmp_path_factory):
    """shared/bench/fake_upstream.py on a free port; yields its base URL (without /v1)."""
    if not FAKE_UPSTREAM.exists():
        pytest.skip(f"{FAKE_UPSTREAM} not found")
    port = _free_port()
    log = (tmp_path_factory.mktemp("upstream") / "upstream.log").open("w")
    proc = subprocess.Popen([sys.executable, str(FAKE_UPSTREAM), "--port", str(port),
                             "--chunk-delay-ms", "0"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/v1/models", proc)
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory, fake_upstream):
    """The real app: `flask db upgrade`, then gunicorn -k gevent -w 1 on a free port."""
    tmp = tmp_path_factory.mktemp("gateway")
    env = {**os.environ, "GATEWAY_INSTANCE_PATH": str(tmp),
           "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
           "GATEWAY_ADMIN_USER": ADMIN_USER, "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "GATEWAY_ENV": "development", "GATEWAY_WORKERS": "1"}
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    port = _free_port()
    log_path = tmp / "gunicorn.log"
    log = log_path.open("w")
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
                             "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/login", proc)
        yield url
    finally:
        _stop(proc)
        log.close()
        print(f"gunicorn log: {log_path}")
