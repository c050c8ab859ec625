"""The Microsoft identity platform's v2.0 endpoints: ``GET /{tenant}/oauth2/v2.0/authorize`` and
``POST /{tenant}/oauth2/v2.0/token`` (login.microsoftonline.com).

Rules (NOTES-msgraph §3, where they differ from the shared server): ``{tenant}`` is ``common``,
``organizations``, ``consumers``, a tenant GUID or a domain; ``scope`` is required and every scope
must be known (``User.Read`` and ``https://graph.microsoft.com/User.Read`` are the same); a refresh
token is issued only when ``offline_access`` was consented; PKCE ``S256``/``plain`` is checked at
redemption; the client authenticates with ``client_secret`` (form or HTTP Basic). Every refresh
returns a new refresh token; the old one stays valid (Microsoft does not revoke on use) unless
``revoke_used_refresh_tokens``. There is no revocation endpoint. Errors carry AADSTS codes; a
refused consent redirects ``access_denied`` with AADSTS65004.
"""

from __future__ import annotations

import hmac
import re
import uuid
from typing import Any, NoReturn

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from devstack.emulators.common import (
    JSONDict,
    OAuthServer,
    Redirect,
    abort_with,
    fake_jwt,
    json_response,
    parse_basic_auth,
    random_urlsafe,
)
from devstack.emulators.microsoft.errors import aadsts_description, aadsts_error
from devstack.emulators.microsoft.model import (
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    GRAPH_SCOPES,
    OIDC_SCOPES,
    TENANT_ALIASES,
    MsAccessToken,
    MsClient,
    MsCode,
    MsRefreshToken,
    MsUser,
)
from devstack.emulators.microsoft.state import MicrosoftState

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_NO_CACHE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def normalize_scopes(raw: str) -> tuple[list[str], list[str]]:
    """``(known scopes in short form, unknown ones)``; resource-qualified Graph scopes shortened."""
    known = {s.lower(): s for s in (*OIDC_SCOPES, *GRAPH_SCOPES)}
    out: list[str] = []
    bad: list[str] = []
    for s in raw.split():
        short = s[len(GRAPH_RESOURCE) :] if s.lower().startswith(GRAPH_RESOURCE) else s
        name = known.get(short.lower())
        if name is None:
            bad.append(s)
        elif name not in out:
            out.append(name)
    return out, bad


