"""Zoom's OAuth endpoints: ``GET /oauth/authorize``, ``POST /oauth/token``, ``POST /oauth/revoke``
(zoom.us).

Rules (Zoom's, where they differ from the shared server): parameters may come in the form or the
query; the client must authenticate with id and secret (HTTP Basic or parameters), also to revoke;
granted scopes are the client's (a ``scope`` parameter on authorize, which Zoom does not document,
is refused with "Invalid scopes" unless ``refuse_authorize_scope`` is off; then it narrows them); a
wrong client secret is 400 ``invalid_client``; every exchange issues a refresh
token and refresh tokens rotate - each works once and its grant keeps its id. Zoom keeps only the
latest refresh token: with ``lose_refresh_answers`` a refresh rotates and then its answer is lost
(a 5xx), so the client still holds a dead token (outcome ``rotated_answer_lost`` in the token log).
"""

from __future__ import annotations

import hmac
from typing import NoReturn

from flask import Response, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from devstack.emulators.common import (
    Answer,
    JSONDict,
    OAuthServer,
    Redirect,
    abort_with,
    fake_jwt,
    json_response,
    random_urlsafe,
)
from devstack.emulators.zoom.errors import oauth_error
from devstack.emulators.zoom.model import ZoomAccessToken, ZoomClient, ZoomCode, ZoomRefreshToken, ZoomUser
from devstack.emulators.zoom.state import ZoomState

_JWT_HEADER = {"alg": "HS512", "v": "2.0", "kid": "emulator"}
_REFRESH_LIFETIME = 15 * 365 * 86400


