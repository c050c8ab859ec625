"""Microsoft identity platform + Microsoft Graph (Outlook calendar, Teams meetings) emulator.

One loopback server answers on the real hosts' paths:

* ``GET  /{tenant}/oauth2/v2.0/authorize`` (login.microsoftonline.com) - auto-consent as the
  chosen test user (the default one when none is seeded), or deny (``access_denied``, AADSTS65004)
* ``POST /{tenant}/oauth2/v2.0/token`` - authorization_code (PKCE S256/plain) / refresh_token;
  every refresh returns a new refresh token; AADSTS-coded errors
* ``GET  /v1.0/me``, ``GET /v1.0/me/calendars``, ``GET /v1.0/me/calendars/{id}`` (graph.microsoft.com)
* ``POST /v1.0/me/events``, ``POST /v1.0/me/calendars/{id}/events``,
  ``GET|PATCH|DELETE /v1.0/me/events/{id}`` - Teams join URLs, ``transactionId`` idempotency
* ``POST /v1.0/me/calendar/getSchedule`` (also ``.../microsoft.graph.getSchedule``) - < 62 days
* ``POST /v1.0/subscriptions``, ``PATCH|DELETE /v1.0/subscriptions/{id}`` - validationToken
  handshake, clientState, 4,230-minute cap; change notifications on every event change
* ``/_admin/...`` - knobs, Outlook-side event changes, lifecycle notifications (see :mod:`.admin`)

Requests are checked against the Graph OpenAPI cut in ``specs/msgraph/`` (:mod:`.graph_spec`); the
tests check the answers against it too. Throttling: injected 429s (``/_admin/faults``) and Outlook's
per-app-and-mailbox window (``rate_limit_requests`` per ``rate_limit_window_seconds``), both with
``Retry-After``. Run standalone with ``python -m devstack.emulators.microsoft [--port N]``.

Modules: :mod:`.model` (constants, records, settings), :mod:`.state`, :mod:`.errors`,
:mod:`.event_data` (event resources, zones, Teams data), :mod:`.notify` (deliveries and the
handshake), :mod:`.guards`, :mod:`.graph_spec`, one blueprint per resource - :mod:`.oauth`,
:mod:`.me`, :mod:`.events`, :mod:`.schedule`, :mod:`.subscriptions`, :mod:`.admin` - and
:mod:`.server` (the app and :class:`MicrosoftEmulator`).
"""

from devstack.emulators.common import TokenFactory
from devstack.emulators.microsoft.errors import aadsts_error, fault_responder, graph_error
from devstack.emulators.microsoft.model import (
    ACCESS_TOKEN_TTL,
    CODE_TTL,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TENANT_ID,
    DEFAULT_USER_EMAIL,
    GETSCHEDULE_MAX_DAYS,
    LIFECYCLE_EVENTS,
    OPS,
    SUBSCRIPTION_MAX_MINUTES,
    TEAMS,
    EventRecord,
    MsAccessToken,
    MsCalendar,
    MsClient,
    MsCode,
    MsRefreshToken,
    MsSettings,
    MsUser,
    Subscription,
)
from devstack.emulators.microsoft.oauth import MicrosoftOAuth
from devstack.emulators.microsoft.server import MicrosoftEmulator, create_app, main
from devstack.emulators.microsoft.state import MicrosoftState

__all__ = [
    "ACCESS_TOKEN_TTL",
    "CODE_TTL",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_TENANT_ID",
    "DEFAULT_USER_EMAIL",
    "GETSCHEDULE_MAX_DAYS",
    "LIFECYCLE_EVENTS",
    "OPS",
    "SUBSCRIPTION_MAX_MINUTES",
    "TEAMS",
    "EventRecord",
    "MicrosoftEmulator",
    "MicrosoftOAuth",
    "MicrosoftState",
    "MsAccessToken",
    "MsCalendar",
    "MsClient",
    "MsCode",
    "MsRefreshToken",
    "MsSettings",
    "MsUser",
    "Subscription",
    "TokenFactory",
    "aadsts_error",
    "create_app",
    "fault_responder",
    "graph_error",
    "main",
]
