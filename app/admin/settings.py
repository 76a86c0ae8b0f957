"""Gateway settings: the sensitivity policy and the response cache's defaults (one form).

Viewers see the same page read-only; only admins may save (the parent guard refuses POSTs).
"""
from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, IntegerField, RadioField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from app.admin import access
from app.admin.forms import TRUST_HELP, MultiCheckboxField, attempt, options
from app.admin.htmx import render
from app.services import settings as settings_service
from app.services.response_cache import response_cache

bp = Blueprint("settings", __name__, url_prefix="/settings")

ACTION_HELP = {
    "allow": "Send every request as it is. Nothing is inspected (the fastest).",
    "route": "Send sensitive requests only to providers of a trusted level (below); if the "
             "model has no such deployment the request fails instead of leaking.",
    "block": "Refuse sensitive requests with HTTP 400 (content_policy), naming what was detected.",
    "redact": "Replace what was detected with [REDACTED:<category>] before the request leaves "
              "the gateway.",
}
ALIASES = {"enabled": "cache_enabled", "sensitivity": "action", "cache": "default_ttl"}


def _lines(text: str | None) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines, first occurrence of each value only."""
    seen, out = set(), []
    for n, line in enumerate((text or "").splitlines(), 1):
        if line.strip() and line.strip() not in seen:
            seen.add(line.strip())
            out.append((n, line.strip()))
    return out


class SettingsForm(FlaskForm):
    action = RadioField("When a request looks sensitive", default="allow",
                        choices=options((a, a.capitalize()) for a in settings_service.SENSITIVITY_ACTIONS))
    threshold = FloatField("Threshold", [InputRequired("Enter a number from 0.01 to 1."),
                                         NumberRange(0, 1)], default=0.5,
                           description="A request is sensitive when its score reaches this. "
                                       "Lower catches more, with more false alarms.")
    trusted_levels = MultiCheckboxField(
        "Trusted provider levels", choices=options((t, TRUST_HELP[t]) for t in settings_service.TRUST_LEVELS),
        description="With Route: the providers that may receive sensitive requests.")
    keywords = TextAreaField("Keywords", [Length(max=100_000)], render_kw={"rows": 4},
                             description="One per line: project names, customer names… Matched "
                                         "as whole words, case-insensitively.")
    patterns = TextAreaField("Regex patterns", [Length(max=100_000)], render_kw={"rows": 4},
                             description="One Python regular expression per line, e.g. "
                                         "ACME-\\d{6} for internal ticket numbers. Patterns "
                                         "that could backtrack badly are refused.")
    cache_enabled = BooleanField("Cache responses",
                                 description="Identical requests with temperature 0 (or the header "
                                             "x-gateway-cache: on) are answered from the cache.")
    default_ttl = IntegerField("Default time to live", [InputRequired("Enter a number of seconds."),
                                                        NumberRange(1, 30 * 86400)],
                               description="Seconds; clients may send x-gateway-cache-ttl. At most 30 days.")
    max_mb = IntegerField("Maximum size", [InputRequired("Enter a size in MB."), NumberRange(1, 100_000)],
                          description="Least recently used entries are evicted beyond this.")

    def validate_threshold(self, field):
        if field.data is not None and field.data <= 0:
            raise ValidationError("Must be more than 0 (0 would flag every request).")

    @classmethod
    def initial(cls, current: dict) -> dict:
        s, c = current["sensitivity"], current["cache"]
        return {"action": s["action"], "threshold": s["threshold"],
                "trusted_levels": list(s["trusted_levels"]), "keywords": "\n".join(s["keywords"]),
                "patterns": "\n".join(s["patterns"]), "cache_enabled": c["enabled"],
                "default_ttl": c["default_ttl"], "max_mb": c["max_mb"]}

    def payload(self) -> dict:
        return {"sensitivity": {"action": self.action.data, "threshold": self.threshold.data,
                                "trusted_levels": list(self.trusted_levels.data or []),
                                "keywords": [k for _, k in _lines(self.keywords.data)],
                                "patterns": [p for _, p in _lines(self.patterns.data)]},
                "cache": {"enabled": self.cache_enabled.data, "default_ttl": self.default_ttl.data,
                          "max_mb": self.max_mb.data}}

    def explain_pattern_errors(self) -> None:
        """"patterns: custom pattern #2 is …" -> "Line 3 (ACME-[) is …": the line as typed."""
        lines = _lines(self.patterns.data)

        def where(match):
            i = int(match.group(1)) - 1
            return f"Line {lines[i][0]} ({lines[i][1]})" if i < len(lines) else match.group(0)
        self.patterns.errors = [re.sub(r"^(?:patterns: )?custom pattern #(\d+)", where, e)
                                for e in self.patterns.errors]


@bp.route("", methods=("GET", "POST"))
@access.admin_area
def index():
    form = SettingsForm(data=SettingsForm.initial(settings_service.current()))
    if form.validate_on_submit():
        if attempt(form, settings_service.update, form.payload(), current_user.username,
                   aliases=ALIASES) is not None:
            flash("Settings saved. Workers pick them up within a few seconds.", "success")
            return redirect(url_for(".index"), 303)
        form.explain_pattern_errors()
    return render("admin/settings/index.html", status=422 if form.is_submitted() else 200,
                  form=form, action_help=ACTION_HELP,
                  cache_cap_mb=response_cache().max_bytes // (1 << 20))
