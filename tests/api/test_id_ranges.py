"""Ids and id filters beyond an INTEGER column (32-bit on PostgreSQL, where comparing one is an
error, not "no row"): a 404 or a 422 in the API's format on both databases, never a 500."""
from __future__ import annotations

import pytest

BIG = [2**31, 2**40, 2**63 - 1, -(2**31) - 5]


@pytest.mark.parametrize("value", BIG)
def test_path_ids_out_of_range_are_not_found(api, value):
    for path in (f"/api/admin/keys/{value}", f"/api/admin/providers/{value}",
                 f"/api/admin/models/{value}", f"/api/admin/requests/{value}"):
        r = api.get(path)
        assert r.status_code == 404, (path, r.status_code, r.data[:200])
        assert "error" in r.get_json()


@pytest.mark.parametrize("value", BIG)
def test_id_filters_out_of_range_are_refused_or_match_nothing(api, value):
    for path in (f"/api/admin/requests?key_id={value}", f"/api/admin/requests?provider_id={value}",
                 f"/api/admin/requests?status={value}",
                 f"/api/admin/requests/export?key_id={value}"):
        r = api.get(path)
        assert r.status_code == 422, (path, r.status_code, r.data[:200])
        assert r.get_json()["error"]["message"].split()[0] in ("key_id", "provider_id", "status")
    # one filter reads the rollups, whose values are text: no row matches, zeros come back
    for path in (f"/api/admin/usage/summary?key_id={value}",
                 f"/api/admin/usage/breakdown?provider_id={value}&key_id=1"):
        r = api.get(path)
        assert r.status_code in (200, 422), (path, r.status_code, r.data[:200])
        if r.status_code == 200 and "summary" in path:
            assert r.get_json()["current"]["requests"] == 0
    for path in (f"/api/admin/models?provider_id={value}", f"/api/admin/audit?before={value}"):
        r = api.get(path)
        assert r.status_code == 200, (path, r.status_code, r.data[:200])
    assert api.get(f"/api/admin/models?provider_id={value}").get_json()["data"] == []


def test_console_id_arguments_out_of_range(admin_client):
    for path in (f"/models?provider_id={2**40}", f"/models/new?provider_id={2**40}",
                 f"/playground?c={2**40}"):
        r = admin_client.get(path)
        assert r.status_code in (200, 404), (path, r.status_code)
