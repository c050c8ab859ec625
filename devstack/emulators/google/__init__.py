"""Google OAuth 2.0 + Calendar v3 (with Meet) emulator.

One loopback server answers on the real hosts' paths:

* ``GET  /o/oauth2/v2/auth``   (accounts.google.com) - authorization, auto-consent or deny
* ``POST /token``              (oauth2.googleapis.com) - authorization_code / refresh_token
* ``POST /revoke``             (oauth2.googleapis.com)
* ``GET  /v1/userinfo``        (openidconnect.googleapis.com), alias ``/oauth2/v3/userinfo``
* ``/calendar/v3/...``         (www.googleapis.com) - calendarList.list, events.insert/get/
  patch/update/delete/list/watch, freebusy.query, channels.stop
* ``GET  /.well-known/openid-configuration`` - the endpoints above, for client configuration
* ``/_admin/...``              - knobs and everything held (see :mod:`.admin`)

Scopes per Calendar method come from the discovery document (``specs/``); responses are
checked against its schemas by the tests. Run standalone with
``python -m devstack.emulators.google [--port N]``; it prints one JSON line when ready.

Modules: :mod:`.model` (constants, records, settings), :mod:`.state`, :mod:`.push` (watch-channel
deliveries), :mod:`.errors`, :mod:`.event_data` (event resources, Meet data, busy spans),
:mod:`.guards` (token, access and body checks), one blueprint per resource - :mod:`.oauth`,
:mod:`.calendar_list`, :mod:`.events`, :mod:`.freebusy`, :mod:`.channels`, :mod:`.admin` - and
:mod:`.server` (the app and :class:`GoogleEmulator`).
"""

from devstack.emulators.common import TokenFactory
from devstack.emulators.google.errors import AUTH_HEADER_INVALID, api_error, fault_responder
from devstack.emulators.google.model import (
    ACCESS_ROLES,
    ACCESS_TOKEN_TTL,
    BASE32HEX,
    CHANNEL_DEFAULT_TTL,
    CHANNEL_MAX_TTL,
    CODE_TTL,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    DEFAULT_USER_EMAIL,
    FREEBUSY_MAX_CALENDARS,
    FREEBUSY_MAX_DAYS,
    MEET_ICON,
    SCOPE_CALENDAR,
    SCOPE_CALENDARLIST_READONLY,
    SCOPE_EVENTS,
    SCOPE_FREEBUSY,
    SCOPE_PREFIX,
    SCOPE_READONLY,
    SCOPE_USERINFO_EMAIL,
    SCOPE_USERINFO_PROFILE,
    AccessToken,
    AuthCode,
    Channel,
    EventRecord,
    GoogleCalendar,
    GoogleSettings,
    GoogleUser,
    OAuthClient,
    RefreshToken,
)
from devstack.emulators.google.oauth import GoogleOAuth
from devstack.emulators.google.push import PushDispatcher
from devstack.emulators.google.server import GoogleEmulator, create_app, main
from devstack.emulators.google.state import GoogleState

__all__ = [
    "ACCESS_ROLES",
    "ACCESS_TOKEN_TTL",
    "AUTH_HEADER_INVALID",
    "BASE32HEX",
    "CHANNEL_DEFAULT_TTL",
    "CHANNEL_MAX_TTL",
    "CODE_TTL",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_USER_EMAIL",
    "FREEBUSY_MAX_CALENDARS",
    "FREEBUSY_MAX_DAYS",
    "MEET_ICON",
    "SCOPE_CALENDAR",
    "SCOPE_CALENDARLIST_READONLY",
    "SCOPE_EVENTS",
    "SCOPE_FREEBUSY",
    "SCOPE_PREFIX",
    "SCOPE_READONLY",
    "SCOPE_USERINFO_EMAIL",
    "SCOPE_USERINFO_PROFILE",
    "AccessToken",
    "AuthCode",
    "Channel",
    "EventRecord",
    "GoogleCalendar",
    "GoogleEmulator",
    "GoogleOAuth",
    "GoogleSettings",
    "GoogleState",
    "GoogleUser",
    "OAuthClient",
    "PushDispatcher",
    "RefreshToken",
    "TokenFactory",
    "api_error",
    "create_app",
    "fault_responder",
    "main",
]
