"""Google OAuth 2.0 + Calendar v3 (with Meet) emulator.

One loopback server answers on the real hosts' paths:

* ``GET  /o/oauth2/v2/auth``   (accounts.google.com) - authorization, auto-consent or deny
* ``POST /token``              (oauth2.googleapis.com) - authorization_code / refresh_token
* ``POST /revoke``             (oauth2.googleapis.com)
* ``GET  /v1/userinfo``        (openidconnect.googleapis.com), alias ``/oauth2/v3/userinfo``
* ``/calendar/v3/...``         (www.googleapis.com) - calendarList.list, events.insert/get/
  patch/update/delete/list/watch, freebusy.query, channels.stop
* ``GET  /.well-known/openid-configuration`` - the endpoints above, for client configuration
* ``/_admin/...``              - knobs and everything held (see :func:`_install_admin`)

Scopes per Calendar method come from the discovery document (``specs/``); responses are
checked against its schemas by the tests. Run standalone with
``python -m devstack.emulators.google [--port N]``; it prints one JSON line when ready.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import queue
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from dateutil.rrule import rruleset, rrulestr
from flask import Flask, Response, request
from flask.typing import ResponseReturnValue

from devstack.emulators import spec
from devstack.emulators.common import (
    ADMIN_PREFIX,
    LOOPBACK,
    EmulatorServer,
    EmulatorState,
    JSONDict,
    b64url,
    empty_response,
    fake_jwt,
    http_date,
    install_common,
    json_response,
    parse_basic_auth,
    parse_bearer,
    parse_rfc3339,
    pkce_matches,
    random_from,
    random_urlsafe,
    request_json_object,
    rfc3339_millis,
    token_hint,
)

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

#: ``factory(kind)`` → the value to issue for ``kind`` (``"code"``, ``"access_token"``,
#: ``"refresh_token"``), or ``None`` for the emulator's own random one. Canary tests use it to make
#: the emulator hand out tokens they can look for (``GoogleEmulator.set_token_factory``).
TokenFactory = Callable[[str], str | None]

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
_EVENT_READ_ONLY = {
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


def _method_scopes() -> dict[str, tuple[str, ...]]:
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


def _known_scopes() -> set[str]:
    base = {"openid", "email", "profile", SCOPE_USERINFO_EMAIL, SCOPE_USERINFO_PROFILE}
    try:
        base |= set(spec.google_discovery()["auth"]["oauth2"]["scopes"].keys())
    except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
        base |= {s for scopes in _FALLBACK_SCOPES.values() for s in scopes}
    return base


def _normalize_scope(s: str) -> str:
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
    require_https_push: bool = False  # real Google requires HTTPS; loopback receivers are http
    push_delay_ms: int = 0
    freebusy_max_days: int | None = FREEBUSY_MAX_DAYS
    freebusy_max_calendars: int = FREEBUSY_MAX_CALENDARS
    # conference creation: "success" | "pending" (the insert answers pending; GETs answer
    # pending `conference_pending_polls` more times, then success) | "failure"
    conference_mode: str = "success"
    conference_pending_polls: int = 0
    auto_create_users: bool = True


# --------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------


class GoogleState(EmulatorState):
    name = "google"

    def __init__(
        self,
        clients: Iterable[OAuthClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self._seed_clients = (
            list(clients)
            if clients is not None
            else [OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [DEFAULT_REDIRECT_URI])]
        )
        self._seed_users = (
            [dict(u) for u in users]
            if users is not None
            else [{"email": DEFAULT_USER_EMAIL, "name": "Maya Mentor", "time_zone": "Europe/Berlin"}]
        )
        self.method_scopes = _method_scopes()
        self.known_scopes = _known_scopes()
        self.pusher: PushDispatcher | None = None
        self._init_data()

    def _init_data(self) -> None:
        self.settings: GoogleSettings = GoogleSettings()
        self.clients: dict[str, OAuthClient] = {}
        self.users: dict[str, GoogleUser] = {}
        self.calendars: dict[str, GoogleCalendar] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        # (email, client_id) -> granted scopes (for include_granted_scopes / refresh issuance)
        self.grants: dict[tuple[str, str], set[str]] = {}
        self.events: dict[str, dict[str, EventRecord]] = {}
        self.conferences: dict[tuple[str, str], JSONDict] = {}
        self.channels: dict[str, Channel] = {}
        self.resource_ids: dict[str, str] = {}
        self.token_calls: list[JSONDict] = []
        self.grant_counts: Counter[str] = Counter()
        self.revoke_calls: list[JSONDict] = []
        self.authorize_calls: list[JSONDict] = []
        self.push_deliveries: list[JSONDict] = []
        self.sent_updates: list[JSONDict] = []
        self.request_findings: list[JSONDict] = []
        self.consent_user: str | None = None  # sticky default consenting user
        self.next_consent_user: str | None = None  # one-shot
        self.deny_next: int = 0
        self.next_grant_scopes: list[str] | None = None  # one-shot partial consent
        self.token_factory: TokenFactory | None = None
        self._etag_counter = int(time.time() * 1_000_000)
        for c in self._seed_clients:
            self.clients[c.client_id] = OAuthClient(c.client_id, c.client_secret, list(c.redirect_uris))
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

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> OAuthClient:
        with self.lock:
            existing = self.clients.get(client_id)
            uris = list(redirect_uris)
            if existing is not None and existing.client_secret == client_secret:
                for u in uris:
                    if u not in existing.redirect_uris:
                        existing.redirect_uris.append(u)
                return existing
            client = OAuthClient(client_id, client_secret, uris)
            self.clients[client_id] = client
            return client

    def add_user(
        self,
        email: str,
        name: str | None = None,
        time_zone: str = "UTC",
        calendars: Iterable[Mapping[str, Any]] | None = None,
        sub: str | None = None,
        **_ignored: Any,
    ) -> GoogleUser:
        """Seed a Google account. Its primary calendar has the e-mail as id. ``calendars``
        adds more: ``{"id", "summary", "time_zone", "access_role", "owner"}``; an id that
        already exists (another user's calendar) is shared with this user."""
        email = email.lower()
        with self.lock:
            user = self.users.get(email)
            if user is None:
                user = GoogleUser(
                    email=email,
                    name=name or email.split("@")[0].replace(".", " ").title(),
                    sub=sub or str(10**20 + int(hashlib.sha256(email.encode()).hexdigest(), 16) % 10**20),
                    time_zone=time_zone,
                )
                self.users[email] = user
                self.calendars.setdefault(
                    email, GoogleCalendar(id=email, summary=email, time_zone=time_zone, owner=email)
                )
                user.calendars[email] = "owner"
            else:
                if name:
                    user.name = name
            for cal in calendars or []:
                cid = str(cal["id"])
                role = str(cal.get("access_role", "owner"))
                if role not in ACCESS_ROLES:
                    raise ValueError(f"access_role must be one of {ACCESS_ROLES}")
                if cid not in self.calendars:
                    self.calendars[cid] = GoogleCalendar(
                        id=cid,
                        summary=str(cal.get("summary", cid)),
                        time_zone=str(cal.get("time_zone", user.time_zone)),
                        owner=str(cal.get("owner", email if role == "owner" else "")),
                        description=str(cal.get("description", "")),
                    )
                user.calendars[cid] = role
            return user

    def resolve_user_for_consent(self, login_hint: str | None) -> GoogleUser:
        with self.lock:
            email: str | None = None
            if self.next_consent_user:
                email, self.next_consent_user = self.next_consent_user, None
            elif login_hint:
                email = login_hint.lower()
            else:
                email = self.consent_user
            if email is None:
                email = DEFAULT_USER_EMAIL
            user = self.users.get(email)
            if user is None:
                if not self.settings.auto_create_users and self.consent_user in self.users:
                    return self.users[str(self.consent_user)]
                user = self.add_user(email)
            return user

    # ---- tokens --------------------------------------------------------------------------

    def revoke_token(self, token: str) -> bool:
        """Revoke an access or refresh token and everything of the same grant."""
        return self.revoke_grant(token)

    def revoke_grant(self, token: str) -> bool:
        """Revoke an access or refresh token and everything of the same grant."""
        with self.lock:
            now = self.now()
            rt: RefreshToken | None = None
            at = self.access_tokens.get(token)
            if at is not None:
                if at.revoked:
                    return False
                at.revoked = True
                if at.refresh_token:
                    rt = self.refresh_tokens.get(at.refresh_token)
            else:
                rt = self.refresh_tokens.get(token)
                if rt is None or rt.revoked:
                    return False
            if rt is not None and not rt.revoked:
                rt.revoked = True
                rt.revoked_at = now
                for other in self.access_tokens.values():
                    if other.refresh_token == rt.token:
                        other.revoked = True
                self.grants.pop((rt.email, rt.client_id), None)
            return True

    def revoke_user(self, email: str) -> int:
        with self.lock:
            n = 0
            for rt in list(self.refresh_tokens.values()):
                if rt.email == email.lower() and not rt.revoked and self.revoke_grant(rt.token):
                    n += 1
            for at in self.access_tokens.values():
                if at.email == email.lower() and not at.revoked:
                    at.revoked = True
                    n += 1
            return n

    def expire_access_tokens(self, email: str | None = None, token: str | None = None) -> int:
        with self.lock:
            n = 0
            past = self.now() - 1
            for at in self.access_tokens.values():
                if (token and at.token == token) or (email and at.email == email.lower()) or (not token and not email):
                    at.expires_at = min(at.expires_at, past)
                    n += 1
            return n

    def resource_id_for(self, calendar_id: str) -> str:
        rid = self.resource_ids.get(calendar_id)
        if rid is None:
            rid = random_from("abcdefghijklmnopqrstuvwxyz0123456789-_", 27)
            self.resource_ids[calendar_id] = rid
        return rid

    def next_etag(self) -> str:
        self._etag_counter += 1
        return f'"{self._etag_counter}"'

    # ---- external (admin) calendar changes, e.g. the mentor editing their own calendar ----

    def seed_event(self, calendar_id: str, event: Mapping[str, Any]) -> JSONDict:
        with self.lock:
            cal = self.calendars.get(calendar_id)
            if cal is None:
                raise KeyError(f"unknown calendar {calendar_id}")
            owner = self.users.get(cal.owner) if cal.owner else None
            resource = _new_event_resource(self, cal, owner, dict(event), event.get("id"))
            self.events.setdefault(calendar_id, {})[resource["id"]] = EventRecord(calendar_id, resource)
            self.notify_change(calendar_id)
            return dict(resource)

    def update_event_external(self, calendar_id: str, event_id: str, changes: Mapping[str, Any]) -> JSONDict:
        with self.lock:
            rec = self.events.get(calendar_id, {}).get(event_id)
            if rec is None:
                raise KeyError(f"unknown event {calendar_id}/{event_id}")
            _merge_patch(rec.resource, {k: v for k, v in changes.items() if k not in _EVENT_READ_ONLY})
            _touch(self, rec.resource, bump_sequence=True)
            self.notify_change(calendar_id)
            return dict(rec.resource)

    def delete_event_external(self, calendar_id: str, event_id: str) -> None:
        with self.lock:
            rec = self.events.get(calendar_id, {}).get(event_id)
            if rec is None:
                raise KeyError(f"unknown event {calendar_id}/{event_id}")
            rec.resource["status"] = "cancelled"
            _touch(self, rec.resource, bump_sequence=False)
            self.notify_change(calendar_id)

    # ---- push notifications --------------------------------------------------------------

    def notify_change(self, calendar_id: str) -> None:
        with self.lock:
            now_ms = int(self.now() * 1000)
            for ch in self.channels.values():
                if ch.calendar_id != calendar_id or ch.stopped or ch.expiration_ms <= now_ms:
                    continue
                ch.message_number += 1
                self._enqueue_push(ch, "exists")

    def _enqueue_push(self, ch: Channel, resource_state: str) -> None:
        headers = {
            "X-Goog-Channel-ID": ch.id,
            "X-Goog-Channel-Expiration": http_date(ch.expiration_ms / 1000),
            "X-Goog-Resource-ID": ch.resource_id,
            "X-Goog-Resource-URI": ch.resource_uri,
            "X-Goog-Resource-State": resource_state,
            "X-Goog-Message-Number": str(ch.message_number),
        }
        if ch.token is not None:
            headers["X-Goog-Channel-Token"] = ch.token
        if self.pusher is not None:
            self.pusher.enqueue(ch.address, headers, self.settings.push_delay_ms)
        else:
            self.push_deliveries.append(
                {"address": ch.address, "headers": headers, "error": "emulator not running", "ts": self.now()}
            )

    # ---- snapshot ------------------------------------------------------------------------

    def snapshot(self) -> JSONDict:
        base = super().snapshot()
        now = self.now()
        base.update(
            {
                "settings": asdict(self.settings),
                "clients": [asdict(c) for c in self.clients.values()],
                "users": [{**asdict(u), "primary_calendar": u.email} for u in self.users.values()],
                "calendars": [asdict(c) for c in self.calendars.values()],
                "consent": {
                    "consent_user": self.consent_user,
                    "next_consent_user": self.next_consent_user,
                    "deny_next": self.deny_next,
                    "next_grant_scopes": self.next_grant_scopes,
                },
                "authorize_calls": list(self.authorize_calls),
                "codes": [asdict(c) for c in self.codes.values()],
                "access_tokens": [{**asdict(t), "expired": t.expires_at <= now} for t in self.access_tokens.values()],
                "refresh_tokens": [asdict(t) for t in self.refresh_tokens.values()],
                "tokens_issued": {
                    "access": len(self.access_tokens),
                    "refresh": len(self.refresh_tokens),
                },
                "tokens_revoked": {
                    "access": sum(1 for t in self.access_tokens.values() if t.revoked),
                    "refresh": sum(1 for t in self.refresh_tokens.values() if t.revoked),
                },
                "token_calls": list(self.token_calls),
                "token_calls_by_grant_type": dict(self.grant_counts),
                "revoke_calls": list(self.revoke_calls),
                "events": {cid: [dict(r.resource) for r in recs.values()] for cid, recs in self.events.items()},
                "channels": [asdict(c) for c in self.channels.values()],
                "push_deliveries": list(self.push_deliveries),
                "sent_updates": list(self.sent_updates),
                "request_findings": list(self.request_findings),
            }
        )
        return base


# --------------------------------------------------------------------------------------------
# push delivery
# --------------------------------------------------------------------------------------------


class PushDispatcher:
    """Delivers push notifications in order from one background thread."""

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        self._q: queue.Queue[tuple[str, dict[str, str], int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="google-push", daemon=True)
        self._client = httpx.Client(timeout=5.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=5)
        self._client.close()

    def enqueue(self, address: str, headers: dict[str, str], delay_ms: int) -> None:
        self._q.put((address, headers, delay_ms))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._q.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                address, headers, delay_ms = item
                if delay_ms > 0:
                    time.sleep(delay_ms / 1000)
                record: JSONDict = {"address": address, "headers": headers, "ts": self.state.now()}
                try:
                    resp = self._client.post(address, headers=headers, content=b"")
                    record["status"] = resp.status_code
                except httpx.HTTPError as exc:
                    record["error"] = f"{type(exc).__name__}: {exc}"
                with self.state.lock:
                    self.state.push_deliveries.append(record)
            finally:
                self._q.task_done()


# --------------------------------------------------------------------------------------------
# error bodies
# --------------------------------------------------------------------------------------------

AUTH_HEADER_INVALID = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
_AUTH_HELP = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def api_error(
    code: int,
    message: str,
    reason: str,
    *,
    domain: str = "global",
    status: str | None = None,
    location: str | None = None,
    location_type: str | None = None,
    headers: dict[str, str] | None = None,
    details: list[JSONDict] | None = None,
    error_message: str | None = None,
) -> Response:
    """Google's JSON error envelope (see developers.google.com/calendar/api/guides/errors)."""
    err: JSONDict = {"message": error_message or message, "domain": domain, "reason": reason}
    if location:
        err["location"] = location
        err["locationType"] = location_type or "parameter"
    body: JSONDict = {"error": {"code": code, "message": message, "errors": [err]}}
    if status:
        body["error"]["status"] = status
    if details:
        body["error"]["details"] = details
    return json_response(body, code, headers)


def _unauthenticated(missing: bool) -> Response:
    if missing:
        return api_error(
            401,
            "Request is missing required authentication credential. " + _AUTH_HELP,
            "required",
            status="UNAUTHENTICATED",
            error_message="Login Required.",
            location="Authorization",
            location_type="header",
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )
    return api_error(
        401,
        "Request had invalid authentication credentials. " + _AUTH_HELP,
        "authError",
        status="UNAUTHENTICATED",
        error_message="Invalid Credentials",
        location="Authorization",
        location_type="header",
        headers={"WWW-Authenticate": AUTH_HEADER_INVALID},
    )


def _insufficient_scope(method_id: str, scopes: Iterable[str]) -> Response:
    rpc = spec.DiscoveryMethod(method_id, "", "", (), None, None, {}).rpc_name
    return api_error(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        status="PERMISSION_DENIED",
        error_message="Insufficient Permission",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
            f'scope="{" ".join(scopes)}"'
        },
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": "calendar-json.googleapis.com", "method": rpc},
            }
        ],
    )


