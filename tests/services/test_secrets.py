"""Encryption at rest and key rotation."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.services.secrets import SecretBox, SecretError, key_id


def test_round_trip_and_key_id_tag():
    k = Fernet.generate_key().decode()
    box = SecretBox(k)
    value = box.encrypt({"api_key": "sk-abc"})
    assert value.startswith(key_id(k) + "$")
    assert "sk-abc" not in value
    assert box.decrypt(value, "p") == {"api_key": "sk-abc"}


def test_rotation_reencrypts_with_newest_key():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    value = SecretBox(old).encrypt({"api_key": "sk-abc"})
    box = SecretBox(f"{new},{old}")
    assert box.needs_rotation(value)
    assert box.decrypt(value, "p") == {"api_key": "sk-abc"}  # old key still readable
    rotated = box.rotate(value, "p")
    assert rotated.startswith(key_id(new) + "$") and not box.needs_rotation(rotated)
    assert SecretBox(new).decrypt(rotated, "p") == {"api_key": "sk-abc"}


def test_missing_key_names_provider_and_key_id():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    value = SecretBox(old).encrypt({"api_key": "x"})
    with pytest.raises(SecretError) as exc:
        SecretBox(new).decrypt(value, "Azure EU")
    assert "Azure EU" in str(exc.value) and key_id(old) in str(exc.value)


def test_corrupted_value_and_bad_keys():
    k = Fernet.generate_key().decode()
    box = SecretBox(k)
    with pytest.raises(SecretError, match="corrupted"):
        box.decrypt(key_id(k) + "$garbage", "p")
    with pytest.raises(SecretError, match="no key id"):
        box.decrypt("plain", "p")
    with pytest.raises(SecretError, match="#2"):
        SecretBox(f"{k},not-a-key")
    with pytest.raises(SecretError):
        SecretBox("")


def test_rotate_cli_reencrypts_every_provider(app_factory):
    from app.extensions import db
    from app.models import AuditLog, Provider
    from app.services import providers

    first = app_factory()
    with first.app_context():
        from app.services import providers as ps
        ps.create({"name": "A", "type": "openai", "api_key": "sk-a"}, actor="t")
        ps.create({"name": "B", "type": "openai", "api_key": "sk-b"}, actor="t")
        old_keys = first.config["GATEWAY_ENCRYPTION_KEYS"]
    new = Fernet.generate_key().decode()
    second = app_factory(GATEWAY_ENCRYPTION_KEYS=f"{new},{old_keys}")
    result = second.test_cli_runner().invoke(args=["rotate-encryption-key"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 secret(s)" in result.output
    only_new = app_factory(GATEWAY_ENCRYPTION_KEYS=new)
    with only_new.app_context():
        rows = db.session.scalars(db.select(Provider).order_by(Provider.name)).all()
        assert [providers.decrypt_secrets(p) for p in rows] == [{"api_key": "sk-a"}, {"api_key": "sk-b"}]
        assert all(p.secrets_encrypted.startswith(key_id(new)) for p in rows)
        audit = db.session.scalars(db.select(AuditLog).where(AuditLog.action == "rotate_keys")).one()
        assert audit.diff["rotated"] == 2


def test_wrong_key_gives_clear_health_error(app_factory):
    first = app_factory()
    with first.app_context():
        from app.services import providers
        p = providers.create({"name": "Lost", "type": "openai", "api_key": "sk-a"}, actor="t")
        pid = p.id
    other = app_factory(GATEWAY_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    with other.app_context():
        from app.extensions import db
        from app.models import Provider
        from app.services import health
        result = health.probe(db.session.get(Provider, pid))
        assert result["status"] == "unhealthy"
        assert "Lost" in result["error"] and "GATEWAY_ENCRYPTION_KEYS" in result["error"]
