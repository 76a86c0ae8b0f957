"""Form helpers: service errors onto fields, decimals, Jinja filters."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from app.admin import filters
from app.admin.forms import LoginForm, apply_service_error, plain_decimal
from app.models import utcnow
from app.services.errors import Conflict, ValidationFailed


def test_service_error_lands_on_its_field(app):
    with app.test_request_context("/", method="POST"):
        form = LoginForm(meta={"csrf": False})
        apply_service_error(form, Conflict("user exists", field="username"))
        apply_service_error(form, ValidationFailed("bad thing", field="config"))
        apply_service_error(form, ValidationFailed("whole form"))
        apply_service_error(form, ValidationFailed("aliased", field="pw"), aliases={"pw": "password"})
        assert form.username.errors == ["user exists"]
        assert form.password.errors == ["aliased"]
        assert form.form_errors == ["bad thing", "whole form"]


@pytest.mark.parametrize("value,expected", [
    (Decimal("0.150000"), Decimal("0.15")), (Decimal("100.000000"), Decimal("100")),
    (None, None), (2.5, Decimal("2.5")),
])
def test_plain_decimal(value, expected):
    result = plain_decimal(value)
    assert result == expected and (result is None or "E" not in str(result))


@pytest.mark.parametrize("value,expected", [
    (Decimal("0.15"), "$0.15"), (Decimal("2"), "$2.00"), (Decimal("0.075"), "$0.075"),
    (Decimal("0.600000"), "$0.60"), (None, "—"),
])
def test_money(value, expected):
    assert filters.money(value) == expected


def test_ago():
    now = utcnow()
    assert filters.ago(None) == "never"
    assert filters.ago(now) == "just now"
    assert filters.ago(now - timedelta(minutes=5, seconds=3)) == "5 min ago"
    assert filters.ago(now + timedelta(days=3, hours=1)) == "in 3 d"


def test_diff_items():
    rows = filters.diff_items({"enabled": [True, False], "config": [{}, {"a": 1}], "rotated": 3})
    assert ("enabled", "yes", "no") in rows
    assert ("config", "∅", '{"a": 1}') in rows
    assert ("rotated", None, "3") in rows
