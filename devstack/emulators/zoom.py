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
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from flask import Flask, Response, request
from flask.typing import ResponseReturnValue

from devstack.emulators import spec
from devstack.emulators.common import (
    ADMIN_PREFIX,
    LOOPBACK,
    EmulatorServer,
    EmulatorState,
    JSONDict,
    empty_response,
    fake_jwt,
    install_common,
    json_response,
    parse_basic_auth,
    parse_bearer,
    parse_rfc3339,
    pkce_matches,
    random_alnum,
    random_from,
    random_urlsafe,
    request_json_object,
    rfc3339_seconds,
    token_hint,
)

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


def _op_scopes() -> dict[str, tuple[list[str], list[str]]]:
    out: dict[str, tuple[list[str], list[str]]] = {}
    for name, (method, path) in OPS.items():
        try:
            out[name] = spec.openapi_scopes(spec.zoom_doc_for(path), path, method)
        except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
            out[name] = _FALLBACK_SCOPES[name]
    return out


_DEFAULT_SETTINGS: JSONDict = {
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
    # Retry-After on the daily-cap 429: "iso" (Zoom rate-limit docs' example form),
    # "seconds" (RFC 9110 delta-seconds) or "none" (what one forum capture showed).
    daily_cap_retry_after: str = "iso"
    code_ttl_seconds: int = CODE_TTL
    access_token_ttl_seconds: int = ACCESS_TOKEN_TTL
    strict_types: bool = True
    web_base: str = "https://zoom.us"
    auto_create_users: bool = True


# --------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------


#: ``factory(kind)`` → the value to issue for ``kind`` (``"code"``, ``"access_token"``,
#: ``"refresh_token"``), or ``None`` for the emulator's own. Canary tests use it to make the
#: emulator hand out tokens they can look for (``ZoomEmulator.set_token_factory``).
TokenFactory = Callable[[str], str | None]


def _zoom_user_id() -> str:
    return random_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 22)


