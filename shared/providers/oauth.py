"""OAuth 2.0 (authorization code + PKCE S256) for Google, Zoom and Microsoft, with authlib.

authlib builds the authorize URL (PKCE challenge, state), authenticates the client the way each
provider wants (Google and Microsoft: ``client_secret_post``; Zoom: HTTP Basic) and parses token
responses. Microsoft's identity platform wants ``scope`` on the code exchange too (AADSTS900144
without it) and has no revocation endpoint: disconnect deletes our credential.
This module adds what a production caller needs around it: timeouts, retries with backoff +
jitter on 429/5xx honouring ``Retry-After`` (tenacity), typed results holding secrets as
``SecretStr``, and errors that never carry a token.

Retrying a token request is safe for the authorization-code grant (a code replay is refused with
``invalid_grant``) and for a 429 (not processed). A 5xx on a Zoom refresh may have rotated the
refresh token server-side; the retry then gets ``invalid_grant`` and the connection is flagged
``needs_reconnect`` rather than looping. That is the best achievable outcome of a refresh answer
lost after Zoom rotated: Zoom keeps only the latest refresh token, which never reached us, so the
grant cannot be recovered; the mentor gets one reconnect e-mail at once, and there are two token
calls in all, whatever the number of callers (one refresh under the lease, one retry; later callers
see ``needs_reconnect`` and call nothing). Tested in ``tests/integration/providers/test_tokens.py``
with the Zoom emulator's ``lose_refresh_answers``.

Zoom gets only the parameters it documents: no ``scope`` on the authorize URL nor in token
requests (``OAuthApp.send_scope``); the scopes are the app's, set in the Marketplace.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from shared.platform.config import ProviderSettings
from shared.platform.observability import trace_httpx
from shared.store.models import Provider

if TYPE_CHECKING:
    import httpx
    from authlib.integrations.httpx_client import OAuth2Client
    from tenacity import RetryCallState

# authlib, httpx and tenacity are imported where a client first uses them, not at module import: the
# functions that only list or show connections never load them (cold start, `python -m bench imports`).


def _authlib() -> Any:
    """authlib's pieces this module uses (imported once, on first use)."""
    with warnings.catch_warnings():
        # authlib prefers the httpx2 fork and warns when it falls back to httpx, which it supports
        # (docs/decisions/0001-http-client.md).
        warnings.simplefilter("ignore")
        import authlib.common.security
        import authlib.integrations.base_client.errors
        import authlib.integrations.httpx_client
    return authlib


