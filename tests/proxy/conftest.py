import pytest


@pytest.fixture
def gw(app_factory):
    """An app wired for proxy tests: requests transport (faked by `responses`), usage written
    synchronously, cache re-validated on every request."""
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0)
    with app.app_context():
        yield app


@pytest.fixture
def gw_client(gw):
    return gw.test_client()


@pytest.fixture
def chat_key(gw):
    from app.services import keys
    _, raw = keys.create({"name": "app", "scopes": ["chat", "embeddings", "models"]}, actor="t")
    return raw


@pytest.fixture
def auth(chat_key):
    return {"Authorization": f"Bearer {chat_key}"}


@pytest.fixture
def openai_route(gw):
    from app.services import models, providers
    p = providers.create({"name": "Up", "type": "openai-compatible",
                          "api_base": "http://up.test/v1", "api_key": "sk-upstream-SECRET-1"}, actor="t")
    m = models.create({"provider_id": p.id, "model_id": "gpt-4o-mini-2024", "name": "mini",
                       "input_price_per_mtok": "0.15", "output_price_per_mtok": "0.60"}, actor="t")
    e = models.create({"provider_id": p.id, "model_id": "text-embedding-3-small", "kind": "embedding",
                       "input_price_per_mtok": "0.02"}, actor="t")
    return p, m, e


def usage_rows():
    from app.extensions import db
    from app.models import UsageRecord
    return db.session.scalars(db.select(UsageRecord).order_by(UsageRecord.id)).all()
