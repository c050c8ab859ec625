"""Google calendars and disconnect (PRODUCT.md §2.2, §3).

* ``GET /connections/google/calendars`` / ``PUT /connections/google/calendar`` —
  :func:`google_calendars`, :func:`select_google_calendar` (writable calendars only).
* ``DELETE /connections/{provider}[?revoke=true]`` — :func:`disconnect` (Microsoft: its Graph
  subscriptions are deleted first, through ``stop_microsoft``; it has no revocation endpoint).

Microsoft's calendars routes are in :mod:`shared.connections.microsoft`.

Google push channels follow the calendar (:class:`GoogleHooks`, built by :mod:`shared.wiring` over
:mod:`shared.busy.push`): made sure of after a calendar switch, stopped on disconnect *before* the
credential is deleted — best effort, never failing the request. Tokens come from the injected
:class:`~shared.providers.credentials.CredentialAccessor`; no error or log line carries one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import SecretStr

from shared.connections.oauth_flow import oauth_client
from shared.connections.views import (
    OAUTH_PROVIDERS,
    CalendarsList,
    CalendarView,
    ConnectionView,
    require_connected,
    save_selected_calendar,
)
from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.providers.credentials import ConnectionUnavailable, CredentialAccessor
from shared.providers.oauth import (
    OAuthError,
    ProviderUnavailableError,
)
from shared.store import ConnectionStatus, Provider, Store
from shared.vault import OAuthCredential, Vault, VaultError


@dataclass(frozen=True)
class GoogleHooks:
    """What the Google calendar routes ask of push channels; both never raise."""

    #: ``watch(mentor_id, replace)``: open (``replace``) or make sure of the mentor's watch channel.
    watch: Callable[[str, bool], object]
    #: ``stop(mentor_id)``: stop and forget the mentor's channels (a token must still exist).
    stop: Callable[[str], object]


def access_token(
    tokens: CredentialAccessor, mentor_id: str, provider: Provider, *, reject: SecretStr | None = None
) -> SecretStr:
    """A usable access token of the mentor's ``provider`` connection (refreshed ahead of expiry;
    ``reject``: the token a provider just refused, forcing one refresh).

    Goes through :class:`shared.providers.credentials.CredentialAccessor` (one refresh per credential
    across processes, Zoom rotation persisted first, ``invalid_grant`` → ``needs_reconnect``).
    """
    try:
        return tokens.access_token(mentor_id, provider, reject=reject)
    except ConnectionUnavailable as exc:
        if exc.status is ConnectionStatus.NOT_CONNECTED:
            raise ApiError(HTTPStatus.NOT_FOUND, "not_connected", f"{provider.value} is not connected.") from None
        raise ApiError(
            HTTPStatus.CONFLICT, "needs_reconnect", f"{provider.value} needs to be reconnected.", reason=exc.reason
        ) from None
    except (ProviderUnavailableError, OAuthError, VaultError) as exc:
        logger.warning("access token unavailable", extra={"provider": provider.value, "error": type(exc).__name__})
        raise ApiError(
            HTTPStatus.BAD_GATEWAY, "provider_unavailable", f"{provider.value} is unavailable; try again."
        ) from None


def _calendar_entries(tokens: CredentialAccessor, mentor_id: str) -> list[Any]:
    from shared.providers.google.calendar import GoogleApiError, GoogleAuthError, google_client

    token = access_token(tokens, mentor_id, Provider.GOOGLE)
    try:
        return google_client().calendar_list(token)
    except GoogleAuthError:
        raise ApiError(HTTPStatus.CONFLICT, "needs_reconnect", "google needs to be reconnected.") from None
    except GoogleApiError:
        raise ApiError(HTTPStatus.BAD_GATEWAY, "provider_unavailable", "Google is unavailable; try again.") from None


def google_calendars(store: Store, tokens: CredentialAccessor, mentor_id: str) -> CalendarsList:
    """The mentor's Google calendars, with the selected one marked."""
    conn = require_connected(store, mentor_id, Provider.GOOGLE)
    selected = conn.selected_calendar or "primary"
    entries = _calendar_entries(tokens, mentor_id)
    return CalendarsList(
        selected_calendar=selected,
        calendars=[
            CalendarView(
                id=e.id,
                summary=e.summary,
                primary=e.primary,
                access_role=e.access_role,
                selected=e.id == selected or (selected == "primary" and e.primary),
            )
            for e in entries
        ],
    )


def select_google_calendar(
    store: Store, tokens: CredentialAccessor, mentor_id: str, calendar_id: str, *, hooks: GoogleHooks
) -> ConnectionView:
    """Make ``calendar_id`` (one of the mentor's calendar list, or ``primary``) the selected calendar."""
    conn = require_connected(store, mentor_id, Provider.GOOGLE)
    entries = _calendar_entries(tokens, mentor_id)
    if calendar_id != "primary" and calendar_id not in {e.id for e in entries}:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "unknown_calendar",
            "calendarId is not one of your Google calendars (see GET /connections/google/calendars).",
        )
    # Writable calendars only: events are created on the selected calendar.
    chosen = next((e for e in entries if e.id == calendar_id), None)
    if chosen is not None and chosen.access_role not in ("owner", "writer"):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "calendar_not_writable",
            "Choose a calendar you can add events to (owner or writer access).",
        )
    saved = save_selected_calendar(store, conn, Provider.GOOGLE, calendar_id)
    logger.info("google calendar selected")
    # Watch the chosen calendar (a new channel if it changed, the old one stopped); best effort.
    hooks.watch(mentor_id, False)
    return ConnectionView.of(Provider.GOOGLE, saved)


def disconnect(
    store: Store,
    vault: Vault,
    mentor_id: str,
    provider: Provider,
    *,
    revoke: bool = False,
    hooks: GoogleHooks,
    stop_microsoft: Callable[[str], object] | None = None,
) -> None:
    """Delete the connection and its sealed credential now; optionally revoke at Google / Zoom (best effort).

    ``stop_microsoft(mentor_id)`` deletes a Microsoft connection's Graph subscriptions while a token
    still exists (never raises); Microsoft has no revocation endpoint, so ``revoke`` changes nothing there.
    """
    conn = store.get_connection(mentor_id, provider)
    if conn is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "not_connected", f"{provider.value} is not connected.")
    token: SecretStr | None = None
    if revoke and provider in OAUTH_PROVIDERS and provider is not Provider.MICROSOFT and conn.credential is not None:
        try:
            cred = vault.open_credential(conn.credential, mentor_id=mentor_id, provider=provider.value)
        except VaultError as exc:
            logger.warning("credential could not be opened for revoke", extra={"error": type(exc).__name__})
        else:
            if isinstance(cred, OAuthCredential):
                # Google: the refresh token revokes the whole grant; Zoom revokes by access token.
                token = cred.refresh_token if provider is Provider.GOOGLE and cred.refresh_token else cred.access_token
    if provider is Provider.GOOGLE:
        hooks.stop(mentor_id)  # while a token still exists
    if provider is Provider.MICROSOFT and stop_microsoft is not None:
        stop_microsoft(mentor_id)  # likewise
    store.delete_connection(mentor_id, provider)
    logger.info("connection deleted", extra={"provider": provider.value, "revoke": revoke})
    if token is not None:
        try:
            oauth_client(provider).revoke(token)
        except OAuthError as exc:
            logger.warning(
                "revoke failed; connection deleted anyway", extra={"provider": provider.value, "code": exc.code}
            )
