"""Microsoft 365 / Outlook connections (PRODUCT.md §2.2, §3): the account read of the OAuth
callback, the calendars routes and the subscription clean-up of disconnect.

* :func:`read_account` — the callback's ``GET /me`` + ``GET /me/calendars``: "Connected as <mail or
  userPrincipalName>", the account id and the writable calendars' ids (the choice the mentor has).
* ``GET /connections/microsoft/calendars`` / ``PUT /connections/microsoft/calendar`` —
  :func:`microsoft_calendars`, :func:`select_microsoft_calendar`: writable calendars only (classes'
  Teams events are written there). ``primary`` names the account's default calendar, as for Google.
* :func:`stop_subscriptions` — on disconnect, while the credential still exists: every Graph
  change-notification subscription stored for the mentor (a :class:`shared.store.channels.PushChannel`
  of provider ``microsoft`` whose ``channel_id`` is Graph's subscription id) is deleted at Graph and
  forgotten. Best effort: a failure is logged and the disconnect goes on (the subscription then
  expires at Graph within its three-day cap and its notifications find no channel).

Tokens come from the injected :class:`~shared.providers.credentials.CredentialAccessor` (refresh under
the lease, ``invalid_grant`` → ``needs_reconnect`` + one e-mail); no error or log line carries one.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from shared.connections.views import (
    CalendarsList,
    CalendarView,
    ConnectionView,
    require_connected,
    save_selected_calendar,
)
from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.store import Provider, Store

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import SecretStr

    from shared.providers.credentials import CredentialAccessor
    from shared.providers.microsoft.graph import MicrosoftCalendar, MicrosoftClient

#: The alias of the account's default calendar (what a fresh connection selects).
DEFAULT_CALENDAR = "primary"


def microsoft_client() -> MicrosoftClient:
    """A Graph client over the configured ``MICROSOFT_API_BASE``."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings
    from shared.providers.microsoft.graph import MicrosoftClient

    return MicrosoftClient(
        api_base=settings(ProviderSettings).microsoft_api_base, timeout_s=settings(BaseFunctionSettings).http_timeout_s
    )


def read_account(token: SecretStr) -> dict[str, Any]:
    """Label, account id and writable calendar ids for the callback; raises ``MicrosoftApiError``."""
    from shared.providers.microsoft.graph import writable

    client = microsoft_client()
    account = client.account(token)
    ids = {c.id for c in writable(client.calendars(token))} | {DEFAULT_CALENDAR}
    return {"label": account.connected_as, "account_id": account.id, "calendar_ids": ids}


def _graph_error(exc: Exception) -> ApiError:
    from shared.providers.microsoft.errors import MicrosoftAuthError, MicrosoftRateLimited

    if isinstance(exc, MicrosoftAuthError):
        return ApiError(HTTPStatus.CONFLICT, "needs_reconnect", "microsoft needs to be reconnected.")
    if isinstance(exc, MicrosoftRateLimited) and exc.retry_after_s is not None:
        wait_s = max(1, math.ceil(min(exc.retry_after_s, 3600.0)))
        return ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "provider_unavailable",
            f"Microsoft is throttling requests; try again in {wait_s} s.",
            headers={"Retry-After": str(wait_s)},
        )
    return ApiError(HTTPStatus.BAD_GATEWAY, "provider_unavailable", "Microsoft is unavailable; try again.")


def _writable(tokens: CredentialAccessor, mentor_id: str) -> list[MicrosoftCalendar]:
    """The mentor's writable calendars, default first (one forced refresh on a 401)."""
    from shared.connections.calendars import access_token
    from shared.providers.fresh_token import with_fresh_token
    from shared.providers.microsoft.errors import MicrosoftApiError, MicrosoftAuthError
    from shared.providers.microsoft.graph import writable

    client = microsoft_client()
    token = access_token(tokens, mentor_id, Provider.MICROSOFT)

    def refreshed(rejected: SecretStr) -> SecretStr:
        return access_token(tokens, mentor_id, Provider.MICROSOFT, reject=rejected)

    try:
        return writable(with_fresh_token(token, client.calendars, refreshed, auth_error=MicrosoftAuthError))
    except MicrosoftApiError as exc:
        logger.warning("microsoft calendars unavailable", extra={"status": exc.status, "code": exc.code})
        raise _graph_error(exc) from None


def microsoft_calendars(store: Store, tokens: CredentialAccessor, mentor_id: str) -> CalendarsList:
    """The mentor's writable Outlook calendars, the selected one marked."""
    conn = require_connected(store, mentor_id, Provider.MICROSOFT)
    selected = conn.selected_calendar or DEFAULT_CALENDAR
    return CalendarsList(
        selected_calendar=selected,
        calendars=[
            CalendarView(
                id=c.id,
                summary=c.name,
                primary=c.is_default,
                access_role="owner" if c.is_default else "writer",
                selected=c.id == selected or (selected == DEFAULT_CALENDAR and c.is_default),
            )
            for c in _writable(tokens, mentor_id)
        ],
    )


def select_microsoft_calendar(
    store: Store,
    tokens: CredentialAccessor,
    mentor_id: str,
    calendar_id: str,
    *,
    on_selected: Callable[[str], object] | None = None,
) -> ConnectionView:
    """Make ``calendar_id`` (a writable calendar of the account, or ``primary``) the selected one.

    ``on_selected(mentor_id)`` runs after the change is saved (busy push: a subscription on the
    chosen calendar; it never raises).
    """
    conn = require_connected(store, mentor_id, Provider.MICROSOFT)
    calendars = _writable(tokens, mentor_id)
    if calendar_id != DEFAULT_CALENDAR and calendar_id not in {c.id for c in calendars}:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "unknown_calendar",
            "calendarId is not one of your Outlook calendars you can add events to "
            "(see GET /connections/microsoft/calendars).",
        )
    saved = save_selected_calendar(store, conn, Provider.MICROSOFT, calendar_id)
    logger.info("microsoft calendar selected")
    if on_selected is not None:
        on_selected(mentor_id)
    return ConnectionView.of(Provider.MICROSOFT, saved)


def stop_subscriptions(store: Store, tokens: CredentialAccessor, mentor_id: str) -> int:
    """Delete the mentor's Graph subscriptions and their channel items; how many were deleted at Graph.

    Never raises: a token or Graph failure leaves the subscription to expire (module docstring).
    """
    from shared.providers.credentials import ConnectionUnavailable
    from shared.providers.microsoft.errors import MicrosoftApiError
    from shared.providers.oauth import OAuthError
    from shared.store.channels import ChannelStore
    from shared.vault import VaultError

    channels = ChannelStore(store.table)
    found = channels.for_mentor(mentor_id, Provider.MICROSOFT.value)
    if not found:
        return 0
    deleted = 0
    try:
        token = tokens.access_token(mentor_id, Provider.MICROSOFT)
    except (ConnectionUnavailable, OAuthError, VaultError) as exc:
        logger.warning("microsoft subscriptions left to expire: no token", extra={"error": type(exc).__name__})
        token = None
    client = microsoft_client()
    for channel in found:
        if token is not None:
            try:
                deleted += int(client.delete_subscription(token, channel.channel_id))
            except MicrosoftApiError as exc:
                logger.warning("microsoft subscription delete failed", extra={"status": exc.status, "code": exc.code})
        channels.delete(channel)
    logger.info("microsoft subscriptions stopped", extra={"deleted": deleted, "stored": len(found)})
    return deleted
