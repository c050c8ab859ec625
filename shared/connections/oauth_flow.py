"""OAuth connect for Google, Zoom and Microsoft (PRODUCT.md §2.2, §3): authorize, the provider's callback, complete.

* ``POST /connections/{google,zoom,microsoft}/authorize`` — :func:`start_authorization` stores a single-use
  ``state`` item (``PK=OAUTH#<sha256(state)>``, ``SK=STATE``, TTL 10 minutes) bound to the mentor,
  the provider and the PKCE verifier, and returns the provider's consent URL.
* ``GET /oauth/{provider}/callback`` — :func:`receive_callback` consumes the state (one conditional
  delete: a replay finds nothing), exchanges the code, reads the account and seals the tokens for
  the mentor who started the flow — but stores **no connection**: it parks them under a single-use
  *pending handle* (``PK=OAUTHPENDING#<sha256(handle)>``, ``SK=PENDING``, TTL 10 minutes) and sends
  the browser to ``<APP_URL>/mentor/settings/connections?provider=<p>&pending=<handle>``. Any
  failure parks nothing and answers ``?error=<code>``: ``invalid_state``, ``expired_state``,
  ``consent_denied``, ``authorization_failed``, ``exchange_failed``, ``provider_unavailable``,
  ``invalid_request``, ``unknown_provider``.
* ``POST /connections/{google,zoom,microsoft}/complete {"pending"}`` — :func:`complete_connection`, called by
  the mentor app in the same browser with the mentor's JWT, consumes the handle (one conditional
  delete) and saves the connection only if the JWT's mentor is the one who started the flow.
  Another mentor → 403 ``oauth_mentor_mismatch`` and the parked tokens are discarded; an unknown,
  used or expired handle → 400 ``invalid_pending`` / ``expired_pending``.

The callback is reachable by any browser, so without the completion step a consent URL sent to
someone else would attach *their* account to the sender (account-linking CSRF, RFC 6749 §10.12,
RFC 9700 §4.7). The handle alone is worthless: it only completes with the starting mentor's JWT.

A Google connection gets a push channel once completed: ``on_google_connected`` (built by
:mod:`shared.wiring` over :mod:`shared.busy.push`), best effort. No message, log line or redirect
carries a token.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from shared.connections.views import (
    CONNECTIONS_PAGE,
    OAUTH_PROVIDERS,
    PENDING_TTL_S,
    STATE_TTL_S,
    ConnectionView,
    current_time,
    save_connection,
)
from shared.platform.api import ApiError
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
    """The OAuth client of ``provider`` (Google, Zoom or Microsoft) from settings."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    return OAuthClient(
        oauth_app(provider, settings(ProviderSettings)),
        redirect_uri=redirect_uri(provider),
        timeout_s=settings(BaseFunctionSettings).http_timeout_s,
    )


def state_key(state: str) -> str:
    """Partition key of a ``state`` item: only its hash is stored."""
    return "OAUTH#" + hashlib.sha256(state.encode("utf-8")).hexdigest()


def pending_key(handle: str) -> str:
    """Partition key of a pending connection: only the handle's hash is stored."""
    return "OAUTHPENDING#" + hashlib.sha256(handle.encode("utf-8")).hexdigest()


def app_redirect(*, provider: Provider | None = None, pending: str | None = None, error: str | None = None) -> str:
    """``<APP_URL>/mentor/settings/connections?provider=<p>&pending=<handle>`` or ``?error=<code>``."""
    from shared.platform.config import BaseFunctionSettings, settings

    if provider is not None and pending:
        query = {"provider": provider.value, "pending": pending}
    else:
        query = {"error": error or "unknown_error"}
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


def _consume(store: Store, pk: str, sk: str) -> dict[str, Any] | None:
    """Delete ``(pk, sk)`` and return what it held, or ``None`` if it is not there (any more).

    One conditional delete: of two requests racing for the same item only one gets it.
    """
    table = store.table
    try:
        resp = table.client.delete_item(
            TableName=table.name,
            Key=to_item({"PK": pk, "SK": sk}),
            ConditionExpression="attribute_exists(PK)",
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if is_conditional_failure(exc):
            return None
        raise
    attributes = resp.get("Attributes")
    return from_item(attributes) if attributes else None


def consume_state(store: Store, state: str) -> dict[str, Any] | None:
    """Delete the ``state`` item and return what it held, or ``None`` if it is not there (any more)."""
    return _consume(store, state_key(state), "STATE")


def consume_pending(store: Store, handle: str) -> dict[str, Any] | None:
    """Delete the pending connection of ``handle`` and return it, or ``None`` (unknown or already used)."""
    return _consume(store, pending_key(handle), "PENDING")


def receive_callback(
    store: Store,
    vault: Vault,
    provider_value: str,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime | None = None,
) -> str:
    """The provider sent the browser back: park the sealed tokens under a pending handle.

    Returns the app URL to redirect the browser to: ``?provider=<p>&pending=<handle>`` or
    ``?error=<code>``. Nothing is stored as a connection here (:func:`complete_connection` does).
    """
    try:
        provider = Provider(provider_value)
        if provider not in OAUTH_PROVIDERS:
            raise ValueError(provider_value)
    except ValueError:
        logger.info("oauth callback for an unknown provider")
        return app_redirect(error="unknown_provider")
    try:
        handle = _park(store, vault, provider, code=code, state=state, error=error, now=now or current_time())
    except CallbackError as exc:
        logger.info("oauth callback refused", extra={"provider": provider.value, "code": exc.code})
        return app_redirect(error=exc.code)
    logger.info("oauth connection pending completion", extra={"provider": provider.value})
    return app_redirect(provider=provider, pending=handle)


def _park(
    store: Store,
    vault: Vault,
    provider: Provider,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime,
) -> str:
    """Consume the state, exchange the code, read the account, seal and park; returns the handle."""
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
        # Sealed for the starting mentor: the blob opens only under that mentor's id and provider.
        sealed = vault.seal_credential(credential, mentor_id=mentor_id, provider=provider.value)
    except VaultError as exc:
        raise CallbackError("provider_unavailable", type(exc).__name__) from None
    handle = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=PENDING_TTL_S)
    item: dict[str, Any] = {
        "PK": pending_key(handle),
        "SK": "PENDING",
        "type": "oauth_pending",
        "mentor_id": mentor_id,
        "provider": provider.value,
        "credential": sealed,
        "account_label": f"Connected as {account['label']}",
        "created_at": now.isoformat(),
        "expires_at": expires.isoformat(),
        "ttl": int(expires.timestamp()),
    }
    if account.get("account_id"):
        item["account_id"] = account["account_id"]
    if account.get("plan_type") is not None:
        item["plan_type"] = int(account["plan_type"])
    if account.get("calendar_ids"):
        item["calendar_ids"] = sorted(account["calendar_ids"])
    try:
        store.table.put(item, condition="attribute_not_exists(PK)")
    except (ConflictError, ClientError):
        raise CallbackError("provider_unavailable", "could not park the connection") from None
    return handle


