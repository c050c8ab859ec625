"""Microsoft's constants and records: the default app registration and user, the identity
platform's scopes and lifetimes, Graph's limits, the dataclasses the state holds, and the
emulator's settings.

Rules: every number below carries its source (``../shared/specs/msgraph/NOTES-msgraph.md``, section
given as §n); where Microsoft's own pages disagree the choice is a setting, not a constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devstack.emulators.common import JSONDict

# The app registration of the local stack (a multi-tenant web app, PRODUCT.md §2.2).
DEFAULT_CLIENT_ID = "7d1c4a52-0c7e-4f3a-9b1e-6a0d5f1e2c3b"
DEFAULT_CLIENT_SECRET = "mc~EmulatorDevSecret.0123456789abcdefABCDEF"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8080/oauth/microsoft/callback"
DEFAULT_USER_EMAIL = "mentor@example.com"
DEFAULT_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"

GRAPH_RESOURCE = "https://graph.microsoft.com/"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
#: OIDC scopes: no resource, never checked by Graph (§3).
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
#: Delegated Graph permissions this emulator knows (§4); anything else is AADSTS70011.
GRAPH_SCOPES = (
    "User.Read",
    "User.ReadWrite",
    "User.ReadBasic.All",
    "Calendars.Read",
    "Calendars.ReadBasic",
    "Calendars.ReadWrite",
)
#: Well-known tenant aliases of the /{tenant}/ path segment (§3).
TENANT_ALIASES = ("common", "organizations", "consumers")

CODE_TTL = 600  # "Authorization codes ... typically expire after about 10 minutes" (§3)
ACCESS_TOKEN_TTL = 3600  # "usually valid for around one hour"; the example answers expires_in 3599 (§3)
REFRESH_TOKEN_TTL = 90 * 86400  # "90 days for everything else" than SPAs [RT] (§3)

GETSCHEDULE_MAX_DAYS = 62  # "The time period to look up must be less than 62 days" (outlook-get-free-busy-schedule)
GETSCHEDULE_MAX_SCHEDULES = 20  # same page: at most 20 users, distribution lists or resources per call
AVAILABILITY_INTERVAL_DEFAULT = 30  # availabilityViewInterval: default 30, min 5, max 1440 minutes (§5)
AVAILABILITY_INTERVAL_MIN = 5
AVAILABILITY_INTERVAL_MAX = 1440

SUBSCRIPTION_MAX_MINUTES = 4230  # Outlook event subscriptions: "4,230 minutes (under 3 days)" (§6)
SUBSCRIPTIONS_PER_MAILBOX = 1000  # "at most 1,000 active subscriptions per mailbox across all apps" (§6)
CLIENT_STATE_MAX = 128  # subscription.clientState "maximum length is 128" [SUBRES][SPEC] (255 in [CN])
VALIDATION_TIMEOUT = 10.0  # the endpoint must echo the validationToken "within 10 seconds" (§6)
CHANGE_TYPES = ("created", "updated", "deleted")
TLS_VERSIONS = ("v1_0", "v1_1", "v1_2", "v1_3")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")

# Outlook's throttling: 10,000 requests per 10 minutes per app and mailbox (§7).
RATE_LIMIT_REQUESTS = 10_000
RATE_LIMIT_WINDOW = 600

ONLINE_MEETING_PROVIDERS = ("unknown", "skypeForBusiness", "skypeForConsumer", "teamsForBusiness")
TEAMS = "teamsForBusiness"

#: Graph operation -> (method, OpenAPI path template of the cut, delegated permissions accepted).
OPS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "me": ("GET", "/me", ("User.Read", "User.ReadWrite", "User.ReadBasic.All")),
    "calendars": ("GET", "/me/calendars", ("Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite")),
    "calendar": (
        "GET",
        "/me/calendars/{calendar-id}",
        ("Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"),
    ),
    "createEvent": ("POST", "/me/events", ("Calendars.ReadWrite",)),
    "createCalendarEvent": ("POST", "/me/calendars/{calendar-id}/events", ("Calendars.ReadWrite",)),
    "getEvent": ("GET", "/me/events/{event-id}", ("Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite")),
    "updateEvent": ("PATCH", "/me/events/{event-id}", ("Calendars.ReadWrite",)),
    "deleteEvent": ("DELETE", "/me/events/{event-id}", ("Calendars.ReadWrite",)),
    "getSchedule": ("POST", "/me/calendar/microsoft.graph.getSchedule", ("Calendars.Read", "Calendars.ReadWrite")),
    "createSubscription": ("POST", "/subscriptions", ("Calendars.Read", "Calendars.ReadWrite")),
    "updateSubscription": ("PATCH", "/subscriptions/{subscription-id}", ("Calendars.Read", "Calendars.ReadWrite")),
    "deleteSubscription": ("DELETE", "/subscriptions/{subscription-id}", ("Calendars.Read", "Calendars.ReadWrite")),
}

#: Windows time-zone names Graph uses, to IANA (CLDR windowsZones, the "001" territory). Graph also
#: takes IANA names; a name in neither is ``TimeZoneNotSupportedException``.
WINDOWS_ZONES: dict[str, str] = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "Pacific Standard Time": "America/Los_Angeles",
    "Alaskan Standard Time": "America/Anchorage",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "E. South America Standard Time": "America/Sao_Paulo",
    "India Standard Time": "Asia/Calcutta",
    "China Standard Time": "Asia/Shanghai",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Singapore Standard Time": "Asia/Singapore",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
    "South Africa Standard Time": "Africa/Johannesburg",
}


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


@dataclass
class MsClient:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    display_name: str = "mentor-connections (dev)"


@dataclass
class MsCalendar:
    id: str
    name: str
    owner_id: str
    owner_email: str
    can_edit: bool = True
    is_default: bool = False
    color: str = "auto"
    online_meetings: bool = True  # an admin set Outlook up for Teams meetings (§5)


@dataclass
class MsUser:
    id: str
    mail: str | None
    user_principal_name: str
    display_name: str
    given_name: str
    surname: str
    time_zone: str = "UTC"
    calendars: list[str] = field(default_factory=list)  # ids; the first is the default calendar

    @property
    def address(self) -> str:
        return (self.mail or self.user_principal_name).lower()


@dataclass
class MsCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    tenant: str
    used_at: float | None = None


@dataclass
class MsAccessToken:
    token: str
    client_id: str
    user_id: str
    scopes: list[str]
    issued_at: float
    expires_at: float
    family: str  # the refresh-token family (one consent) this token belongs to
    revoked: bool = False


@dataclass
class MsRefreshToken:
    token: str
    client_id: str
    user_id: str
    scopes: list[str]
    family: str
    created: float
    expires_at: float
    used_at: float | None = None
    replaced_by: str | None = None
    revoked: bool = False


@dataclass
class Subscription:
    id: str
    resource: str
    calendar_id: str
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: float
    client_id: str
    user_id: str
    tls_version: str
    created: float
    reauthorization_required: bool = False


@dataclass
class EventRecord:
    id: str
    calendar_id: str
    resource: JSONDict  # the event's stored fields (start/end held in UTC, see event_data)
    start_ts: float
    end_ts: float
    deleted: bool = False


@dataclass
class MsSettings:
    code_ttl_seconds: int = CODE_TTL
    access_token_ttl_seconds: int = ACCESS_TOKEN_TTL
    refresh_token_ttl_seconds: int = REFRESH_TOKEN_TTL
    # Microsoft leaves a used refresh token alive ("Old refresh tokens are not revoked on use", §3);
    # on, a used one answers invalid_grant (proves a client stores the new token of each refresh).
    revoke_used_refresh_tokens: bool = False
    subscription_max_minutes: int = SUBSCRIPTION_MAX_MINUTES
    # "refuse" an expiration beyond the cap (400), or "clamp" it to the cap (§6: "will fail" later).
    subscription_cap_mode: str = "refuse"
    client_state_max: int = CLIENT_STATE_MAX
    validation_timeout_seconds: float = VALIDATION_TIMEOUT
    # Graph requires https notification URLs; the local stack allows http on loopback only.
    require_https_notifications: bool = True
    notification_delay_ms: int = 0
    # Deliveries without a 2xx are retried (Graph: for up to 4 hours); here a few quick attempts.
    notification_attempts: int = 3
    notification_retry_ms: int = 200
    getschedule_max_days: int = GETSCHEDULE_MAX_DAYS
    rate_limit_requests: int = RATE_LIMIT_REQUESTS
    rate_limit_window_seconds: int = RATE_LIMIT_WINDOW
    strict_properties: bool = True  # unknown body properties are 400 RequestBodyRead, as on Graph
