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


def element(html: str, element_id: str) -> str:
    """The outer HTML of the element with this id (nested same-name tags are balanced)."""
    match = re.search(r'<(\w+)\b[^>]*\bid="%s"' % re.escape(element_id), html)
    assert match, f"no element with id={element_id!r}"
    tag, depth = match.group(1), 0
    for m in re.finditer(r"<(/?)%s\b[^>]*?(/?)>" % tag, html[match.start():]):
        if m.group(1):
            depth -= 1
        elif not m.group(2):
            depth += 1
        if depth == 0:
            return html[match.start():match.start() + m.end()]
    raise AssertionError(f"unbalanced <{tag}> for id={element_id!r}")


def squash(html: str) -> str:
    """Whitespace runs -> one space, so assertions can ignore template indentation."""
    return re.sub(r"\s+", " ", html)
