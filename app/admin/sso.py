"""Sign in with SSO: OpenID Connect authorization code + PKCE through Authlib's Flask client.

Authlib does the protocol: discovery from <issuer>/.well-known/openid-configuration, the
authorization redirect with state, nonce and an S256 code challenge (all kept in the signed
session cookie), the code exchange with the code verifier, and the ID token's signature (JWKS),
issuer, audience, expiry and nonce checks. app/services/sso.py turns the validated claims into
a console account (domain check, role mapping, audit).
"""
from __future__ import annotations

import logging

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user
from joserfc.errors import JoseError

from app.admin.auth import safe_next
from app.admin.forms import LoginForm
from app.services import sso as sso_service
from app.services.sso import SSOConfigError, SSOError

log = logging.getLogger(__name__)
EXTENSION = "gateway_sso"
TIMEOUT = 10  # seconds for discovery, JWKS, token and userinfo calls


def _settings() -> sso_service.Settings:
    try:
        s = sso_service.settings(current_app.config)
    except SSOConfigError as exc:
        raise SSOError(f"Single sign-on is misconfigured: {exc}.", status=500,
                       reason="misconfigured") from None
    if s is None:
        raise SSOError("Single sign-on is not configured on this gateway "
                       "(GATEWAY_OIDC_ISSUER and GATEWAY_OIDC_CLIENT_ID).", status=404,
                       reason="not_configured")
    return s


def _client(s: sso_service.Settings):
    """The app's registered Authlib client (one per app; it caches discovery and JWKS)."""
    ext = current_app.extensions.get(EXTENSION)
    if ext is None or ext[0] != s:
        oauth = OAuth(current_app)
        kwargs = {"scope": s.scopes, "code_challenge_method": "S256", "default_timeout": TIMEOUT}
        if not s.client_secret:
            kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
        client = oauth.register("gateway_oidc", client_id=s.client_id,
                                client_secret=s.client_secret,
                                server_metadata_url=s.metadata_url, client_kwargs=kwargs)
        ext = current_app.extensions[EXTENSION] = (s, client)
    return ext[1]


def _metadata(s: sso_service.Settings, client) -> dict:
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        raise SSOError(f"The identity provider at {s.issuer} could not be reached "
                       f"({type(exc).__name__}); try again in a moment.", status=502,
                       reason="provider_down") from None
    if str(metadata.get("issuer", "")).rstrip("/") != s.issuer:
        client.server_metadata.clear()
        raise SSOError(f"The identity provider's discovery document names issuer "
                       f"'{metadata.get('issuer')}', not {s.issuer}.", status=502,
                       reason="issuer_mismatch")
    return metadata


def _page(message: str, status: int):
    form = LoginForm(formdata=None)
    return render_template("admin/login.html", form=form, sso_error=message), status


def _refused(exc: SSOError, who: str | None = None):
    log.info("single sign-on refused (%s): %s", exc.reason, exc.message)
    if exc.reason not in ("not_configured", "misconfigured"):
        sso_service.record_refusal(exc.reason, exc.message, who)
    return _page(exc.message, exc.status)


def start():
    """GET /login/sso: off to the identity provider (state, nonce, PKCE challenge in the session)."""
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or url_for("admin.index"))
    try:
        s = _settings()
        client = _client(s)
        _metadata(s, client)
        session["sso_next"] = safe_next(request.args.get("next"))
        redirect_uri = s.redirect_uri or url_for("admin.sso_callback", _external=True)
        return client.authorize_redirect(redirect_uri)
    except SSOError as exc:
        return _refused(exc)


def callback():
    """GET /login/sso/callback?code&state: exchange, validate, map, sign in."""
    try:
        s = _settings()
        client = _client(s)
        metadata = _metadata(s, client)
        try:
            token = client.authorize_access_token()
        except MismatchingStateError:
            raise SSOError("This sign-in answer does not belong to the sign-in started in this "
                           "browser (state mismatch, or the attempt expired). Start again with "
                           "“Sign in with SSO”.", status=400, reason="state_mismatch") from None
        except OAuthError as exc:
            detail = f"{exc.error}: {exc.description}" if exc.description else str(exc.error)
            raise SSOError(f"The identity provider refused the sign-in ({detail}).", status=400,
                           reason="provider_refused") from None
        except JoseError as exc:
            raise SSOError(f"The identity provider's ID token failed validation ({exc.error}"
                           f"{': ' + exc.description if exc.description else ''}).", status=400,
                           reason="invalid_id_token") from None
        except requests.RequestException as exc:
            raise SSOError(f"The identity provider at {s.issuer} could not be reached "
                           f"({type(exc).__name__}); try again in a moment.", status=502,
                           reason="provider_down") from None
        if not token.get("userinfo"):
            raise SSOError("The identity provider answered without an ID token; check that the "
                           "'openid' scope is requested (GATEWAY_OIDC_SCOPES).", status=400,
                           reason="invalid_id_token")
        claims = dict(token["userinfo"])
        if metadata.get("userinfo_endpoint") and (
                sso_service._claim_values(claims, s.role_claim) is None or "email" not in claims):
            claims = {**_userinfo(s, client, token, claims["sub"]), **claims}
        user = sso_service.sign_in(s, claims)
    except SSOError as exc:
        return _refused(exc)
    target = session.get("sso_next")
    session.clear()  # fresh session (and CSRF token) for the signed-in user
    login_user(user)
    return redirect(safe_next(target) or url_for("admin.index"), 303)


def _userinfo(s, client, token, subject: str) -> dict:
    """Claims the ID token left out (many providers send groups only from userinfo)."""
    try:
        info = dict(client.userinfo(token=token))
    except (requests.RequestException, ValueError) as exc:
        raise SSOError(f"The identity provider's userinfo endpoint failed ({type(exc).__name__}).",
                       status=502, reason="provider_down") from None
    if info.get("sub") != subject:  # OIDC Core 5.3.2: must match the ID token's subject
        raise SSOError("The identity provider's userinfo belongs to another subject.",
                       status=400, reason="invalid_id_token")
    return info
