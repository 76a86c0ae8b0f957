"""The official openai SDK against the gateway's refusals: 429 is retried as told, 402 is final."""
from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest

from spend_harness import FAKE_COMPLETION, FAKE_PROMPT, MESSAGES, cost, fire_at_once, wait_until

pytestmark = pytest.mark.e2e


def _client(gw, raw: str, max_retries: int, log: list | None = None) -> openai.OpenAI:
    kw = {}
    if log is not None:  # every HTTP exchange the SDK makes: (time sent, time answered, status, headers)
        def on_request(request):
            log.append({"sent": time.monotonic()})

        def on_response(response):
            log[-1].update(answered=time.monotonic(), status=response.status_code,
                           headers=dict(response.headers))
        kw["http_client"] = openai.DefaultHttpxClient(
            event_hooks={"request": [on_request], "response": [on_response]})
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=raw, max_retries=max_retries,
                         timeout=15, **kw)


def _create(client):
    return client.chat.completions.create(model="spend-chat", messages=MESSAGES,
                                          max_tokens=FAKE_COMPLETION)


def test_sdk_rate_limit_error_carries_retry_after(spend_gw):
    """rpm=1, max_retries=0: the second call raises RateLimitError; its response says when
    to come back (Retry-After: a positive whole number of seconds, ~60 for rpm=1) with
    OpenAI's x-ratelimit-* headers."""
    _, raw = spend_gw.make_key("sdk-rpm-1", limits={"rpm": 1})
    client = _client(spend_gw, raw, max_retries=0)
    first = _create(client)
    assert first.usage.prompt_tokens == FAKE_PROMPT
    with pytest.raises(openai.RateLimitError) as caught:
        _create(client)
    err = caught.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded"
    retry_after = err.response.headers["retry-after"]
    print(f"\n[sdk rpm=1] Retry-After: {retry_after}; "
          f"reset-requests {err.response.headers.get('x-ratelimit-reset-requests')}")
    assert retry_after.isdigit() and 0 < int(retry_after) <= 60
    assert int(retry_after) >= 55  # GCRA: the next slot is one full interval (60 s) away
    assert err.response.headers["x-ratelimit-limit-requests"] == "1"
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_sdk_retry_honours_retry_after_and_succeeds(spend_gw):
    """rpm=60: after a burst of 60 the next slot frees 1 s after the burst began. An SDK call
    with max_retries=2 gets 429 (Retry-After: 1), sleeps that long, retries and succeeds: two
    exchanges, the second sent at least Retry-After seconds after the 429."""
    _, raw = spend_gw.make_key("sdk-rpm-60", limits={"rpm": 60})
    burst = fire_at_once(60, lambda i: spend_gw.chat(raw))
    assert [getattr(r, "status_code", r) for r in burst] == [200] * 60
    log: list[dict] = []
    client = _client(spend_gw, raw, max_retries=2, log=log)
    t0 = time.monotonic()
    resp = _create(client)
    elapsed = time.monotonic() - t0
    statuses = [x["status"] for x in log]
    retry_after = float(log[0]["headers"]["retry-after"])
    gap = log[1]["sent"] - log[0]["answered"]
    print(f"\n[sdk retry] exchanges {statuses}, Retry-After {retry_after:g}, retried after "
          f"{gap:.3f}s, call took {elapsed:.3f}s")
    assert resp.choices[0].message.content
    assert statuses == [429, 200]
    assert retry_after >= 1
    assert gap >= retry_after - 0.01 and elapsed >= retry_after


def test_sdk_budget_exhausted_is_402_and_not_retried(spend_gw):
    """A budget of exactly one request ($0.0039): the first call succeeds, the second raises
    APIStatusError with status 402 / insufficient_quota (not RateLimitError) after ONE
    exchange, although max_retries=2: the SDK does not retry a 402."""
    budget = cost(FAKE_PROMPT, FAKE_COMPLETION)
    _, raw = spend_gw.make_key("sdk-budget", budget={"amount_usd": str(budget), "period": "total"})
    log: list[dict] = []
    client = _client(spend_gw, raw, max_retries=2, log=log)
    _create(client)
    assert [x["status"] for x in log] == [200]
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        _create(client)
    elapsed = time.monotonic() - t0
    err = caught.value
    print(f"\n[sdk budget] {err.status_code} {err.code} after {len(log) - 1} exchange(s), "
          f"{elapsed:.3f}s")
    assert not isinstance(err, openai.RateLimitError)
    assert err.status_code == 402
    assert err.code == "insufficient_quota" and err.type == "insufficient_quota"
    assert [x["status"] for x in log] == [200, 402]
    assert elapsed < 1.0
    state = wait_until(lambda: (lambda b: b if Decimal(b["reserved_usd"]) == 0 else None)(
        spend_gw.budget_state(raw)), 5, 0.02, "the first call to settle")
    assert Decimal(state["spent_usd"]) == budget
