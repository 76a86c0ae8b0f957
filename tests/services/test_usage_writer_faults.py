"""The batched usage writer when the DB refuses a batch: the batch is kept whole (logged bodies
included) for the next flush, the log line names the driver's error but never the statement or
its parameters, and a bounded backlog drops (and counts) the oldest records only."""
from __future__ import annotations

import logging
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.metrics import USAGE_DROPPED, USAGE_WRITE_FAILURES
from app.models import UsageBody, UsageRecord
from app.services import rollups
from app.services.usage import UsageWriter

OWNER = "canary-owner@example.org"


def _row(i: int) -> dict:
    return {"request_id": f"rq-{i}", "model_name": "m", "status_code": 200, "owner": OWNER,
            "_body": {"request": {"messages": [{"role": "user", "content": f"hello {i}"}]},
                      "response": {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}}}


@pytest.fixture
def writer(app):
    app.config["USAGE_FLUSH_INTERVAL"] = 3600  # no flush by the background loop during the test
    return UsageWriter(app)


def test_refused_batch_is_kept_with_its_bodies_and_logged_without_parameters(app, writer, monkeypatch,
                                                                             caplog):
    real_apply = rollups.apply
    calls = {"n": 0}

    def failing_apply(rows):  # after the raw insert ran: the whole transaction is rolled back
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("INSERT INTO usage_records (owner) VALUES (?)", {"owner": OWNER},
                                   sqlite3.OperationalError("disk I/O error"))
        return real_apply(rows)

    monkeypatch.setattr(rollups, "apply", failing_apply)
    failures = USAGE_WRITE_FAILURES._value.get()
    for i in range(3):
        writer.record(_row(i))
    with caplog.at_level(logging.INFO, logger="app.services.usage"):
        assert writer.flush() == 0
    assert len(writer.pending) == 3 and all("_body" in r for r in writer.pending)
    assert USAGE_WRITE_FAILURES._value.get() == failures + 1
    text = caplog.text
    assert "usage batch of 3 not written (OperationalError: disk I/O error)" in text
    assert OWNER not in text and "INSERT" not in text and "parameters" not in text
    assert "hello" not in text
    with app.app_context():
        assert db.session.query(UsageRecord).count() == 0

    assert writer.flush() == 3
    assert not writer.pending
    with app.app_context():
        assert sorted(r.request_id for r in db.session.query(UsageRecord)) == ["rq-0", "rq-1", "rq-2"]
        bodies = {b.request_id: b for b in db.session.query(UsageBody)}
        assert sorted(bodies) == ["rq-0", "rq-1", "rq-2"]  # the bodies survived the refused attempt
        assert bodies["rq-1"].request["messages"][0]["content"] == "hello 1"
        db.session.remove()


def test_bounded_backlog_drops_the_oldest_and_counts_them(app, writer, monkeypatch, caplog):
    app.config["USAGE_MAX_PENDING"] = 3
    w = UsageWriter(app)
    assert w.max_pending == 3

    def refuse(batch):
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(UsageWriter, "_write", staticmethod(refuse))
    dropped = USAGE_DROPPED._value.get()
    with caplog.at_level(logging.INFO, logger="app.services.usage"):
        for i in range(5):
            w.record({"request_id": f"rq-{i}", "status_code": 200})
            w.flush()
    assert [r["request_id"] for r in w.pending] == ["rq-2", "rq-3", "rq-4"]
    assert w.dropped == 2 and USAGE_DROPPED._value.get() == dropped + 2
    assert "backlog full: 1 record(s) dropped so far" in caplog.text
    assert "database or disk is full" in caplog.text
