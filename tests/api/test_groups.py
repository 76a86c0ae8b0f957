from app.extensions import db
from app.models import AuditLog


def _provider(api, name):
    return api.post("/api/admin/providers", json={"name": name, "type": "openai-compatible",
                                                  "api_base": f"http://{name.lower()}.test/v1",
                                                  "api_key": "k"}).get_json()["id"]


def test_group_lets_several_deployments_share_a_name(api):
    a, b = _provider(api, "A"), _provider(api, "B")
    assert api.post("/api/admin/models", json={"provider_id": a, "model_id": "m", "name": "chat"}).status_code == 201
    r = api.post("/api/admin/models", json={"provider_id": b, "model_id": "m", "name": "chat"})
    assert r.status_code == 409 and "/api/admin/groups/chat" in r.get_json()["error"]["message"]
    r = api.put("/api/admin/groups/chat", json={"strategy": "weighted", "fallbacks": ["small"],
                                                "retries": 3, "timeout_s": 20})
    assert r.status_code == 201, r.get_json()
    r = api.post("/api/admin/models", json={"provider_id": b, "model_id": "m", "name": "chat",
                                            "priority": 1, "weight": 3})
    assert r.status_code == 201
    group = api.get("/api/admin/groups/chat").get_json()
    assert group["strategy"] == "weighted" and group["fallbacks"] == ["small"] and group["retries"] == 3
    assert [(d["provider"], d["priority"], d["weight"]) for d in group["deployments"]] == [("A", 0, 1), ("B", 1, 3)]
    r = api.put("/api/admin/groups/chat", json={"strategy": "least-latency"})
    assert r.status_code == 200 and r.get_json()["strategy"] == "least-latency"
    assert [g["name"] for g in api.get("/api/admin/groups").get_json()["data"]] == ["chat"]
    actions = [a.action for a in db.session.scalars(db.select(AuditLog).where(AuditLog.entity_type == "group"))]
    assert actions == ["create", "update"]


def test_group_validation(api):
    assert api.put("/api/admin/groups/x", json={"strategy": "random"}).status_code == 422
    assert api.put("/api/admin/groups/x", json={"retries": 99}).status_code == 422
    assert api.put("/api/admin/groups/x", json={"fallbacks": ["x"]}).status_code == 422
    assert api.put("/api/admin/groups/x", json=[1]).status_code == 400
    assert api.get("/api/admin/groups/nope").status_code == 404
    assert api.put("/api/admin/groups/x", json={}).status_code == 201
    assert api.delete("/api/admin/groups/x").status_code == 200
    assert api.get("/api/admin/groups/x").status_code == 404