class ZoomState(EmulatorState):
    name = "zoom"

    def __init__(
        self,
        clients: Iterable[ZoomClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self._seed_clients = (
            list(clients)
            if clients is not None
            else [ZoomClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [DEFAULT_REDIRECT_URI])]
        )
        self._seed_users = (
            [dict(u) for u in users]
            if users is not None
            else [
                {
                    "email": DEFAULT_USER_EMAIL,
                    "first_name": "Maya",
                    "last_name": "Mentor",
                    "type": PLAN_LICENSED,
                    "timezone": "Europe/Berlin",
                }
            ]
        )
        self.op_scopes = _op_scopes()
        self._init_data()

    def _init_data(self) -> None:
        self.settings: ZoomSettings = ZoomSettings()
        self.account_id = random_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", 22)
        self.clients: dict[str, ZoomClient] = {}
        self.users: dict[str, ZoomUser] = {}
        self.codes: dict[str, ZoomCode] = {}
        self.access_tokens: dict[str, ZoomAccessToken] = {}
        self.refresh_tokens: dict[str, ZoomRefreshToken] = {}
        self.meetings: dict[int, JSONDict] = {}
        self.deleted_meetings: dict[int, JSONDict] = {}
        # next_page_token -> (user id, query fingerprint, offset, expires at)
        self.page_tokens: dict[str, tuple[str, str, int, float]] = {}
        self.daily_counts: Counter[tuple[str, str]] = Counter()
        self.token_calls: list[JSONDict] = []
        self.grant_counts: Counter[str] = Counter()
        self.revoke_calls: list[JSONDict] = []
        self.authorize_calls: list[JSONDict] = []
        self.request_findings: list[JSONDict] = []
        self.webhook_deliveries: list[JSONDict] = []
        self.consent_user: str | None = None
        self.next_consent_user: str | None = None
        self.deny_next = 0
        self.token_factory: TokenFactory | None = None
        for c in self._seed_clients:
            self.clients[c.client_id] = ZoomClient(
                c.client_id, c.client_secret, list(c.redirect_uris), list(c.scopes), c.webhook_secret_token
            )
        for u in self._seed_users:
            self.add_user(**u)
        if self._seed_users:
            self.consent_user = str(self._seed_users[0]["email"]).lower()

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._init_data()

    def new_token(self, kind: str, make: Callable[[], str]) -> str:
        """The value to issue for ``kind``: the token factory's, if one is set and answers, else ``make()``."""
        factory = self.token_factory
        chosen = factory(kind) if factory is not None else None
        return chosen or make()

    # ---- seeding -------------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: Iterable[str],
        scopes: Iterable[str] | None = None,
        webhook_secret_token: str | None = None,
    ) -> ZoomClient:
        with self.lock:
            uris = list(redirect_uris)
            existing = self.clients.get(client_id)
            if existing is not None and existing.client_secret == client_secret:
                for u in uris:
                    if u not in existing.redirect_uris:
                        existing.redirect_uris.append(u)
                if scopes is not None:
                    existing.scopes = list(scopes)
                if webhook_secret_token:
                    existing.webhook_secret_token = webhook_secret_token
                return existing
            client = ZoomClient(
                client_id, client_secret, uris, list(scopes) if scopes is not None else list(DEFAULT_SCOPES)
            )
            if webhook_secret_token:
                client.webhook_secret_token = webhook_secret_token
            self.clients[client_id] = client
            return client

    def add_user(
        self,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
        type: int = PLAN_LICENSED,
        timezone: str = "UTC",
        name: str | None = None,
        plan_type: int | None = None,
        id: str | None = None,
        **_ignored: Any,
    ) -> ZoomUser:
        """Seed a Zoom user. ``type``/``plan_type``: 1 Basic (free), 2 Licensed."""
        email = email.lower()
        if name and not first_name:
            first_name, _, last_name = name.partition(" ")
        with self.lock:
            for u in self.users.values():
                if u.email == email:
                    if first_name:
                        u.first_name = first_name
                    if last_name is not None:
                        u.last_name = last_name
                    u.type = plan_type or type
                    u.timezone = timezone or u.timezone
                    return u
            local = email.split("@")[0]
            user = ZoomUser(
                id=id or _zoom_user_id(),
                email=email,
                first_name=first_name or local.split(".")[0].title(),
                last_name=last_name if last_name is not None else "",
                type=plan_type or type,
                timezone=timezone,
                account_id=self.account_id,
                pmi=int("9" + "".join(secrets.choice("0123456789") for _ in range(9))),
                created_at=self.now(),
            )
            self.users[user.id] = user
            return user

    def user_by_email(self, email: str) -> ZoomUser | None:
        e = email.lower()
        return next((u for u in self.users.values() if u.email == e), None)

    def resolve_user_for_consent(self) -> ZoomUser:
        with self.lock:
            email = self.next_consent_user or self.consent_user or DEFAULT_USER_EMAIL
            self.next_consent_user = None
            user = self.user_by_email(email)
            if user is None:
                user = self.add_user(email)
            return user

    # ---- tokens --------------------------------------------------------------------------

    def revoke_grant_id(self, grant_id: str) -> int:
        n = 0
        for at in self.access_tokens.values():
            if at.grant_id == grant_id and not at.revoked:
                at.revoked = True
                n += 1
        for rt in self.refresh_tokens.values():
            if rt.grant_id == grant_id and not rt.revoked:
                rt.revoked = True
                n += 1
        return n

    def revoke_token(self, token: str) -> bool:
        with self.lock:
            at = self.access_tokens.get(token)
            if at is not None:
                return not at.revoked and self.revoke_grant_id(at.grant_id) > 0
            rt = self.refresh_tokens.get(token)
            if rt is not None:
                return not rt.revoked and self.revoke_grant_id(rt.grant_id) > 0
            return False

    def revoke_user(self, email: str) -> int:
        with self.lock:
            user = self.user_by_email(email)
            if user is None:
                return 0
            grants = {t.grant_id for t in self.access_tokens.values() if t.user_id == user.id}
            grants |= {t.grant_id for t in self.refresh_tokens.values() if t.user_id == user.id}
            return sum(self.revoke_grant_id(g) for g in grants)

    def expire_access_tokens(self, email: str | None = None, token: str | None = None) -> int:
        with self.lock:
            found = self.user_by_email(email) if email else None
            uid = found.id if found is not None else None
            n = 0
            past = self.now() - 1
            for at in self.access_tokens.values():
                if (token and at.token == token) or (uid and at.user_id == uid) or (not token and not email):
                    at.expires_at = min(at.expires_at, past)
                    n += 1
            return n

    # ---- snapshot ------------------------------------------------------------------------

    def snapshot(self) -> JSONDict:
        base = super().snapshot()
        now = self.now()
        base.update(
            {
                "settings": asdict(self.settings),
                "account_id": self.account_id,
                "clients": [asdict(c) for c in self.clients.values()],
                "users": [{**asdict(u), "display_name": u.display_name} for u in self.users.values()],
                "consent": {
                    "consent_user": self.consent_user,
                    "next_consent_user": self.next_consent_user,
                    "deny_next": self.deny_next,
                },
                "authorize_calls": list(self.authorize_calls),
                "codes": [asdict(c) for c in self.codes.values()],
                "access_tokens": [{**asdict(t), "expired": t.expires_at <= now} for t in self.access_tokens.values()],
                "refresh_tokens": [asdict(t) for t in self.refresh_tokens.values()],
                "tokens_issued": {"access": len(self.access_tokens), "refresh": len(self.refresh_tokens)},
                "tokens_revoked": {
                    "access": sum(1 for t in self.access_tokens.values() if t.revoked),
                    "refresh": sum(1 for t in self.refresh_tokens.values() if t.revoked),
                },
                "token_calls": list(self.token_calls),
                "token_calls_by_grant_type": dict(self.grant_counts),
                "revoke_calls": list(self.revoke_calls),
                "meetings": [dict(m) for m in self.meetings.values()],
                "deleted_meetings": [dict(m) for m in self.deleted_meetings.values()],
                "daily_meeting_counts": {f"{uid}/{day}": n for (uid, day), n in self.daily_counts.items()},
                "request_findings": list(self.request_findings),
                "webhook_deliveries": list(self.webhook_deliveries),
            }
        )
        return base


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def zoom_error(status: int, code: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return json_response({"code": code, "message": message, **extra}, status, headers)


def _oauth_error(reason: str, error: str, status: int = 400) -> Response:
    return json_response({"reason": reason, "error": error}, status)


def _fault_responder(status: int, retry_after: int) -> Response:
    headers = {"Retry-After": str(retry_after)}
    if request.path.startswith("/oauth/"):
        if status == 429:
            return _oauth_error("Too many requests", "rate_limit_exceeded", 429)
        return _oauth_error("Internal Error", "server_error", status)
    if status == 429:
        headers.update({"X-RateLimit-Category": "Light", "X-RateLimit-Type": "QPS", "X-RateLimit-Limit": "30"})
        return zoom_error(429, 4001, PER_SECOND_MESSAGE, headers)
    return zoom_error(status, status, "Internal Error", headers)


# --------------------------------------------------------------------------------------------
# meetings helpers
# --------------------------------------------------------------------------------------------


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _start_time_utc(raw: str, timezone: str) -> datetime | None:
    dt = parse_rfc3339(raw)
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_zone(timezone) or UTC)
    return dt.astimezone(UTC)


