import time
from app.extensions import db
def test_smoke(admin_client, make_provider, make_model, app):
    from app.services import groups
    p1 = make_provider(name="OpenAI")
    p2 = make_provider(name="Azure", api_base="http://azure.test/v1")
    groups.put("gpt-4o", {"strategy": "weighted", "fallbacks": []}, "t")
    m1 = make_model(p1, model_id="gpt-4o", name="gpt-4o")
    m2 = make_model(p2, model_id="gpt-4o-2024", name="gpt-4o", priority=1)
    from app.services.router import router
    router().breaker.record(m2.id, "auth", time.time())
    for url in ["/groups", "/groups/gpt-4o", "/groups/-/new", "/health", "/cache", "/settings", f"/groups/-/deployments/{m1.id}", "/groups/-/delete/gpt-4o", "/cache/clear-all"]:
        r = admin_client.get(url)
        print(url, r.status_code)
        assert r.status_code == 200, r.get_data(as_text=True)[-3000:]
