"""Console: Requests (placeholder until its page is built)."""
from flask import Blueprint, render_template

bp = Blueprint("requests", __name__, url_prefix="/requests")


@bp.get("/")
def index():
    return render_template("admin/placeholder.html", title="Requests", section="requests")
