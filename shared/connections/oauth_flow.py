"""OAuth connect for Google and Zoom (PRODUCT.md §2.2): authorize, then the provider's callback.

* ``POST /connections/{google,zoom}/authorize`` — :func:`start_authorization` stores a single-use
  ``state`` item (``PK=OAUTH#<sha256(state)>``, ``SK=STATE``, TTL 10 minutes) bound to the mentor,
  the provider and the PKCE verifier, and returns the provider's consent URL.
* ``GET /oauth/{provider}/callback`` — :func:`complete_authorization` consumes the state (one
  conditional delete: a replay finds nothing), exchanges the code, reads the account, seals the
  tokens and saves the connection; it returns where to send the browser. Any failure stores nothing
  and answers ``?error=<code>``: ``invalid_state``, ``expired_state``, ``consent_denied``,
  ``authorization_failed``, ``exchange_failed``, ``provider_unavailable``, ``invalid_request``,
  ``unknown_provider``.

A Google connection gets a push channel after the callback: ``on_google_connected`` (built by
:mod:`shared.wiring` over :mod:`shared.busy.push`), best effort. No message, log line or redirect
carries a token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from shared.connections.views import CONNECTIONS_PAGE, OAUTH_PROVIDERS, STATE_TTL_S, current_time, save_connection
from shared.platform.observability import logger
from shared.providers.oauth import (
    InvalidGrantError,
    OAuthClient,
    OAuthError,
    TokenSet,
    new_code_verifier,
    new_state,
    oauth_app,
)
from shared.store import ConflictError, Connection, ConnectionStatus, Provider, Store
from shared.store.table import from_item, is_conditional_failure, to_item
from shared.vault import OAuthCredential, Vault, VaultError


def redirect_uri(provider: Provider) -> str:
    """The OAuth redirect URI registered with ``provider``: ``<API_URL>/oauth/<p>/callback``."""
    from shared.platform.config import BaseFunctionSettings, settings

    return f"{settings(BaseFunctionSettings).api_url.rstrip('/')}/oauth/{provider.value}/callback"


def oauth_client(provider: Provider) -> OAuthClient:
    """The OAuth client of ``provider`` (Google or Zoom) from settings."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    return OAuthClient(
        oauth_app(provider, settings(ProviderSettings)),
        redirect_uri=redirect_uri(provider),
        timeout_s=settings(BaseFunctionSettings).http_timeout_s,
    )


def state_key(state: str) -> str:
    """Partition key of a ``state`` item: only its hash is stored."""
    return "OAUTH#" + hashlib.sha256(state.encode("utf-8")).hexdigest()


def app_redirect(*, connected: Provider | None = None, error: str | None = None) -> str:
    """``<APP_URL>/mentor/settings/connections?connected=<p>`` or ``?error=<code>``."""
    from shared.platform.config import BaseFunctionSettings, settings

    query = {"connected": connected.value} if connected else {"error": error or "unknown_error"}
    return f"{settings(BaseFunctionSettings).app_url.rstrip('/')}{CONNECTIONS_PAGE}?{urlencode(query)}"


def start_authorization(store: Store, mentor_id: str, provider: Provider, *, now: datetime | None = None) -> str:
    """Store a single-use ``state`` bound to the mentor and return the provider's consent URL."""
    now = now or current_time()
    state, verifier = new_state(), new_code_verifier()
    url = oauth_client(provider).authorization_url(state=state, code_verifier=verifier)
    expires = now + timedelta(seconds=STATE_TTL_S)
    store.table.put(
        {
            "PK": state_key(state),
            "SK": "STATE",
            "type": "oauth_state",
            "mentor_id": mentor_id,
            "provider": provider.value,
            "code_verifier": verifier,
            "created_at": now.isoformat(),
            "expires_at": expires.isoformat(),
            "ttl": int(expires.timestamp()),
        },
        condition="attribute_not_exists(PK)",
    )
    logger.info("oauth authorize started", extra={"provider": provider.value})
    return url


