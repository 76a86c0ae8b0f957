"""Liveness, readiness, metrics, request ids."""
import responses


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["status"] == "ready"
    from alembic.script import ScriptDirectory
    from alembic.config import Config
    from pathlib import Path
    migrations = Path(__file__).resolve().parent.parent / "migrations"
    config = Config(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1  # one line of migrations, no forks
    assert r.get_json()["migrations"]["head"] == heads


def test_readyz_reports_an_unmigrated_db(app_factory, tmp_path):
    app = app_factory(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.db'}")
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and r.get_json()["migrations"]["current"] == []


def test_request_id_passed_through_or_generated(client):
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz", headers={"x-request-id": "bad id with spaces"}).headers["x-request-id"]
    assert generated.startswith("req_")


@responses.activate
def test_metrics_after_traffic(app_factory):
    from app.services import keys, models, providers
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0)
    with app.app_context():
        p = providers.create({"name": "MetricsUp", "type": "openai-compatible", "api_base": "http://up.test/v1"}, actor="t")
        models.create({"provider_id": p.id, "model_id": "metric-model", "input_price_per_mtok": 1,
                       "output_price_per_mtok": 2}, actor="t")
        _, raw = keys.create({"name": "k"}, actor="t")
        responses.post("http://up.test/v1/chat/completions", json={
            "id": "c", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
        c = app.test_client()
        rid = c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw}", "x-request-id": "trace-1"},
                     json={"model": "metric-model", "messages": [{"role": "user", "content": "x"}]}).headers["x-request-id"]
        assert rid == "trace-1"
        text = c.get("/metrics").get_data(as_text=True)
        assert 'gateway_requests_total{endpoint="chat",model="metric-model",provider="MetricsUp",status="200"}' in text
        assert 'gateway_tokens_total{direction="output",model="metric-model",provider="MetricsUp"}' in text
        assert 'gateway_provider_healthy{provider="MetricsUp"} -1.0' in text
        assert "gateway_request_duration_seconds_bucket" in text
        from app.extensions import db
        from app.models import UsageRecord
        assert db.session.scalars(db.select(UsageRecord.request_id)).all() == ["trace-1"]


def test_metrics_token(app_factory):
    app = app_factory(METRICS_TOKEN="s3cret")
    c = app.test_client()
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
