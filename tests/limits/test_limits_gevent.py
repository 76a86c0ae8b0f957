"""Under gevent monkey-patching (the gunicorn worker class): greenlets share one store."""
from __future__ import annotations

from limits_support import gevent_burst


def test_greenlets_share_a_small_pool(tmp_path):
    res = gevent_burst("SQLiteStore", str(tmp_path / "limits.db"))
    # 200 requests at the same instant: 30 reservations of $0.01 fit the $0.30 budget; a
    # transaction never yields, so the greenlets needed a single connection between them
    assert res["reasons"] == {"ok": 30, "budget": 170}
    assert res["pool"] == 1
    assert res["spent"] == "0.150"