class MicrosoftOAuth(OAuthServer[MicrosoftState]):
    authorize_path = "/common/oauth2/v2.0/authorize"
    token_path = "/common/oauth2/v2.0/token"
    revoke_path = ""  # Microsoft has no token revocation endpoint
    state_first = False
    params_from_query = False
    secret_required = True
    unsupported_response_type_description = aadsts_description(
        900144, "The request body must contain the following parameter: 'response_type'."
    )
    pkce_missing_challenge = aadsts_description(501491, "Invalid size of Code_Challenge parameter.")
    pkce_missing_verifier = "The code_verifier is required because the authorization request had a code_challenge."
    pkce_bad_verifier = (
        "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE."
    )
    client_missing = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
    client_unknown = "Application was not found in the directory."
    client_bad_secret = (
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value."
    )
    client_invalid_status = 401

    #: AADSTS numbers of the messages above (the shared flow passes only the text).
    _CODES = {
        pkce_missing_verifier: 50148,
        pkce_bad_verifier: 50148,
        client_missing: 7000218,
        client_bad_secret: 7000215,
    }

    def blueprint(self) -> Blueprint:
        bp = Blueprint(f"{self.state.name}_oauth", __name__)

        @bp.get("/<tenant>/oauth2/v2.0/authorize")
        def authorize(tenant: str) -> ResponseReturnValue:
            self._check_tenant(tenant)
            return self.authorize()

        @bp.post("/<tenant>/oauth2/v2.0/token")
        def token(tenant: str) -> ResponseReturnValue:
            self._check_tenant(tenant)
            return self.token()

        return bp

    def _check_tenant(self, tenant: str) -> None:
        if tenant in TENANT_ALIASES or _GUID.fullmatch(tenant) or _DOMAIN.fullmatch(tenant):
            return
        abort_with(aadsts_error("invalid_request", 90002, f"Tenant '{tenant}' not found."))

    # ---- hooks -----------------------------------------------------------------------------

    def error(self, error: str, description: str, status: int = 400) -> Response:
        return aadsts_error(error, self._CODES.get(description, 70000), description, status)

    def authorize_unknown_client(self, client_id: str) -> Response:
        return aadsts_error(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory. This can happen if the "
            "application has not been installed by the administrator of the tenant.",
        )

    def authorize_redirect_mismatch(self, redirect_uri: str) -> Response:
        return aadsts_error(
            "invalid_request",
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
            "configured for the application.",
        )

    def pkce_invalid_method(self, method: str) -> str:
        return aadsts_description(501481, f"The Code_Challenge_Method '{method}' is not supported.")

    def check_authorize(self, args: MultiDict[str, str], redirect: Redirect) -> None:
        scopes, bad = normalize_scopes(args.get("scope", ""))
        if not scopes and not bad:
            redirect.fail(
                "invalid_request",
                aadsts_description(900144, "The request body must contain the following parameter: 'scope'."),
            )
        if bad:
            redirect.fail(
                "invalid_scope",
                aadsts_description(
                    70011,
                    "The provided value for the input parameter 'scope' is not valid. "
                    f"The scope {' '.join(bad)} is not valid.",
                ),
            )
        if args.get("response_mode", "query") not in ("query", "fragment", "form_post"):
            redirect.fail("invalid_request", aadsts_description(900144, "The response_mode is not valid."))
        if self.state.deny_next > 0:  # the user clicked "Cancel" on the consent page
            self.state.deny_next -= 1
            self.state.on_consent_denied()
            redirect.fail("access_denied", aadsts_description(65004, "User declined to consent to access the app."))

    def secret_matches(self, client: MsClient, secret: str) -> bool:
        return hmac.compare_digest(client.client_secret, secret)

    def authenticate_client(self) -> Any:
        """Microsoft's order: an unknown client is ``unauthorized_client`` (AADSTS700016) before
        the secret is looked at; a missing or wrong secret is 401 ``invalid_client``."""
        basic = parse_basic_auth(request.headers.get("Authorization"))
        cid, secret = basic or (self.params().get("client_id", ""), self.params().get("client_secret", ""))
        if not cid:
            abort_with(
                aadsts_error(
                    "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
                ),
                "invalid_request",
            )
        client = self.state.clients.get(cid)
        if client is None:
            abort_with(self.authorize_unknown_client(cid), "unauthorized_client")
        if not secret:
            self.fail("invalid_client", self.client_missing, 401)
        if not self.secret_matches(client, secret):
            self.fail("invalid_client", self.client_bad_secret, 401)
        return client

    def issue_code(
        self, client: MsClient, args: MultiDict[str, str], challenge: str | None, method: str | None
    ) -> tuple[dict[str, str], str]:
        state = self.state
        user = state.resolve_user_for_consent(args.get("login_hint"))
        scopes, _ = normalize_scopes(args.get("scope", ""))
        code = state.new_token("code", lambda: "0.A" + random_urlsafe(180))
        state.codes[code] = MsCode(
            code=code,
            client_id=client.client_id,
            redirect_uri=args.get("redirect_uri", ""),
            user_id=user.id,
            scopes=scopes,
            code_challenge=challenge,
            code_challenge_method=method,
            expires_at=state.now() + state.settings.code_ttl_seconds,
            tenant=state.tenant_id,
        )
        return {"code": code, "session_state": str(uuid.uuid4())}, user.address

    def exchange_code(self, client: MsClient, params: MultiDict[str, str]) -> Response:
        state = self.state
        value = params.get("code")
        if not value:
            self._fail(900144, "invalid_request", "The request body must contain the following parameter: 'code'.")
        code = state.codes.get(value)
        if code is None or code.client_id != client.client_id:
            self._fail(9002313, "invalid_grant", "Invalid request. Request is malformed or invalid.")
        if code.used_at is not None:
            self._fail(
                54005,
                "invalid_grant",
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
                "existing refresh token.",
            )
        if code.expires_at <= state.now():
            code.used_at = state.now()
            self._fail(
                70008,
                "invalid_grant",
                "The provided authorization code or refresh token has expired due to inactivity. Send a new "
                "interactive authorization request for this user and resource.",
            )
        if params.get("redirect_uri", "") != code.redirect_uri:
            self._fail(
                50011,
                "invalid_client",
                "The redirect URI specified in the request does not match the redirect URI used to get the code.",
            )
        if code.code_challenge:
            self.verify_pkce(code.code_challenge, code.code_challenge_method, params.get("code_verifier"))
        code.used_at = state.now()
        return json_response(
            self._issue(client, state.users[code.user_id], code.scopes, random_urlsafe(12)), headers=_NO_CACHE
        )

    def refresh(self, client: MsClient, params: MultiDict[str, str]) -> Response:
        state = self.state
        value = params.get("refresh_token")
        if not value:
            self._fail(
                900144, "invalid_request", "The request body must contain the following parameter: 'refresh_token'."
            )
        rt = state.refresh_tokens.get(value)
        if rt is None or rt.client_id != client.client_id:
            self._fail(9002313, "invalid_grant", "Invalid request. Request is malformed or invalid.")
        if rt.revoked:
            self._fail(
                50173,
                "invalid_grant",
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user "
                "might have changed or reset their password.",
            )
        if rt.expires_at <= state.now():
            self._fail(
                700082,
                "invalid_grant",
                "The refresh token has expired due to inactivity. The token was issued and was inactive for "
                "90.00:00:00.",
            )
        if rt.used_at is not None and state.settings.revoke_used_refresh_tokens:
            self._fail(70000, "invalid_grant", "Provided grant is invalid or malformed.")
        scopes, bad = normalize_scopes(params.get("scope", "")) if params.get("scope") else (list(rt.scopes), [])
        if bad or not set(scopes) <= set(rt.scopes) | {"openid", "profile", "email"}:
            self._fail(70011, "invalid_scope", "The provided value for the input parameter 'scope' is not valid.")
        rt.used_at = state.now()
        body = self._issue(client, state.users[rt.user_id], list(rt.scopes), rt.family)
        rt.replaced_by = body.get("refresh_token")
        return json_response(body, headers=_NO_CACHE)

    def unsupported_grant(self, grant_type: str) -> NoReturn:
        if not grant_type:
            self._fail(
                900144, "invalid_request", "The request body must contain the following parameter: 'grant_type'."
            )
        self._fail(70003, "unsupported_grant_type", f"The app requested an unsupported grant type '{grant_type}'.")

    def revoke(self) -> ResponseReturnValue:
        raise NotImplementedError("Microsoft has no token revocation endpoint")

    # ---- helpers ---------------------------------------------------------------------------

    def _fail(self, code: int, error: str, message: str, status: int = 400) -> NoReturn:
        abort_with(aadsts_error(error, code, message, status), error)

    def _issue(self, client: MsClient, user: MsUser, scopes: list[str], family: str) -> JSONDict:
        state = self.state
        now = state.now()
        ttl = state.settings.access_token_ttl_seconds
        graph = [s for s in scopes if s not in ("openid", "profile", "email", "offline_access")]
        claims = {
            "aud": GRAPH_APP_ID,
            "iss": f"https://sts.windows.net/{state.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + ttl,
            "appid": client.client_id,
            "name": user.display_name,
            "oid": user.id,
            "scp": " ".join(graph),
            "tid": state.tenant_id,
            "upn": user.user_principal_name,
            "ver": "1.0",
        }
        at = state.new_token(
            "access_token", lambda: fake_jwt(claims, {"typ": "JWT", "alg": "RS256", "x5t": "emulator"})
        )
        state.access_tokens[at] = MsAccessToken(at, client.client_id, user.id, list(scopes), now, now + ttl, family)
        body: JSONDict = {
            "token_type": "Bearer",
            "scope": " ".join([*graph, *(s for s in scopes if s in ("openid", "profile", "email"))]),
            "expires_in": ttl - 1,
            "ext_expires_in": ttl - 1,
            "access_token": at,
        }
        if "offline_access" in scopes:
            rt = state.new_token("refresh_token", lambda: "1.A" + random_urlsafe(240))
            expires = now + state.settings.refresh_token_ttl_seconds
            state.refresh_tokens[rt] = MsRefreshToken(rt, client.client_id, user.id, list(scopes), family, now, expires)
            body["refresh_token"] = rt
        if "openid" in scopes:
            id_claims: JSONDict = {
                "aud": client.client_id,
                "iss": f"https://login.microsoftonline.com/{state.tenant_id}/v2.0",
            }
            id_claims.update({"iat": int(now), "exp": int(now) + ttl, "oid": user.id, "tid": state.tenant_id})
            id_claims.update({"preferred_username": user.user_principal_name, "name": user.display_name, "ver": "2.0"})
            body["id_token"] = fake_jwt(id_claims, {"typ": "JWT", "alg": "RS256", "kid": "emulator"})
        return body
