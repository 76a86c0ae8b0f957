"""Console: Usage (placeholder until its page is built)."""
from flask import Blueprint, render_template

bp = Blueprint("usage", __name__, url_prefix="/usage")


@bp.get("/")
def index():
    return render_template("admin/placeholder.html", title="Usage", section="usage")
