"""Body logging: off by default, on per key or model, redacted, pruned on its own schedule."""
import responses

from app.extensions import db
from app.models import UsageBody

UP = "http://up.test/v1/chat/completions"
REPLY = {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "mail me at bob@example.com"},
                      "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
MSG = [{"role": "user", "content": "my token is sk-proj-abcdefghijklmnopqrstuvwxyz123456"}]


@responses.activate
def test_bodies_only_when_enabled_and_redacted(gw, gw_client, auth, openai_route):
    from app.services import keys
    responses.post(UP, json=REPLY)
    gw_client.post("/v1/chat/completions", headers=auth, json={"model": "mini", "messages": MSG})
    assert db.session.scalar(db.select(db.func.count(UsageBody.id))) == 0
    k, raw = keys.create({"name": "debug", "log_bodies": True}, actor="t")
    r = gw_client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                       json={"model": "mini", "messages": MSG})
    (body,) = db.session.scalars(db.select(UsageBody)).all()
    assert body.request_id == r.headers["x-request-id"]
    assert "sk-proj" not in str(body.request) and "[REDACTED:secret]" in str(body.request)
    assert "bob@example.com" not in str(body.response) and "[REDACTED:pii]" in str(body.response)


@responses.activate
def test_model_flag_and_api_detail(gw, gw_client, auth, openai_route):
    from app.services import keys, models
    _, m, _ = openai_route
    models.update(m, {"log_bodies": True}, actor="t")
    responses.post(UP, json=REPLY)
    gw_client.post("/v1/chat/completions", headers=auth, json={"model": "mini", "messages": MSG})
    _, admin = keys.create({"name": "a", "scopes": ["admin"]}, actor="t")
    h = {"Authorization": f"Bearer {admin}"}
    rid = gw_client.get("/api/admin/requests", headers=h).get_json()["data"][0]["id"]
    detail = gw_client.get(f"/api/admin/requests/{rid}", headers=h).get_json()
    assert detail["body"]["request"]["model"] == "mini"
    from datetime import timedelta
    from app.models import utcnow
    from app.services.usage_query import prune_bodies
    db.session.execute(db.update(UsageBody).values(created_at=utcnow() - timedelta(days=10)))
    db.session.commit()
    assert prune_bodies(7) == 1
