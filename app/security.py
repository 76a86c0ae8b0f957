"""Browser-facing hardening: security headers on every response.

The console loads only its own files (vendored htmx and Chart.js, static/js, static/css): no
inline <script> (page data travels in <script type="application/json">, which is never run),
no inline style="" (sizes and colours travel in data-width/-height/-left/-bg attributes that
static/js/app.js applies through the CSSOM). So the policy allows only 'self'.
"""
from __future__ import annotations

from flask import Flask

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def install_headers(app: Flask) -> None:
    @app.after_request
    def _security_headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response
