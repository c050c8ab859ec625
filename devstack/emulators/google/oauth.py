"""Google's OAuth 2.0 endpoints: ``GET /o/oauth2/v2/auth`` (accounts.google.com), ``POST /token``
and ``POST /revoke`` (oauth2.googleapis.com), the userinfo endpoint and the OpenID configuration.

Rules (Google's, where they differ from the shared server): scopes are checked against the
discovery document; ``access_type=offline`` issues a refresh token on first consent or with
``prompt=consent``; ``include_granted_scopes`` adds earlier grants; refresh tokens are reused, not
rotated, and expire only with ``refresh_token_ttl_seconds``; revoking any token of a grant revokes
the whole grant; ``openid`` adds an (unsigned) ``id_token``.
"""

from __future__ import annotations

from typing import NoReturn

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from devstack.emulators.common import (
    JSONDict,
    OAuthServer,
    Redirect,
    b64url,
    fake_jwt,
    json_response,
    parse_bearer,
    random_urlsafe,
)
from devstack.emulators.google.errors import AUTH_HEADER_INVALID, oauth_error
from devstack.emulators.google.model import (
    SCOPE_USERINFO_EMAIL,
    SCOPE_USERINFO_PROFILE,
    AccessToken,
    AuthCode,
    OAuthClient,
    RefreshToken,
    normalize_scope,
)
from devstack.emulators.google.state import GoogleState

_NO_CACHE = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"}


