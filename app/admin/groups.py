"""Console: Routing groups (placeholder until its page is built)."""
from flask import Blueprint, render_template

bp = Blueprint("groups", __name__, url_prefix="/groups")


@bp.get("/")
def index():
    return render_template("admin/placeholder.html", title="Routing groups", section="groups")
