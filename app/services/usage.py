"""Batched usage writer: requests append plain dicts; a background flusher writes them in bulk.

The request path never waits on the DB. Records are flushed every USAGE_FLUSH_INTERVAL seconds
(one transaction per batch), at worker exit (gunicorn worker_exit hook and atexit), and when
a batch fills. If the DB is unavailable the batch is kept and retried, bounded by
MAX_PENDING; anything dropped beyond that is counted and logged, never silently lost.
"""
from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from datetime import datetime
from typing import Any

from flask import Flask, current_app

from app.extensions import db
from app.models import GatewayKey, UsageBody, UsageRecord, utcnow
from app.services import rollups

log = logging.getLogger(__name__)
MAX_PENDING = 200_000
BATCH = 2_000


def _sleep(seconds: float) -> None:
    try:
        from gevent import monkey, sleep
        if monkey.is_module_patched("threading"):
            return sleep(seconds)
    except ImportError:  # pragma: no cover
        pass
    import time
    time.sleep(seconds)


class UsageWriter:
    def __init__(self, app: Flask):
        self.app = app
        self.interval = app.config["USAGE_FLUSH_INTERVAL"]
        self.max_pending = int(app.config.get("USAGE_MAX_PENDING") or MAX_PENDING)
        self.pending: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.written = 0
        self._started = False
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()

    def record(self, row: dict[str, Any]) -> None:
        row.setdefault("created_at", utcnow())
        from app.metrics import USAGE_DROPPED, USAGE_PENDING
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
            USAGE_DROPPED.inc()
            USAGE_PENDING.dec()
            if self.dropped % 1000 == 1:
                log.error("usage writer backlog full: %d record(s) dropped so far", self.dropped)
        self.pending.append(row)
        USAGE_PENDING.inc()
        if self.interval <= 0:
            self.flush()
        elif not self._started:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
            atexit.register(self.flush)
            thread = threading.Thread(target=self._loop, name="usage-writer", daemon=True)
            thread.start()  # a greenlet under gevent's monkey-patching

    def _loop(self) -> None:
        while True:
            _sleep(self.interval)
            try:
                self.flush()
            except Exception:  # never let the flusher die
                log.exception("usage flush failed; will retry")

    def flush(self) -> int:
        """Write everything pending; returns the number of rows written."""
        with self._flush_lock:
            total = 0
            while self.pending:
                batch = [self.pending.popleft() for _ in range(min(BATCH, len(self.pending)))]
                try:
                    with self.app.app_context():
                        self._write(batch)
                except Exception as exc:
                    from app.metrics import USAGE_WRITE_FAILURES
                    USAGE_WRITE_FAILURES.inc()
                    if not _transient(exc):
                        # the DB refused a row, not the batch: write the rows one by one so
                        # the others land and only the refused one is dropped (and counted)
                        written, stopped = self._write_rows(batch, exc)
                        total += written
                        if stopped:
                            break
                        continue
                    # the driver's message only: SQLAlchemy's own text carries the statement's
                    # parameters (owners, request metadata), which must not reach the logs
                    log.error("usage batch of %d not written (%s); keeping it for retry (%d pending)",
                              len(batch), _describe(exc), len(self.pending) + len(batch))
                    self.pending.extendleft(reversed(batch))
                    break
                from app.metrics import USAGE_PENDING
                USAGE_PENDING.dec(len(batch))
                total += len(batch)
            self.written += total
            return total

    def _write_rows(self, batch: list[dict[str, Any]], first: BaseException) -> tuple[int, bool]:
        """(rows written, whether the database became unavailable meanwhile)."""
        from app.metrics import USAGE_DROPPED, USAGE_PENDING
        written = 0
        for i, row in enumerate(batch):
            try:
                with self.app.app_context():
                    self._write([row])
            except Exception as exc:
                if _transient(exc):  # the DB itself went away meanwhile: keep the rest
                    self.pending.extendleft(reversed(batch[i:]))
                    log.error("usage batch of %d not written (%s); keeping it for retry "
                              "(%d pending)", len(batch) - i, _describe(exc), len(self.pending))
                    return written, True
                self.dropped += 1
                USAGE_DROPPED.inc()
                USAGE_PENDING.dec()
                log.error("usage record %s refused by the database (%s); dropped (%d so far)",
                          row.get("request_id") or "-", _describe(exc), self.dropped)
                continue
            USAGE_PENDING.dec()
            written += 1
        log.warning("usage batch of %d written row by row after %s: %d written",
                    len(batch), _describe(first), written)
        return written, False

    @staticmethod
    def _write(batch: list[dict[str, Any]]) -> None:
        batch = [_fit(row) for row in batch]
        try:
            # copies without the body: a batch the DB refuses is kept (bodies included) for retry
            bodies = [(row.get("request_id"), row.get("created_at"), row["_body"])
                      for row in batch if "_body" in row]
            if bodies:
                batch = [{k: v for k, v in row.items() if k != "_body"} for row in batch]
            db.session.execute(db.insert(UsageRecord), batch)
            rollups.apply(batch)
            if bodies:
                db.session.execute(db.insert(UsageBody), [
                    {"request_id": rid or "", "created_at": at, **redact_body(body)}
                    for rid, at, body in bodies])
            last_used: dict[int, datetime] = {}
            for row in batch:
                kid = row.get("key_id")
                if kid is not None and (kid not in last_used or row["created_at"] > last_used[kid]):
                    last_used[kid] = row["created_at"]
            for kid, at in last_used.items():
                db.session.execute(db.update(GatewayKey).where(GatewayKey.id == kid)
                                   .values(last_used_at=at))
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()


