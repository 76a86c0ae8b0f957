"""Admin-defined keywords and regexes: matching, validation, refusal of patterns that could
backtrack catastrophically."""
from __future__ import annotations

import functools
import re
import time

import pytest
from hypothesis import given, settings, strategies as st

from app.inspect import Inspector, PatternError
from app.inspect.custom import compile_pattern


def found(insp, text, detector):
    v = insp.inspect_text(text)
    return [text[f.start:f.end] for f in v.findings if f.detector == detector]


# ----------------------------------------------------------------------------- keywords


def test_keywords_are_case_insensitive_whole_words():
    insp = Inspector(keywords=["Project Nightingale", "BLUEBIRD", "acme-internal", "C++"])
    assert found(insp, "re: project  NIGHTINGALE, bluebird.", "custom_keyword") == [
        "project  NIGHTINGALE", "bluebird"]
    assert found(insp, "Project\nNightingale", "custom_keyword") == ["Project\nNightingale"]
    assert found(insp, "bluebirds and nightingales; the project nightingale2", "custom_keyword") \
        == []
    assert found(insp, "ACME-INTERNAL only", "custom_keyword") == ["ACME-INTERNAL"]
    assert found(insp, "we use C++ and c++17", "custom_keyword") == ["C++", "c++"]
    v = insp.inspect_text("BLUEBIRD")
    assert v.findings[0].category == "custom" and v.sensitive


def test_keyword_longest_match_wins():
    insp = Inspector(keywords=["acme", "acme corp"])
    assert found(insp, "ACME Corp and acme", "custom_keyword") == ["ACME Corp", "acme"]


def test_keyword_with_unicode_text():
    insp = Inspector(keywords=["istanbul office", "Zürich"])
    text = "İstanbul office and ZÜRICH and zürich"
    assert found(insp, text, "custom_keyword") == ["İstanbul office", "ZÜRICH", "zürich"]


@pytest.mark.parametrize("bad", [[""], ["   "], [3], "BLUEBIRD", ["x" * 1001]])
def test_bad_keywords_are_refused(bad):
    with pytest.raises(ValueError):
        Inspector(keywords=bad)


# ----------------------------------------------------------------------------- patterns


def test_patterns_match():
    insp = Inspector(patterns=[r"\bEMP-\d{6}\b", r"(?i)case-[a-z]{2}-\d{4,6}"])
    text = "EMP-004217, EMP-12345, Case-DE-20931"
    assert found(insp, text, "custom_pattern") == ["EMP-004217", "Case-DE-20931"]


def test_invalid_regex_has_a_clear_message():
    with pytest.raises(ValueError, match=r"custom pattern #2 is not a valid regular "
                                         r"expression: unterminated character set"):
        Inspector(patterns=[r"ok\d+", r"[a-z"])
    assert issubclass(PatternError, ValueError)


@pytest.mark.parametrize("bad, why", [
    (r"(a+)+$", "inside an unbounded repeat"),
    (r"(\w+\s?)+$", "inside an unbounded repeat"),
    (r"(\d+\.\d+)+x", "inside an unbounded repeat"),
    (r"x(a|aa)+b", "start with the same character"),
    (r"x(?:ab|a)+c", "start with the same character"),
    (r"(?:x+|y)+z", "repeat inside alternatives"),
    (r"(a)\1", "back-references"),
    (r"(?=.*secret)", "lookaround"),
    (r"", "empty"),
    (r"a*", "matches the empty string"),
    (r"x" * 1001, "longer than"),
])
def test_dangerous_or_useless_patterns_are_refused(bad, why):
    with pytest.raises(ValueError, match=why):
        Inspector(patterns=[bad])


@pytest.mark.parametrize("slow", [
    r"\d+\d+\d+x", r"(.*a){12}", r"a.*b.*c.*d.*e",
    # a leading repeated group is retried from every position: quadratic on a long run
    r"(?:[a-z0-9-]+\.)+[a-z]{2,}", r"(a++)+b", r"(?:cat|dog)+s", r"x?a++b",
])
def test_polynomial_patterns_are_refused_by_the_probe(slow):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="too slow"):
        compile_pattern(slow, 0)
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("ok", [
    r"[a-z]+\.", r"@(?:[a-z0-9-]+\.)+[a-z]{2,}", r"(?:\d{1,3}\.){3}\d{1,3}", r"x(a++)+b",
    r"x(?>a+)+b", r"\w+@corp\.example", r".*secret", r"a++b", r"pets: (?:cat|dog)+s", r"\bEMP-\d{6}\b",
])
def test_safe_patterns_are_accepted(ok):
    Inspector(patterns=[ok])


def test_too_many_patterns():
    with pytest.raises(ValueError, match="at most"):
        Inspector(patterns=[f"x{i}y" for i in range(201)])


def test_custom_detectors_validated_even_when_disabled():
    with pytest.raises(ValueError):
        Inspector(patterns=["(a+)+$"], enabled={"email"})
    insp = Inspector(keywords=["bluebird"], patterns=["EMP-[0-9]{6}"], enabled={"email"})
    assert insp.inspect_text("bluebird EMP-123456").findings == []


@functools.lru_cache(maxsize=None)
def _compiled(src):
    return compile_pattern(src, 0)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab@. x\n_", max_size=60),
       st.sampled_from([r"\w+@x", r"[ab]+\.", r".*@", r"[^ ]*b", r"\s+x", r"a*b"]))
def test_leading_repeat_guard_keeps_the_same_matches(text, src):
    """The guard inserted before a leading C+/C* only removes retries, never matches."""
    plain = [m.span() for m in re.finditer(src, text)]
    guarded = [m.span() for m in _compiled(src).finditer(text)]
    assert guarded == plain
