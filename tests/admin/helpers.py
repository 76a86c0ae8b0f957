"""Plain helpers and constants for the console tests (fixtures live in conftest.py)."""
from __future__ import annotations

import re

HTMX = {"HX-Request": "true"}
UPSTREAM = "http://upstream.test/v1"
SECRET = "sk-test-SECRET-9999"
MODEL_LIST = {"object": "list", "data": [
    {"id": "gpt-4o-mini", "object": "model", "owned_by": "openai"},
    {"id": "gpt-4o", "object": "model", "owned_by": "openai"},
    {"id": "text-embedding-3-small", "object": "model", "owned_by": "openai"},
]}


def text(response) -> str:
    return response.get_data(as_text=True)


def is_fragment(response) -> bool:
    body = text(response)
    return "<html" not in body and "<body" not in body


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)
