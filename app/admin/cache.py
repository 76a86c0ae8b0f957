"""Console: Response cache (placeholder until its page is built)."""
from flask import Blueprint, render_template

bp = Blueprint("cache", __name__, url_prefix="/cache")


@bp.get("/")
def index():
    return render_template("admin/placeholder.html", title="Response cache", section="cache")
