"""Cost bounds: linear time on adversarial input, 1 MB well under 100 ms, the fail-closed work
budget, and the cost of an ordinary 10 KB message.

Times are CPU times (``time.process_time``), best of three, so that a busy machine (other test
suites, other workers) does not make the bounds flaky. ``INSPECT_PERF_LIMIT_MS`` overrides the
1 MB bound (default 100).
"""
from __future__ import annotations

import os
import random
import string
import time

import pytest

from app.inspect import Inspector
from app.inspect.detectors import MAX_CANDIDATES

MB = 1_000_000
LIMIT_S = float(os.environ.get("INSPECT_PERF_LIMIT_MS", "100")) / 1000


def repeat(unit: str, size: int = MB) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def cpu(fn, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


_r = random.Random(1)
ADVERSARIAL = {
    # runs of the characters the regexes care about
    "letters": repeat("a"), "digits": repeat("0"), "spaces": repeat(" "), "newlines": repeat("\n"),
    "upper": repeat("A"), "backslashes": repeat("\\"), "punctuation": repeat("!@#$%^&*()_+-=[]{};':\",./<>?"),
    "random alnum": "".join(_r.choice(string.ascii_letters + string.digits) for _ in range(MB)),
    "random base64": "".join(_r.choice(string.ascii_letters + string.digits + "+/") for _ in range(MB)),
    # almost-tokens
    "sk- prefixes": repeat("sk-"), "sk-a1": repeat("sk-a1"), "one huge sk- token": "sk-" + repeat("aB3", MB - 3),
    "xai-": repeat("xai-"), "gsk_": repeat("gsk_"), "ghp_a": repeat("ghp_a"), "xoxb-1": repeat("xoxb-1"),
    "AIza": repeat("AIza"), "AKIA": repeat("AKIA"), "eyJ.": repeat("eyJa."),
    "BEGIN lines without END": repeat("-----BEGIN RSA PRIVATE KEY-----\n"),
    "BEGIN then END far away": repeat("-----BEGIN PRIVATE KEY-----\nQUJD\n", MB - 40) + "-----END PRIVATE KEY-----",
    "one huge key body": "-----BEGIN PRIVATE KEY-----\n" + repeat("QUJD"),
    # almost e-mails and URLs
    "@": repeat("@"), "a@": repeat("a@"), "a@b.": repeat("a@b."), "a.b-c@d-e.f": repeat("a.b-c@d-e.f"),
    "long local part": repeat("a") + "@example.com", "a@b.b.b...": "a@" + repeat("b."),
    "://": repeat("://"), "://a:": repeat("://a:"), "http://a:a:a:": "http://" + repeat("a:"),
    # almost assignments
    "password=": repeat("password="), "password: ": repeat("password: "), "password is ": repeat("password is "),
    "key=": repeat("key="), 'key="': repeat('key="'), "token=x ": repeat("token=x "),
    "--password ": repeat("--password "), "api_key run": repeat("api_key"),
    # almost numbers
    "1 1 1": repeat("1 "), "0 0 0": repeat("0 "), "1-1-1": repeat("1-"), "1.1.1": repeat("1."),
    "1234 groups": repeat("1234 "), "+1 +1": repeat("+1 "), "(555) (555)": repeat("(555) "),
    "555-555-": repeat("555-"), "AB12 AB12": repeat("AB12 "), "AB123456": repeat("AB123456"),
    "DE89 + digits": "DE89" + repeat("1", MB - 4), "call 1234567": repeat("call 1234567 "),
    "phone phone": repeat("phone "),
    # mixed
    "unicode": repeat("İstanbul ß ü 東京 "),
    "prose": " ".join(_r.choice("the quick brown fox jumps over lazy dog password token key call "
                                "phone 2024 v1.2.3 $5 e-mail".split()) for _ in range(200_000))[:MB],
    "json log": repeat('{"id": 1700000000123, "ts": "2024-01-15T10:00:00Z", "max_tokens": 100}, '),
}


@pytest.fixture(scope="module")
def insp():
    return Inspector()


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_one_megabyte_of_adversarial_text(insp, name):
    text = ADVERSARIAL[name]
    assert len(text) >= MB - 64
    spent = cpu(lambda: insp.inspect_text(text))
    assert spent < LIMIT_S, f"{name}: {spent * 1000:.0f} ms"


def test_one_megabyte_with_custom_keywords_and_patterns():
    insp = Inspector(keywords=["Project Nightingale", "BLUEBIRD", "acme-internal"],
                     patterns=[r"EMP-\d{6}\b", r"CASE-[A-Z]{2}-\d{4,6}"])
    for unit in ("project ", "EMP-12345 ", "a", "CASE-AB-1 "):
        text = repeat(unit)
        spent = cpu(lambda: insp.inspect_text(text))
        assert spent < LIMIT_S, f"{unit!r}: {spent * 1000:.0f} ms"


@pytest.mark.parametrize("unit", ["(555) ", "key=", "a@b.", "-----BEGIN RSA PRIVATE KEY-----\n",
                                  "sk-a1", "1 "])
def test_cost_grows_linearly(insp, unit):
    small = cpu(lambda: insp.inspect_text(repeat(unit, MB // 4)), rounds=5)
    large = cpu(lambda: insp.inspect_text(repeat(unit, MB)), rounds=5)
    assert large < 6 * small + 0.005, (small, large)  # quadratic would be ~16x


# ----------------------------------------------------------------------------- work budget


def test_degenerate_input_fails_closed(insp):
    """More candidates than the budget: the rest of the text becomes one 'overflow' finding."""
    text = "intro " + repeat("x@example.com ", 120_000) + " tail"
    v = insp.inspect_text(text)
    emails = [f for f in v.findings if f.detector == "email"]
    overflow = [f for f in v.findings if f.detector == "overflow"]
    assert len(emails) == MAX_CANDIDATES
    assert len(overflow) == 1 and overflow[0].end == len(text)
    # it starts at the next, unexamined candidate (for an e-mail: as far left as a local part
    # could reach from its "@")
    next_at = text.index("@", emails[-1].end)
    assert next_at - 64 <= overflow[0].start <= next_at
    assert v.sensitive and v.score == 1.0
    red, _ = insp.redact_text(text)
    assert red.endswith("[REDACTED:secret]") and "@" not in red.rsplit("[REDACTED", 1)[-1]


def test_padding_cannot_hide_a_secret(insp):
    """Near-miss padding exhausts the budget; the secret after it is still covered."""
    key = "sk-proj-Qx7LmR2vT9bWcK4nZ8pJ3sYd6fHa1gUeXo5iNtVq0EkBrMzCw"
    text = repeat("password=password ", 200_000) + key
    v = insp.inspect_text(text)
    assert any(f.start <= text.index(key) and f.end >= len(text) for f in v.findings)
    assert v.sensitive
    assert key not in insp.redact_text(text)[0]


def test_ordinary_text_stays_far_below_the_budget(insp):
    text = repeat("Contact jane@example.com or call (212) 555-0143. password = \"hunter2x\"\n",
                  100_000)
    v = insp.inspect_text(text)
    assert "overflow" not in v.detectors


# ----------------------------------------------------------------------------- 10 KB


def test_ten_kilobyte_message_cost(insp):
    words = ("the model request gateway latency provider answer question summary report user "
             "data review 2024 v1.2 price $5 see https://example.test/docs").split()
    rnd = random.Random(2)
    text = " ".join(rnd.choice(words) for _ in range(2000))[:10_000]
    text = text[:5000] + " mail bob@example.com, key sk-proj-Qx7LmR2vT9bWcK4nZ8pJ3sYd6fHa1gUeXo5 " \
        + text[5000:]
    per_call = cpu(lambda: [insp.inspect_text(text) for _ in range(100)]) / 100
    assert per_call < 0.005, f"{per_call * 1e6:.0f} us per 10 KB"
