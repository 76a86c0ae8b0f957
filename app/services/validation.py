"""Small typed validators shared by the services (the API and forms both go through them)."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from app.services.errors import ValidationFailed


def text(data: dict, field: str, *, required: bool = False, max_len: int = 200,
         default: str | None = None) -> str | None:
    value = data.get(field, default)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationFailed(f"{field} is required", field=field)
        return default if default is None or isinstance(default, str) else None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string", field=field)
    value = value.strip()
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValidationFailed(f"{field} is not valid text", field=field)
    if len(value) > max_len:
        raise ValidationFailed(f"{field} must be at most {max_len} characters", field=field)
    return value


def url(data: dict, field: str, *, required: bool = True) -> str | None:
    value = text(data, field, required=required, max_len=500)
    if value is None:
        return None
    try:
        parsed = urlparse(value)
        parsed.port  # raises ValueError on a bad port
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationFailed(f"{field} must be an http(s) URL such as https://api.example.com/v1",
                               field=field)
    return value.rstrip("/")


def boolean(data: dict, field: str, default: bool) -> bool:
    value = data.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "y"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off", "n", ""):
        return False
    raise ValidationFailed(f"{field} must be true or false", field=field)


#: the largest row id: primary and foreign keys are INTEGER columns, 32-bit on PostgreSQL
ID_MAX = 2**31 - 1


def clamp_id(value: int | None) -> int | None:
    """An id from a URL or a query string as the database can compare it: one out of the
    column's range matches no row (-1) instead of an "integer out of range" error."""
    return value if value is None or -ID_MAX <= value <= ID_MAX else -1


def integer(data: dict, field: str, *, lo: int | None = None, hi: int | None = None,
            default: int | None = None) -> int | None:
    value = data.get(field, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationFailed(f"{field} must be an integer", field=field)
    try:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationFailed(f"{field} must be an integer", field=field) from None
    if not -(2**63) < number < 2**63:  # what the database can store
        raise ValidationFailed(f"{field} is out of range", field=field)
    _range(field, number, lo, hi)
    return number


def number(data: dict, field: str, *, lo: float | None = None, hi: float | None = None,
           default: float | None = None) -> float | None:
    value = data.get(field, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationFailed(f"{field} must be a number", field=field)
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationFailed(f"{field} must be a number", field=field) from None
    if result != result or result in (float("inf"), float("-inf")):
        raise ValidationFailed(f"{field} must be a finite number", field=field)
    _range(field, result, lo, hi)
    return result


def decimal(data: dict, field: str, *, lo: Decimal | None = Decimal(0), hi: Decimal | None = None,
            default: Decimal | None = None) -> Decimal | None:
    value = data.get(field, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationFailed(f"{field} must be a number", field=field)
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a number", field=field) from None
    if not result.is_finite():
        raise ValidationFailed(f"{field} must be a finite number", field=field)
    _range(field, result, lo, hi)
    return result


def _range(field: str, value: Any, lo: Any, hi: Any) -> None:
    if lo is not None and value < lo:
        raise ValidationFailed(f"{field} must be at least {lo}", field=field)
    if hi is not None and value > hi:
        raise ValidationFailed(f"{field} must be at most {hi}", field=field)


def choice(data: dict, field: str, choices: tuple | list, default: str | None = None) -> str:
    value = data.get(field, default)
    if value not in choices:
        raise ValidationFailed(f"{field} must be one of: {', '.join(choices)}", field=field)
    return value


def string_list(data: dict, field: str, *, allowed: tuple | None = None,
                default: list | None = None, max_items: int = 500) -> list[str]:
    value = data.get(field, default if default is not None else [])
    if value is None:
        value = []
    if isinstance(value, str):
        value = [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed(f"{field} must be a list of strings", field=field)
    if len(value) > max_items:
        raise ValidationFailed(f"{field} has too many items (max {max_items})", field=field)
    value = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValidationFailed(
                f"{field}: unknown value(s) {', '.join(bad)}; allowed: {', '.join(allowed)}", field=field)
    return value


def mapping(data: dict, field: str) -> dict:
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must be an object", field=field)
    return value


def timestamp(data: dict, field: str) -> datetime | None:
    value = data.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be an ISO 8601 timestamp", field=field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"{field} must be an ISO 8601 timestamp such as 2027-01-31T00:00:00Z",
                               field=field) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise ValidationFailed(f"{field} is out of range", field=field) from None
    return parsed
