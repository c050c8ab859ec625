"""The OAuth 2.0 authorization server the provider emulators share (authorization code + PKCE,
refresh, revocation), parameterised by what really differs between providers.

Rules:

* A provider subclasses :class:`OAuthServer`, names its paths and messages (class attributes) and
  implements the hooks: its error body (:meth:`OAuthServer.error`), the authorize-time checks and
  code issue, the code exchange, the refresh (Google reuses refresh tokens, Zoom rotates them) and
  revocation. The request flow - logging of every authorize/token/revoke call, client
  authentication, the redirect back with ``state``, PKCE checks - lives here once.
* Every refusal is raised (:func:`abort_with` via :meth:`OAuthServer.fail` or
  :meth:`Redirect.fail`); the token endpoint records each call's status and outcome either way.
* Handlers run under ``state.lock``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar, Generic, NoReturn, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from devstack.emulators.common.http import Answer, abort_with, json_response, request_json_object
from devstack.emulators.common.oauth_state import OAuthState
from devstack.emulators.common.util import ADMIN_PREFIX, JSONDict, parse_basic_auth, pkce_matches, token_hint

S = TypeVar("S", bound=OAuthState[Any, Any, Any, Any])

PKCE_METHODS = (None, "plain", "S256")


class Redirect:
    """The way back to the client's ``redirect_uri`` from the authorization endpoint."""

    def __init__(self, uri: str, state_param: str | None, state_first: bool, call: JSONDict) -> None:
        self.uri = uri
        self.state_param = state_param
        self.state_first = state_first
        self.call = call

    def to(self, params: dict[str, str]) -> Response:
        if self.state_param is not None:
            st = {"state": self.state_param}
            params = {**st, **params} if self.state_first else {**params, **st}
        parts = urlsplit(self.uri)
        q = parts.query + ("&" if parts.query else "") + urlencode(params)
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, q, parts.fragment))
        return Response(status=302, headers={"Location": location})

    def fail(self, error: str, description: str | None = None) -> NoReturn:
        """Send the user agent back with ``error`` (RFC 6749 §4.1.2.1)."""
        self.call["outcome"] = error
        params = {"error": error}
        if description is not None:
            params["error_description"] = description
        abort_with(self.to(params))


