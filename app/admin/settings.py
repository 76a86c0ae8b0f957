"""Console: Settings (placeholder until its page is built)."""
from flask import Blueprint, render_template

bp = Blueprint("settings", __name__, url_prefix="/settings")


@bp.get("/")
def index():
    return render_template("admin/placeholder.html", title="Settings", section="settings")
