"""Text no database column can hold as sent: NUL characters (PostgreSQL's text types refuse them,
SQLite keeps them), lone UTF-16 surrogates from JSON escapes (no UTF-8 encoding exists for them)
and values longer than a usage column. On both databases they give an answer in the API's format
and never a 500, and a usage record carrying one is written, not kept failing in the writer."""
from __future__ import annotations

import pytest
import responses

from app.extensions import db
from app.models import UsageRecord
from app.services.usage import UsageWriter

NUL = "a\x00b"
SURROGATE = "a\ud800b"


@pytest.mark.parametrize("value", [NUL, SURROGATE])
def test_filters_with_unstorable_text_match_nothing(api, value):
    quoted = value.encode("utf-8", "surrogatepass").decode("latin-1")
    for path in ("/api/admin/requests", "/api/admin/requests/export", "/api/admin/usage/breakdown",
                 "/api/admin/usage/timeseries", "/api/admin/usage/summary", "/api/admin/audit",
                 "/api/admin/keys", "/api/admin/models"):
        for param in ("model", "error_class", "owner", "outcome", "q", "actor", "entity", "tag"):
            r = api.get(path, query_string={param: value if value == NUL else quoted})
            assert r.status_code in (200, 422), (path, param, r.status_code, r.data[:300])
    r = api.get("/api/admin/requests", query_string={"error_class": NUL, "model": NUL})
    assert r.status_code == 200 and r.get_json()["data"] == []


@pytest.mark.parametrize("value", [NUL, SURROGATE])
def test_names_with_unstorable_text_are_stored_or_refused(api, value):
    r = api.post("/api/admin/keys", json={"name": f"key {value}", "owner": f"team {value}",
                                          "tags": [value], "scopes": ["chat"]})
    # a lone surrogate cannot be in JSON text that is UTF-8: such a body is refused whole
    assert r.status_code in ((201, 422) if value == NUL else (201, 400, 422)), r.data[:300]
    listed = api.get("/api/admin/keys")
    assert listed.status_code == 200
    if r.status_code == 201:
        names = [k["name"] for k in listed.get_json()["data"]]
        assert any(n.startswith("key a") and n.endswith("b") for n in names), names
    r = api.post("/api/admin/providers", json={"name": f"prov {value}", "type": "openai-compatible",
                                               "api_base": "http://upstream.test/v1",
                                               "api_key": "sk-x"})
    assert r.status_code in ((201, 422) if value == NUL else (201, 400, 422)), r.data[:300]
    assert api.get("/api/admin/providers").status_code == 200
    assert api.get("/api/admin/audit").status_code == 200


def test_usage_rows_with_unstorable_text_are_written(app):
    app.config["USAGE_FLUSH_INTERVAL"] = 3600
    writer = UsageWriter(app)
    writer.record({"request_id": "rq-nul", "model_name": NUL, "status_code": 404,
                   "error_class": "x\x00y", "owner": SURROGATE,
                   "details": {"note": NUL, "other": SURROGATE}})
    writer.record({"request_id": "rq-long", "model_name": "m" * 5000, "status_code": 404,
                   "error_class": "e" * 500, "owner": "o" * 500, "attempts": "a" * 900})
    writer.record({"request_id": "rq-ok", "model_name": "fine", "status_code": 200})
    assert writer.flush() == 3
    assert not writer.pending
    with app.app_context():
        rows = {r.request_id: r for r in db.session.query(UsageRecord)}
        assert sorted(rows) == ["rq-long", "rq-nul", "rq-ok"]
        nul = rows["rq-nul"]
        assert nul.model_name.startswith("a") and nul.model_name.endswith("b")
        assert len(nul.model_name) == 3 and nul.status_code == 404
        long = rows["rq-long"]
        assert long.model_name == "m" * 200 and long.owner == "o" * 120
        assert long.error_class == "e" * 40 and long.attempts == "a" * 500
        db.session.remove()


@responses.activate
def test_proxy_request_naming_an_unstorable_model_is_answered_and_recorded(app, client, admin_key):
    from app.services import keys
    from app.services.usage import flush_app
    _, raw = keys.create({"name": "app", "scopes": ["chat"]}, actor="test")
    for model in (NUL, "m" * 1000, SURROGATE):
        r = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                        json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code in (400, 404), (r.status_code, r.data[:300])
        assert r.get_json()["error"]["code"] in ("model_not_found", "invalid_request",
                                                 "validation_error", "invalid_json"), r.get_json()
    flush_app(app)
    with app.app_context():
        models = sorted(r.model_name for r in db.session.query(UsageRecord))
        assert len(models) >= 2 and models[-1] == "m" * 200, models  # the long one, cut
        db.session.remove()
    writer = app.extensions.get("gateway_usage_writer")
    assert writer is None or not writer.pending
