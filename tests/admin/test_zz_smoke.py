def test_smoke(admin_client, make_provider, make_model):
    p = make_provider(api_key="sk-test-SECRET-9999")
    make_model(p)
    for url in ["/", "/providers", "/providers/new", f"/providers/{p.id}", f"/providers/{p.id}/edit",
                "/providers/fields?type=bedrock", "/models", "/models/new", "/keys", "/keys/new", "/health", "/audit",
                f"/providers/{p.id}/delete", "/nope"]:
        r = admin_client.get(url)
        print(url, r.status_code, len(r.data))
        assert r.status_code in (200, 404), r.data.decode()[:3000]
        assert b"sk-test-SECRET-9999" not in r.data