def complete_connection(
    store: Store,
    mentor_id: str,
    provider: Provider,
    handle: str,
    *,
    on_google_connected: Callable[[str], object],
    on_connected: Callable[[str, Provider, bool], object] | None = None,
    now: datetime | None = None,
) -> ConnectionView:
    """``POST /connections/{p}/complete``: store the parked connection if ``mentor_id`` started it.

    The handle is consumed first (one conditional delete), whatever happens next: it is single-use,
    and a handle presented by another mentor is discarded with its tokens (403
    ``oauth_mentor_mismatch``). ``on_google_connected(mentor_id)`` runs after a Google connection
    is saved (opens its push channel; it never raises); ``on_connected(mentor_id, provider,
    reconnected)`` after any (``reconnected``: the mentor had this connection in some status before;
    it resumes what waited on the connection and never raises).
    """
    now = now or current_time()
    held = consume_pending(store, handle)
    if held is None or held.get("provider") != provider.value:
        logger.info("oauth completion refused", extra={"provider": provider.value, "code": "invalid_pending"})
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_pending",
            f"This {provider.value} connection is unknown or was already completed; please connect again.",
        )
    if datetime.fromisoformat(str(held["expires_at"])) <= now:
        logger.info("oauth completion refused", extra={"provider": provider.value, "code": "expired_pending"})
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "expired_pending",
            f"This {provider.value} connection was not completed within 10 minutes; please connect again.",
        )
    if held.get("mentor_id") != mentor_id:
        logger.warning("oauth completion by another mentor refused", extra={"provider": provider.value})
        raise ApiError(
            HTTPStatus.FORBIDDEN,
            "oauth_mentor_mismatch",
            f"This {provider.value} connection was started by another account; it has been discarded. "
            "Connect again from your own account.",
        )
    before = store.get_connection(mentor_id, provider)
    saved = _save_pending(store, mentor_id, provider, held, now)
    logger.info("oauth connection saved", extra={"provider": provider.value})
    if provider is Provider.GOOGLE:
        on_google_connected(mentor_id)
    if on_connected is not None:
        on_connected(mentor_id, provider, before is not None)
    return ConnectionView.of(provider, saved)


def _save_pending(store: Store, mentor_id: str, provider: Provider, held: dict[str, Any], now: datetime) -> Connection:
    calendar_ids = {str(c) for c in held.get("calendar_ids") or ()} | {"primary"}
    sealed = held["credential"]
    plan_type = held.get("plan_type")

    def build(existing: Connection | None) -> Connection:
        selected = None
        if provider in (Provider.GOOGLE, Provider.MICROSOFT):  # a calendar to choose; "primary" = default
            previous = existing.selected_calendar if existing is not None else None
            selected = previous if previous and previous in calendar_ids else "primary"
        return Connection(
            mentor_id=mentor_id,
            provider=provider,
            status=ConnectionStatus.CONNECTED,
            account_label=str(held["account_label"]),
            account_id=held.get("account_id"),
            selected_calendar=selected,
            plan_type=int(plan_type) if plan_type is not None else None,
            credential=bytes(sealed),
            connected_at=now,
        )

    try:
        return save_connection(store, mentor_id, provider, build)
    except ConflictError:
        raise ApiError(HTTPStatus.CONFLICT, "conflict", "The connection changed meanwhile; please retry.") from None


def _read_account(provider: Provider, tokens: TokenSet) -> dict[str, Any]:
    """Google: e-mail + calendar ids; Zoom: display name + plan type; Microsoft: mail or UPN + writable
    calendar ids. Failures stop the callback."""
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
    if provider is Provider.MICROSOFT:
        from shared.connections.microsoft import read_account
        from shared.providers.microsoft.errors import MicrosoftApiError

        try:
            return read_account(tokens.access_token)
        except MicrosoftApiError as exc:
            raise CallbackError("provider_unavailable", str(exc)) from None
    from shared.providers.zoom.client import ZoomApiError, zoom_client

    try:
        user = zoom_client().me(tokens.access_token)
    except ZoomApiError as exc:
        raise CallbackError("provider_unavailable", str(exc)) from None
    return {"label": user.display_name, "account_id": user.id, "plan_type": user.type}