class OAuthServer(Generic[S]):
    """Authorization, token and revocation endpoints over an :class:`OAuthState`."""

    authorize_path: ClassVar[str]
    token_path: ClassVar[str]
    revoke_path: ClassVar[str]
    #: Where ``state`` goes in the redirect's query: first (Google) or last (Zoom).
    state_first: ClassVar[bool] = True
    #: Token and revocation parameters: the form only (Google) or form and query (Zoom).
    params_from_query: ClassVar[bool] = False
    #: A client must send a secret to be told apart from an unknown one (Zoom).
    secret_required: ClassVar[bool] = False
    unsupported_response_type_description: ClassVar[str | None] = None
    pkce_missing_challenge: ClassVar[str]
    pkce_missing_verifier: ClassVar[str]
    pkce_bad_verifier: ClassVar[str]
    client_missing: ClassVar[str]
    client_unknown: ClassVar[str]
    client_bad_secret: ClassVar[str]
    #: The status of an ``invalid_client`` answer (Google 401; Zoom 400, NOTES.md §6).
    client_invalid_status: ClassVar[int] = 401

    def __init__(self, state: S) -> None:
        self.state = state

    def blueprint(self) -> Blueprint:
        bp = Blueprint(f"{self.state.name}_oauth", __name__)
        bp.add_url_rule(self.authorize_path, "authorize", self.authorize, methods=["GET"])
        bp.add_url_rule(self.token_path, "token", self.token, methods=["POST"])
        bp.add_url_rule(self.revoke_path, "revoke", self.revoke, methods=["POST"])
        return bp

    # ---- provider hooks --------------------------------------------------------------------

    def error(self, error: str, description: str, status: int = 400) -> Response:
        """The provider's OAuth error body."""
        raise NotImplementedError

    def authorize_unknown_client(self, client_id: str) -> Response:
        raise NotImplementedError

    def authorize_redirect_mismatch(self, redirect_uri: str) -> Response:
        raise NotImplementedError

    def pkce_invalid_method(self, method: str) -> str:
        raise NotImplementedError

    def check_authorize(self, args: MultiDict[str, str], redirect: Redirect) -> None:
        """Checks between ``response_type`` and PKCE (e.g. scopes); refuse with ``redirect.fail``."""

    def issue_code(
        self, client: Any, args: MultiDict[str, str], challenge: str | None, method: str | None
    ) -> tuple[dict[str, str], str]:
        """Store a code for the consenting user: ``(redirect parameters, the user's e-mail)``."""
        raise NotImplementedError

    def exchange_code(self, client: Any, params: MultiDict[str, str]) -> Response:
        raise NotImplementedError

    def refresh(self, client: Any, params: MultiDict[str, str]) -> Response:
        raise NotImplementedError

    def unsupported_grant(self, grant_type: str) -> NoReturn:
        raise NotImplementedError

    def revoke(self) -> ResponseReturnValue:
        raise NotImplementedError

    def secret_matches(self, client: Any, secret: str) -> bool:
        return bool(secret == client.client_secret)

    # ---- shared flow -----------------------------------------------------------------------

    def fail(self, error: str, description: str, status: int = 400, outcome: str | None = None) -> NoReturn:
        abort_with(self.error(error, description, status), outcome or error)

    def params(self) -> MultiDict[str, str]:
        return request.values if self.params_from_query else request.form

    def authorize(self) -> ResponseReturnValue:
        state, args = self.state, request.args
        client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
        call: JSONDict = {"ts": state.now(), "query": args.to_dict(flat=True)}
        with state.lock:
            state.authorize_calls.append(call)
            client = state.clients.get(client_id)
            if client is None:
                call["outcome"] = "invalid_client"
                abort_with(self.authorize_unknown_client(client_id))
            if redirect_uri not in client.redirect_uris:
                call["outcome"] = "redirect_uri_mismatch"
                abort_with(self.authorize_redirect_mismatch(redirect_uri))
            redirect = Redirect(redirect_uri, args.get("state"), self.state_first, call)
            if args.get("response_type") != "code":
                redirect.fail("unsupported_response_type", self.unsupported_response_type_description)
            self.check_authorize(args, redirect)
            challenge, method = self.pkce_request(args, redirect)
            if state.deny_next > 0:
                state.deny_next -= 1
                state.on_consent_denied()
                redirect.fail("access_denied")
            params, email = self.issue_code(client, args, challenge, method)
            call["outcome"] = "code"
            call["email"] = email
            return redirect.to(params)

    def pkce_request(self, args: MultiDict[str, str], redirect: Redirect) -> tuple[str | None, str | None]:
        challenge = args.get("code_challenge")
        method = args.get("code_challenge_method")
        if method and not challenge:
            redirect.fail("invalid_request", self.pkce_missing_challenge)
        if challenge and method is None:
            method = "plain"  # the default when the method is omitted (RFC 7636 §4.3)
        if method not in PKCE_METHODS:
            redirect.fail("invalid_request", self.pkce_invalid_method(str(method)))
        return challenge, method

    def verify_pkce(self, challenge: str, method: str | None, verifier: str | None) -> None:
        if not verifier:
            self.fail("invalid_grant", self.pkce_missing_verifier)
        if not pkce_matches(challenge, method or "plain", verifier):
            self.fail("invalid_grant", self.pkce_bad_verifier)

    def authenticate_client(self) -> Any:
        """The client from HTTP Basic or the ``client_id``/``client_secret`` parameters."""
        basic = parse_basic_auth(request.headers.get("Authorization"))
        params = self.params()
        cid, secret = basic or (params.get("client_id", ""), params.get("client_secret", ""))
        if not cid or (self.secret_required and not secret):
            self.fail("invalid_request", self.client_missing, 400, "invalid_client")
        client = self.state.clients.get(cid)
        if client is None:
            self.fail("invalid_client", self.client_unknown, self.client_invalid_status)
        if not self.secret_matches(client, secret):
            self.fail("invalid_client", self.client_bad_secret, self.client_invalid_status)
        return client

    def token(self) -> ResponseReturnValue:
        state = self.state
        grant_type = self.params().get("grant_type", "")
        with state.lock:
            state.grant_counts[grant_type or "<missing>"] += 1
            # Parameter names only (never values): tests check what a client sends, e.g. no ``scope``.
            names = sorted(set(self.params().keys()))
            call: JSONDict = {"ts": state.now(), "grant_type": grant_type, "param_names": names}
            state.token_calls.append(call)
            try:
                resp, outcome = self.grant(grant_type), "ok"
            except Answer as exc:
                resp, outcome = exc.response, exc.outcome
            call["status"] = resp.status_code
            call["outcome"] = outcome
            return resp

    def grant(self, grant_type: str) -> Response:
        client = self.authenticate_client()
        if grant_type == "authorization_code":
            return self.exchange_code(client, self.params())
        if grant_type == "refresh_token":
            return self.refresh(client, self.params())
        self.unsupported_grant(grant_type)

    def record_revoke(self, token_value: str, ok: bool, kind: str | None = None, **extra: Any) -> None:
        entry: JSONDict = {"ts": self.state.now(), "token_hint": token_hint(token_value)}
        if kind is not None:
            entry["kind"] = kind
        entry["via"] = "query" if request.args.get("token") else "form"
        entry["ok"] = ok
        entry.update(extra)
        self.state.revoke_calls.append(entry)


def oauth_admin_blueprint(state: OAuthState[Any, Any, Any, Any]) -> Blueprint:
    """``/_admin/clients``, ``/_admin/users`` and ``/_admin/consent`` of an OAuth provider."""
    bp = Blueprint(f"{state.name}_oauth_admin", __name__, url_prefix=ADMIN_PREFIX)

    @bp.post("/clients")
    def admin_clients() -> ResponseReturnValue:
        b = request_json_object() or {}
        try:
            c = state.add_client(
                str(b["client_id"]), str(b["client_secret"]), list(b.get("redirect_uris", [])), **state.client_extras(b)
            )
        except KeyError as exc:
            return json_response({"error": f"missing {exc}"}, 400)
        return json_response(asdict(c), 201)

    @bp.post("/users")
    def admin_users() -> ResponseReturnValue:
        b = request_json_object() or {}
        if "email" not in b:
            return json_response({"error": "missing email"}, 400)
        try:
            u = state.add_user(**b)
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(state.user_json(u), 201)

    @bp.post("/consent")
    def admin_consent() -> ResponseReturnValue:
        """``{"email": ..., "sticky": bool, "deny": bool|int}`` plus what the provider adds."""
        b = request_json_object() or {}
        with state.lock:
            state.apply_consent_json(b)
            return json_response(state.snapshot()["consent"])

    return bp
