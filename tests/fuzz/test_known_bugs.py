"""Each bug the fuzzing found, reproduced: strict xfail until it is fixed (see known_bugs.py)."""
from __future__ import annotations

import json

import pytest

from tests.fuzz.known_bugs import KNOWN_BUGS

pytestmark = pytest.mark.fuzz


@pytest.mark.parametrize("bug", [
    pytest.param(bug, id=bug.name, marks=pytest.mark.xfail(strict=True, reason=bug.reason))
    for bug in KNOWN_BUGS])
def test_known_bug_is_fixed(fuzz_env, bug):
    r = bug.repro(fuzz_env)
    body = r.get_data()
    assert r.status_code < 500, f"{r.status_code}: {body[:300]!r}"
    assert b"Traceback" not in body
    if r.status_code >= 400:
        assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}
