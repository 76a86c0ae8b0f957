"""Full page or htmx fragment: the one place that decides, so every view renders the same way."""
from __future__ import annotations

from flask import make_response, render_template, request
from flask.typing import ResponseReturnValue


def is_fragment_request() -> bool:
    """An htmx swap wants only the partial; boosted links and history restores want the page."""
    headers = request.headers
    return (headers.get("HX-Request") == "true" and headers.get("HX-Boosted") != "true"
            and headers.get("HX-History-Restore-Request") != "true")


def render(full: str, partial: str | None = None, /, status: int = 200, **context) -> ResponseReturnValue:
    """Render `partial` for htmx requests and `full` otherwise; both share one context.

    The full page `{% include %}`s the partial, so there is one template for the markup.
    `Vary: HX-Request` keeps caches from serving one shape in place of the other.
    """
    template = partial if partial and is_fragment_request() else full
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response
