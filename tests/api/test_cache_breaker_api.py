import responses

REPLY = {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@responses.activate
def test_cache_stats_and_clear(app_factory):
    from app.services import keys, models, providers
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0)
    with app.app_context():
        p = providers.create({"name": "P", "type": "openai-compatible", "api_base": "http://up.test/v1"}, actor="t")
        for mid in ("m1", "m2"):
            models.create({"provider_id": p.id, "model_id": mid}, actor="t")
        _, raw = keys.create({"name": "k", "scopes": ["chat", "admin"]}, actor="t")
        h = {"Authorization": f"Bearer {raw}"}
        c = app.test_client()
        responses.post("http://up.test/v1/chat/completions", json=REPLY)
        for model in ("m1", "m2", "m1"):
            c.post("/v1/chat/completions", headers=h,
                   json={"model": model, "messages": [{"role": "user", "content": "x"}], "temperature": 0})
        stats = c.get("/api/admin/cache", headers=h).get_json()
        assert stats["entries"] == 2 and stats["hits"] == 1 and stats["misses"] == 2
        assert c.post("/api/admin/cache/clear", headers=h, json={"model": "m1"}).get_json() == {"removed": 1}
        assert c.post("/api/admin/cache/clear", headers=h, json={"pattern": "m*"}).get_json() == {"removed": 1}
        assert c.post("/api/admin/cache/clear", headers=h, json={"key_id": "x"}).status_code == 422


@responses.activate
def test_breaker_reset_reenables_a_disabled_deployment(app_factory):
    from app.services import groups, keys, models, providers
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0)
    with app.app_context():
        groups.put("g", {}, actor="t")
        p = providers.create({"name": "P", "type": "openai-compatible", "api_base": "http://up.test/v1"}, actor="t")
        m = models.create({"provider_id": p.id, "model_id": "m", "name": "g"}, actor="t")
        _, raw = keys.create({"name": "k", "scopes": ["chat", "admin"]}, actor="t")
        h = {"Authorization": f"Bearer {raw}"}
        c = app.test_client()
        responses.post("http://up.test/v1/chat/completions", status=401,
                       json={"error": {"message": "bad key", "type": "invalid_request_error"}})
        body = {"model": "g", "messages": [{"role": "user", "content": "x"}]}
        assert c.post("/v1/chat/completions", headers=h, json=body).status_code == 502
        group = c.get("/api/admin/groups/g", headers=h).get_json()
        assert group["deployments"][0]["breaker"]["state"] == "disabled"
        r = c.post(f"/api/admin/deployments/{m.id}/breaker/reset", headers=h)
        assert r.status_code == 200 and r.get_json()["breaker"]["state"] == "closed"
