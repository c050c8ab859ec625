"""Zoom's constants and records: the default client, scopes and user, plans, TTLs and limits, the
operations and their scopes, the default meeting settings, the dataclasses the state holds, and
the emulator's settings.

Rules: granular scopes per operation are read from the OpenAPI documents in ``specs/``; the
fallback table below holds the same values for when the spec files are not available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from devstack.emulators import spec
from devstack.emulators.common import JSONDict, parse_rfc3339, zone

DEFAULT_CLIENT_ID = "mcZoomDevClient01"
DEFAULT_CLIENT_SECRET = "mcZoomDevSecret0123456789abcdef"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8080/oauth/zoom/callback"
DEFAULT_USER_EMAIL = "mentor@example.com"
DEFAULT_SCOPES = (
    "meeting:write:meeting",
    "meeting:read:meeting",
    "meeting:read:list_meetings",  # find a meeting by its agenda marker (GET /users/me/meetings)
    "meeting:update:meeting",
    "meeting:delete:meeting",
    "user:read:user",
)

PLAN_BASIC = 1
PLAN_LICENSED = 2

ACCESS_TOKEN_TTL = 3600  # "Access tokens last 1 h" (specs/NOTES.md §4)
CODE_TTL = 300  # "The OAuth code expires in 5 minutes" (developers.zoom.us, Zoom Rooms OAuth)
DAILY_CAP = 100  # meetingCreate description: "100 requests per day" per meeting host
LIST_PAGE_SIZE_DEFAULT = 30  # meetings: page_size "default": 30
LIST_PAGE_SIZE_MAX = 300  # meetings: page_size "maximum": 300
LIST_AGENDA_MAX = 250  # meetings: "The length of agenda gets truncated to 250 characters"
LIST_TYPES = ("scheduled", "live", "upcoming", "upcoming_meetings", "previous_meetings")
PAGE_TOKEN_TTL = 15 * 60  # next_page_token: "This token's expiration period is 15 minutes."

DAILY_CAP_MESSAGE = (
    "You have exceeded the daily rate limit ({cap}) of Meeting Create/Update API requests permitted "
    "for this particular user. You may resume these requests at GMT 00:00:00."
)
PER_SECOND_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."

# Operation -> (method, OpenAPI path template). Scopes and schemas come from the spec files.
OPS: dict[str, tuple[str, str]] = {
    "meetingCreate": ("POST", "/users/{userId}/meetings"),
    "meetings": ("GET", "/users/{userId}/meetings"),
    "meeting": ("GET", "/meetings/{meetingId}"),
    "meetingUpdate": ("PATCH", "/meetings/{meetingId}"),
    "meetingDelete": ("DELETE", "/meetings/{meetingId}"),
    "user": ("GET", "/users/{userId}"),
}

_FALLBACK_SCOPES: dict[str, tuple[list[str], list[str]]] = {
    "meetingCreate": (
        ["meeting:write:meeting", "meeting:write:meeting:admin"],
        ["meeting:write:admin", "meeting:write", "meeting:write:meeting", "meeting:write:meeting:admin"],
    ),
    "meetings": (
        ["meeting:read:list_meetings", "meeting:read:list_meetings:admin"],
        ["meeting:read:admin", "meeting:read", "meeting:read:list_meetings", "meeting:read:list_meetings:admin"],
    ),
    "meeting": (
        ["meeting:read:meeting", "meeting:read:meeting:admin"],
        ["meeting:read", "meeting:read:admin", "meeting:read:meeting", "meeting:read:meeting:admin"],
    ),
    "meetingUpdate": (
        ["meeting:update:meeting", "meeting:update:meeting:admin"],
        ["meeting:write", "meeting:write:admin", "meeting:update:meeting:admin", "meeting:update:meeting"],
    ),
    "meetingDelete": (
        ["meeting:delete:meeting", "meeting:delete:meeting:admin"],
        ["meeting:write:admin", "meeting:write", "meeting:delete:meeting", "meeting:delete:meeting:admin"],
    ),
    "user": (
        ["user:read:user", "user:read:user:admin"],
        [
            "user:read",
            "user:write",
            "user:read:admin",
            "user:write:admin",
            "user_profile",
            "user_info:read",
            "user:read:user",
            "user:read:user:admin",
        ],
    ),
}


def op_scopes() -> dict[str, tuple[list[str], list[str]]]:
    out: dict[str, tuple[list[str], list[str]]] = {}
    for name, (method, path) in OPS.items():
        try:
            out[name] = spec.openapi_scopes(spec.zoom_doc_for(path), path, method)
        except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
            out[name] = _FALLBACK_SCOPES[name]
    return out


DEFAULT_MEETING_SETTINGS: JSONDict = {
    "host_video": False,
    "participant_video": False,
    "cn_meeting": False,
    "in_meeting": False,
    "join_before_host": False,
    "jbh_time": 0,
    "mute_upon_entry": False,
    "watermark": False,
    "use_pmi": False,
    "approval_type": 2,
    "audio": "voip",
    "auto_recording": "none",
    "enforce_login": False,
    "enforce_login_domains": "",
    "alternative_hosts": "",
    "alternative_hosts_email_notification": True,
    "close_registration": False,
    "show_share_button": False,
    "allow_multiple_devices": False,
    "registrants_confirmation_email": True,
    "waiting_room": False,
    "request_permission_to_unmute_participants": False,
    "registrants_email_notification": True,
    "meeting_authentication": False,
    "encryption_type": "enhanced_encryption",
    "approved_or_denied_countries_or_regions": {"enable": False},
    "breakout_room": {"enable": False},
    "internal_meeting": False,
    "continuous_meeting_chat": {"enable": False, "auto_add_invited_external_users": False},
    "participant_focused_meeting": False,
    "push_change_to_calendar": False,
    "resources": [],
    "auto_start_meeting_summary": False,
    "auto_start_ai_companion_questions": False,
    "device_testing": False,
    "email_notification": True,
    "private_meeting": False,
    "host_save_video_order": False,
    "sign_language_interpretation": {"enable": False},
    "email_in_attendee_report": False,
}


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


@dataclass
class ZoomClient:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))
    webhook_secret_token: str = "zoom-emulator-webhook-secret"


@dataclass
class ZoomUser:
    id: str
    email: str
    first_name: str
    last_name: str
    type: int = PLAN_LICENSED
    timezone: str = "UTC"
    account_id: str = ""
    pmi: int = 0
    created_at: float = 0.0
    language: str = "en-US"
    role_name: str = "Owner"

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class ZoomCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    used_at: float | None = None


@dataclass
class ZoomAccessToken:
    token: str
    client_id: str
    user_id: str
    scopes: list[str]
    grant_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class ZoomRefreshToken:
    token: str
    client_id: str
    user_id: str
    scopes: list[str]
    grant_id: str
    created: float
    used_at: float | None = None
    replaced_by: str | None = None
    revoked: bool = False


@dataclass
class ZoomSettings:
    meeting_daily_cap: int = DAILY_CAP
    daily_cap_counts_updates: bool = True  # Zoom: "Meeting Create/Update API requests"
    # Retry-After on the daily-cap 429: "none" (what the real capture showed, NOTES.md §6),
    # "iso" (Zoom rate-limit docs' example form) or "seconds" (RFC 9110 delta-seconds).
    daily_cap_retry_after: str = "none"
    # X-RateLimit-Type: Daily-limit (and Category/Limit/Remaining) on the daily-cap 429: the real
    # capture has none of them, only the message; on for a client that must not depend on them.
    daily_cap_type_header: bool = False
    # Refuse a ``scope`` parameter on /oauth/authorize: Zoom documents none (scopes belong to the
    # app) and has answered "Invalid scopes" to unexpected ones.
    refuse_authorize_scope: bool = True
    code_ttl_seconds: int = CODE_TTL
    access_token_ttl_seconds: int = ACCESS_TOKEN_TTL
    strict_types: bool = True
    web_base: str = "https://zoom.us"
    auto_create_users: bool = True
    # The app's Event Notification Endpoint URL subscribed to meeting.deleted / meeting.updated
    # (empty: not subscribed) and the client whose webhook secret token signs them (meeting_events.py).
    meeting_events_url: str = ""
    meeting_events_client_id: str = ""


def cap_day(ts: float) -> str:
    """The UTC day of ``ts``: the daily cap counts per ``(user id, day)``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def start_time_utc(raw: str, timezone: str) -> datetime | None:
    """A meeting's ``start_time`` in UTC; a time without offset is in ``timezone``."""
    dt = parse_rfc3339(raw)
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(timezone) or UTC)
    return dt.astimezone(UTC)
