"""/metrics aggregates every gunicorn worker (prometheus-client multiprocess mode)."""
import re
from pathlib import Path

import pytest
import requests

FAKE = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "fake_upstream.py"
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not FAKE.exists(), reason="needs ../shared/bench/fake_upstream.py")]


def test_metrics_sum_over_both_workers(stack):
    base, h = stack["base"], {"Authorization": f"Bearer {stack['key']}"}
    body = {"model": "pool", "messages": [{"role": "user", "content": "count me"}]}
    pids = set()
    for _ in range(40):  # new connection each time: spread over both workers
        r = requests.post(f"{base}/v1/chat/completions", json=body, headers={**h, "Connection": "close"})
        assert r.status_code == 200
    text = requests.get(f"{base}/metrics").text
    total = sum(float(v) for v in re.findall(
        r'^gateway_requests_total\{endpoint="chat",model="pool",provider="up\d",status="200"\} (\S+)$',
        text, re.M))
    assert total >= 40  # all requests of this test, whichever worker served them
    assert re.search(r'^gateway_tokens_total\{direction="input",model="pool",provider="up\d"\} \S+$', text, re.M)
    assert "gateway_ttfb_seconds_bucket" in text and "gateway_streams_in_flight" in text