def _meeting_id(state: ZoomState) -> int:
    while True:
        mid = int(secrets.choice("89") + "".join(secrets.choice("0123456789") for _ in range(10)))
        if mid not in state.meetings and mid not in state.deleted_meetings:
            return mid


def _passcode() -> str:
    return random_from("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", 6)


def _numeric_passcode() -> str:
    return random_from("0123456789", 6)


def _settings_out(settings: Mapping[str, Any]) -> JSONDict:
    """Only keys the GET response schema declares (the request schema has a few more)."""
    try:
        doc = spec.zoom_meetings_openapi()
        schema = spec.openapi_response_schema(doc, "/meetings/{meetingId}", "get", 200)
        allowed = set(((schema or {}).get("properties", {}).get("settings", {}) or {}).get("properties", {}))
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        allowed = set()
    if not allowed:
        return dict(settings)
    return {k: v for k, v in settings.items() if k in allowed}


# --------------------------------------------------------------------------------------------
# app
# --------------------------------------------------------------------------------------------


def create_app(state: ZoomState) -> Flask:
    app = Flask("zoom_emulator", static_folder=None)
    install_common(app, state, _fault_responder)
    _install_oauth(app, state)
    _install_api(app, state)
    _install_admin(app, state)
    return app


def _install_oauth(app: Flask, state: ZoomState) -> None:
    @app.get("/oauth/authorize")
    def authorize() -> ResponseReturnValue:
        args = request.args
        client_id = args.get("client_id", "")
        redirect_uri = args.get("redirect_uri", "")
        state_param = args.get("state")
        call: JSONDict = {"ts": state.now(), "query": args.to_dict(flat=True)}
        with state.lock:
            state.authorize_calls.append(call)
            client = state.clients.get(client_id)
            if client is None:
                call["outcome"] = "invalid_client"
                return _oauth_error(f"Invalid client_id: {client_id}", "invalid_client", 400)
            if redirect_uri not in client.redirect_uris:
                call["outcome"] = "redirect_uri_mismatch"
                return _oauth_error("Redirect URI mismatch.", "invalid_request", 400)

            def back(params: dict[str, str]) -> Response:
                if state_param is not None:
                    params = {**params, "state": state_param}
                parts = urlsplit(redirect_uri)
                q = parts.query + ("&" if parts.query else "") + urlencode(params)
                return Response(
                    status=302,
                    headers={"Location": urlunsplit((parts.scheme, parts.netloc, parts.path, q, parts.fragment))},
                )

            if args.get("response_type") != "code":
                call["outcome"] = "unsupported_response_type"
                return back({"error": "unsupported_response_type"})
            challenge = args.get("code_challenge")
            method = args.get("code_challenge_method")
            if challenge and method is None:
                method = "plain"
            if method not in (None, "plain", "S256") or (method and not challenge):
                call["outcome"] = "invalid_request"
                return back({"error": "invalid_request", "error_description": "Invalid code_challenge_method"})
            if state.deny_next > 0:
                state.deny_next -= 1
                state.next_consent_user = None
                call["outcome"] = "access_denied"
                return back({"error": "access_denied"})
            user = state.resolve_user_for_consent()
            requested = [s for s in args.get("scope", "").split() if s]
            scopes = [s for s in client.scopes if not requested or s in requested] or list(client.scopes)
            code = state.new_token("code", lambda: random_urlsafe(24))
            state.codes[code] = ZoomCode(
                code=code,
                client_id=client_id,
                redirect_uri=redirect_uri,
                user_id=user.id,
                scopes=scopes,
                code_challenge=challenge,
                code_challenge_method=method,
                expires_at=state.now() + state.settings.code_ttl_seconds,
            )
            call["outcome"] = "code"
            call["email"] = user.email
            return back({"code": code})

    def client_auth() -> tuple[ZoomClient | None, Response | None]:
        basic = parse_basic_auth(request.headers.get("Authorization"))
        if basic is not None:
            cid, secret = basic
        else:
            cid = request.values.get("client_id", "")
            secret = request.values.get("client_secret", "")
        if not cid or not secret:
            return None, _oauth_error("Client ID or client secret is missing.", "invalid_request", 400)
        client = state.clients.get(cid)
        if client is None or not hmac.compare_digest(client.client_secret, secret):
            return None, _oauth_error("Invalid client_id or client_secret", "invalid_client", 401)
        return client, None

    def issue(client: ZoomClient, user: ZoomUser, scopes: list[str], grant_id: str) -> JSONDict:
        now = state.now()
        ttl = state.settings.access_token_ttl_seconds
        claims = {
            "ver": 10,
            "auid": grant_id,
            "uid": user.id,
            "iss": "zm:cid:" + client.client_id,
            "aud": "zoom",
            "nbf": int(now),
            "exp": int(now) + ttl,
            "iat": int(now),
            "aid": state.account_id,
            "jti": random_urlsafe(12),
        }
        at = state.new_token(
            "access_token",
            lambda: fake_jwt({**claims, "tokenType": "access_token"}, {"alg": "HS512", "v": "2.0", "kid": "emulator"}),
        )
        rt = state.new_token(
            "refresh_token",
            lambda: fake_jwt(
                {**claims, "tokenType": "refresh_token", "exp": int(now) + 15 * 365 * 86400},
                {"alg": "HS512", "v": "2.0", "kid": "emulator"},
            ),
        )
        state.access_tokens[at] = ZoomAccessToken(at, client.client_id, user.id, list(scopes), grant_id, now, now + ttl)
        state.refresh_tokens[rt] = ZoomRefreshToken(rt, client.client_id, user.id, list(scopes), grant_id, now)
        return {
            "access_token": at,
            "token_type": "bearer",
            "refresh_token": rt,
            "expires_in": ttl - 1,
            "scope": " ".join(scopes),
            "api_url": state.base_url,
        }

    @app.post("/oauth/token")
    def token() -> ResponseReturnValue:
        # Zoom takes these as form body or query parameters (developers.zoom.us OAuth docs).
        grant_type = request.values.get("grant_type", "")
        with state.lock:
            state.grant_counts[grant_type or "<missing>"] += 1
            call: JSONDict = {"ts": state.now(), "grant_type": grant_type}
            state.token_calls.append(call)
            resp, outcome = _token_inner(grant_type)
            call["status"] = resp.status_code
            call["outcome"] = outcome
            return resp

    def _token_inner(grant_type: str) -> tuple[Response, str]:
        client, err = client_auth()
        if err is not None or client is None:
            return err or _oauth_error("Invalid client", "invalid_client", 401), "invalid_client"
        values = request.values
        if not grant_type:
            return _oauth_error("Missing grant type.", "invalid_request"), "invalid_request"
        if grant_type == "authorization_code":
            code = state.codes.get(values.get("code", ""))
            if code is None or code.client_id != client.client_id:
                return _oauth_error("Invalid authorization code", "invalid_grant"), "invalid_grant"
            if code.used_at is not None:
                return _oauth_error("Invalid authorization code", "invalid_grant"), "invalid_grant"
            if code.expires_at <= state.now():
                code.used_at = state.now()
                return _oauth_error("Authorization code is expired", "invalid_grant"), "invalid_grant"
            if values.get("redirect_uri", "") != code.redirect_uri:
                return _oauth_error("Redirect URI mismatch.", "invalid_grant"), "invalid_grant"
            if code.code_challenge:
                verifier = values.get("code_verifier", "")
                if not verifier or not pkce_matches(
                    code.code_challenge, code.code_challenge_method or "plain", verifier
                ):
                    return _oauth_error("Invalid code_verifier", "invalid_grant"), "invalid_grant"
            code.used_at = state.now()
            user = state.users[code.user_id]
            return json_response(issue(client, user, code.scopes, random_urlsafe(9))), "ok"
        if grant_type == "refresh_token":
            rt = state.refresh_tokens.get(values.get("refresh_token", ""))
            if rt is None or rt.revoked or rt.used_at is not None or rt.client_id != client.client_id:
                return _oauth_error("Invalid Token!", "invalid_grant"), "invalid_grant"
            rt.used_at = state.now()
            user = state.users[rt.user_id]
            body = issue(client, user, rt.scopes, rt.grant_id)
            rt.replaced_by = body["refresh_token"]
            return json_response(body), "ok"
        return _oauth_error(
            "Grant type is not supported from token endpoint.", "unsupported_grant_type"
        ), "unsupported_grant_type"

    @app.post("/oauth/revoke")
    def revoke() -> ResponseReturnValue:
        with state.lock:
            client, err = client_auth()
            token_value = request.values.get("token", "")
            ok = False
            if err is None and client is not None and token_value:
                tok = state.access_tokens.get(token_value) or state.refresh_tokens.get(token_value)
                if tok is not None and tok.client_id == client.client_id:
                    ok = state.revoke_token(token_value)
            state.revoke_calls.append(
                {
                    "ts": state.now(),
                    "token_hint": token_hint(token_value),
                    "via": "query" if request.args.get("token") else "form",
                    "ok": ok,
                    "client_auth": err is None,
                }
            )
            if err is not None:
                return err
            if not token_value:
                return _oauth_error("Token cannot be empty.", "invalid_request")
            if not ok:
                return _oauth_error("Invalid Token!", "invalid_request")
            return json_response({"status": "success"})


