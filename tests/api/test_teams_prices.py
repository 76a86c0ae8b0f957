from decimal import Decimal

from app.services import prices


def test_team_crud_with_budget(api):
    r = api.post("/api/admin/teams", json={"name": "research", "budget": {"amount_usd": "250.50", "period": "month", "soft_pct": 90}})
    assert r.status_code == 201, r.get_json()
    team = r.get_json()
    assert team["budget"] == {"amount_usd": "250.50", "period": "month", "soft_pct": 90}
    api.post("/api/admin/keys", json={"name": "k1", "owner": "research"})
    api.post("/api/admin/keys", json={"name": "k2", "owner": "research"})
    assert api.get(f"/api/admin/teams/{team['id']}").get_json()["key_count"] == 2
    assert api.post("/api/admin/teams", json={"name": "research"}).status_code == 409
    r = api.patch(f"/api/admin/teams/{team['id']}", json={"budget": {"amount_usd": -1}})
    assert r.status_code == 422
    r = api.patch(f"/api/admin/teams/{team['id']}", json={"budget": None})
    assert r.status_code == 200 and r.get_json()["budget"] is None
    assert api.delete(f"/api/admin/teams/{team['id']}").status_code == 200
    assert api.get("/api/admin/teams").get_json()["data"] == []


def test_model_and_provider_limits(api):
    pid = api.post("/api/admin/providers", json={"name": "P", "type": "openai", "api_key": "sk-x",
                                                 "limits": {"rpm": 500, "tpm": 200000}}).get_json()["id"]
    assert api.get(f"/api/admin/providers/{pid}").get_json()["limits"] == {"rpm": 500, "tpm": 200000}
    r = api.post("/api/admin/models", json={"provider_id": pid, "model_id": "gpt-4o", "limits": {"concurrency": 4}})
    assert r.get_json()["limits"] == {"concurrency": 4}
    r = api.post("/api/admin/models", json={"provider_id": pid, "model_id": "x", "limits": {"bogus": 1}})
    assert r.status_code == 422


def test_builtin_prices_lookup_and_fill(api):
    assert prices.lookup("gpt-4o-mini-2024-07-18")["input_price_per_mtok"] == Decimal("0.15")
    assert prices.lookup("gpt-4o-2024-08-06")["output_price_per_mtok"] == Decimal("10.00")
    assert prices.lookup("us.anthropic.claude-3-5-haiku-20241022-v1:0")["matched"] == "claude-3-5-haiku"
    assert prices.lookup("openai/gpt-4.1-mini")["matched"] == "gpt-4.1-mini"
    assert prices.lookup("my-finetune") is None
    pid = api.post("/api/admin/providers", json={"name": "P", "type": "openai", "api_key": "sk-x"}).get_json()["id"]
    m = api.post("/api/admin/models", json={"provider_id": pid, "model_id": "claude-sonnet-4-20250514"}).get_json()
    assert (m["input_price_per_mtok"], m["output_price_per_mtok"], m["cached_input_price_per_mtok"]) == (3.0, 15.0, 0.3)
    m = api.post("/api/admin/models", json={"provider_id": pid, "model_id": "gpt-4o", "input_price_per_mtok": 1}).get_json()
    assert m["input_price_per_mtok"] == 1.0 and m["output_price_per_mtok"] == 0.0  # the admin's values win
    r = api.get("/api/admin/prices?model_id=gpt-4.1-nano").get_json()
    assert r["known"] and r["input_price_per_mtok"] == 0.10
    assert api.get("/api/admin/prices?model_id=zzz").get_json() == {"model_id": "zzz", "known": False}


def test_renaming_a_team_keeps_its_keys(api):
    tid = api.post("/api/admin/teams", json={"name": "old"}).get_json()["id"]
    kid = api.post("/api/admin/keys", json={"name": "k", "owner": "old"}).get_json()["id"]
    assert api.patch(f"/api/admin/teams/{tid}", json={"name": "new"}).status_code == 200
    assert api.get(f"/api/admin/keys/{kid}").get_json()["owner"] == "new"
    assert api.get(f"/api/admin/teams/{tid}").get_json()["key_count"] == 1
