def test_settings_defaults_update_and_validation(api):
    s = api.get("/api/admin/settings").get_json()
    assert s["sensitivity"]["action"] == "allow" and s["cache"]["enabled"] is True
    r = api.patch("/api/admin/settings", json={"sensitivity": {"action": "route", "threshold": 0.7,
                                                               "keywords": ["project-x"]}})
    assert r.status_code == 200
    body = r.get_json()
    assert body["sensitivity"]["action"] == "route" and body["sensitivity"]["threshold"] == 0.7
    assert body["sensitivity"]["trusted_levels"] == ["local", "private"]  # default kept
    assert api.get("/api/admin/settings").get_json()["sensitivity"]["keywords"] == ["project-x"]
    assert api.patch("/api/admin/settings", json={"sensitivity": {"action": "shred"}}).status_code == 422
    assert api.patch("/api/admin/settings", json={"cache": {"default_ttl": 0}}).status_code == 422
    assert api.patch("/api/admin/settings", json={"colour": "blue"}).status_code == 422


def test_key_sensitivity_override(api):
    r = api.post("/api/admin/keys", json={"name": "k", "sensitivity": {"action": "block"}})
    assert r.status_code == 201 and r.get_json()["sensitivity"] == {"action": "block"}
    r = api.post("/api/admin/keys", json={"name": "k", "sensitivity": {"action": "nope"}})
    assert r.status_code == 422
