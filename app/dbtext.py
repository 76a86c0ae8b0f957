"""Text every database can store: the one place bound string parameters are made storable.

* PostgreSQL's text types refuse the NUL character (``invalid byte sequence ... 0x00``), where
  SQLite keeps it. A NUL in a filter (``?model=a%00b``) or in a stored name would be a 500 on
  PostgreSQL only, and a usage row carrying one would be refused on every retry. On PostgreSQL it
  is bound as U+FFFD (the replacement character): a filter matches nothing, a name keeps a
  visible mark where the NUL was.
* A lone UTF-16 surrogate (from a ``\\ud800`` JSON escape) has no UTF-8 encoding: no driver can
  send it. It is bound as U+FFFD on every database.

Installed once as a ``before_cursor_execute`` hook on every engine. The common case costs one
``isascii()`` per string parameter and no copy.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

REPLACEMENT = "\ufffd"


def storable(value: str, nul: bool = True) -> str:
    """``value`` with NULs (when ``nul``) and lone surrogates replaced by U+FFFD; ``value``
    itself (the same object) when it has neither."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = "".join(REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    if nul and "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    return value


def _bad(value: Any, nul: bool) -> bool:
    return isinstance(value, str) and storable(value, nul) is not value


def _params(params: Any, nul: bool) -> Any:
    if isinstance(params, dict):
        if any(_bad(v, nul) for v in params.values()):
            return {k: storable(v, nul) if isinstance(v, str) else v for k, v in params.items()}
        return params
    if isinstance(params, (list, tuple)) and params:
        if isinstance(params[0], (dict, list, tuple)):  # executemany: one set per row
            return type(params)(_params(p, nul) for p in params)
        if any(_bad(v, nul) for v in params):
            return type(params)(storable(v, nul) if isinstance(v, str) else v for v in params)
    return params


@event.listens_for(Engine, "before_cursor_execute", retval=True)
def _storable_text(conn, _cursor, statement, parameters, _context, _executemany):
    return statement, _params(parameters, conn.dialect.name == "postgresql")
