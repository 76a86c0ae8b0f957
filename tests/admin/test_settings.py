"""Settings page: the sensitivity policy and cache defaults, saved through services.settings."""
from __future__ import annotations

import re

import pytest

from .helpers import element, text

VALID = {"action": "route", "threshold": "0.35", "trusted_levels": ["local", "private"],
         "keywords": "Project Falcon\nAcme, Inc.\n\nProject Falcon",
         "patterns": "ACME-\\d{6}\n\\bINV-[0-9]{4,8}\\b", "cache_enabled": "y",
         "default_ttl": "900", "max_mb": "512"}


def tag(html: str, element_id: str) -> str:
    """The start tag of the (void) element with this id."""
    match = re.search(r'<\w+[^>]*\bid="%s"[^>]*>' % re.escape(element_id), html)
    assert match, element_id
    return match.group(0)


def current() -> dict:
    from app.extensions import db
    from app.services import settings
    db.session.expire_all()
    return settings.current()


def test_page_shows_the_defaults(admin_client):
    html = text(admin_client.get("/settings"))
    assert '<input checked class="radio" id="action-0" name="action" type="radio" value="allow">' in html
    for action in ("Allow", "Route", "Block", "Redact"):
        assert f'<span class="choice-name">{action}</span>' in html
    assert "[REDACTED:&lt;category&gt;]" in html and "HTTP 400" in html
    assert 'value="0.5"' in tag(html, "threshold")
    assert "checked" in tag(html, "trusted_levels-0") and "checked" in tag(html, "trusted_levels-1")
    assert "checked" not in tag(html, "trusted_levels-2")
    assert "checked" in tag(html, "cache_enabled")
    assert 'value="3600"' in tag(html, "default_ttl") and 'value="256"' in tag(html, "max_mb")
    assert "Save settings" in html and "routing.css" in html


def test_save(admin_client, audit_rows):
    r = admin_client.post("/settings", data=VALID)
    assert r.status_code == 303 and r.headers["Location"] == "/settings"
    s = current()
    assert s["sensitivity"] == {"action": "route", "threshold": 0.35,
                                "trusted_levels": ["local", "private"],
                                "keywords": ["Project Falcon", "Acme, Inc."],
                                "patterns": ["ACME-\\d{6}", "\\bINV-[0-9]{4,8}\\b"]}
    assert {k: s["cache"][k] for k in ("enabled", "default_ttl", "max_mb")} == {
        "enabled": True, "default_ttl": 900, "max_mb": 512}
    entry = audit_rows("settings", "update")[0]
    assert entry.actor == "admin" and "settings" in entry.diff
    html = text(admin_client.get("/settings"))
    assert "Settings saved." in html
    assert '<input checked class="radio" id="action-1" name="action" type="radio" value="route">' in html
    assert "Acme, Inc." in element(html, "keywords") and "INV-[0-9]{4,8}" in element(html, "patterns")
    assert "In effect now: 256 MB." in html  # the running cache's cap differs from the saved one


def test_unchecking_turns_things_off(admin_client):
    data = {**VALID, "trusted_levels": [], "keywords": "", "patterns": ""}
    del data["cache_enabled"]
    assert admin_client.post("/settings", data=data).status_code == 303
    s = current()
    assert s["sensitivity"]["trusted_levels"] == [] and s["sensitivity"]["keywords"] == []
    assert s["sensitivity"]["patterns"] == [] and s["cache"]["enabled"] is False


@pytest.mark.parametrize("field, value, message", [
    ("patterns", "ACME-\\d{6}\n\n(a+)+", "Line 3 ((a+)+): a repeat inside an unbounded repeat"),
    ("patterns", "[unclosed", "Line 1 ([unclosed) is not a valid regular expression"),
    ("threshold", "0", "Must be more than 0"),
    ("threshold", "1.5", "Number must be between 0 and 1."),
    ("threshold", "", "Enter a number from 0.01 to 1."),
    ("action", "shred", "Not a valid choice"),
    ("trusted_levels", "secret", "not a valid choice"),
    ("default_ttl", "0", "Number must be between 1 and 2592000."),
    ("max_mb", "abc", "Not a valid integer value."),
])
def test_invalid_input_is_shown_on_its_field(admin_client, field, value, message):
    before = current()
    r = admin_client.post("/settings", data={**VALID, field: value})
    assert r.status_code == 422
    html = text(r)
    assert message in html.replace("&#39;", "'")
    assert "has-error" in html
    assert current() == before  # nothing saved
    if field != "patterns":
        assert "ACME-" in element(html, "patterns")  # the rest of what was typed is kept


def test_viewer_reads_but_cannot_save(viewer_client):
    before = current()
    html = text(viewer_client.get("/settings"))
    assert "read-only" in html and '<fieldset class="settings-body" disabled>' in html
    assert "Save settings" not in html
    assert viewer_client.post("/settings", data=VALID).status_code == 403
    assert current() == before