class GoogleOAuth(OAuthServer[GoogleState]):
    authorize_path = "/o/oauth2/v2/auth"
    token_path = "/token"
    revoke_path = "/revoke"
    state_first = True
    params_from_query = False
    secret_required = False
    unsupported_response_type_description = "Only response_type=code is supported."
    pkce_missing_challenge = "Missing code_challenge."
    pkce_missing_verifier = "Missing code verifier."
    pkce_bad_verifier = "Invalid code verifier."
    client_missing = "Could not determine client ID from request."
    client_unknown = "The OAuth client was not found."
    client_bad_secret = "Unauthorized"

    def blueprint(self) -> Blueprint:
        bp = super().blueprint()
        bp.add_url_rule("/.well-known/openid-configuration", "openid_configuration", self.openid_configuration)
        bp.add_url_rule("/v1/userinfo", "userinfo", self.userinfo, methods=["GET", "POST"])
        bp.add_url_rule("/oauth2/v3/userinfo", "userinfo_v3", self.userinfo, methods=["GET", "POST"])
        return bp

    def error(self, error: str, description: str, status: int = 400) -> Response:
        return oauth_error(error, description, status)

    def authorize_unknown_client(self, client_id: str) -> Response:
        return oauth_error("invalid_client", "The OAuth client was not found.", 401)

    def authorize_redirect_mismatch(self, redirect_uri: str) -> Response:
        return oauth_error(
            "redirect_uri_mismatch",
            f"Error 400: redirect_uri_mismatch. The redirect URI in the request, {redirect_uri}, "
            "does not match the ones authorized for the OAuth client.",
            400,
        )

    def pkce_invalid_method(self, method: str) -> str:
        return f"Invalid code_challenge_method: {method}"

    def check_authorize(self, args: MultiDict[str, str], redirect: Redirect) -> None:
        requested = [s for s in args.get("scope", "").split() if s]
        if not requested:
            redirect.fail("invalid_request", "Missing required parameter: scope")
        unknown = [s for s in requested if s not in self.state.known_scopes]
        if unknown:
            redirect.fail("invalid_scope", f"Some requested scopes were invalid: {unknown}")
        access_type = args.get("access_type", "online")
        if access_type not in ("online", "offline"):
            redirect.fail("invalid_request", f"Invalid access_type: {access_type}")

    def issue_code(
        self, client: OAuthClient, args: MultiDict[str, str], challenge: str | None, method: str | None
    ) -> tuple[dict[str, str], str]:
        state = self.state
        user = state.resolve_user_for_consent(args.get("login_hint"))
        granted = [normalize_scope(s) for s in args.get("scope", "").split() if s]
        if state.next_grant_scopes is not None:
            allowed = {normalize_scope(s) for s in state.next_grant_scopes}
            granted = [s for s in granted if s in allowed or s == "openid"]
            state.next_grant_scopes = None
        key = (user.email, client.client_id)
        prior = state.grants.get(key)
        if args.get("include_granted_scopes") == "true" and prior:
            granted = sorted(set(granted) | prior)
        consent = "consent" in args.get("prompt", "").split() or prior is None
        access_type = args.get("access_type", "online")
        code = state.new_token("code", lambda: "4/0" + random_urlsafe(54))
        state.codes[code] = AuthCode(
            code=code,
            client_id=client.client_id,
            redirect_uri=args.get("redirect_uri", ""),
            email=user.email,
            scopes=granted,
            code_challenge=challenge,
            code_challenge_method=method,
            access_type=access_type,
            issue_refresh=access_type == "offline" and consent,
            expires_at=state.now() + state.settings.code_ttl_seconds,
            nonce=args.get("nonce"),
        )
        state.grants[key] = (prior or set()) | set(granted)
        params = {"code": code, "scope": " ".join(granted), "authuser": "0", "prompt": "consent" if consent else "none"}
        return params, user.email

    def exchange_code(self, client: OAuthClient, params: MultiDict[str, str]) -> Response:
        state = self.state
        code = self._redeemable_code(client, params)
        refresh: str | None = None
        if code.issue_refresh:
            refresh = state.new_token("refresh_token", lambda: "1//0" + random_urlsafe(72))
            state.refresh_tokens[refresh] = RefreshToken(
                token=refresh,
                client_id=client.client_id,
                email=code.email,
                scopes=list(code.scopes),
                created=state.now(),
            )
        body = self._issue(client, code.email, code.scopes, refresh, "authorization_code", code.nonce)
        if refresh:
            body = {
                "access_token": body["access_token"],
                "expires_in": body["expires_in"],
                "refresh_token": refresh,
                **{k: v for k, v in body.items() if k not in ("access_token", "expires_in")},
            }
            if state.settings.refresh_token_ttl_seconds is not None:
                body["refresh_token_expires_in"] = state.settings.refresh_token_ttl_seconds
        return json_response(body, headers=_NO_CACHE)

    def _redeemable_code(self, client: OAuthClient, params: MultiDict[str, str]) -> AuthCode:
        state = self.state
        code_value = params.get("code")
        if not code_value:
            self.fail("invalid_request", "Missing required parameter: code")
        code = state.codes.get(code_value)
        if code is None:
            self.fail("invalid_grant", "Malformed auth code.")
        if code.used_at is not None or code.expires_at <= state.now() or code.client_id != client.client_id:
            code.used_at = code.used_at or state.now()
            self.fail("invalid_grant", "Bad Request")
        if params.get("redirect_uri", "") != code.redirect_uri:
            self.fail("redirect_uri_mismatch", "Bad Request")
        if code.code_challenge:
            self.verify_pkce(code.code_challenge, code.code_challenge_method, params.get("code_verifier"))
        code.used_at = state.now()
        return code

    def refresh(self, client: OAuthClient, params: MultiDict[str, str]) -> Response:
        state = self.state
        value = params.get("refresh_token")
        if not value:
            self.fail("invalid_request", "Missing required parameter: refresh_token")
        rt = state.refresh_tokens.get(value)
        ttl = state.settings.refresh_token_ttl_seconds
        if rt is not None and ttl is not None and rt.created + ttl <= state.now():
            rt.revoked, rt.revoked_at = True, state.now()
        if rt is None or rt.revoked:
            self.fail("invalid_grant", "Token has been expired or revoked.")
        if rt.client_id != client.client_id:
            self.fail("unauthorized_client", "Unauthorized")
        body = self._issue(client, rt.email, rt.scopes, rt.token, "refresh_token", None)
        return json_response(body, headers=_NO_CACHE)

    def unsupported_grant(self, grant_type: str) -> NoReturn:
        self.fail("unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _issue(
        self,
        client: OAuthClient,
        email: str,
        scopes: list[str],
        refresh: str | None,
        grant_type: str,
        nonce: str | None,
    ) -> JSONDict:
        state = self.state
        now = state.now()
        ttl = state.settings.access_token_ttl_seconds
        at = state.new_token("access_token", lambda: "ya29.a0" + random_urlsafe(120))
        state.access_tokens[at] = AccessToken(
            token=at,
            client_id=client.client_id,
            email=email,
            scopes=list(scopes),
            issued_at=now,
            expires_at=now + ttl,
            refresh_token=refresh,
            grant_type=grant_type,
        )
        body: JSONDict = {"access_token": at, "expires_in": ttl - 1, "scope": " ".join(scopes), "token_type": "Bearer"}
        if "openid" in scopes:
            body["id_token"] = self._id_token(client, email, scopes, nonce, now, ttl)
        return body

    def _id_token(
        self, client: OAuthClient, email: str, scopes: list[str], nonce: str | None, now: float, ttl: int
    ) -> str:
        user = self.state.users.get(email)
        claims: JSONDict = {
            "iss": "https://accounts.google.com",
            "azp": client.client_id,
            "aud": client.client_id,
            "sub": user.sub if user else email,
            "iat": int(now),
            "exp": int(now) + ttl,
        }
        if SCOPE_USERINFO_EMAIL in scopes:
            claims.update({"email": email, "email_verified": True})
        if SCOPE_USERINFO_PROFILE in scopes and user is not None:
            claims.update({"name": user.name, "given_name": user.given_name, "family_name": user.family_name})
        if nonce:
            claims["nonce"] = nonce
        # Shaped like Google's id_token but signed by nobody: do not verify it.
        return fake_jwt(claims, {"alg": "RS256", "kid": "emulator", "typ": "JWT"})

    def revoke(self) -> ResponseReturnValue:
        state = self.state
        token_value = request.args.get("token") or request.form.get("token") or ""
        with state.lock:
            kind = (
                "access"
                if token_value in state.access_tokens
                else "refresh"
                if token_value in state.refresh_tokens
                else "unknown"
            )
            ok = bool(token_value) and state.revoke_grant(token_value)
            self.record_revoke(token_value, ok, kind)
        if not token_value:
            return oauth_error("invalid_request", "Bad Request")
        if not ok:
            return oauth_error("invalid_token", "Token expired or revoked")
        return json_response({})

    def openid_configuration(self) -> ResponseReturnValue:
        b = self.state.base_url
        return json_response(
            {
                "issuer": "https://accounts.google.com",
                "authorization_endpoint": f"{b}/o/oauth2/v2/auth",
                "token_endpoint": f"{b}/token",
                "userinfo_endpoint": f"{b}/v1/userinfo",
                "revocation_endpoint": f"{b}/revoke",
                "response_types_supported": ["code"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )

    def userinfo(self) -> ResponseReturnValue:
        state = self.state
        tok = parse_bearer(request.headers.get("Authorization")) or request.args.get("access_token")
        with state.lock:
            at = state.access_tokens.get(tok or "")
            if at is None or at.revoked or at.expires_at <= state.now():
                return json_response(
                    {"error": "invalid_request", "error_description": "Invalid Credentials"},
                    401,
                    {"WWW-Authenticate": AUTH_HEADER_INVALID},
                )
            user = state.users[at.email]
            body: JSONDict = {"sub": user.sub}
            if SCOPE_USERINFO_PROFILE in at.scopes:
                body.update(
                    {
                        "name": user.name,
                        "given_name": user.given_name,
                        "family_name": user.family_name,
                        "picture": f"https://lh3.googleusercontent.com/a/{b64url(user.sub.encode())}=s96-c",
                    }
                )
            if SCOPE_USERINFO_EMAIL in at.scopes:
                body.update({"email": user.email, "email_verified": True})
            return json_response(body)
