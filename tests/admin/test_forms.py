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


# --- spend filters ------------------------------------------------------------------------------

@pytest.mark.parametrize("value, shown", [
    (None, "—"), ("0", "$0.00"), ("0.5", "$0.50"), ("0.028725", "$0.0287"), ("0.00075", "$0.00075"),
    ("0.001", "$0.001"), ("12", "$12.00"), ("1234.5", "$1,234.50"), ("0.0000001", "<$0.000001"),
    (Decimal("0.00287200"), "$0.00287"),
])
def test_usd(value, shown):
    assert filters.usd(value) == shown


@pytest.mark.parametrize("seconds, shown", [
    (None, "—"), (0.4, "0 s"), (45, "45 s"), (125, "2 min 5 s"), (600, "10 min"), (3600, "1 h"),
    (3 * 3600 + 5 * 60, "3 h 5 min"), (86400 * 6 + 4 * 3600, "6 d 4 h"), (86400 * 2, "2 d"),
])
def test_duration(seconds, shown):
    assert filters.duration(seconds) == shown


def test_limits_text():
    assert filters.limits_text({"concurrency": 4, "rpm": 60, "tpm": 90000}) == "60 rpm · 90,000 tpm · 4 concurrent"
    assert filters.limits_text({}) == filters.limits_text(None) == ""


def _budget(spent, reserved, amount="10", soft=80):
    return {"amount_usd": Decimal(amount), "spent_usd": Decimal(spent), "reserved_usd": Decimal(reserved),
            "soft_pct": soft}


@pytest.mark.parametrize("spent, reserved, level, spent_pct, reserved_pct", [
    ("0", "0", "ok", 0.0, 0.0),
    ("4", "1.5", "ok", 40.0, 15.0),
    ("6", "2", "warn", 60.0, 20.0),      # exactly at the soft threshold
    ("9", "2", "over", 90.0, 10.0),      # reserved is capped at what is left of the bar
    ("12", "0", "over", 100.0, 0.0),
])
def test_budget_meter(spent, reserved, level, spent_pct, reserved_pct):
    m = filters.budget_meter(_budget(spent, reserved))
    assert (m["level"], m["spent_pct"], m["reserved_pct"], m["soft_pct"]) == (level, spent_pct, reserved_pct, 80)


def test_budget_meter_zero_amount_is_used_up():
    assert filters.budget_meter(_budget("0", "0", amount="0"))["level"] == "over"


@pytest.mark.parametrize("used, limit, level", [(0, 10, "ok"), (7, 10, "ok"), (8, 10, "warn"), (10, 10, "over")])
def test_limit_meter(used, limit, level):
    m = filters.limit_meter({"used": used, "limit": limit, "remaining": limit - used})
    assert m["level"] == level and m["pct"] == used * 100 / limit
