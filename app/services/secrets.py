"""Encryption at rest for provider secrets (MultiFernet, rotatable).

Every stored value is "<key id>$<fernet token>": the key id (first 12 hex chars of the key's
SHA-256) says which key encrypted it, so rotation can re-encrypt in place and a missing key gives
an error naming the key id and the provider instead of a bare InvalidToken.
"""
from __future__ import annotations

import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


class SecretError(Exception):
    """A secret cannot be decrypted or the key configuration is invalid."""


def key_id(key: str) -> str:
    return hashlib.sha256(key.strip().encode()).hexdigest()[:12]


class SecretBox:
    def __init__(self, keys_csv: str):
        keys = [k.strip() for k in (keys_csv or "").split(",") if k.strip()]
        if not keys:
            raise SecretError("GATEWAY_ENCRYPTION_KEYS is empty")
        self._fernets: dict[str, Fernet] = {}
        self.order: list[str] = []
        for i, k in enumerate(keys, 1):
            try:
                f = Fernet(k.encode())
            except (ValueError, TypeError):
                raise SecretError(
                    f"GATEWAY_ENCRYPTION_KEYS entry #{i} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes)") from None
            kid = key_id(k)
            self._fernets[kid] = f
            self.order.append(kid)

    @property
    def current_id(self) -> str:
        return self.order[0]

    def encrypt(self, secrets: dict[str, str]) -> str:
        token = self._fernets[self.current_id].encrypt(json.dumps(secrets).encode()).decode()
        return f"{self.current_id}${token}"

    def decrypt(self, value: str, owner: str = "?") -> dict[str, str]:
        kid, sep, token = value.partition("$")
        if not sep:
            raise SecretError(f"secret of provider '{owner}' has no key id; re-enter it")
        fernet = self._fernets.get(kid)
        if fernet is None:
            raise SecretError(
                f"secret of provider '{owner}' was encrypted with key {kid}, which is not in "
                "GATEWAY_ENCRYPTION_KEYS; add that key back (after the new one) or re-enter the secret")
        try:
            return json.loads(fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            raise SecretError(
                f"secret of provider '{owner}' does not decrypt with key {kid} (corrupted value)") from None

    def needs_rotation(self, value: str) -> bool:
        return value.partition("$")[0] != self.current_id

    def rotate(self, value: str, owner: str = "?") -> str:
        return self.encrypt(self.decrypt(value, owner))


def get_box() -> SecretBox:
    """The app's SecretBox, built once per app from GATEWAY_ENCRYPTION_KEYS."""
    box = current_app.extensions.get("gateway_secret_box")
    if box is None:
        box = SecretBox(current_app.config["GATEWAY_ENCRYPTION_KEYS"])
        current_app.extensions["gateway_secret_box"] = box
    return box