class ZoomOAuth(OAuthServer[ZoomState]):
    authorize_path = "/oauth/authorize"
    token_path = "/oauth/token"
    revoke_path = "/oauth/revoke"
    state_first = False
    # Zoom takes these as form body or query parameters (developers.zoom.us OAuth docs).
    params_from_query = True
    secret_required = True
    unsupported_response_type_description = None
    pkce_missing_challenge = "Invalid code_challenge_method"
    pkce_missing_verifier = "Invalid code_verifier"
    pkce_bad_verifier = "Invalid code_verifier"
    client_missing = "Client ID or client secret is missing."
    client_unknown = "Invalid client_id or client_secret"
    client_bad_secret = "Invalid client_id or client_secret"
    client_invalid_status = 400  # a wrong secret is 400 invalid_client (NOTES.md §6), not 401

    def error(self, error: str, description: str, status: int = 400) -> Response:
        return oauth_error(description, error, status)

    def authorize_unknown_client(self, client_id: str) -> Response:
        return oauth_error(f"Invalid client_id: {client_id}", "invalid_client", 400)

    def authorize_redirect_mismatch(self, redirect_uri: str) -> Response:
        return oauth_error("Redirect URI mismatch.", "invalid_request", 400)

    def check_authorize(self, args: MultiDict[str, str], redirect: Redirect) -> None:
        """Zoom documents no ``scope`` on the authorize URL (the app's scopes are set in the
        Marketplace) and has answered "Invalid scopes" to one: refused unless the knob is off."""
        if "scope" in args and self.state.settings.refuse_authorize_scope:
            redirect.call["outcome"] = "invalid_scope"
            abort_with(oauth_error("Invalid scopes", "invalid_scope", 400))

    def pkce_invalid_method(self, method: str) -> str:
        return "Invalid code_challenge_method"

    def secret_matches(self, client: ZoomClient, secret: str) -> bool:
        return hmac.compare_digest(client.client_secret, secret)

    def issue_code(
        self, client: ZoomClient, args: MultiDict[str, str], challenge: str | None, method: str | None
    ) -> tuple[dict[str, str], str]:
        state = self.state
        user = state.resolve_user_for_consent()
        requested = [s for s in args.get("scope", "").split() if s]
        scopes = [s for s in client.scopes if not requested or s in requested] or list(client.scopes)
        code = state.new_token("code", lambda: random_urlsafe(24))
        state.codes[code] = ZoomCode(
            code=code,
            client_id=client.client_id,
            redirect_uri=args.get("redirect_uri", ""),
            user_id=user.id,
            scopes=scopes,
            code_challenge=challenge,
            code_challenge_method=method,
            expires_at=state.now() + state.settings.code_ttl_seconds,
        )
        return {"code": code}, user.email

    def exchange_code(self, client: ZoomClient, params: MultiDict[str, str]) -> Response:
        state = self.state
        code = state.codes.get(params.get("code", ""))
        if code is None or code.client_id != client.client_id:
            self.fail("invalid_grant", "Invalid authorization code")
        if code.used_at is not None:
            self.fail("invalid_grant", "Invalid authorization code")
        if code.expires_at <= state.now():
            code.used_at = state.now()
            self.fail("invalid_grant", "Authorization code is expired")
        if params.get("redirect_uri", "") != code.redirect_uri:
            self.fail("invalid_grant", "Redirect URI mismatch.")
        if code.code_challenge:
            self.verify_pkce(code.code_challenge, code.code_challenge_method, params.get("code_verifier"))
        code.used_at = state.now()
        user = state.users[code.user_id]
        return json_response(self._issue(client, user, code.scopes, random_urlsafe(9)))

    def refresh(self, client: ZoomClient, params: MultiDict[str, str]) -> Response:
        state = self.state
        rt = state.refresh_tokens.get(params.get("refresh_token", ""))
        if rt is None or rt.revoked or rt.used_at is not None or rt.client_id != client.client_id:
            self.fail("invalid_grant", "Invalid Token!")
        rt.used_at = state.now()
        user = state.users[rt.user_id]
        body = self._issue(client, user, rt.scopes, rt.grant_id)
        rt.replaced_by = body["refresh_token"]
        if state.lost_refresh_answers > 0:
            # Rotated (the old token is dead, the new one never reaches the client): a gateway error.
            state.lost_refresh_answers -= 1
            self.fail("server_error", "Internal Error", state.lost_refresh_status, "rotated_answer_lost")
        return json_response(body)

    def unsupported_grant(self, grant_type: str) -> NoReturn:
        if not grant_type:
            self.fail("invalid_request", "Missing grant type.")
        self.fail("unsupported_grant_type", "Grant type is not supported from token endpoint.")

    def _issue(self, client: ZoomClient, user: ZoomUser, scopes: list[str], grant_id: str) -> JSONDict:
        state = self.state
        now = state.now()
        ttl = state.settings.access_token_ttl_seconds
        claims = {
            "ver": 10,
            "auid": grant_id,
            "uid": user.id,
            "iss": "zm:cid:" + client.client_id,
            "aud": "zoom",
            "nbf": int(now),
            "exp": int(now) + ttl,
            "iat": int(now),
            "aid": state.account_id,
            "jti": random_urlsafe(12),
        }
        at = state.new_token("access_token", lambda: fake_jwt({**claims, "tokenType": "access_token"}, _JWT_HEADER))
        rt = state.new_token(
            "refresh_token",
            lambda: fake_jwt(
                {**claims, "tokenType": "refresh_token", "exp": int(now) + _REFRESH_LIFETIME}, _JWT_HEADER
            ),
        )
        state.access_tokens[at] = ZoomAccessToken(at, client.client_id, user.id, list(scopes), grant_id, now, now + ttl)
        state.refresh_tokens[rt] = ZoomRefreshToken(rt, client.client_id, user.id, list(scopes), grant_id, now)
        return {
            "access_token": at,
            "token_type": "bearer",
            "refresh_token": rt,
            "expires_in": ttl - 1,
            "scope": " ".join(scopes),
            "api_url": state.base_url,
        }

    def revoke(self) -> ResponseReturnValue:
        state = self.state
        with state.lock:
            client: ZoomClient | None = None
            err: Response | None = None
            try:
                client = self.authenticate_client()
            except Answer as exc:
                err = exc.response
            token_value = request.values.get("token", "")
            ok = False
            if client is not None and token_value:
                tok = state.access_tokens.get(token_value) or state.refresh_tokens.get(token_value)
                if tok is not None and tok.client_id == client.client_id:
                    ok = state.revoke_token(token_value)
            self.record_revoke(token_value, ok, client_auth=err is None)
            if err is not None:
                return err
            if not token_value:
                return oauth_error("Token cannot be empty.", "invalid_request")
            if not ok:
                return oauth_error("Invalid Token!", "invalid_request")
            return json_response({"status": "success"})
