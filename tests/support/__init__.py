"""Helpers shared by test packages: the fake OpenID Connect provider process."""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.processes import free_port

FAKE_OIDC = Path(__file__).resolve().parent / "fake_oidc.py"
CLIENT_ID, CLIENT_SECRET = "gateway-console", "fake-oidc-secret-1"


class FakeOIDC:
    def __init__(self, url: str):
        self.url = url

    def configure(self, user: dict | None = None, **options) -> dict:
        """Set the user /authorize approves (claims over the defaults; None removes one) and the
        misbehaviours to simulate (see fake_oidc.py)."""
        r = requests.post(f"{self.url}/_config", json={"user": user or {}, "options": options},
                          timeout=5)
        r.raise_for_status()
        return r.json()

    def last_token_request(self) -> dict | None:
        return requests.get(f"{self.url}/_last_token", timeout=5).json()

    def env(self, **extra) -> dict[str, str]:
        """GATEWAY_OIDC_* for a gateway using this provider."""
        return {"GATEWAY_OIDC_ISSUER": self.url, "GATEWAY_OIDC_CLIENT_ID": CLIENT_ID,
                "GATEWAY_OIDC_CLIENT_SECRET": CLIENT_SECRET, **extra}


@contextmanager
def fake_oidc_process(log_path: Path):
    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, str(FAKE_OIDC), "--port", str(port),
                             "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"fake OIDC provider exited with {proc.returncode}: {log_path}")
            try:
                if requests.get(f"{url}/.well-known/openid-configuration", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("fake OIDC provider did not start")
            time.sleep(0.1)
        yield FakeOIDC(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
