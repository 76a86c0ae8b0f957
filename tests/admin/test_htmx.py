"""The one helper that decides between a full page and an htmx fragment."""
from __future__ import annotations

import pytest

from app.admin.htmx import is_fragment_request, render


@pytest.mark.parametrize("headers,fragment", [
    ({}, False),
    ({"HX-Request": "true"}, True),
    ({"HX-Request": "true", "HX-Boosted": "true"}, False),
    ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
    ({"HX-Request": "false"}, False),
])
def test_is_fragment_request(app, headers, fragment):
    with app.test_request_context("/", headers=headers):
        assert is_fragment_request() is fragment


def test_render_picks_template_and_sets_vary(app):
    context = {"providers": [], "history": {}, "interval": 60}
    with app.test_request_context("/health", headers={"HX-Request": "true"}):
        r = render("admin/health/index.html", "admin/health/_table.html", status=418, **context)
        assert r.status_code == 418 and "HX-Request" in r.headers["Vary"]
        assert r.get_data(as_text=True).strip().startswith('<section id="health-table"')
    with app.test_request_context("/health"):
        r = render("admin/health/index.html", "admin/health/_table.html", **context)
        assert r.status_code == 200 and "<html" in r.get_data(as_text=True)
        assert "HX-Request" in r.headers["Vary"]

