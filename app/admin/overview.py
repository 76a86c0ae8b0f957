"""The landing page: what is configured, whether it is healthy, which budgets run low."""
from __future__ import annotations

from flask import redirect, render_template, url_for
from flask_login import current_user

from app.admin import queries
from app.services import providers, spend_view


def index():
    if current_user.role == "team_admin":  # the overview is gateway-wide; their part is keys
        return redirect(url_for("admin.keys.index"))
    all_providers = providers.list_all()
    return render_template("admin/overview.html", counts=queries.overview_counts(),
                           providers=all_providers, health=queries.health_summary(all_providers),
                           recent=queries.recent_audit(), alerts=spend_view.budget_alerts())
