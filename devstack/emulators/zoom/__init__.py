"""Zoom OAuth + Meetings/Users API emulator.

One loopback server answers on the real hosts' paths:

* ``GET  /oauth/authorize`` (zoom.us) - auto-consent as the chosen test user, or deny
* ``POST /oauth/token``     (zoom.us) - authorization_code / refresh_token, Basic client auth,
  refresh-token rotation (each refresh token works once)
* ``POST /oauth/revoke``    (zoom.us) - ``{"status":"success"}``
* ``GET  /v2/users/{userId}``                    (api.zoom.us) - ``me``, id or e-mail
* ``POST /v2/users/{userId}/meetings``           - create (per-user daily cap, 429)
* ``GET  /v2/users/{userId}/meetings``           - list (``type``, ``page_size`` ≤ 300,
  ``next_page_token`` valid 15 minutes, ``from``/``to``/``timezone``; agendas cut to 250 characters)
* ``GET|PATCH|DELETE /v2/meetings/{meetingId}``  - read / update (204) / delete (204)
* ``POST /_admin/webhooks/...``                  - send signed ``endpoint.url_validation`` /
  ``app_deauthorized`` events to the app
* ``/_admin/...``                                - knobs and everything held

Granular scopes per operation are read from the OpenAPI documents in ``specs/``; request
bodies are validated against the same documents. Run standalone with
``python -m devstack.emulators.zoom [--port N]``.

Modules: :mod:`.model` (constants, records, settings), :mod:`.state`, :mod:`.errors`,
:mod:`.guards` (token, user, body, daily-cap and meeting checks), one blueprint per resource -
:mod:`.oauth`, :mod:`.users`, :mod:`.meetings`, :mod:`.meetings_list`, :mod:`.webhooks` - and
:mod:`.server` (the app and :class:`ZoomEmulator`). Clients, users and consent are seeded through
the shared OAuth admin routes.
"""

from devstack.emulators.common import TokenFactory
from devstack.emulators.zoom.errors import fault_responder, oauth_error, zoom_error
from devstack.emulators.zoom.model import (
    ACCESS_TOKEN_TTL,
    CODE_TTL,
    DAILY_CAP,
    DAILY_CAP_MESSAGE,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    DEFAULT_SCOPES,
    DEFAULT_USER_EMAIL,
    LIST_AGENDA_MAX,
    LIST_PAGE_SIZE_DEFAULT,
    LIST_PAGE_SIZE_MAX,
    LIST_TYPES,
    OPS,
    PAGE_TOKEN_TTL,
    PER_SECOND_MESSAGE,
    PLAN_BASIC,
    PLAN_LICENSED,
    ZoomAccessToken,
    ZoomClient,
    ZoomCode,
    ZoomRefreshToken,
    ZoomSettings,
    ZoomUser,
)
from devstack.emulators.zoom.oauth import ZoomOAuth
from devstack.emulators.zoom.server import ZoomEmulator, create_app, main
from devstack.emulators.zoom.state import ZoomState
from devstack.emulators.zoom.webhooks import (
    deauthorization_payload,
    send_webhook,
    sign_webhook,
    url_validation_payload,
)

__all__ = [
    "ACCESS_TOKEN_TTL",
    "CODE_TTL",
    "DAILY_CAP",
    "DAILY_CAP_MESSAGE",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_SCOPES",
    "DEFAULT_USER_EMAIL",
    "LIST_AGENDA_MAX",
    "LIST_PAGE_SIZE_DEFAULT",
    "LIST_PAGE_SIZE_MAX",
    "LIST_TYPES",
    "OPS",
    "PAGE_TOKEN_TTL",
    "PER_SECOND_MESSAGE",
    "PLAN_BASIC",
    "PLAN_LICENSED",
    "TokenFactory",
    "ZoomAccessToken",
    "ZoomClient",
    "ZoomCode",
    "ZoomEmulator",
    "ZoomOAuth",
    "ZoomRefreshToken",
    "ZoomSettings",
    "ZoomState",
    "ZoomUser",
    "create_app",
    "deauthorization_payload",
    "fault_responder",
    "main",
    "oauth_error",
    "send_webhook",
    "sign_webhook",
    "url_validation_payload",
    "zoom_error",
]
