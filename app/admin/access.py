"""Marks for the parent blueprint's guard."""
from __future__ import annotations


def admin_only(view):
    """Viewers get 403 on this view even for GET (forms that exist only to change something)."""
    view.admin_only = True
    return view


def any_role(view):
    """Every signed-in role may use this view, writes included (the playground: each user's
    calls go through their own key, limited like any other key)."""
    view.any_role = True
    return view
