"""Checksums and allocation rules behind the personal-data detectors, against published
examples; plus property tests of the whole inspector on arbitrary input."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from app.inspect import Inspector
from app.inspect.validators import (
    card_ok, de_tax_id_ok, fr_nir_ok, iban_check_digits, iban_ok, jwt_header_ok, luhn_ok,
    shannon_entropy, uk_nino_ok, us_ssn_ok,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_corpus  # noqa: E402


@pytest.mark.parametrize("number, ok", [
    ("4111111111111111", True), ("4242424242424242", True), ("5555555555554444", True),
    ("378282246310005", True), ("6011111111111117", True), ("3530111333300000", True),
    ("30569309025904", True), ("2223003122003222", True),
    ("4111111111111112", False),  # Luhn
    ("1234567812345670", False),  # Luhn-valid, no issuer starts with 1
    ("4111111111111", False),  # Visa has 13, 16 or 19 digits: Luhn fails here anyway
    ("37828224631000", False),  # Amex is 15 digits
])
def test_cards(number, ok):
    assert card_ok(number) is ok


def test_luhn():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


@pytest.mark.parametrize("iban, ok", [
    ("GB82WEST12345698765432", True), ("DE89370400440532013000", True),
    ("FR1420041010050500013M02606", True), ("NL91ABNA0417164300", True),
    ("CH9300762011623852957", True), ("BE68539007547034", True), ("NO9386011117947", True),
    ("DE89370400440532013001", False),  # check digits
    ("DE8937040044053201300", False),  # length for DE
    ("XX82WEST12345698765432", False),  # no such country
])
def test_iban(iban, ok):
    assert iban_ok(iban) is ok


def test_iban_check_digits_round_trip():
    assert iban_check_digits("DE", "370400440532013000") == "89"
    assert iban_check_digits("GB", "WEST12345698765432") == "82"


@pytest.mark.parametrize("ssn, ok", [
    (("123", "45", "6789"), True), (("899", "99", "9999"), True),
    (("000", "12", "3456"), False), (("666", "12", "3456"), False),
    (("900", "12", "3456"), False), (("123", "00", "4567"), False),
    (("123", "45", "0000"), False), (("078", "05", "1120"), False),
])
def test_us_ssn(ssn, ok):
    assert us_ssn_ok(*ssn) is ok


@pytest.mark.parametrize("prefix, ok", [("AB", True), ("JT", True), ("QQ", False),
                                        ("DA", False), ("AO", False), ("GB", False),
                                        ("NK", False), ("ZZ", False)])
def test_uk_nino_prefix(prefix, ok):
    assert uk_nino_ok(prefix) is ok


@pytest.mark.parametrize("tax_id, ok", [
    ("86095742719", True), ("65929970489", True),  # the BZSt / Wikipedia examples
    ("86095742718", False),  # check digit
    ("12345678903", False),  # every digit once: the frequency rule fails
    ("01234567899", False),  # leading zero
    ("11123456786", False),  # a digit three times in a row
])
def test_de_tax_id(tax_id, ok):
    assert de_tax_id_ok(tax_id) is ok


@pytest.mark.parametrize("nir, ok", [
    ("255081416802538", True),  # the Wikipedia example
    ("269054958815780", True),
    ("255081416802539", False),  # key
    ("355081416802538", False),  # sex digit
    ("255131416802538", False),  # month 13
])
def test_fr_nir(nir, ok):
    assert fr_nir_ok(nir) is ok


def test_fr_nir_corsica():
    first13 = "1" + "84" + "02" + "2A" + "123" + "456"  # department 2A counts as 19
    key = 97 - int(first13.replace("2A", "19")) % 97
    assert fr_nir_ok(f"{first13}{key:02d}")
    assert not fr_nir_ok(f"{first13}{(key % 97) + 1:02d}")
    for _ in range(20):
        assert fr_nir_ok(build_corpus.fr_nir(spaced=False))


def test_entropy_and_jwt_header():
    assert shannon_entropy("") == 0 and shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert jwt_header_ok("eyJhbGciOiJIUzI1NiJ9")
    assert not jwt_header_ok("eyJmb28iOiJiYXIifQ")  # {"foo":"bar"}: no alg / typ
    assert not jwt_header_ok("eyJ!!!")


# ----------------------------------------------------------------------------- properties

INSP = Inspector(keywords=build_corpus.CUSTOM_KEYWORDS, patterns=build_corpus.CUSTOM_PATTERNS)
FRAGMENTS = [json.loads(line)["text"] for line in
             (Path(__file__).resolve().parent / "corpus.jsonl").read_text().splitlines()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_never_breaks_the_inspector(text):
    v = INSP.inspect_text(text)
    assert 0.0 <= v.score <= 1.0
    assert v.detectors == sorted({f.detector for f in v.findings})
    assert v.sensitive == (bool(v.findings) and v.score >= INSP.threshold)
    for f in v.findings:
        assert 0 <= f.start < f.end <= len(text)
    red, v2 = INSP.redact_text(text)
    assert v2 == v


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6),
       st.sampled_from([" ", "\n", "\n\n", " | ", "; "]))
def test_redaction_removes_every_span_and_only_those(parts, sep):
    text = sep.join(parts)
    red, v = INSP.redact_text(text)
    # rebuild the redaction from the spans: what is outside every span is kept verbatim
    kept = []
    pos = 0
    for s, e in sorted((f.start, f.end) for f in v.findings):
        if s >= pos:
            kept.append(text[pos:s])
        pos = max(pos, e)
    kept.append(text[pos:])
    rest = red
    for piece in kept:
        assert piece in rest
        rest = rest[rest.index(piece) + len(piece):]
    assert red.count("[REDACTED:") == _merged_count(v.findings)
    assert INSP.inspect_text(red).findings == []


def _merged_count(findings):
    n, end = 0, -1
    for s, e in sorted((f.start, f.end) for f in findings):
        if s >= end:
            n += 1
        end = max(end, e)
    return n


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4))
def test_messages_and_text_agree(parts):
    msgs = [{"role": "user", "content": p} for p in parts]
    v = INSP.inspect_messages(msgs)
    for i, p in enumerate(parts):
        mine = [(f.detector, f.start, f.end) for f in v.findings if f.location == (i, "content")]
        assert mine == [(f.detector, f.start, f.end) for f in INSP.inspect_text(p).findings]
