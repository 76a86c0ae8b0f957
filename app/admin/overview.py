"""The landing page: what is configured, whether it is healthy, which budgets run low."""
from __future__ import annotations

from flask import redirect, render_template, url_for
from flask_login import current_user

from app.admin import queries
from app.admin import usage as usage_view
from app.services import providers, spend_view
from app.services import usage_query as uq


def index():
    if current_user.role == "team_admin":  # the overview is gateway-wide; their part is keys
        return redirect(url_for("admin.keys.index"))
    all_providers = providers.list_all()
    return render_template("admin/overview.html", counts=queries.overview_counts(),
                           providers=all_providers, health=queries.health_summary(all_providers),
                           recent=queries.recent_audit(), alerts=spend_view.budget_alerts(),
                           usage=last_day())


def last_day() -> dict:
    """The last 24 hours from the rollups: the usage page's headline cards and the busiest
    models (two small queries, each over 5-minute rollup rows)."""
    w = uq.window("24h")
    totals = uq.totals(w)
    return {"cards": usage_view.cards(totals), "requests": totals["current"]["requests"],
            "models": uq.breakdown(w, "model")[:5]}