def _not_found() -> Response:
    return api_error(404, "Not Found", "notFound")


def _gone() -> Response:
    return api_error(410, "Resource has been deleted", "deleted")


def _bad_request(
    message: str, reason: str = "invalid", domain: str = "global", location: str | None = None
) -> Response:
    return api_error(400, message, reason, domain=domain, location=location)


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


def _fault_responder(status: int, retry_after: int) -> Response:
    path = request.path
    headers = {"Retry-After": str(retry_after)}
    if path.startswith("/calendar/"):
        if status == 429:
            return api_error(429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits", headers=headers)
        if status == 403:
            return api_error(403, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits", headers=headers)
        if status == 503:
            return api_error(503, "The service is currently unavailable.", "backendError", headers=headers)
        return api_error(status, "Backend Error", "backendError", headers=headers)
    if status == 429:
        return json_response({"error": "rate_limit_exceeded", "error_description": "Rate limit exceeded"}, 429, headers)
    return json_response({"error": "internal_failure", "error_description": "Backend Error"}, status, headers)


# --------------------------------------------------------------------------------------------
# event helpers
# --------------------------------------------------------------------------------------------


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _touch(state: GoogleState, resource: JSONDict, *, bump_sequence: bool) -> None:
    resource["updated"] = rfc3339_millis(state.now())
    resource["etag"] = state.next_etag()
    if bump_sequence:
        resource["sequence"] = int(resource.get("sequence", 0)) + 1


def _merge_patch(target: JSONDict, patch: Mapping[str, Any]) -> None:
    """Patch semantics: nested objects merge, arrays and scalars replace, null clears."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_patch(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value))


def _validate_when(resource: Mapping[str, Any], which: str) -> str | None:
    when = resource.get(which)
    if not isinstance(when, Mapping) or not ("dateTime" in when or "date" in when):
        return f"Missing {which} time."
    if "dateTime" in when:
        dt = parse_rfc3339(str(when["dateTime"]))
        if dt is None:
            return f"Invalid {which} time."
        tz = when.get("timeZone")
        if tz is not None and _zone(str(tz)) is None:
            return f"Invalid time zone definition for {which} time."
        if dt.tzinfo is None and not tz:
            return f"Missing time zone definition for {which} time."
    else:
        try:
            date.fromisoformat(str(when["date"]))
        except ValueError:
            return f"Invalid {which} time."
    return None


def _when_to_utc(when: Mapping[str, Any], default_tz: str) -> datetime | None:
    if "dateTime" in when:
        dt = parse_rfc3339(str(when["dateTime"]))
        if dt is None:
            return None
        if dt.tzinfo is None:
            z = _zone(str(when.get("timeZone") or default_tz)) or ZoneInfo("UTC")
            dt = dt.replace(tzinfo=z)
        return dt.astimezone(UTC)
    if "date" in when:
        try:
            d = date.fromisoformat(str(when["date"]))
        except ValueError:
            return None
        z = _zone(str(when.get("timeZone") or default_tz)) or ZoneInfo("UTC")
        return datetime(d.year, d.month, d.day, tzinfo=z).astimezone(UTC)
    return None


def _new_event_id() -> str:
    return random_from(BASE32HEX, 26)


def _html_link(event_id: str, calendar_id: str) -> str:
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


def _new_event_resource(
    state: GoogleState,
    cal: GoogleCalendar,
    creator: GoogleUser | None,
    body: JSONDict,
    event_id: Any,
) -> JSONDict:
    now = state.now()
    eid = str(event_id) if event_id else _new_event_id()
    owner_email = cal.owner or cal.id
    resource: JSONDict = {
        "kind": "calendar#event",
        "etag": state.next_etag(),
        "id": eid,
        "status": "confirmed",
        "htmlLink": _html_link(eid, cal.id),
        "created": rfc3339_millis(now),
        "updated": rfc3339_millis(now),
    }
    writable = {k: v for k, v in body.items() if k not in _EVENT_READ_ONLY and k not in ("id", "conferenceData")}
    resource.update(json.loads(json.dumps(writable)))
    resource["creator"] = {"email": creator.email if creator else owner_email, "self": True}
    org: JSONDict = {"email": cal.id if cal.id != owner_email else owner_email, "self": True}
    if cal.id != owner_email:
        org["displayName"] = cal.summary
    resource["organizer"] = org
    resource["iCalUID"] = f"{eid}@google.com"
    resource.setdefault("sequence", 0)
    resource.setdefault("reminders", {"useDefault": True})
    resource.setdefault("eventType", "default")
    for att in resource.get("attendees", []) or []:
        if isinstance(att, dict):
            att.setdefault("responseStatus", "needsAction")
            if str(att.get("email", "")).lower() == owner_email:
                att["self"] = True
    return resource


def _meet_code() -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return f"{random_from(letters, 3)}-{random_from(letters, 4)}-{random_from(letters, 3)}"


def _conference_success(request_id: str, key_type: str) -> JSONDict:
    code = _meet_code()
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": key_type},
            "status": {"statusCode": "success"},
        },
        "entryPoints": [
            {"entryPointType": "video", "uri": f"https://meet.google.com/{code}", "label": f"meet.google.com/{code}"}
        ],
        "conferenceSolution": {"key": {"type": key_type}, "name": "Google Meet", "iconUri": MEET_ICON},
        "conferenceId": code,
    }


def _apply_conference(state: GoogleState, rec: EventRecord, conf_in: Any, calendar_id: str) -> Response | None:
    """conferenceDataVersion=1 handling of a body's ``conferenceData``."""
    res = rec.resource
    if conf_in is None:
        res.pop("conferenceData", None)
        res.pop("hangoutLink", None)
        rec.pending_polls = 0
        rec.conference_pending = False
        return None
    if not isinstance(conf_in, Mapping):
        return _bad_request("Invalid conference data.")
    create = conf_in.get("createRequest")
    if isinstance(create, Mapping):
        request_id = create.get("requestId")
        key = create.get("conferenceSolutionKey") or {}
        key_type = key.get("type") if isinstance(key, Mapping) else None
        if not request_id or not isinstance(request_id, str):
            return _bad_request("Invalid conference create request: missing request id.")
        if key_type != "hangoutsMeet":
            return _bad_request("Invalid conference type value.")
        existing = res.get("conferenceData", {})
        if existing.get("createRequest", {}).get("requestId") == request_id:
            return None  # same request on the same event: ignored, as the schema says
        conf = state.conferences.get((calendar_id, request_id))
        if conf is None:
            mode = state.settings.conference_mode
            if mode == "failure":
                conf = {
                    "createRequest": {
                        "requestId": request_id,
                        "conferenceSolutionKey": {"type": key_type},
                        "status": {"statusCode": "failure"},
                    }
                }
            else:
                conf = _conference_success(request_id, key_type)
            state.conferences[(calendar_id, request_id)] = conf
            rec.conference_pending = mode == "pending"
            rec.pending_polls = state.settings.conference_pending_polls if mode == "pending" else 0
        res["conferenceData"] = json.loads(json.dumps(conf))
        _sync_hangout_link(res)
        return None
    # Copying existing conference data (entryPoints + conferenceSolution): kept as given.
    if "entryPoints" in conf_in or "conferenceSolution" in conf_in:
        res["conferenceData"] = json.loads(json.dumps(dict(conf_in)))
        _sync_hangout_link(res)
    return None


def _sync_hangout_link(res: JSONDict) -> None:
    conf = res.get("conferenceData") or {}
    video = [e for e in conf.get("entryPoints", []) if e.get("entryPointType") == "video"]
    if video and conf.get("conferenceSolution", {}).get("key", {}).get("type") == "hangoutsMeet":
        res["hangoutLink"] = video[0]["uri"]
    else:
        res.pop("hangoutLink", None)


def _render_event(rec: EventRecord, *, consume_poll: bool) -> JSONDict:
    """The event as the API returns it; a pending conference hides its entry points."""
    out: JSONDict = json.loads(json.dumps(rec.resource))
    conf = out.get("conferenceData")
    if conf and rec.conference_pending and consume_poll:
        if rec.pending_polls > 0:
            rec.pending_polls -= 1
        else:
            rec.conference_pending = False
    if conf and rec.conference_pending:
        out["conferenceData"] = {
            "createRequest": {**conf["createRequest"], "status": {"statusCode": "pending"}},
        }
        out.pop("hangoutLink", None)
    return out


def _expand_busy(
    rec: EventRecord, cal_tz: str, win_start: datetime, win_end: datetime
) -> list[tuple[datetime, datetime]]:
    res = rec.resource
    start = _when_to_utc(res.get("start", {}), cal_tz)
    end = _when_to_utc(res.get("end", {}), cal_tz)
    if start is None or end is None or end <= start:
        return []
    rules = [r for r in res.get("recurrence", []) or [] if isinstance(r, str)]
    if not rules:
        return [(start, end)] if start < win_end and end > win_start else []
    duration = end - start
    tzname = str(res.get("start", {}).get("timeZone") or cal_tz)
    local_start = start.astimezone(_zone(tzname) or ZoneInfo("UTC"))
    try:
        rset = rrulestr(
            "\n".join(rules),
            dtstart=local_start,
            forceset=True,
            tzids=lambda name: _zone(name) or ZoneInfo("UTC"),
        )
    except (ValueError, TypeError):
        return [(start, end)] if start < win_end and end > win_start else []
    assert isinstance(rset, rruleset)
    out: list[tuple[datetime, datetime]] = []
    for occ in rset.between(win_start - duration, win_end, inc=True):
        occ_utc = occ.astimezone(UTC)
        occ_end = occ_utc + duration
        if occ_utc < win_end and occ_end > win_start:
            out.append((occ_utc, occ_end))
        if len(out) > 5000:
            break
    return out


def _declined_by_owner(res: Mapping[str, Any], calendar_id: str) -> bool:
    for att in res.get("attendees", []) or []:
        if not isinstance(att, Mapping):
            continue
        if (att.get("self") or str(att.get("email", "")).lower() == calendar_id.lower()) and att.get(
            "responseStatus"
        ) == "declined":
            return True
    return False


def _fmt_busy(dt: datetime, tz: ZoneInfo) -> str:
    local = dt.astimezone(tz)
    if local.utcoffset() == timedelta(0) and tz.key in ("UTC", "Etc/UTC", "GMT"):
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    return local.isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# app
# --------------------------------------------------------------------------------------------


def create_app(state: GoogleState) -> Flask:
    app = Flask("google_emulator", static_folder=None)
    install_common(app, state, _fault_responder)
    _install_oauth(app, state)
    _install_calendar(app, state)
    _install_admin(app, state)
    return app


def _install_oauth(app: Flask, state: GoogleState) -> None:
    @app.get("/.well-known/openid-configuration")
    def openid_configuration() -> ResponseReturnValue:
        b = state.base_url
        return json_response(
            {
                "issuer": "https://accounts.google.com",
                "authorization_endpoint": f"{b}/o/oauth2/v2/auth",
                "token_endpoint": f"{b}/token",
                "userinfo_endpoint": f"{b}/v1/userinfo",
                "revocation_endpoint": f"{b}/revoke",
                "response_types_supported": ["code"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )

    @app.get("/o/oauth2/v2/auth")
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
                return _oauth_error("invalid_client", "The OAuth client was not found.", 401)
            if redirect_uri not in client.redirect_uris:
                call["outcome"] = "redirect_uri_mismatch"
                return _oauth_error(
                    "redirect_uri_mismatch",
                    f"Error 400: redirect_uri_mismatch. The redirect URI in the request, {redirect_uri}, "
                    "does not match the ones authorized for the OAuth client.",
                    400,
                )

            def back(params: dict[str, str]) -> Response:
                if state_param is not None:
                    params = {"state": state_param, **params}
                parts = urlsplit(redirect_uri)
                q = parts.query + ("&" if parts.query else "") + urlencode(params)
                location = urlunsplit((parts.scheme, parts.netloc, parts.path, q, parts.fragment))
                return Response(status=302, headers={"Location": location})

            def fail(error: str, description: str) -> Response:
                call["outcome"] = error
                return back({"error": error, "error_description": description})

            if args.get("response_type") != "code":
                return fail("unsupported_response_type", "Only response_type=code is supported.")
            requested = [s for s in args.get("scope", "").split() if s]
            if not requested:
                return fail("invalid_request", "Missing required parameter: scope")
            unknown = [s for s in requested if s not in state.known_scopes]
            if unknown:
                return fail("invalid_scope", f"Some requested scopes were invalid: {unknown}")
            access_type = args.get("access_type", "online")
            if access_type not in ("online", "offline"):
                return fail("invalid_request", f"Invalid access_type: {access_type}")
            challenge = args.get("code_challenge")
            method = args.get("code_challenge_method")
            if method and not challenge:
                return fail("invalid_request", "Missing code_challenge.")
            if challenge and method is None:
                method = "plain"  # Google's default when the method is omitted
            if method not in (None, "plain", "S256"):
                return fail("invalid_request", f"Invalid code_challenge_method: {method}")
            if state.deny_next > 0:
                state.deny_next -= 1
                state.next_grant_scopes = None
                state.next_consent_user = None
                call["outcome"] = "access_denied"
                return back({"error": "access_denied"})
            user = state.resolve_user_for_consent(args.get("login_hint"))
            granted = [_normalize_scope(s) for s in requested]
            if state.next_grant_scopes is not None:
                allowed = {_normalize_scope(s) for s in state.next_grant_scopes}
                granted = [s for s in granted if s in allowed or s == "openid"]
                state.next_grant_scopes = None
            key = (user.email, client_id)
            prior = state.grants.get(key)
            if args.get("include_granted_scopes") == "true" and prior:
                granted = sorted(set(granted) | prior)
            prompt = args.get("prompt", "")
            issue_refresh = access_type == "offline" and ("consent" in prompt.split() or prior is None)
            code = state.new_token("code", lambda: "4/0" + random_urlsafe(54))
            state.codes[code] = AuthCode(
                code=code,
                client_id=client_id,
                redirect_uri=redirect_uri,
                email=user.email,
                scopes=granted,
                code_challenge=challenge,
                code_challenge_method=method,
                access_type=access_type,
                issue_refresh=issue_refresh,
                expires_at=state.now() + state.settings.code_ttl_seconds,
                nonce=args.get("nonce"),
            )
            state.grants[key] = (prior or set()) | set(granted)
            call["outcome"] = "code"
            call["email"] = user.email
            return back(
                {
                    "code": code,
                    "scope": " ".join(granted),
                    "authuser": "0",
                    "prompt": "consent" if ("consent" in prompt.split() or prior is None) else "none",
                }
            )

    def client_auth() -> tuple[OAuthClient | None, Response | None]:
        basic = parse_basic_auth(request.headers.get("Authorization"))
        if basic is not None:
            cid, secret = basic
        else:
            cid, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
        if not cid:
            return None, _oauth_error("invalid_request", "Could not determine client ID from request.")
        client = state.clients.get(cid)
        if client is None:
            return None, _oauth_error("invalid_client", "The OAuth client was not found.", 401)
        if secret != client.client_secret:
            return None, _oauth_error("invalid_client", "Unauthorized", 401)
        return client, None

    def issue(
        client: OAuthClient, email: str, scopes: list[str], refresh: str | None, grant_type: str, nonce: str | None
    ) -> JSONDict:
        now = state.now()
        ttl = state.settings.access_token_ttl_seconds
        at = state.new_token("access_token", lambda: "ya29.a0" + random_urlsafe(120))
        state.access_tokens[at] = AccessToken(
            token=at,
            client_id=client.client_id,
            email=email,
            scopes=list(scopes),
            issued_at=now,
            expires_at=now + ttl,
            refresh_token=refresh,
            grant_type=grant_type,
        )
        body: JSONDict = {
            "access_token": at,
            "expires_in": ttl - 1,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if "openid" in scopes:
            user = state.users.get(email)
            claims: JSONDict = {
                "iss": "https://accounts.google.com",
                "azp": client.client_id,
                "aud": client.client_id,
                "sub": user.sub if user else email,
                "iat": int(now),
                "exp": int(now) + ttl,
            }
            if SCOPE_USERINFO_EMAIL in scopes:
                claims.update({"email": email, "email_verified": True})
            if SCOPE_USERINFO_PROFILE in scopes and user is not None:
                claims.update({"name": user.name, "given_name": user.given_name, "family_name": user.family_name})
            if nonce:
                claims["nonce"] = nonce
            # Shaped like Google's id_token but signed by nobody: do not verify it.
            body["id_token"] = fake_jwt(claims, {"alg": "RS256", "kid": "emulator", "typ": "JWT"})
        return body

    @app.post("/token")
    def token() -> ResponseReturnValue:
        grant_type = request.form.get("grant_type", "")
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
            return err or _oauth_error("invalid_client", "Unauthorized", 401), "invalid_client"
        form = request.form
        if grant_type == "authorization_code":
            code_value = form.get("code")
            if not code_value:
                return _oauth_error("invalid_request", "Missing required parameter: code"), "invalid_request"
            code = state.codes.get(code_value)
            if code is None:
                return _oauth_error("invalid_grant", "Malformed auth code."), "invalid_grant"
            if code.used_at is not None or code.expires_at <= state.now() or code.client_id != client.client_id:
                code.used_at = code.used_at or state.now()
                return _oauth_error("invalid_grant", "Bad Request"), "invalid_grant"
            if form.get("redirect_uri", "") != code.redirect_uri:
                return _oauth_error("redirect_uri_mismatch", "Bad Request"), "redirect_uri_mismatch"
            if code.code_challenge:
                verifier = form.get("code_verifier")
                if not verifier:
                    return _oauth_error("invalid_grant", "Missing code verifier."), "invalid_grant"
                if not pkce_matches(code.code_challenge, code.code_challenge_method or "plain", verifier):
                    return _oauth_error("invalid_grant", "Invalid code verifier."), "invalid_grant"
            code.used_at = state.now()
            refresh: str | None = None
            if code.issue_refresh:
                refresh = state.new_token("refresh_token", lambda: "1//0" + random_urlsafe(72))
                state.refresh_tokens[refresh] = RefreshToken(
                    token=refresh,
                    client_id=client.client_id,
                    email=code.email,
                    scopes=list(code.scopes),
                    created=state.now(),
                )
            body = issue(client, code.email, code.scopes, refresh, grant_type, code.nonce)
            if refresh:
                body = {
                    "access_token": body["access_token"],
                    "expires_in": body["expires_in"],
                    "refresh_token": refresh,
                    **{k: v for k, v in body.items() if k not in ("access_token", "expires_in")},
                }
                if state.settings.refresh_token_ttl_seconds is not None:
                    body["refresh_token_expires_in"] = state.settings.refresh_token_ttl_seconds
            return json_response(
                body, headers={"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"}
            ), "ok"
        if grant_type == "refresh_token":
            value = form.get("refresh_token")
            if not value:
                return _oauth_error("invalid_request", "Missing required parameter: refresh_token"), "invalid_request"
            rt = state.refresh_tokens.get(value)
            ttl = state.settings.refresh_token_ttl_seconds
            if rt is not None and ttl is not None and rt.created + ttl <= state.now():
                rt.revoked, rt.revoked_at = True, state.now()
            if rt is None or rt.revoked:
                return _oauth_error("invalid_grant", "Token has been expired or revoked."), "invalid_grant"
            if rt.client_id != client.client_id:
                return _oauth_error("unauthorized_client", "Unauthorized"), "unauthorized_client"
            body = issue(client, rt.email, rt.scopes, rt.token, grant_type, None)
            return json_response(
                body, headers={"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"}
            ), "ok"
        if not grant_type:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type: "), "unsupported_grant_type"
        return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}"), "unsupported_grant_type"

    @app.post("/revoke")
    def revoke() -> ResponseReturnValue:
        token_value = request.args.get("token") or request.form.get("token") or ""
        with state.lock:
            kind = (
                "access"
                if token_value in state.access_tokens
                else "refresh"
                if token_value in state.refresh_tokens
                else "unknown"
            )
            ok = bool(token_value) and state.revoke_grant(token_value)
            state.revoke_calls.append(
                {
                    "ts": state.now(),
                    "token_hint": token_hint(token_value),
                    "kind": kind,
                    "via": "query" if request.args.get("token") else "form",
                    "ok": ok,
                }
            )
        if not token_value:
            return _oauth_error("invalid_request", "Bad Request")
        if not ok:
            return _oauth_error("invalid_token", "Token expired or revoked")
        return json_response({})

    def userinfo() -> ResponseReturnValue:
        tok = parse_bearer(request.headers.get("Authorization")) or request.args.get("access_token")
        with state.lock:
            at = state.access_tokens.get(tok or "")
            if at is None or at.revoked or at.expires_at <= state.now():
                return json_response(
                    {"error": "invalid_request", "error_description": "Invalid Credentials"},
                    401,
                    {"WWW-Authenticate": AUTH_HEADER_INVALID},
                )
            user = state.users[at.email]
            body: JSONDict = {"sub": user.sub}
            if SCOPE_USERINFO_PROFILE in at.scopes:
                body.update(
                    {
                        "name": user.name,
                        "given_name": user.given_name,
                        "family_name": user.family_name,
                        "picture": f"https://lh3.googleusercontent.com/a/{b64url(user.sub.encode())}=s96-c",
                    }
                )
            if SCOPE_USERINFO_EMAIL in at.scopes:
                body.update({"email": user.email, "email_verified": True})
            return json_response(body)

    app.add_url_rule("/v1/userinfo", "userinfo", userinfo, methods=["GET", "POST"])
    app.add_url_rule("/oauth2/v3/userinfo", "userinfo_v3", userinfo, methods=["GET", "POST"])


def _install_calendar(app: Flask, state: GoogleState) -> None:
    prefix = "/calendar/v3"

    def authorize(method_id: str) -> tuple[AccessToken, GoogleUser] | Response:
        header = request.headers.get("Authorization")
        tok = parse_bearer(header) or request.args.get("access_token") or request.args.get("oauth_token")
        if not tok:
            return _unauthenticated(missing=not header)
        at = state.access_tokens.get(tok)
        if at is None or at.revoked or at.expires_at <= state.now():
            return _unauthenticated(missing=False)
        accepted = state.method_scopes.get(method_id, ())
        if accepted and not set(at.scopes) & set(accepted):
            return _insufficient_scope(method_id, accepted)
        user = state.users.get(at.email)
        if user is None:
            return _unauthenticated(missing=False)
        return at, user

    def calendar_for(user: GoogleUser, calendar_id: str, need: str) -> tuple[GoogleCalendar, str] | Response:
        cid = user.email if calendar_id == "primary" else calendar_id
        role = user.calendars.get(cid)
        cal = state.calendars.get(cid)
        if cal is None or role is None or role == "none":
            return _not_found()
        order = ACCESS_ROLES.index
        if order(role) < order(need):
            if need in ("writer", "owner"):
                return api_error(403, "You need to have writer access to this calendar.", "requiredAccessLevel")
            return _not_found()
        return cal, role

    def body_object() -> JSONDict | Response:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return api_error(400, "Parse Error", "parseError", error_message="Parse Error")
        if not isinstance(data, dict):
            return api_error(400, "Parse Error", "parseError")
        return data

    def record_findings(method_id: str, body: Any) -> list[spec.Finding]:
        try:
            findings = spec.request_findings(body, google_method=method_id, query=request.args.to_dict(flat=False))
        except (spec.SpecNotFoundError, OSError, KeyError, ValueError):
            return []
        findings = [f for f in findings if f.path not in ("?access_token", "?oauth_token")]
        if findings:
            state.request_findings.append(
                {"ts": state.now(), "method": method_id, "findings": [str(f) for f in findings]}
            )
        return findings

    def conference_version() -> int | Response:
        raw = request.args.get("conferenceDataVersion", "0")
        if raw not in ("0", "1"):
            return _bad_request(f"Invalid conference data version: {raw}", location="conferenceDataVersion")
        return int(raw)

    def send_updates_ok() -> Response | None:
        su = request.args.get("sendUpdates")
        if su is not None and su not in ("all", "externalOnly", "none"):
            return _bad_request(
                f"Invalid value '{su}'. Values must match the following regular expression: 'all|externalOnly|none'",
                location="sendUpdates",
            )
        return None

    def record_updates(action: str, calendar_id: str, resource: Mapping[str, Any]) -> None:
        su = request.args.get("sendUpdates") or ("all" if request.args.get("sendNotifications") == "true" else "none")
        attendees = [a.get("email") for a in resource.get("attendees", []) or [] if isinstance(a, Mapping)]
        if su != "none" and attendees:
            state.sent_updates.append(
                {
                    "ts": state.now(),
                    "action": action,
                    "calendar_id": calendar_id,
                    "event_id": resource.get("id"),
                    "send_updates": su,
                    "recipients": [a for a in attendees if a and a != calendar_id],
                }
            )

    def type_errors(findings: list[spec.Finding]) -> Response | None:
        bad = [f for f in findings if f.problem != spec.UNKNOWN and not f.path.startswith("?")]
        if bad:
            return _bad_request(f"Invalid value for: {bad[0].path.removeprefix('$.')} ({bad[0].problem})")
        return None

    # ---- calendarList.list ----------------------------------------------------------------

    @app.get(f"{prefix}/users/me/calendarList")
    def calendar_list() -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.calendarList.list")
            if isinstance(auth, Response):
                return auth
            _, user = auth
            min_role = request.args.get("minAccessRole")
            if min_role is not None and min_role not in ACCESS_ROLES[1:]:
                return _bad_request(f"Invalid value '{min_role}' for minAccessRole", location="minAccessRole")
            items: list[JSONDict] = []
            for cid, role in user.calendars.items():
                if role == "none":
                    continue
                if min_role and ACCESS_ROLES.index(role) < ACCESS_ROLES.index(min_role):
                    continue
                cal = state.calendars[cid]
                entry: JSONDict = {
                    "kind": "calendar#calendarListEntry",
                    "etag": f'"{abs(hash((cid, role))) % 10**16}"',
                    "id": cid,
                    "summary": cal.summary,
                    "timeZone": cal.time_zone,
                    "colorId": "14",
                    "backgroundColor": cal.background_color,
                    "foregroundColor": "#000000",
                    "selected": True,
                    "accessRole": role,
                    "defaultReminders": [{"method": "popup", "minutes": 10}] if role in ("owner", "writer") else [],
                    "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
                }
                if cal.description:
                    entry["description"] = cal.description
                if cid == user.email:
                    entry["primary"] = True
                    entry["notificationSettings"] = {
                        "notifications": [
                            {"type": t, "method": "email"}
                            for t in ("eventCreation", "eventChange", "eventCancellation", "eventResponse")
                        ]
                    }
                elif cal.owner and cal.owner != user.email and role != "owner":
                    entry["dataOwner"] = cal.owner
                items.append(entry)
            items.sort(key=lambda e: (not e.get("primary", False), e["summary"]))
            try:
                max_results = min(int(request.args.get("maxResults", "100")), 250)
                offset = int(request.args.get("pageToken", "0") or "0")
            except ValueError:
                return _bad_request("Invalid page token or maxResults")
            page = items[offset : offset + max_results]
            body: JSONDict = {
                "kind": "calendar#calendarList",
                "etag": f'"p{abs(hash(tuple(e["id"] for e in items))) % 10**14}"',
                "items": page,
            }
            if offset + max_results < len(items):
                body["nextPageToken"] = str(offset + max_results)
            else:
                body["nextSyncToken"] = "CL" + random_urlsafe(12)
            return json_response(body)

    # ---- events ---------------------------------------------------------------------------

    @app.post(f"{prefix}/calendars/<calendar_id>/events")
    def events_insert(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.events.insert")
            if isinstance(auth, Response):
                return auth
            _, user = auth
            found = calendar_for(user, calendar_id, "writer")
            if isinstance(found, Response):
                return found
            cal, _role = found
            body = body_object()
            if isinstance(body, Response):
                return body
            version = conference_version()
            if isinstance(version, Response):
                return version
            if (err := send_updates_ok()) is not None:
                return err
            if (err := type_errors(record_findings("calendar.events.insert", body))) is not None:
                return err
            for which in ("start", "end"):
                problem = _validate_when(body, which)
                if problem:
                    return _bad_request(problem, reason="required" if problem.startswith("Missing") else "invalid")
            start = _when_to_utc(body["start"], cal.time_zone)
            end = _when_to_utc(body["end"], cal.time_zone)
            if start is None or end is None or end < start:
                return _bad_request("The specified time range is empty.", reason="timeRangeEmpty", domain="calendar")
            wanted_id = body.get("id")
            if wanted_id is not None:
                if not isinstance(wanted_id, str) or not re.fullmatch(r"[a-v0-9]{5,1024}", wanted_id):
                    return _bad_request("Invalid resource id value.")
                if wanted_id in state.events.get(cal.id, {}):
                    return api_error(409, "The requested identifier already exists.", "duplicate")
            resource = _new_event_resource(state, cal, user, body, wanted_id)
            rec = EventRecord(cal.id, resource)
            if version >= 1 and "conferenceData" in body:
                err = _apply_conference(state, rec, body["conferenceData"], cal.id)
                if err is not None:
                    return err
            state.events.setdefault(cal.id, {})[resource["id"]] = rec
            record_updates("insert", cal.id, resource)
            state.notify_change(cal.id)
            return json_response(_render_event(rec, consume_poll=False))

    @app.get(f"{prefix}/calendars/<calendar_id>/events")
    def events_list(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.events.list")
            if isinstance(auth, Response):
                return auth
            _, user = auth
            found = calendar_for(user, calendar_id, "reader")
            if isinstance(found, Response):
                return found
            cal, role = found
            tmin = parse_rfc3339(request.args.get("timeMin", "")) if request.args.get("timeMin") else None
            tmax = parse_rfc3339(request.args.get("timeMax", "")) if request.args.get("timeMax") else None
            if tmin and tmax and tmax <= tmin:
                return _bad_request(
                    "The specified time range is empty.", reason="timeRangeEmpty", domain="calendar", location="timeMax"
                )
            show_deleted = request.args.get("showDeleted") == "true"
            items = []
            for rec in state.events.get(cal.id, {}).values():
                res = rec.resource
                if res.get("status") == "cancelled" and not show_deleted:
                    continue
                s = _when_to_utc(res.get("start", {}), cal.time_zone)
                e = _when_to_utc(res.get("end", {}), cal.time_zone)
                if tmin and e and e <= tmin.astimezone(UTC) and not res.get("recurrence"):
                    continue
                if tmax and s and s >= tmax.astimezone(UTC):
                    continue
                items.append((s or datetime.min.replace(tzinfo=UTC), _render_event(rec, consume_poll=False)))
            items.sort(key=lambda p: p[0])
            return json_response(
                {
                    "kind": "calendar#events",
                    "etag": state.next_etag(),
                    "summary": cal.summary,
                    "updated": rfc3339_millis(state.now()),
                    "timeZone": cal.time_zone,
                    "accessRole": role,
                    "defaultReminders": [{"method": "popup", "minutes": 10}],
                    "nextSyncToken": "CP" + random_urlsafe(12),
                    "items": [i for _, i in items],
                }
            )

    def find_event(
        user: GoogleUser, calendar_id: str, event_id: str, need: str
    ) -> tuple[GoogleCalendar, EventRecord] | Response:
        found = calendar_for(user, calendar_id, need)
        if isinstance(found, Response):
            return found
        cal, _ = found
        rec = state.events.get(cal.id, {}).get(event_id)
        if rec is None:
            return _not_found()
        return cal, rec

    @app.get(f"{prefix}/calendars/<calendar_id>/events/<event_id>")
    def events_get(calendar_id: str, event_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.events.get")
            if isinstance(auth, Response):
                return auth
            found = find_event(auth[1], calendar_id, event_id, "reader")
            if isinstance(found, Response):
                return found
            _, rec = found
            # "The get method always returns them" (Event.status): cancelled events included.
            return json_response(_render_event(rec, consume_poll=True))

    def modify(calendar_id: str, event_id: str, method_id: str, replace: bool) -> ResponseReturnValue:
        with state.lock:
            auth = authorize(method_id)
            if isinstance(auth, Response):
                return auth
            found = find_event(auth[1], calendar_id, event_id, "writer")
            if isinstance(found, Response):
                return found
            cal, rec = found
            body = body_object()
            if isinstance(body, Response):
                return body
            version = conference_version()
            if isinstance(version, Response):
                return version
            if (err := send_updates_ok()) is not None:
                return err
            if (err := type_errors(record_findings(method_id, body))) is not None:
                return err
            res = rec.resource
            before = json.loads(json.dumps(res))
            changes = {k: v for k, v in body.items() if k not in _EVENT_READ_ONLY and k not in ("id", "conferenceData")}
            if replace:
                if (problem := _validate_when(body, "start") or _validate_when(body, "end")) is not None:
                    return _bad_request(problem, reason="required")
                keep: JSONDict = {
                    k: res[k]
                    for k in (
                        "kind",
                        "id",
                        "htmlLink",
                        "created",
                        "creator",
                        "organizer",
                        "iCalUID",
                        "conferenceData",
                        "hangoutLink",
                        "eventType",
                    )
                    if k in res
                }
                res.clear()
                res.update(keep)
                res.update(json.loads(json.dumps(changes)))
                res.setdefault("status", "confirmed")
                res.setdefault("reminders", {"useDefault": True})
                res["sequence"] = before.get("sequence", 0)
            else:
                _merge_patch(res, changes)
            for which in ("start", "end"):
                problem = _validate_when(res, which)
                if problem:
                    rec.resource = before
                    return _bad_request(problem, reason="required" if problem.startswith("Missing") else "invalid")
            s = _when_to_utc(res["start"], cal.time_zone)
            e = _when_to_utc(res["end"], cal.time_zone)
            if s is None or e is None or e < s:
                rec.resource = before
                return _bad_request("The specified time range is empty.", reason="timeRangeEmpty", domain="calendar")
            if version >= 1 and "conferenceData" in body:
                err = _apply_conference(state, rec, body["conferenceData"], cal.id)
                if err is not None:
                    rec.resource = before
                    return err
            timing_changed = before.get("start") != res.get("start") or before.get("end") != res.get("end")
            _touch(state, res, bump_sequence=timing_changed)
            record_updates("update", cal.id, res)
            state.notify_change(cal.id)
            return json_response(_render_event(rec, consume_poll=False))

    @app.patch(f"{prefix}/calendars/<calendar_id>/events/<event_id>")
    def events_patch(calendar_id: str, event_id: str) -> ResponseReturnValue:
        return modify(calendar_id, event_id, "calendar.events.patch", replace=False)

    @app.put(f"{prefix}/calendars/<calendar_id>/events/<event_id>")
    def events_update(calendar_id: str, event_id: str) -> ResponseReturnValue:
        return modify(calendar_id, event_id, "calendar.events.update", replace=True)

    @app.delete(f"{prefix}/calendars/<calendar_id>/events/<event_id>")
    def events_delete(calendar_id: str, event_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.events.delete")
            if isinstance(auth, Response):
                return auth
            found = find_event(auth[1], calendar_id, event_id, "writer")
            if isinstance(found, Response):
                return found
            cal, rec = found
            if (err := send_updates_ok()) is not None:
                return err
            if rec.resource.get("status") == "cancelled":
                return _gone()
            rec.resource["status"] = "cancelled"
            _touch(state, rec.resource, bump_sequence=False)
            record_updates("delete", cal.id, rec.resource)
            state.notify_change(cal.id)
            return empty_response(204)

    # ---- freebusy.query --------------------------------------------------------------------

    @app.post(f"{prefix}/freeBusy")
    def freebusy() -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.freebusy.query")
            if isinstance(auth, Response):
                return auth
            _, user = auth
            body = body_object()
            if isinstance(body, Response):
                return body
            if (err := type_errors(record_findings("calendar.freebusy.query", body))) is not None:
                return err
            raw_min, raw_max = body.get("timeMin"), body.get("timeMax")
            if not raw_min:
                return _bad_request("Missing timeMin parameter.", reason="required", location="timeMin")
            if not raw_max:
                return _bad_request("Missing timeMax parameter.", reason="required", location="timeMax")
            tmin, tmax = parse_rfc3339(str(raw_min)), parse_rfc3339(str(raw_max))
            if tmin is None or tmin.tzinfo is None:
                return _bad_request("Bad Request", location="timeMin")
            if tmax is None or tmax.tzinfo is None:
                return _bad_request("Bad Request", location="timeMax")
            tmin, tmax = tmin.astimezone(UTC), tmax.astimezone(UTC)
            if tmax <= tmin:
                return _bad_request(
                    "The specified time range is empty.", reason="timeRangeEmpty", domain="calendar", location="timeMax"
                )
            max_days = state.settings.freebusy_max_days
            if max_days is not None and tmax - tmin > timedelta(days=max_days):
                return _bad_request(
                    "The requested time range is too long.",
                    reason="timeRangeTooLong",
                    domain="calendar",
                    location="timeMax",
                )
            tzname = str(body.get("timeZone") or "UTC")
            out_tz = _zone(tzname)
            if out_tz is None:
                return _bad_request(f"Invalid time zone: {tzname}", location="timeZone")
            limit = state.settings.freebusy_max_calendars
            cem = body.get("calendarExpansionMax")
            if isinstance(cem, int) and 0 < cem < limit:
                limit = cem
            calendars: dict[str, JSONDict] = {}
            items = body.get("items") or []
            for i, item in enumerate(items):
                key = str(item.get("id", "")) if isinstance(item, Mapping) else ""
                if i >= limit:
                    calendars[key] = {
                        "busy": [],
                        "errors": [{"domain": "global", "reason": "tooManyCalendarsRequested"}],
                    }
                    continue
                cid = user.email if key == "primary" else key
                role = user.calendars.get(cid)
                cal = state.calendars.get(cid)
                if cal is None or role in (None, "none"):
                    calendars[key] = {"busy": [], "errors": [{"domain": "global", "reason": "notFound"}]}
                    continue
                spans: list[tuple[datetime, datetime]] = []
                for rec in state.events.get(cid, {}).values():
                    res = rec.resource
                    if res.get("status") == "cancelled" or res.get("transparency") == "transparent":
                        continue
                    if res.get("eventType") in ("workingLocation", "birthday"):
                        continue
                    if _declined_by_owner(res, cid):
                        continue
                    spans.extend(_expand_busy(rec, cal.time_zone, tmin, tmax))
                spans = sorted((max(s, tmin), min(e, tmax)) for s, e in spans)
                merged: list[list[datetime]] = []
                for s, e in spans:
                    if merged and s <= merged[-1][1]:
                        merged[-1][1] = max(merged[-1][1], e)
                    else:
                        merged.append([s, e])
                calendars[key] = {
                    "busy": [{"start": _fmt_busy(s, out_tz), "end": _fmt_busy(e, out_tz)} for s, e in merged]
                }
            return json_response(
                {
                    "kind": "calendar#freeBusy",
                    "timeMin": rfc3339_millis(tmin.timestamp()),
                    "timeMax": rfc3339_millis(tmax.timestamp()),
                    "calendars": calendars,
                }
            )

    # ---- events.watch / channels.stop ------------------------------------------------------

    @app.post(f"{prefix}/calendars/<calendar_id>/events/watch")
    def events_watch(calendar_id: str) -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.events.watch")
            if isinstance(auth, Response):
                return auth
            at, user = auth
            found = calendar_for(user, calendar_id, "reader")
            if isinstance(found, Response):
                return found
            cal, _ = found
            body = body_object()
            if isinstance(body, Response):
                return body
            if (err := type_errors(record_findings("calendar.events.watch", body))) is not None:
                return err
            cid, ctype, address = body.get("id"), body.get("type"), body.get("address")
            if not cid:
                return _bad_request("Required", reason="required", location="id")
            if ctype not in ("web_hook", "webhook"):
                return _bad_request(f"Invalid channel type: {ctype}", reason="push.invalidType")
            if not address or not isinstance(address, str):
                return _bad_request("Required", reason="required", location="address")
            if state.settings.require_https_push and not address.startswith("https://"):
                return _bad_request(f"WebHook callback must be HTTPS: {address}", reason="push.webhookUrlNotHttps")
            if not address.startswith(("http://", "https://")):
                return _bad_request(f"Invalid webhook address: {address}", reason="push.webhookUrlUnknownType")
            if cid in state.channels:
                return _bad_request(f"Channel id {cid} not unique", reason="channelIdNotUnique", domain="push")
            now_ms = int(state.now() * 1000)
            params = body.get("params") or {}
            ttl = CHANNEL_DEFAULT_TTL
            if isinstance(params, Mapping) and str(params.get("ttl", "")).isdigit():
                ttl = int(params["ttl"])
            expiration = now_ms + min(ttl, CHANNEL_MAX_TTL) * 1000
            if body.get("expiration") is not None:
                try:
                    expiration = min(int(body["expiration"]), now_ms + CHANNEL_MAX_TTL * 1000)
                except (TypeError, ValueError):
                    return _bad_request("Invalid expiration", location="expiration")
            channel = Channel(
                id=str(cid),
                resource_id=state.resource_id_for(cal.id),
                resource_uri=f"{state.base_url}{prefix}/calendars/{calendar_id}/events?alt=json",
                address=address,
                expiration_ms=expiration,
                calendar_id=cal.id,
                email=user.email,
                client_id=at.client_id,
                token=str(body["token"]) if body.get("token") is not None else None,
                created=state.now(),
                params={str(k): str(v) for k, v in params.items()} if isinstance(params, Mapping) else {},
            )
            state.channels[channel.id] = channel
            channel.message_number = 1
            state._enqueue_push(channel, "sync")
            out: JSONDict = {
                "kind": "api#channel",
                "id": channel.id,
                "resourceId": channel.resource_id,
                "resourceUri": channel.resource_uri,
                "expiration": str(channel.expiration_ms),
            }
            if channel.token is not None:
                out["token"] = channel.token
            return json_response(out)

    @app.post(f"{prefix}/channels/stop")
    def channels_stop() -> ResponseReturnValue:
        with state.lock:
            auth = authorize("calendar.channels.stop")
            if isinstance(auth, Response):
                return auth
            at, _user = auth
            body = body_object()
            if isinstance(body, Response):
                return body
            cid, rid = body.get("id"), body.get("resourceId")
            if not cid:
                return _bad_request("Required", reason="required", location="id")
            if not rid:
                return _bad_request("Required", reason="required", location="resourceId")
            ch = state.channels.get(str(cid))
            if ch is None or ch.resource_id != rid or ch.stopped or ch.client_id != at.client_id:
                return api_error(404, f"Channel '{cid}' not found for project", "notFound")
            ch.stopped = True
            return empty_response(204)

    @app.route(f"{prefix}/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def calendar_unknown(rest: str) -> ResponseReturnValue:
        return _not_found()


def _install_admin(app: Flask, state: GoogleState) -> None:
    a = ADMIN_PREFIX

    @app.post(f"{a}/clients")
    def admin_clients() -> ResponseReturnValue:
        b = request_json_object() or {}
        try:
            c = state.add_client(str(b["client_id"]), str(b["client_secret"]), list(b.get("redirect_uris", [])))
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
        return json_response(asdict(u), 201)

    @app.post(f"{a}/consent")
    def admin_consent() -> ResponseReturnValue:
        """``{"email": ..., "sticky": bool, "deny": bool|int, "scopes": [...]}``"""
        b = request_json_object() or {}
        with state.lock:
            if b.get("email"):
                email = str(b["email"]).lower()
                if email not in state.users:
                    state.add_user(email)
                if b.get("sticky"):
                    state.consent_user = email
                else:
                    state.next_consent_user = email
            deny = b.get("deny")
            if deny is not None:
                state.deny_next = int(deny)
            if "scopes" in b:
                state.next_grant_scopes = list(b["scopes"]) if b["scopes"] is not None else None
            return json_response(state.snapshot()["consent"])

    @app.post(f"{a}/calendars/<calendar_id>/events")
    def admin_seed_event(calendar_id: str) -> ResponseReturnValue:
        b = request_json_object() or {}
        try:
            return json_response(state.seed_event(calendar_id, b), 201)
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)

    @app.patch(f"{a}/calendars/<calendar_id>/events/<event_id>")
    def admin_update_event(calendar_id: str, event_id: str) -> ResponseReturnValue:
        b = request_json_object() or {}
        try:
            return json_response(state.update_event_external(calendar_id, event_id, b))
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)

    @app.delete(f"{a}/calendars/<calendar_id>/events/<event_id>")
    def admin_delete_event(calendar_id: str, event_id: str) -> ResponseReturnValue:
        try:
            state.delete_event_external(calendar_id, event_id)
        except KeyError as exc:
            return json_response({"error": str(exc)}, 404)
        return empty_response(204)


# --------------------------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------------------------


class GoogleEmulator(EmulatorServer):
    """The Google emulator server. ``GoogleEmulator().start()``; ``.base_url``; ``.stop()``.

    Python knobs mirror the admin API (``/_admin/...``)."""

    state: GoogleState

    def __init__(
        self,
        host: str = LOOPBACK,
        port: int = 0,
        clients: Iterable[OAuthClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        st = GoogleState(clients=clients, users=users)
        super().__init__(create_app(st), st, host=host, port=port)

    def _on_started(self) -> None:
        self.state.pusher = PushDispatcher(self.state)
        self.state.pusher.start()

    def _on_stopping(self) -> None:
        if self.state.pusher is not None:
            self.state.pusher.stop()
            self.state.pusher = None

    # endpoints ------------------------------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/o/oauth2/v2/auth"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/revoke"

    @property
    def userinfo_url(self) -> str:
        return f"{self.base_url}/v1/userinfo"

    @property
    def calendar_base(self) -> str:
        return f"{self.base_url}/calendar/v3"

    def environment(
        self, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET
    ) -> dict[str, str]:
        """The settings (``shared.config.ProviderSettings`` env names) that point our code here."""
        return {
            "GOOGLE_AUTH_URL": self.authorize_url,
            "GOOGLE_TOKEN_URL": self.token_url,
            "GOOGLE_REVOKE_URL": self.revoke_url,
            "GOOGLE_USERINFO_URL": self.userinfo_url,
            "GOOGLE_API_BASE": self.calendar_base,
            "GOOGLE_CLIENT_ID": client_id,
            "GOOGLE_CLIENT_SECRET": client_secret,
        }

    def endpoints(self) -> dict[str, str]:
        return {
            "base_url": self.base_url,
            "authorize": self.authorize_url,
            "token": self.token_url,
            "revoke": self.revoke_url,
            "userinfo": self.userinfo_url,
            "calendar": self.calendar_base,
            "admin": f"{self.base_url}{ADMIN_PREFIX}",
        }

    # knobs ----------------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> OAuthClient:
        return self.state.add_client(client_id, client_secret, redirect_uris)

    def add_user(self, email: str, name: str | None = None, **kw: Any) -> GoogleUser:
        return self.state.add_user(email, name, **kw)

    def set_next_consent(
        self, email: str | None = None, *, deny: bool = False, scopes: Iterable[str] | None = None, sticky: bool = False
    ) -> None:
        with self.state.lock:
            if email:
                e = email.lower()
                if e not in self.state.users:
                    self.state.add_user(e)
                if sticky:
                    self.state.consent_user = e
                else:
                    self.state.next_consent_user = e
            if deny:
                self.state.deny_next += 1
            self.state.next_grant_scopes = list(scopes) if scopes is not None else None

    def configure(self, **settings: Any) -> GoogleSettings:
        result: GoogleSettings = self.state.apply_settings(settings)
        return result

    def set_token_factory(self, factory: TokenFactory | None) -> None:
        """Issue codes and tokens made by ``factory`` (see :data:`TokenFactory`); ``None`` = random again."""
        with self.state.lock:
            self.state.token_factory = factory

    def seed_event(self, calendar_id: str, event: Mapping[str, Any]) -> JSONDict:
        return self.state.seed_event(calendar_id, event)

    def update_event_external(self, calendar_id: str, event_id: str, changes: Mapping[str, Any]) -> JSONDict:
        return self.state.update_event_external(calendar_id, event_id, changes)

    def delete_event_external(self, calendar_id: str, event_id: str) -> None:
        self.state.delete_event_external(calendar_id, event_id)

    # reads ----------------------------------------------------------------------------------

    def events(self, calendar_id: str) -> list[JSONDict]:
        with self.state.lock:
            recs = self.state.events.get(calendar_id) or self.state.events.get(calendar_id.lower(), {})
            return [json.loads(json.dumps(r.resource)) for r in recs.values()]

    def token_calls(self, grant_type: str | None = None) -> int:
        with self.state.lock:
            if grant_type is None:
                return sum(self.state.grant_counts.values())
            return self.state.grant_counts.get(grant_type, 0)

    def push_deliveries(self) -> list[JSONDict]:
        with self.state.lock:
            return list(self.state.push_deliveries)

    def flush_pushes(self, timeout: float = 5.0) -> bool:
        pusher = self.state.pusher
        return pusher.wait_idle(timeout) if pusher is not None else True

    def reset(self) -> None:
        pusher = self.state.pusher
        if pusher is not None:
            pusher.wait_idle(2.0)
        super().reset()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Google OAuth + Calendar emulator on loopback")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redirect-uri", action="append", default=[], help="register for the default client")
    args = parser.parse_args(argv)
    emu = GoogleEmulator(host=args.host, port=args.port)
    for uri in args.redirect_uri:
        emu.add_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [uri])
    emu.start()
    print(json.dumps({"google": emu.endpoints(), "client_id": DEFAULT_CLIENT_ID}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
