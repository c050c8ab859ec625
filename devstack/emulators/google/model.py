"""Google's constants and records: scopes, default client and user, TTLs and limits, the
dataclasses the state holds, and the emulator's settings.

Rules: the scopes a Calendar method accepts come from the discovery document (``specs/``); the
fallback table below holds the same values for when the spec files are not available.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devstack.emulators import spec
from devstack.emulators.common import JSONDict

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
SCOPE_CALENDAR = SCOPE_PREFIX + "calendar"
SCOPE_EVENTS = SCOPE_PREFIX + "calendar.events"
SCOPE_READONLY = SCOPE_PREFIX + "calendar.readonly"
SCOPE_FREEBUSY = SCOPE_PREFIX + "calendar.freebusy"
SCOPE_CALENDARLIST_READONLY = SCOPE_PREFIX + "calendar.calendarlist.readonly"
SCOPE_USERINFO_EMAIL = SCOPE_PREFIX + "userinfo.email"
SCOPE_USERINFO_PROFILE = SCOPE_PREFIX + "userinfo.profile"

DEFAULT_CLIENT_ID = "mentor-connections-dev.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "GOCSPX-emulator-dev-secret"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8080/oauth/google/callback"
DEFAULT_USER_EMAIL = "mentor@example.com"

ACCESS_TOKEN_TTL = 3600  # Google answers expires_in 3599 for a one-hour token
CODE_TTL = 600
CHANNEL_DEFAULT_TTL = 7 * 24 * 3600
CHANNEL_MAX_TTL = 30 * 24 * 3600
FREEBUSY_MAX_CALENDARS = 50  # FreeBusyRequest.calendarExpansionMax: "Maximum value is 50."
FREEBUSY_MAX_DAYS = 90  # reported by calcom/cal.diy PR #11962; not in the discovery document

MEET_ICON = (
    "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png"
)
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
ACCESS_ROLES = ("none", "freeBusyReader", "reader", "writer", "owner")

# Event fields the client may not set (read-only or server-computed); silently dropped, as
# Google does.
EVENT_READ_ONLY = {
    "kind",
    "etag",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "hangoutLink",
    "iCalUID",
    "recurringEventId",
    "locked",
    "attendeesOmitted",
}

# Fallback scope table when the spec files are not available (same values as the discovery
# document revision 20260519, see specs/oauth-endpoints.json).
_FALLBACK_SCOPES: dict[str, tuple[str, ...]] = {
    "calendar.calendarList.list": (
        SCOPE_CALENDAR,
        SCOPE_PREFIX + "calendar.calendarlist",
        SCOPE_CALENDARLIST_READONLY,
        SCOPE_READONLY,
    ),
    "calendar.freebusy.query": (
        SCOPE_CALENDAR,
        SCOPE_PREFIX + "calendar.events.freebusy",
        SCOPE_FREEBUSY,
        SCOPE_READONLY,
    ),
    "calendar.events.insert": (
        SCOPE_CALENDAR,
        SCOPE_PREFIX + "calendar.app.created",
        SCOPE_EVENTS,
        SCOPE_PREFIX + "calendar.events.owned",
    ),
}


def method_scopes() -> dict[str, tuple[str, ...]]:
    try:
        return {mid: m.scopes for mid, m in spec.discovery_methods().items()}
    except (spec.SpecNotFoundError, OSError, ValueError):
        out = dict(_FALLBACK_SCOPES)
        for mid in ("calendar.events.patch", "calendar.events.update", "calendar.events.delete"):
            out[mid] = _FALLBACK_SCOPES["calendar.events.insert"]
        read = (*_FALLBACK_SCOPES["calendar.events.insert"], SCOPE_READONLY, SCOPE_PREFIX + "calendar.events.readonly")
        for mid in ("calendar.events.get", "calendar.events.list", "calendar.events.watch"):
            out[mid] = read
        out["calendar.channels.stop"] = read
        return out


def known_scopes() -> set[str]:
    base = {"openid", "email", "profile", SCOPE_USERINFO_EMAIL, SCOPE_USERINFO_PROFILE}
    try:
        base |= set(spec.google_discovery()["auth"]["oauth2"]["scopes"].keys())
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        base |= {s for scopes in _FALLBACK_SCOPES.values() for s in scopes}
    return base


def normalize_scope(s: str) -> str:
    return {"email": SCOPE_USERINFO_EMAIL, "profile": SCOPE_USERINFO_PROFILE}.get(s, s)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uris: list[str]


@dataclass
class GoogleCalendar:
    id: str
    summary: str
    time_zone: str = "UTC"
    owner: str = ""
    description: str = ""
    background_color: str = "#9fe1e7"


@dataclass
class GoogleUser:
    email: str
    name: str
    sub: str
    time_zone: str = "UTC"
    # calendar id -> access role of this user on it
    calendars: dict[str, str] = field(default_factory=dict)

    @property
    def given_name(self) -> str:
        return self.name.split(" ")[0]

    @property
    def family_name(self) -> str:
        parts = self.name.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    email: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    access_type: str
    issue_refresh: bool
    expires_at: float
    nonce: str | None = None
    used_at: float | None = None


@dataclass
class RefreshToken:
    token: str
    client_id: str
    email: str
    scopes: list[str]
    created: float
    revoked: bool = False
    revoked_at: float | None = None


@dataclass
class AccessToken:
    token: str
    client_id: str
    email: str
    scopes: list[str]
    issued_at: float
    expires_at: float
    refresh_token: str | None = None
    revoked: bool = False
    grant_type: str = "authorization_code"


@dataclass
class EventRecord:
    calendar_id: str
    resource: JSONDict
    conference_pending: bool = False  # the create request still answers "pending"
    pending_polls: int = 0  # further GETs that answer "pending" before "success"


@dataclass
class Channel:
    id: str
    resource_id: str
    resource_uri: str
    address: str
    expiration_ms: int
    calendar_id: str
    email: str
    client_id: str
    token: str | None = None
    message_number: int = 0
    stopped: bool = False
    created: float = 0.0
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class GoogleSettings:
    code_ttl_seconds: int = CODE_TTL
    access_token_ttl_seconds: int = ACCESS_TOKEN_TTL
    # None = refresh tokens never expire; 604800 mimics a "Testing" consent screen (NOTES §3)
    refresh_token_ttl_seconds: int | None = None
    # Real Google refuses a non-HTTPS watch address (400 push.webhookUrlNotHttps). Off, any http(s)
    # address is taken; the local stack instead allows http on loopback only
    # (``GoogleEmulator(allow_http_loopback_push=True)``, which survives resets).
    require_https_push: bool = True
    push_delay_ms: int = 0
    freebusy_max_days: int | None = FREEBUSY_MAX_DAYS
    freebusy_max_calendars: int = FREEBUSY_MAX_CALENDARS
    # conference creation: "success" | "pending" (the insert answers pending; GETs answer
    # pending `conference_pending_polls` more times, then success) | "failure"
    conference_mode: str = "success"
    conference_pending_polls: int = 0
    auto_create_users: bool = True
