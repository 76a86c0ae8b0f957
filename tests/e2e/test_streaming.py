"""Streaming behaviour over real sockets: incremental delivery, client disconnects, fd hygiene.

The fake's ``drip`` model sends one chunk every 100 ms for 60 s (``drip-10``: 10 chunks), in each
provider's own format, and counts streams whose reader (the gateway) hung up early.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from urllib.parse import urlsplit

import openai
import pytest

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Count slowly, please."}]
TICK = b'"content":"tick'


def open_and_drop(gw, model: str, n_chunks: int = 2, timeout: float = 5.0) -> tuple[str, int]:
    """POST a streaming chat over a raw socket, read `n_chunks` content chunks, then hang up.

    Returns the gateway's x-request-id for the call and the content characters the client got.
    """
    parts = urlsplit(gw.base_url)
    body = json.dumps({"model": model, "messages": MESSAGES, "stream": True}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {gw.chat_key}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    try:
        sock.sendall(head + body)
        buf = b""
        while buf.count(TICK) < n_chunks:
            data = sock.recv(65536)
            assert data, f"stream ended before {n_chunks} chunks: {buf[-500:]!r}"
            buf += data
    finally:
        sock.close()
    status_line, _, rest = buf.partition(b"\r\n")
    assert b" 200 " in status_line, buf[:500]
    headers = dict(line.split(b": ", 1) for line in rest.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    headers = {k.decode().lower(): v.decode() for k, v in headers.items()}
    assert headers["content-type"].startswith("text/event-stream")
    chars = sum(len(m) for m in re.findall(rb'"content":"(tick\d+ )"', buf))
    return headers["x-request-id"], chars


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return sorted(out)


def check_disconnect_row(gw, request_id: str) -> dict:
    row = gw.usage_row(request_id)
    assert (row["status_code"], row["error_class"]) == (499, "client_disconnected")
    assert row["stream"]
    assert row["completion_tokens"] > 0, "what was delivered before the disconnect is billed"
    assert row["prompt_tokens"] > 0
    assert Decimal(str(row["cost_usd"])) > 0
    return row


# ------------------------------------------------------------------------------------ tests
def test_stream_chunks_arrive_incrementally(gateway, client, provider_type):
    """Each upstream chunk reaches the client when it is produced, not when the stream ends."""
    model = gateway.model(provider_type, "drip-10")
    t0 = time.monotonic()
    arrivals = []
    for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic() - t0, chunk.choices[0].delta.content))
    total = time.monotonic() - t0

    assert [c for _, c in arrivals] == [f"tick{i} " for i in range(10)]
    first = arrivals[0][0]
    assert total >= 0.85, f"10 chunks 100 ms apart took only {total:.2f}s"
    assert first < 0.5, f"first chunk after {first:.2f}s"
    assert first < total / 3, f"first chunk at {first:.2f}s of {total:.2f}s: buffered"
    gaps = sorted(b - a for (a, _), (b, _) in zip(arrivals, arrivals[1:]))
    assert gaps[len(gaps) // 2] > 0.05, f"chunks arrived in bursts: gaps {gaps}"


MIDSTREAM = {  # provider -> (gateway status in the usage row, error_class)
    "openai-compatible": (502, "upstream_error"),   # server_error
    "azure-openai": (502, "upstream_error"),
    "anthropic": (503, "upstream_error"),           # overloaded_error
    "ollama": (502, "upstream_error"),              # {"error": "..."} line
    "bedrock": (429, "rate_limited"),               # throttlingException frame
}


def test_error_after_http_200_reaches_the_sdk(gateway, client, provider_type):
    """An upstream error inside a 200 stream ends the client's stream with an SDK APIError
    (not a silent stop, not a fake [DONE]) and is recorded with the mapped status."""
    model = gateway.model(provider_type, "err-midstream")
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as info:
        for _ in raw.parse():
            pass
    assert info.value.message
    assert not isinstance(info.value, openai.APIStatusError)  # HTTP status was 200
    row = gateway.usage_row(raw.headers["x-request-id"])
    assert (row["status_code"], row["error_class"]) == MIDSTREAM[provider_type]
    assert row["stream"]


def test_content_before_an_in_band_error_is_delivered(gateway, client, provider_type, request):
    """The fake sends a few content events and the in-band error in ONE write (so the gateway
    reads them in one block): the content that preceded the error must still reach the client."""
    model = gateway.model(provider_type, "err-midstream")
    text = ""
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert text == gateway.expect[provider_type]["midstream_text"]


def test_client_disconnect_closes_upstream(gateway, provider_type):
    """Client hangs up mid-stream -> the gateway closes the upstream stream within ~2 s and
    records one 499 client_disconnected row billed for what was delivered."""
    model = gateway.model(provider_type, "drip")
    before = gateway.fake_stats()
    request_id, _ = open_and_drop(gateway, model)
    dropped = time.monotonic()

    stats = gateway.wait(
        lambda: (s := gateway.fake_stats())["streams_closed_early"] > before["streams_closed_early"] and s,
        2.0, what="the fake to see its drip stream closed by the gateway")
    assert time.monotonic() - dropped < 2.0
    assert stats["closed_early_models"].get("drip", 0) == before["closed_early_models"].get("drip", 0) + 1
    gateway.wait(lambda: gateway.fake_stats()["open_streams"] == before["open_streams"], 2.0,
                 what="no upstream stream left open")
    check_disconnect_row(gateway, request_id)


def test_disconnect_bills_at_least_what_was_delivered(gateway, provider_type, request):
    """After 8 delivered chunks (48 characters) the row may not bill fewer tokens than those."""
    request_id, chars = open_and_drop(gateway, gateway.model(provider_type, "drip"), n_chunks=8)
    assert chars >= 48
    row = check_disconnect_row(gateway, request_id)
    assert row["completion_tokens"] >= math.ceil(chars / 4), (row["completion_tokens"], chars)


def test_no_fd_growth_across_disconnects(gateway, client):
    """20 mid-stream disconnects (all provider types, 5 at a time) leak no sockets in the worker."""
    worker = gateway.worker_pid()
    types = list(gateway.provider_ids)

    def drop(i: int) -> str:
        return open_and_drop(gateway, gateway.model(types[i % len(types)], "drip"))[0]

    start = gateway.fake_stats()

    def settled(expected_closed: int) -> bool:
        s = gateway.fake_stats()
        return s["streams_closed_early"] >= expected_closed and s["open_streams"] == start["open_streams"]

    for rid in [drop(i) for i in range(len(types))]:  # warm-up: pools, DB connections, imports
        check_disconnect_row(gateway, rid)
    gateway.wait(lambda: settled(start["streams_closed_early"] + len(types)), 5, what="warm-up streams closed")
    time.sleep(0.3)
    baseline, baseline_targets = fd_count(worker), fd_targets(worker)

    mid = gateway.fake_stats()
    with ThreadPoolExecutor(5) as pool:
        request_ids = list(pool.map(drop, range(20)))
    gateway.wait(lambda: settled(mid["streams_closed_early"] + 20), 5,
                 what="all 20 upstream streams closed early")
    for rid in request_ids:
        check_disconnect_row(gateway, rid)

    def no_growth():
        return fd_count(worker) <= baseline + 2
    try:
        gateway.wait(no_growth, 3, 0.1, what="the worker's fd count to settle")
    except AssertionError:
        raise AssertionError(f"worker fds grew from {baseline} to {fd_count(worker)}:\n"
                             f"before {baseline_targets}\nafter  {fd_targets(worker)}") from None
    assert gateway.worker_pid() == worker, "the worker was restarted"

    # the upstream pool is still healthy after all those abandoned streams
    for ptype in types:
        resp = client.chat.completions.create(model=gateway.model(ptype, "chat"), messages=MESSAGES)
        assert resp.choices[0].message.content
