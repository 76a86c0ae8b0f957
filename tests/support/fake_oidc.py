"""A small OpenID Connect provider for the suite, run as its own process.

    python tests/support/fake_oidc.py --port 8123 --client-id gw --client-secret s3cret

Serves discovery (/.well-known/openid-configuration), JWKS (an RSA key generated at start with
`cryptography`), /authorize (auto-approves the configured test user and redirects back with
code + state), /token (authorization_code grant: client authentication, one-time code,
redirect_uri match, PKCE S256 code_verifier check; returns an RS256-signed id_token carrying the
nonce) and /userinfo (Bearer access token).

Tests steer it over HTTP: POST /_config {"user": {...claims...}, "options": {...}} sets the user
that /authorize approves and misbehaviours to simulate (options: "nonce": a wrong nonce to put in
the id_token, "groups_in": "id_token" | "userinfo" | "none", "wrong_key": sign with a key not in
the JWKS, "aud": another audience). GET /_last_token shows the last token request's form.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, jsonify, redirect, request
from werkzeug.serving import run_simple

DEFAULT_USER = {"sub": "user-1", "email": "ops@example.com", "email_verified": True,
                "name": "Olive Operator", "preferred_username": "olive", "groups": ["gw-ops"]}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Signer:
    def __init__(self, kid: str):
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict:
        pub = self.key.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                "n": _int_b64(pub.n), "e": _int_b64(pub.e)}

    def sign(self, claims: dict) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(sig)


def make_app(issuer: str, client_id: str, client_secret: str | None) -> Flask:
    app = Flask("fake_oidc")
    signer, stranger = Signer("fake-key-1"), Signer("fake-key-1")  # same kid, other key
    lock = threading.Lock()
    state = {"user": dict(DEFAULT_USER), "options": {}, "codes": {}, "tokens": {}, "last_token": None}

    @app.get("/.well-known/openid-configuration")
    def discovery():
        return jsonify({
            "issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token", "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/jwks", "response_types_supported": ["code"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": ["openid", "email", "profile", "groups"]})

    @app.get("/jwks")
    def jwks():
        return jsonify({"keys": [signer.jwk()]})

    @app.post("/_config")
    def configure():
        data = request.get_json(force=True)
        with lock:
            if "user" in data:
                state["user"] = {**DEFAULT_USER, **data["user"]}
                state["user"] = {k: v for k, v in state["user"].items() if v is not None}
            if "options" in data:
                state["options"] = dict(data["options"])
        return jsonify({"user": state["user"], "options": state["options"]})

    @app.get("/_last_token")
    def last_token():
        return jsonify(state["last_token"])

    def _back(redirect_uri: str, **params):
        from urllib.parse import urlencode
        sep = "&" if "?" in redirect_uri else "?"
        return redirect(redirect_uri + sep + urlencode({k: v for k, v in params.items() if v is not None}))

    @app.get("/authorize")
    def authorize():
        a = request.args
        if a.get("client_id") != client_id or not a.get("redirect_uri"):
            return "unknown client or no redirect_uri", 400
        st = a.get("state")
        if a.get("response_type") != "code":
            return _back(a["redirect_uri"], error="unsupported_response_type", state=st)
        if not a.get("code_challenge") or a.get("code_challenge_method") != "S256":
            return _back(a["redirect_uri"], error="invalid_request",
                         error_description="PKCE with S256 is required", state=st)
        if "openid" not in (a.get("scope") or "").split():
            return _back(a["redirect_uri"], error="invalid_scope", state=st)
        code = secrets.token_urlsafe(24)
        with lock:
            state["codes"][code] = {"redirect_uri": a["redirect_uri"], "nonce": a.get("nonce"),
                                    "challenge": a["code_challenge"], "user": dict(state["user"]),
                                    "at": time.time()}
        return _back(a["redirect_uri"], code=code, state=st)

    def _client_ok() -> bool:
        auth = request.authorization
        cid, secret = (auth.username, auth.password) if auth else \
            (request.form.get("client_id"), request.form.get("client_secret"))
        if cid != client_id:
            return False
        return client_secret is None or secret == client_secret

    def _error(error: str, description: str, status: int = 400):
        return jsonify({"error": error, "error_description": description}), status

    @app.post("/token")
    def token():
        f = request.form
        state["last_token"] = {k: f[k] for k in f}
        if not _client_ok():
            return _error("invalid_client", "client authentication failed", 401)
        if f.get("grant_type") != "authorization_code":
            return _error("unsupported_grant_type", "only authorization_code")
        with lock:
            grant = state["codes"].pop(f.get("code", ""), None)  # one-time
            options = dict(state["options"])
        if grant is None or time.time() - grant["at"] > 300:
            return _error("invalid_grant", "unknown, used or expired code")
        if f.get("redirect_uri") != grant["redirect_uri"]:
            return _error("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = f.get("code_verifier") or ""
        if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return _error("invalid_grant", "PKCE verification failed (code_verifier)")
        user, now = grant["user"], int(time.time())
        groups_in = options.get("groups_in", "id_token")
        claims = {k: v for k, v in user.items() if k != "groups" or groups_in == "id_token"}
        claims.update(iss=issuer, aud=options.get("aud", client_id), iat=now, exp=now + 300)
        nonce = options.get("nonce", grant["nonce"])
        if nonce is not None:
            claims["nonce"] = nonce
        access = secrets.token_urlsafe(24)
        with lock:
            state["tokens"][access] = {k: v for k, v in user.items()
                                       if k != "groups" or groups_in in ("userinfo", "id_token")}
        id_token = (stranger if options.get("wrong_key") else signer).sign(claims)
        return jsonify({"access_token": access, "token_type": "Bearer", "expires_in": 300,
                        "id_token": id_token, "scope": "openid email profile"})

    @app.get("/userinfo")
    def userinfo():
        header = request.headers.get("Authorization", "")
        info = state["tokens"].get(header[7:]) if header.startswith("Bearer ") else None
        if info is None:
            return _error("invalid_token", "unknown access token", 401)
        return jsonify(info)

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--client-id", default="gateway-console")
    p.add_argument("--client-secret", default=None)
    args = p.parse_args()
    issuer = f"http://{args.host}:{args.port}"
    run_simple(args.host, args.port, make_app(issuer, args.client_id, args.client_secret),
               threaded=True)


if __name__ == "__main__":
    main()
