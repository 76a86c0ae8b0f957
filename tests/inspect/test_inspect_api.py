"""The inspector's API: result types, spans, scoring, thresholds, enabled detectors, and that no
result ever carries the matched text."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from app.inspect import CATEGORY, DETECTORS, Finding, Inspector, Verdict, WEIGHT

KEY = "sk-proj-Qx7LmR2vT9bWcK4nZ8pJ3sYd6fHa1gUeXo5iNtVq0EkBrMzCw"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MfszrqpG3hN0aJbQ\n"
       "Y9sYq8ghjQ0t7d1nJ3uv+Xq1v5aH0kPa9QwA5nHVbJx7dMZ2gyL2Fr0kqOq9p4Hc\n"
       "-----END RSA PRIVATE KEY-----")


@pytest.fixture(scope="module")
def insp():
    return Inspector()


def spans(text, verdict, detector=None):
    return [text[f.start:f.end] for f in verdict.findings
            if detector is None or f.detector == detector]


# ----------------------------------------------------------------------------- types


def test_detectors_registry():
    assert len(DETECTORS) >= 20
    for name, description in DETECTORS.items():
        assert isinstance(description, str) and description
        assert CATEGORY[name] in ("secret", "pii", "custom")
        assert 0 < WEIGHT[name] <= 1
    for name in ("openai_api_key", "anthropic_api_key", "xai_api_key", "groq_api_key",
                 "aws_access_key_id", "aws_secret_key", "github_token", "slack_token",
                 "google_api_key", "jwt", "private_key", "credential_assignment",
                 "url_credentials", "high_entropy_secret", "email", "phone", "credit_card",
                 "iban", "us_ssn", "uk_nino", "de_tax_id", "fr_nir", "custom_keyword",
                 "custom_pattern"):
        assert name in DETECTORS


def test_finding_is_a_frozen_dataclass_without_text():
    f = Finding("email", "pii", 3, 20, 0.5)
    assert dataclasses.is_dataclass(f)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.start = 0
    assert [fl.name for fl in dataclasses.fields(Finding)][:5] == [
        "detector", "category", "start", "end", "score"]
    assert f.location == ()
    assert f == Finding("email", "pii", 3, 20, 0.5)
    assert hash(f) == hash(Finding("email", "pii", 3, 20, 0.5))


def test_verdict_shape(insp):
    text = f"mail bob@example.com, key {KEY}, again alice@example.org"
    v = insp.inspect_text(text)
    assert isinstance(v, Verdict)
    assert v.detectors == ["email", "openai_api_key"]  # unique, sorted
    assert len(v.findings) == 3
    assert all(isinstance(f, Finding) for f in v.findings)
    assert v.sensitive is True
    assert v.categories == ["pii", "secret"]
    assert v.summary() == {"score": v.score, "sensitive": True,
                           "detectors": ["email", "openai_api_key"],
                           "counts": {"email": 2, "openai_api_key": 1}}


def test_matched_text_is_never_exposed(insp):
    secrets = [KEY, "hunter2x", "4111 1111 1111 1111", "bob@example.com", PEM]
    text = (f"key {KEY}; password = \"hunter2x\"; card 4111 1111 1111 1111; "
            f"mail bob@example.com\n{PEM}")
    v = insp.inspect_text(text)
    assert len(v.detectors) == 5
    rendered = [repr(v), str(v), json.dumps(v.summary()),
                json.dumps([dataclasses.asdict(f) for f in v.findings])]
    rendered += [repr(f) for f in v.findings] + [str(f) for f in v.findings]
    for out in rendered:
        for s in secrets:
            assert s not in out
            assert s[:8] not in out
    for f in v.findings:
        assert {fl.name for fl in dataclasses.fields(f)} == {
            "detector", "category", "start", "end", "score", "location"}


def test_inspector_repr_hides_custom_terms():
    insp = Inspector(keywords=["Project Nightingale"], patterns=[r"EMP-\d{6}"])
    assert "Nightingale" not in repr(insp) and "EMP" not in repr(insp)


# ----------------------------------------------------------------------------- spans


@pytest.mark.parametrize("text, detector, expected", [
    ('password = "hunter2x"', "credential_assignment", ["hunter2x"]),
    ("DB_PASSWORD=S3cr3t!2024\nDEBUG=1", "credential_assignment", ["S3cr3t!2024"]),
    ("db:\n  password: Welcome2024!  # prod\n", "credential_assignment", ["Welcome2024!"]),
    ("<password>Tr0ub4dor&3</password>", "credential_assignment", ["Tr0ub4dor&3"]),
    ("postgres://app:s3cretPw9@db:5432/app", "url_credentials", ["s3cretPw9"]),
    ("Mail jane.doe@example.com.", "email", ["jane.doe@example.com"]),
    ("card 4111-1111-1111-1111, exp 12/28", "credit_card", ["4111-1111-1111-1111"]),
    ("IBAN DE89 3704 0044 0532 0130 00 EUR", "iban", ["DE89 3704 0044 0532 0130 00"]),
    ("ssn 123-45-6789.", "us_ssn", ["123-45-6789"]),
    ("NI: QQ123456C / AB 12 34 56 C", "uk_nino", ["AB 12 34 56 C"]),
    ("Call (212) 555-0143 or +44 20 7946 0958.", "phone",
     ["(212) 555-0143", "+44 20 7946 0958"]),
    (f"x {KEY} y", "openai_api_key", [KEY]),
    (f"intro\n{PEM}\noutro", "private_key", [PEM]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_key",
     ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
])
def test_spans_are_exact(insp, text, detector, expected):
    assert spans(text, insp.inspect_text(text), detector) == expected


def test_specific_findings_replace_generic_ones(insp):
    v = insp.inspect_text(f'api_key = "{KEY}"')
    assert v.detectors == ["openai_api_key"]  # not also credential_assignment
    v = insp.inspect_text("https://alice:pw12345@mail.example.com/inbox")
    assert v.detectors == ["url_credentials"]  # "pw12345@mail.example.com" is no e-mail
    v = insp.inspect_text("card 4111 1111 1111 1111")
    assert v.detectors == ["credit_card"]


def test_truncated_private_key_runs_to_the_end_of_its_body(insp):
    cut = PEM[:PEM.index("-----END")].rstrip()
    text = f"pasted:\n{cut}\n"
    assert spans(text, insp.inspect_text(text), "private_key") == [cut]


# ----------------------------------------------------------------------------- scoring


def test_score_is_noisy_or_of_the_best_finding_per_detector(insp):
    assert insp.inspect_text("bob@example.com").score == pytest.approx(0.5)
    two_mails = insp.inspect_text("bob@example.com, eve@example.com")
    assert two_mails.score == pytest.approx(0.5)  # repeats of one detector do not add up
    both = insp.inspect_text("bob@example.com, phone (212) 555-0143")
    assert both.score == pytest.approx(1 - 0.5 * 0.5)
    assert insp.inspect_text(PEM).score == pytest.approx(1.0)


def test_threshold_semantics():
    text_one = "bob@example.com"
    text_two = "bob@example.com, phone (212) 555-0143"
    default = Inspector()
    assert default.inspect_text(text_one).sensitive  # 0.5 >= 0.5
    strict = Inspector(threshold=0.6)
    assert not strict.inspect_text(text_one).sensitive
    assert strict.inspect_text(text_one).findings  # still reported
    assert strict.inspect_text(text_two).sensitive  # 0.75
    assert Inspector(threshold=1.0).inspect_text(PEM).sensitive
    anything = Inspector(threshold=0)
    assert anything.inspect_text(text_one).sensitive
    assert not anything.inspect_text("nothing to see").sensitive


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "0.5", True, None])
def test_threshold_is_validated(bad):
    with pytest.raises(ValueError):
        Inspector(threshold=bad)


def test_clean_and_empty_text(insp):
    for text in ("", "Summarise this article in three bullet points.", "   \n"):
        v = insp.inspect_text(text)
        assert (v.score, v.sensitive, v.detectors, v.findings) == (0.0, False, [], [])


def test_non_string_text_is_treated_as_empty(insp):
    assert insp.inspect_text(None).findings == []  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- enabled


def test_enabled_restricts_detectors():
    text = f"bob@example.com {KEY} 4111 1111 1111 1111"
    only = Inspector(enabled={"email"})
    assert only.inspect_text(text).detectors == ["email"]
    no_pii = Inspector(enabled={d for d in DETECTORS if CATEGORY[d] != "pii"})
    assert no_pii.inspect_text(text).detectors == ["openai_api_key"]
    assert Inspector(enabled=set()).inspect_text(text).findings == []


def test_unknown_detector_is_an_error():
    with pytest.raises(ValueError, match="unknown detector.*e_mail"):
        Inspector(enabled={"e_mail"})