def _transient(exc: BaseException) -> bool:
    """The database is unavailable (down, locked, read-only, disk full, connection lost), as
    opposed to refusing these rows' values: retrying the same batch later can succeed."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
    if isinstance(exc, (OperationalError, InterfaceError)) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    return not isinstance(exc, (StatementError, UnicodeError, ValueError, TypeError))


_LENGTHS: dict[str, int] | None = None


def _fit(row: dict[str, Any]) -> dict[str, Any]:
    """Strings cut to their column's length (PostgreSQL refuses a longer value where SQLite keeps
    it): a 5,000-character model name in a failed request is recorded, cut, not refused."""
    global _LENGTHS
    if _LENGTHS is None:
        _LENGTHS = {c.name: c.type.length for c in UsageRecord.__table__.columns
                    if getattr(c.type, "length", None)}
    long = [k for k, n in _LENGTHS.items() if isinstance(row.get(k), str) and len(row[k]) > n]
    if not long:
        return row
    return {**row, **{k: row[k][:_LENGTHS[k]] for k in long}}


def _describe(exc: BaseException) -> str:
    """'OperationalError: disk I/O error': the exception class and the DB driver's message,
    never the SQL statement or its parameters."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        return f"{type(orig).__name__}: {str(orig)[:200]}"
    return type(exc).__name__


def redact_body(body: dict[str, Any]) -> dict[str, Any]:
    """Mask secrets and personal data in logged bodies before they are stored."""
    from app.inspect import Inspector
    inspector = Inspector()
    request = dict(body.get("request") or {})
    if isinstance(request.get("messages"), list):
        request["messages"], _ = inspector.redact_messages(request["messages"])
    response = body.get("response")
    if isinstance(response, dict):
        response = dict(response)
        choices = []
        for ch in response.get("choices") or []:
            msg = dict((ch or {}).get("message") or {})
            if msg:
                redacted, _ = inspector.redact_messages([msg])
                ch = {**ch, "message": redacted[0]}
            choices.append(ch)
        response["choices"] = choices
    return {"request": request, "response": response}


def writer() -> UsageWriter:
    ext = current_app.extensions
    w = ext.get("gateway_usage_writer")
    if w is None:
        w = ext["gateway_usage_writer"] = UsageWriter(current_app._get_current_object())
    return w


def flush_app(app: Flask) -> int:
    w = app.extensions.get("gateway_usage_writer")
    return w.flush() if w is not None else 0