class CallbackError(Exception):
    """The callback fails with ``code`` (it goes into the redirect's ``?error=``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def consume_state(store: Store, state: str) -> dict[str, Any] | None:
    """Delete the ``state`` item and return what it held, or ``None`` if it is not there (any more).

    One conditional delete: of two callbacks racing with the same ``state`` only one gets the item.
    """
    table = store.table
    try:
        resp = table.client.delete_item(
            TableName=table.name,
            Key=to_item({"PK": state_key(state), "SK": "STATE"}),
            ConditionExpression="attribute_exists(PK)",
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if is_conditional_failure(exc):
            return None
        raise
    attributes = resp.get("Attributes")
    return from_item(attributes) if attributes else None


def complete_authorization(
    store: Store,
    vault: Vault,
    provider_value: str,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    on_google_connected: Callable[[str], object],
    now: datetime | None = None,
) -> str:
    """Finish the OAuth dance; returns the app URL to redirect the browser to (success or ``?error=``).

    ``on_google_connected(mentor_id)`` runs after a Google connection is saved (opens its push
    channel; it never raises).
    """
    try:
        provider = Provider(provider_value)
        if provider not in OAUTH_PROVIDERS:
            raise ValueError(provider_value)
    except ValueError:
        logger.info("oauth callback for an unknown provider")
        return app_redirect(error="unknown_provider")
    try:
        saved = _complete(store, vault, provider, code=code, state=state, error=error, now=now or current_time())
    except CallbackError as exc:
        logger.info("oauth callback refused", extra={"provider": provider.value, "code": exc.code})
        return app_redirect(error=exc.code)
    logger.info("oauth connection saved", extra={"provider": provider.value})
    if provider is Provider.GOOGLE:
        on_google_connected(saved.mentor_id)
    return app_redirect(connected=provider)


def _complete(
    store: Store,
    vault: Vault,
    provider: Provider,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime,
) -> Connection:
    if error:
        if state:
            consume_state(store, state)  # burn it: a denied consent cannot be replayed into a success
        raise CallbackError("consent_denied" if error == "access_denied" else "authorization_failed")
    if not state:
        raise CallbackError("invalid_state", "no state")
    held = consume_state(store, state)
    if held is None:
        raise CallbackError("invalid_state", "missing or already used")
    if held.get("provider") != provider.value:
        raise CallbackError("invalid_state", "state of another provider")
    if datetime.fromisoformat(str(held["expires_at"])) <= now:
        raise CallbackError("expired_state")
    if not code:
        raise CallbackError("invalid_request", "no code")
    mentor_id = str(held["mentor_id"])
    try:
        tokens = oauth_client(provider).exchange_code(code=code, code_verifier=str(held["code_verifier"]))
    except InvalidGrantError as exc:
        raise CallbackError("exchange_failed", exc.code) from None
    except OAuthError as exc:
        raise CallbackError("exchange_failed", exc.code) from None
    account = _read_account(provider, tokens)
    credential = OAuthCredential(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scope=tokens.scope,
        token_type=tokens.token_type,
    )
    try:
        sealed = vault.seal_credential(credential, mentor_id=mentor_id, provider=provider.value)
    except VaultError as exc:
        raise CallbackError("provider_unavailable", type(exc).__name__) from None

    def build(existing: Connection | None) -> Connection:
        selected = None
        if provider is Provider.GOOGLE:
            previous = existing.selected_calendar if existing is not None else None
            selected = previous if previous and previous in account["calendar_ids"] else "primary"
        return Connection(
            mentor_id=mentor_id,
            provider=provider,
            status=ConnectionStatus.CONNECTED,
            account_label=f"Connected as {account['label']}",
            account_id=account["account_id"],
            selected_calendar=selected,
            plan_type=account.get("plan_type"),
            credential=sealed,
            connected_at=now,
        )

    try:
        return save_connection(store, mentor_id, provider, build)
    except ConflictError:
        raise CallbackError("provider_unavailable", "could not save the connection") from None


def _read_account(provider: Provider, tokens: TokenSet) -> dict[str, Any]:
    """Google: e-mail + calendar ids; Zoom: display name + plan type. Failures stop the callback."""
    if provider is Provider.GOOGLE:
        from shared.providers.google.calendar import GoogleApiError, google_client

        client = google_client()
        try:
            calendars = client.calendar_list(tokens.access_token)
            email = client.account_email(tokens.access_token, calendars)
        except GoogleApiError as exc:
            raise CallbackError("provider_unavailable", str(exc)) from None
        ids = {c.id for c in calendars} | {"primary"}
        label = email or "Google account"
        return {"label": label, "account_id": email, "calendar_ids": ids}
    from shared.providers.zoom.client import ZoomApiError, zoom_client

    try:
        user = zoom_client().me(tokens.access_token)
    except ZoomApiError as exc:
        raise CallbackError("provider_unavailable", str(exc)) from None
    return {"label": user.display_name, "account_id": user.id, "plan_type": user.type}
