"""Each bug the fuzzing found, reproduced as a regression test (all fixed; see known_bugs.py)."""
from __future__ import annotations

import json

import pytest

from tests.fuzz.known_bugs import KNOWN_BUGS, OPEN_BUGS



@pytest.mark.parametrize("bug", [
    pytest.param(bug, id=bug.name) for bug in KNOWN_BUGS])
def test_known_bug_is_fixed(fuzz_env, bug):
    r = bug.repro(fuzz_env)
    body = r.get_data()
    assert r.status_code < 500, f"{r.status_code}: {body[:300]!r}"
    assert b"Traceback" not in body
    if r.status_code >= 400:
        assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("bug", [
    pytest.param(bug, id=bug.name, marks=pytest.mark.xfail(strict=True, reason=bug.reason))
    for bug in OPEN_BUGS])
def test_open_bug(fuzz_env, bug):
    """Still open: strict xfail (an XPASS means fixed: move the bug to KNOWN_BUGS)."""
    test_known_bug_is_fixed(fuzz_env, bug)