GOOGLE_SCOPES = (
    "https://www.googleapis.com/auth/calendar.readonly",  # calendar list + free/busy (NOTES.md §3)
    "https://www.googleapis.com/auth/calendar.events",  # insert / patch / delete events
)
ZOOM_SCOPES = (
    "meeting:write:meeting",
    "meeting:read:meeting",
    "meeting:read:list_meetings",  # find a session's meeting by its agenda marker after a lost reply
    "meeting:update:meeting",
    "meeting:delete:meeting",
    "user:read:user",
)
#: Microsoft Graph delegated permissions (PRODUCT.md §2.2); ``offline_access`` brings the refresh token.
MICROSOFT_SCOPES = ("offline_access", "Calendars.ReadWrite", "User.Read")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class OAuthError(Exception):
    """The provider refused (``code`` is its OAuth error, e.g. ``invalid_grant``); no secret inside."""

    def __init__(self, code: str, description: str | None = None, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.status = status


class InvalidGrantError(OAuthError):
    """The code or refresh token is invalid, expired, reused or revoked: the mentor must reconnect."""


class ProviderUnavailableError(OAuthError):
    """The provider kept answering 429/5xx or could not be reached."""


@dataclass(frozen=True)
class OAuthApp:
    """One provider's OAuth client registration and endpoints."""

    provider: Provider
    client_id: str
    client_secret: SecretStr = field(repr=False)
    authorize_url: str
    token_url: str
    revoke_url: str
    #: The scopes the app needs (Google: asked for on the authorize URL; Zoom: set on the app in the
    #: Marketplace, see ``send_scope``).
    scopes: tuple[str, ...]
    token_auth: Literal["client_secret_post", "client_secret_basic"]
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    #: Whether the authorize URL and token requests carry a ``scope`` parameter. Zoom documents none
    #: (scopes are the app's; an unexpected ``scope`` has been answered "Invalid scopes",
    #: ../shared/specs/NOTES.md §6), so its client is built without one: authlib then sends no
    #: ``scope`` on the authorize URL nor in the refresh body.
    send_scope: bool = True


def oauth_app(provider: Provider, cfg: ProviderSettings) -> OAuthApp:
    """The OAuth app of ``provider`` (Google, Zoom or Microsoft) from settings."""
    if provider is Provider.GOOGLE:
        return OAuthApp(
            provider=provider,
            client_id=cfg.google_client_id,
            client_secret=cfg.google_client_secret,
            authorize_url=cfg.google_auth_url,
            token_url=cfg.google_token_url,
            revoke_url=cfg.google_revoke_url,
            scopes=GOOGLE_SCOPES,
            token_auth="client_secret_post",
            authorize_params={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
        )
    if provider is Provider.ZOOM:
        return OAuthApp(
            provider=provider,
            client_id=cfg.zoom_client_id,
            client_secret=cfg.zoom_client_secret,
            authorize_url=cfg.zoom_auth_url,
            token_url=cfg.zoom_token_url,
            revoke_url=cfg.zoom_revoke_url,
            scopes=ZOOM_SCOPES,
            token_auth="client_secret_basic",
            send_scope=False,
        )
    if provider is Provider.MICROSOFT:
        return OAuthApp(
            provider=provider,
            client_id=cfg.microsoft_client_id,
            client_secret=cfg.microsoft_client_secret,
            authorize_url=cfg.microsoft_auth_url,
            token_url=cfg.microsoft_token_url,
            revoke_url="",  # the identity platform has none
            scopes=MICROSOFT_SCOPES,
            token_auth="client_secret_post",
        )
    raise ValueError(f"{provider} does not use OAuth")


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint returned; secrets stay wrapped."""

    access_token: SecretStr
    refresh_token: SecretStr | None
    expires_at: datetime
    scope: str
    token_type: str = "Bearer"


def new_code_verifier() -> str:
    """A PKCE code verifier (RFC 7636: 43 to 128 unreserved characters)."""
    return str(_authlib().common.security.generate_token(64))


def new_state() -> str:
    """An unguessable ``state`` value (≥ 256 bits)."""
    return str(_authlib().common.security.generate_token(48))


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _raise_retryable(response: httpx.Response) -> None:
    if response.status_code in RETRY_STATUSES:
        response.read()
        raise _RetryableStatus(response)


def _wait(base_s: float, cap_s: float) -> Any:
    from tenacity import wait_random_exponential

    backoff = wait_random_exponential(multiplier=base_s, max=cap_s)

    def wait(state: RetryCallState) -> float:
        delay = float(backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableStatus):
            from shared.platform.http import retry_after_seconds

            asked = retry_after_seconds(exc.response)
            if asked is not None:
                delay = max(delay, min(asked, cap_s))
        return delay

    return wait


class OAuthClient:
    """Authorization URL, code exchange, refresh and revoke for one :class:`OAuthApp`."""

    def __init__(
        self,
        app: OAuthApp,
        *,
        redirect_uri: str,
        timeout_s: float = 10.0,
        attempts: int = 4,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 8.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Any = None,
    ) -> None:
        self.app = app
        self.redirect_uri = redirect_uri
        self._timeout_s = timeout_s
        #: Upper bound of one call with every retry: each attempt's timeout plus the longest waits.
        self.worst_case_s = attempts * timeout_s + (attempts - 1) * backoff_cap_s
        self._transport = transport
        import httpx
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

        self._retrying = Retrying(
            retry=retry_if_exception_type((_RetryableStatus, httpx.TransportError)),
            wait=_wait(backoff_base_s, backoff_cap_s),
            stop=stop_after_attempt(attempts),
            reraise=True,
            **({"sleep": sleep} if sleep else {}),
        )

    def _session(self) -> OAuth2Client:
        kwargs: dict[str, Any] = {
            "timeout": self._timeout_s,
            "event_hooks": {"response": [_raise_retryable]},
        }
        if self._transport is not None:
            kwargs["transport"] = self._transport
        trace_httpx()
        client: OAuth2Client = _authlib().integrations.httpx_client.OAuth2Client(
            client_id=self.app.client_id,
            client_secret=self.app.client_secret.get_secret_value(),
            token_endpoint_auth_method=self.app.token_auth,
            revocation_endpoint_auth_method=self.app.token_auth,
            scope=" ".join(self.app.scopes) if self.app.send_scope else None,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            **kwargs,
        )
        return client

    def authorization_url(self, *, state: str, code_verifier: str, login_hint: str | None = None) -> str:
        """The provider's consent URL with PKCE (S256) and ``state``."""
        extra = dict(self.app.authorize_params)
        if login_hint:
            extra["login_hint"] = login_hint
        with self._session() as session:
            url, _ = session.create_authorization_url(
                self.app.authorize_url, state=state, code_verifier=code_verifier, **extra
            )
        return str(url)

    def exchange_code(self, *, code: str, code_verifier: str) -> TokenSet:
        """Trade an authorization code (and its PKCE verifier) for tokens."""

        def call() -> dict[str, Any]:
            with self._session() as session:
                # authlib leaves ``scope`` out of a code exchange; Microsoft requires it there.
                extra = {"scope": " ".join(self.app.scopes)} if self.app.provider is Provider.MICROSOFT else {}
                token: dict[str, Any] = session.fetch_token(
                    self.app.token_url,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    **extra,
                )
                return token

        return _token_set(self._call(call))

    def refresh(self, refresh_token: SecretStr) -> TokenSet:
        """A new access token (and, for Zoom, a new refresh token: persist it before use)."""

        def call() -> dict[str, Any]:
            with self._session() as session:
                token: dict[str, Any] = session.refresh_token(
                    self.app.token_url, refresh_token=refresh_token.get_secret_value()
                )
                return token

        tokens = _token_set(self._call(call))
        if tokens.refresh_token is None:  # Google keeps the refresh token; Zoom always rotates it
            tokens = TokenSet(tokens.access_token, refresh_token, tokens.expires_at, tokens.scope, tokens.token_type)
        return tokens

    def revoke(self, token: SecretStr) -> None:
        """Revoke ``token`` at the provider; an already-invalid token counts as revoked."""
        if not self.app.revoke_url:
            raise OAuthError("revoke_unsupported", f"{self.app.provider.value} has no token revocation endpoint")

        def call() -> httpx.Response:
            with self._session() as session:
                if self.app.provider is Provider.GOOGLE:
                    # Google: POST /revoke with the token as a form field (no client auth needed). Google
                    # also takes ?token=…, but a URL is logged by every HTTP layer (httpx logs each
                    # request line at INFO), so the token never goes into one.
                    response: httpx.Response = session.request(
                        "POST",
                        self.app.revoke_url,
                        data={"token": token.get_secret_value()},
                        headers={"content-type": "application/x-www-form-urlencoded"},
                        withhold_token=True,
                        auth=None,
                    )
                else:
                    # Zoom: token in the form body (never the query string), Basic client auth.
                    response = session.revoke_token(self.app.revoke_url, token=token.get_secret_value())
                return response

        response = self._call(call)
        if response.status_code >= 400 and _error_code(response) not in {"invalid_token", "invalid_request"}:
            raise OAuthError(_error_code(response) or "revoke_failed", status=response.status_code)

    def _call(self, fn: Any) -> Any:
        import httpx

        authlib_error = _authlib().integrations.base_client.errors.OAuthError
        try:
            return self._retrying(fn)
        except _RetryableStatus as exc:
            raise ProviderUnavailableError(
                "provider_unavailable", f"{self.app.provider.value} answered HTTP {exc.response.status_code}"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(
                "provider_unreachable", f"{self.app.provider.value}: {type(exc).__name__}"
            ) from None
        except authlib_error as exc:
            cls = InvalidGrantError if exc.error == "invalid_grant" else OAuthError
            raise cls(str(exc.error), _clean(exc.description)) from None
        except httpx.HTTPStatusError as exc:
            raise OAuthError(
                "http_error", f"HTTP {exc.response.status_code}", status=exc.response.status_code
            ) from None


def _clean(description: Any) -> str | None:
    return str(description)[:200] if description else None


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") else None


def _token_set(token: Mapping[str, Any]) -> TokenSet:
    if not token.get("access_token"):
        raise OAuthError("invalid_token_response", "the token endpoint returned no access_token")
    expires_at = token.get("expires_at")
    when = (
        datetime.fromtimestamp(float(expires_at), UTC)
        if expires_at
        else datetime.now(UTC) + timedelta(seconds=float(token.get("expires_in", 3600)))
    )
    refresh = token.get("refresh_token")
    return TokenSet(
        access_token=SecretStr(str(token["access_token"])),
        refresh_token=SecretStr(str(refresh)) if refresh else None,
        expires_at=when,
        scope=str(token.get("scope", "")),
        token_type=str(token.get("token_type", "Bearer")),
    )