def _install_api(app: Flask, state: ZoomState) -> None:
    def authorize(op: str) -> tuple[ZoomAccessToken, ZoomUser] | Response:
        tok = parse_bearer(request.headers.get("Authorization"))
        if tok is None:
            # Includes tokens sent as ?access_token=: rejected since 14 Feb 2023 with code 124
            # (devsupport.zoom.us "Access token change FAQ").
            return zoom_error(401, 124, "Invalid access token.")
        at = state.access_tokens.get(tok)
        if at is None or at.revoked:
            return zoom_error(401, 124, "Invalid access token.")
        if at.expires_at <= state.now():
            return zoom_error(401, 124, "Access token has expired.")
        granular, accepted = state.op_scopes[op]
        if not set(at.scopes) & set(accepted):
            return zoom_error(400, 4711, f"Invalid access token, does not contain scopes:[{', '.join(granular)}].")
        user = state.users.get(at.user_id)
        if user is None:
            return zoom_error(401, 124, "Invalid access token.")
        return at, user

    def resolve_user(me: ZoomUser, user_id: str) -> ZoomUser | Response:
        if user_id in ("me", me.id) or user_id.lower() == me.email:
            return me
        return zoom_error(404, 1001, f"User does not exist: {user_id}.")

    def parse_body(op: str) -> JSONDict | Response:
        raw = request.get_data(cache=True)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return zoom_error(400, 300, "Request Body should be a valid JSON object.")
        if not isinstance(body, dict):
            return zoom_error(400, 300, "Request Body should be a valid JSON object.")
        method, path = OPS[op]
        try:
            findings = spec.request_findings(body, zoom_operation=(method, path))
        except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
            findings = []
        if findings:
            state.request_findings.append({"ts": state.now(), "operation": op, "findings": [str(f) for f in findings]})
        errors = [f for f in findings if f.problem != spec.UNKNOWN]
        if errors and state.settings.strict_types:
            return zoom_error(
                400,
                300,
                "Validation Failed.",
                errors=[{"field": f.path.removeprefix("$."), "message": "Invalid field."} for f in errors],
            )
        return body

    def cap_check(user: ZoomUser) -> Response | None:
        now = state.now()
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        cap = state.settings.meeting_daily_cap
        key = (user.id, day)
        if state.daily_counts[key] >= cap:
            headers = {
                "X-RateLimit-Category": "Light",
                "X-RateLimit-Type": "Daily-limit",
                "X-RateLimit-Limit": str(cap),
                "X-RateLimit-Remaining": "0",
            }
            midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
                days=1
            )
            style = state.settings.daily_cap_retry_after
            if style == "iso":
                headers["Retry-After"] = midnight.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif style == "seconds":
                headers["Retry-After"] = str(max(1, int(midnight.timestamp() - now)))
            return zoom_error(429, 429, DAILY_CAP_MESSAGE.format(cap=cap), headers)
        state.daily_counts[key] += 1
        return None

    def meeting_for(user: ZoomUser, meeting_id: str) -> JSONDict | Response:
        try:
            mid = int(meeting_id)
        except ValueError:
            return zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}.")
        m = state.meetings.get(mid)
        if m is None or m["host_id"] != user.id:
            return zoom_error(404, 3001, f"Meeting does not exist: {meeting_id}.")
        return m

    def apply_fields(m: JSONDict, body: Mapping[str, Any], user: ZoomUser) -> Response | None:
        for k in (
            "topic",
            "agenda",
            "duration",
            "type",
            "pre_schedule",
            "tracking_fields",
            "recurrence",
            "template_id",
        ):
            if k in body:
                m[k] = body[k]
        if "timezone" in body:
            if _zone(str(body["timezone"])) is None:
                return zoom_error(400, 300, f"Invalid timezone: {body['timezone']}.")
            m["timezone"] = body["timezone"]
        if "start_time" in body:
            st = _start_time_utc(str(body["start_time"]), str(m.get("timezone") or user.timezone))
            if st is None:
                return zoom_error(400, 300, "Invalid start_time.")
            m["start_time"] = rfc3339_seconds(st.timestamp())
        if "password" in body:
            m["password"] = str(body["password"])
            m["encrypted_password"] = random_alnum(32) + ".1"
            m["h323_password"] = m["pstn_password"] = _numeric_passcode()
            m["join_url"] = f"{state.settings.web_base}/j/{m['id']}?pwd={m['encrypted_password']}"
        if isinstance(body.get("settings"), Mapping):
            merged = dict(m.get("settings", {}))
            merged.update(json.loads(json.dumps(body["settings"])))
            m["settings"] = _settings_out(merged)
        return None

    @app.get("/v2/users/<user_id>")
    def get_user(user_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("user")
            if isinstance(auth, Response):
                return auth
            u = resolve_user(auth[1], user_id)
            if isinstance(u, Response):
                return u
            created = rfc3339_seconds(u.created_at)
            return json_response(
                {
                    "id": u.id,
                    "first_name": u.first_name,
                    "last_name": u.last_name,
                    "display_name": u.display_name,
                    "email": u.email,
                    "type": u.type,
                    "role_name": u.role_name,
                    "pmi": u.pmi,
                    "use_pmi": False,
                    "personal_meeting_url": f"{state.settings.web_base}/j/{u.pmi}",
                    "timezone": u.timezone,
                    "verified": 1,
                    "dept": "",
                    "created_at": created,
                    "user_created_at": created,
                    "last_login_time": rfc3339_seconds(state.now()),
                    "last_client_version": "6.0.0.0000(mac)",
                    "pic_url": "",
                    "language": u.language,
                    "phone_number": "",
                    "status": "active",
                    "role_id": "0",
                    "account_id": u.account_id,
                    "account_number": 10000000 + abs(int(hashlib.sha256(u.account_id.encode()).hexdigest()[:6], 16)),
                    "cluster": "us05",
                    "jid": f"{u.id.lower()}@xmpp.zoom.us",
                    "group_ids": [],
                    "im_group_ids": [],
                    "login_types": [100],
                }
            )

    @app.post("/v2/users/<user_id>/meetings")
    def create_meeting(user_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("meetingCreate")
            if isinstance(auth, Response):
                return auth
            host = resolve_user(auth[1], user_id)
            if isinstance(host, Response):
                return host
            body = parse_body("meetingCreate")
            if isinstance(body, Response):
                return body
            if (err := cap_check(host)) is not None:
                return err
            now = state.now()
            mid = _meeting_id(state)
            password = str(body["password"]) if body.get("password") else _passcode()
            encrypted = random_alnum(32) + ".1"
            numeric = _numeric_passcode()
            tz = str(body.get("timezone") or host.timezone)
            m: JSONDict = {
                "uuid": base64.b64encode(secrets.token_bytes(16)).decode(),
                "id": mid,
                "host_id": host.id,
                "host_email": host.email,
                "assistant_id": "",
                "topic": body.get("topic", "Zoom meeting"),
                "type": body.get("type", 2),
                "status": "waiting",
                "start_time": rfc3339_seconds(now),
                "duration": body.get("duration", 60),
                "timezone": tz,
                "agenda": body.get("agenda", ""),
                "created_at": rfc3339_seconds(now),
                "start_url": f"{state.settings.web_base}/s/{mid}?zak="
                + fake_jwt({"aud": "clientsm", "uid": host.id, "iss": "web", "sk": "0", "exp": int(now) + 7200}),
                "join_url": f"{state.settings.web_base}/j/{mid}?pwd={encrypted}",
                "password": password,
                "h323_password": numeric,
                "pstn_password": numeric,
                "encrypted_password": encrypted,
                "settings": _settings_out(dict(_DEFAULT_SETTINGS)),
                "pre_schedule": False,
                "creation_source": "open_api",
            }
            body_no_pwd = {k: v for k, v in body.items() if k != "password"}
            if (err := apply_fields(m, body_no_pwd, host)) is not None:
                state.daily_counts[(host.id, datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d"))] -= 1
                return err
            m["timezone"] = m.get("timezone") or tz
            state.meetings[mid] = m
            return json_response(m, 201)

    def list_error(field_name: str) -> Response:
        return zoom_error(400, 300, "Validation Failed.", errors=[{"field": field_name, "message": "Invalid field."}])

    @app.get("/v2/users/<user_id>/meetings")
    def list_meetings(user_id: str) -> ResponseReturnValue:
        """``meetings`` (List meetings): the host's scheduled meetings, oldest start first."""
        with state.lock:
            auth = authorize("meetings")
            if isinstance(auth, Response):
                return auth
            host = resolve_user(auth[1], user_id)
            if isinstance(host, Response):
                return host
            args = request.args
            try:
                findings = spec.request_findings(
                    None, zoom_operation=("GET", OPS["meetings"][1]), query=args.to_dict(flat=True)
                )
            except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
                findings = []
            if findings:
                state.request_findings.append(
                    {"ts": state.now(), "operation": "meetings", "findings": [str(f) for f in findings]}
                )
            list_type = args.get("type", "scheduled")
            if list_type not in LIST_TYPES:
                return list_error("type")
            try:
                page_size = int(args.get("page_size", LIST_PAGE_SIZE_DEFAULT))
            except ValueError:
                return list_error("page_size")
            if not 1 <= page_size <= LIST_PAGE_SIZE_MAX:
                return list_error("page_size")
            tz = _zone(args.get("timezone") or host.timezone) or ZoneInfo("UTC")
            bounds: dict[str, date | None] = {}
            for name in ("from", "to"):
                raw = args.get(name)
                try:
                    bounds[name] = date.fromisoformat(raw) if raw else None
                except ValueError:
                    return list_error(name)
            fingerprint = json.dumps(
                [list_type, page_size, args.get("from"), args.get("to"), args.get("timezone")], separators=(",", ":")
            )
            now = state.now()
            offset = 0
            page_token = args.get("next_page_token")
            if page_token:
                held = state.page_tokens.get(page_token)
                if held is None or held[0] != host.id or held[1] != fingerprint or held[3] <= now:
                    return zoom_error(400, 300, "The next page token is invalid or expired.")
                offset = held[2]

            def keep(m: JSONDict) -> bool:
                start = _start_time_utc(str(m.get("start_time", "")), str(m.get("timezone") or host.timezone))
                if start is None:
                    return list_type == "scheduled"
                end = start + timedelta(minutes=int(m.get("duration") or 0))
                if list_type in ("upcoming", "upcoming_meetings") and end.timestamp() <= now:
                    return False
                if list_type == "previous_meetings" and end.timestamp() > now:
                    return False
                if list_type == "live" and m.get("status") != "started":
                    return False
                local_day = start.astimezone(tz).date()
                if bounds["from"] and local_day < bounds["from"]:
                    return False
                return not (bounds["to"] and local_day > bounds["to"])

            mine = [m for m in state.meetings.values() if m["host_id"] == host.id and keep(m)]
            mine.sort(key=lambda m: (str(m.get("start_time", "")), int(m["id"])))
            page = mine[offset : offset + page_size]
            next_token = ""
            if offset + page_size < len(mine):
                next_token = random_alnum(32)
                state.page_tokens[next_token] = (host.id, fingerprint, offset + page_size, now + PAGE_TOKEN_TTL)
            items = []
            for m in page:
                item: JSONDict = {
                    "uuid": m["uuid"],
                    "id": m["id"],
                    "host_id": m["host_id"],
                    "topic": m.get("topic", ""),
                    "type": m.get("type", 2),
                    "start_time": m.get("start_time"),
                    "duration": m.get("duration"),
                    "timezone": m.get("timezone"),
                    "agenda": str(m.get("agenda") or "")[:LIST_AGENDA_MAX],
                    "created_at": m.get("created_at"),
                    "join_url": m.get("join_url"),
                }
                if not item["agenda"]:
                    item.pop("agenda")
                items.append(item)
            return json_response(
                {
                    "page_size": page_size,
                    "total_records": len(mine),
                    "next_page_token": next_token,
                    "meetings": items,
                }
            )

    @app.get("/v2/meetings/<meeting_id>")
    def get_meeting(meeting_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("meeting")
            if isinstance(auth, Response):
                return auth
            m = meeting_for(auth[1], meeting_id)
            if isinstance(m, Response):
                return m
            return json_response(m)

    @app.patch("/v2/meetings/<meeting_id>")
    def update_meeting(meeting_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("meetingUpdate")
            if isinstance(auth, Response):
                return auth
            user = auth[1]
            m = meeting_for(user, meeting_id)
            if isinstance(m, Response):
                return m
            body = parse_body("meetingUpdate")
            if isinstance(body, Response):
                return body
            if state.settings.daily_cap_counts_updates and (err := cap_check(user)) is not None:
                return err
            before = json.loads(json.dumps(m))
            if (err := apply_fields(m, body, user)) is not None:
                m.clear()
                m.update(before)
                if state.settings.daily_cap_counts_updates:
                    state.daily_counts[(user.id, datetime.fromtimestamp(state.now(), UTC).strftime("%Y-%m-%d"))] -= 1
                return err
            return empty_response(204)

    @app.delete("/v2/meetings/<meeting_id>")
    def delete_meeting(meeting_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("meetingDelete")
            if isinstance(auth, Response):
                return auth
            m = meeting_for(auth[1], meeting_id)
            if isinstance(m, Response):
                return m
            mid = int(m["id"])
            state.deleted_meetings[mid] = state.meetings.pop(mid)
            return empty_response(204)

    @app.route("/v2/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str) -> ResponseReturnValue:
        return zoom_error(404, 404, "Not Found")


# --------------------------------------------------------------------------------------------
# webhooks (Zoom -> app), signed as in specs/NOTES.md §2
# --------------------------------------------------------------------------------------------


def sign_webhook(secret_token: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()


def send_webhook(state: ZoomState, url: str, payload: JSONDict, secret_token: str) -> JSONDict:
    body = json.dumps(payload, separators=(",", ":")).encode()
    ts = str(int(state.now()))
    headers = {
        "Content-Type": "application/json",
        "x-zm-request-timestamp": ts,
        "x-zm-signature": sign_webhook(secret_token, ts, body),
    }
    record: JSONDict = {"ts": state.now(), "url": url, "event": payload.get("event"), "payload": payload}
    try:
        resp = httpx.post(url, content=body, headers=headers, timeout=5.0)
        record["status"] = resp.status_code
        with contextlib.suppress(ValueError):
            record["response_json"] = resp.json()
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    with state.lock:
        state.webhook_deliveries.append(record)
    return record


def url_validation_payload(state: ZoomState, plain_token: str | None = None) -> JSONDict:
    return {
        "event": "endpoint.url_validation",
        "payload": {"plainToken": plain_token or random_urlsafe(16)},
        "event_ts": int(state.now() * 1000),
    }


def deauthorization_payload(
    state: ZoomState, user: ZoomUser, client_id: str, retention: bool | None = None
) -> JSONDict:
    now = state.now()
    return {
        "event": "app_deauthorized",
        "event_ts": int(now * 1000),
        "payload": {
            "account_id": user.account_id,
            "user_id": user.id,
            "signature": secrets.token_hex(32),
            "deauthorization_time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(now * 1000) % 1000:03d}Z",
            "client_id": client_id,
            "user_data_retention": None if retention is None else ("true" if retention else "false"),
        },
    }


def _install_admin(app: Flask, state: ZoomState) -> None:
    a = ADMIN_PREFIX

    @app.post(f"{a}/clients")
    def admin_clients() -> ResponseReturnValue:
        b = request_json_object() or {}
        try:
            c = state.add_client(
                str(b["client_id"]),
                str(b["client_secret"]),
                list(b.get("redirect_uris", [])),
                b.get("scopes"),
                b.get("webhook_secret_token"),
            )
        except KeyError as exc:
            return json_response({"error": f"missing {exc}"}, 400)
        return json_response(asdict(c), 201)

    @app.post(f"{a}/users")
    def admin_users() -> ResponseReturnValue:
        b = request_json_object() or {}
        if "email" not in b:
            return json_response({"error": "missing email"}, 400)
        try:
            u = state.add_user(**b)
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({**asdict(u), "display_name": u.display_name}, 201)

    @app.post(f"{a}/consent")
    def admin_consent() -> ResponseReturnValue:
        b = request_json_object() or {}
        with state.lock:
            if b.get("email"):
                email = str(b["email"]).lower()
                if state.user_by_email(email) is None:
                    state.add_user(email)
                if b.get("sticky"):
                    state.consent_user = email
                else:
                    state.next_consent_user = email
            if b.get("deny") is not None:
                state.deny_next = int(b["deny"])
            return json_response(state.snapshot()["consent"])

    @app.post(f"{a}/webhooks/url_validation")
    def admin_url_validation() -> ResponseReturnValue:
        """``{"url": ..., "secret_token"?: ..., "client_id"?: ...}`` - sends the challenge and
        reports whether the app's answer carried the right encryptedToken."""
        b = request_json_object() or {}
        client = state.clients.get(str(b.get("client_id", DEFAULT_CLIENT_ID)))
        secret = str(b.get("secret_token") or (client.webhook_secret_token if client else ""))
        payload = url_validation_payload(state, b.get("plain_token"))
        record = send_webhook(state, str(b["url"]), payload, secret)
        plain = payload["payload"]["plainToken"]
        expected = hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        answer = record.get("response_json") or {}
        record["valid_answer"] = (
            record.get("status") == 200
            and isinstance(answer, dict)
            and answer.get("plainToken") == plain
            and answer.get("encryptedToken") == expected
        )
        return json_response(record)

    @app.post(f"{a}/webhooks/deauthorize")
    def admin_deauthorize() -> ResponseReturnValue:
        """``{"url", "email", "client_id"?, "secret_token"?, "revoke"?: true}`` - Zoom revokes the
        user's tokens for the app, then tells the app."""
        b = request_json_object() or {}
        user = state.user_by_email(str(b.get("email", "")))
        if user is None:
            return json_response({"error": "unknown user"}, 404)
        client_id = str(b.get("client_id", DEFAULT_CLIENT_ID))
        client = state.clients.get(client_id)
        secret = str(b.get("secret_token") or (client.webhook_secret_token if client else ""))
        if b.get("revoke", True):
            state.revoke_user(user.email)
        record = send_webhook(state, str(b["url"]), deauthorization_payload(state, user, client_id), secret)
        return json_response(record)


# --------------------------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------------------------


class ZoomEmulator(EmulatorServer):
    """The Zoom emulator server. ``ZoomEmulator().start()``; ``.base_url``; ``.stop()``."""

    state: ZoomState

    def __init__(
        self,
        host: str = LOOPBACK,
        port: int = 0,
        clients: Iterable[ZoomClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        st = ZoomState(clients=clients, users=users)
        super().__init__(create_app(st), st, host=host, port=port)

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/oauth/revoke"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v2"

    def environment(
        self, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET
    ) -> dict[str, str]:
        """The settings (``shared.config.ProviderSettings`` env names) that point our code here."""
        return {
            "ZOOM_AUTH_URL": self.authorize_url,
            "ZOOM_TOKEN_URL": self.token_url,
            "ZOOM_REVOKE_URL": self.revoke_url,
            "ZOOM_API_BASE": self.api_base,
            "ZOOM_CLIENT_ID": client_id,
            "ZOOM_CLIENT_SECRET": client_secret,
        }

    def endpoints(self) -> dict[str, str]:
        return {
            "base_url": self.base_url,
            "authorize": self.authorize_url,
            "token": self.token_url,
            "revoke": self.revoke_url,
            "api": self.api_base,
            "admin": f"{self.base_url}{ADMIN_PREFIX}",
        }

    # knobs ----------------------------------------------------------------------------------

    def add_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str], scopes: Iterable[str] | None = None
    ) -> ZoomClient:
        return self.state.add_client(client_id, client_secret, redirect_uris, scopes)

    def add_user(self, email: str, **kw: Any) -> ZoomUser:
        return self.state.add_user(email, **kw)

    def set_next_consent(self, email: str | None = None, *, deny: bool = False, sticky: bool = False) -> None:
        with self.state.lock:
            if email:
                e = email.lower()
                if self.state.user_by_email(e) is None:
                    self.state.add_user(e)
                if sticky:
                    self.state.consent_user = e
                else:
                    self.state.next_consent_user = e
            if deny:
                self.state.deny_next += 1

    def configure(self, **settings: Any) -> ZoomSettings:
        result: ZoomSettings = self.state.apply_settings(settings)
        return result

    def set_token_factory(self, factory: TokenFactory | None) -> None:
        """Issue codes and tokens made by ``factory`` (see :data:`TokenFactory`); ``None`` = the emulator's own."""
        with self.state.lock:
            self.state.token_factory = factory

    def send_url_validation(self, url: str, secret_token: str | None = None) -> JSONDict:
        client = self.state.clients.get(DEFAULT_CLIENT_ID)
        secret = secret_token or (client.webhook_secret_token if client else "")
        return send_webhook(self.state, url, url_validation_payload(self.state), secret)

    def send_deauthorization(
        self,
        url: str,
        email: str,
        client_id: str = DEFAULT_CLIENT_ID,
        secret_token: str | None = None,
        revoke: bool = True,
    ) -> JSONDict:
        user = self.state.user_by_email(email)
        if user is None:
            raise KeyError(email)
        client = self.state.clients.get(client_id)
        secret = secret_token or (client.webhook_secret_token if client else "")
        if revoke:
            self.state.revoke_user(email)
        return send_webhook(self.state, url, deauthorization_payload(self.state, user, client_id), secret)

    # reads ----------------------------------------------------------------------------------

    def meetings(self, include_deleted: bool = False) -> list[JSONDict]:
        with self.state.lock:
            out = [json.loads(json.dumps(m)) for m in self.state.meetings.values()]
            if include_deleted:
                out += [json.loads(json.dumps({**m, "_deleted": True})) for m in self.state.deleted_meetings.values()]
            return out

    def token_calls(self, grant_type: str | None = None) -> int:
        with self.state.lock:
            if grant_type is None:
                return sum(self.state.grant_counts.values())
            return self.state.grant_counts.get(grant_type, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Zoom OAuth + API emulator on loopback")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redirect-uri", action="append", default=[], help="register for the default client")
    args = parser.parse_args(argv)
    emu = ZoomEmulator(host=args.host, port=args.port)
    for uri in args.redirect_uri:
        emu.add_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [uri])
    emu.start()
    print(json.dumps({"zoom": emu.endpoints(), "client_id": DEFAULT_CLIENT_ID}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
