"""What the Google emulator holds: clients, users, calendars, codes and tokens, events, watch
channels, and every call made (for the admin API and the tests).

Rules: every read or write happens under ``state.lock``; external calendar changes (the mentor
editing their own calendar through the admin API) notify watch channels like API changes do.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from devstack.emulators.common import JSONDict, OAuthState, http_date, random_from
from devstack.emulators.google.event_data import merge_patch, new_event_resource, touch
from devstack.emulators.google.model import (
    ACCESS_ROLES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    DEFAULT_USER_EMAIL,
    EVENT_READ_ONLY,
    AccessToken,
    AuthCode,
    Channel,
    EventRecord,
    GoogleCalendar,
    GoogleSettings,
    GoogleUser,
    OAuthClient,
    RefreshToken,
    known_scopes,
    method_scopes,
)

if TYPE_CHECKING:
    from devstack.emulators.google.push import PushDispatcher


class GoogleState(OAuthState[OAuthClient, AuthCode, AccessToken, RefreshToken]):
    name = "google"

    def __init__(
        self,
        clients: Iterable[OAuthClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            clients,
            users,
            lambda: [OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [DEFAULT_REDIRECT_URI])],
            lambda: [{"email": DEFAULT_USER_EMAIL, "name": "Maya Mentor", "time_zone": "Europe/Berlin"}],
        )
        self.method_scopes = method_scopes()
        self.known_scopes = known_scopes()
        self.pusher: PushDispatcher | None = None
        #: Accept ``http://`` watch addresses on loopback (the local stack); kept across resets.
        self.allow_http_loopback_push = False
        self._init_data()

    def _init_data(self) -> None:
        self._init_oauth()
        self.settings: GoogleSettings = GoogleSettings()
        self.users: dict[str, GoogleUser] = {}
        self.calendars: dict[str, GoogleCalendar] = {}
        # (email, client_id) -> granted scopes (for include_granted_scopes / refresh issuance)
        self.grants: dict[tuple[str, str], set[str]] = {}
        self.events: dict[str, dict[str, EventRecord]] = {}
        self.conferences: dict[tuple[str, str], JSONDict] = {}
        self.channels: dict[str, Channel] = {}
        self.resource_ids: dict[str, str] = {}
        self.push_deliveries: list[JSONDict] = []
        self.sent_updates: list[JSONDict] = []
        self.next_grant_scopes: list[str] | None = None  # one-shot partial consent
        self._etag_counter = int(time.time() * 1_000_000)
        self._seed(lambda c: OAuthClient(c.client_id, c.client_secret, list(c.redirect_uris)))

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._init_data()

    # ---- seeding -------------------------------------------------------------------------

    def add_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str], **_ignored: Any
    ) -> OAuthClient:
        uris = list(redirect_uris)
        return self._add_client(
            client_id, client_secret, uris, lambda: OAuthClient(client_id, client_secret, uris), lambda _c: None
        )

    def has_user(self, email: str) -> bool:
        return email in self.users

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

    # ---- consent knobs -------------------------------------------------------------------

    def on_consent_denied(self) -> None:
        self.next_grant_scopes = None
        self.next_consent_user = None

    def apply_consent_json(self, body: Mapping[str, Any]) -> None:
        """``{"email": ..., "sticky": bool, "deny": bool|int, "scopes": [...]}``"""
        super().apply_consent_json(body)
        if "scopes" in body:
            self.next_grant_scopes = list(body["scopes"]) if body["scopes"] is not None else None

    def consent_snapshot(self) -> JSONDict:
        return {**super().consent_snapshot(), "next_grant_scopes": self.next_grant_scopes}

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
            resource = new_event_resource(self, cal, owner, dict(event), event.get("id"))
            self.events.setdefault(calendar_id, {})[resource["id"]] = EventRecord(calendar_id, resource)
            self.notify_change(calendar_id)
            return dict(resource)

    def update_event_external(self, calendar_id: str, event_id: str, changes: Mapping[str, Any]) -> JSONDict:
        with self.lock:
            rec = self.events.get(calendar_id, {}).get(event_id)
            if rec is None:
                raise KeyError(f"unknown event {calendar_id}/{event_id}")
            merge_patch(rec.resource, {k: v for k, v in changes.items() if k not in EVENT_READ_ONLY})
            touch(self, rec.resource, bump_sequence=True)
            self.notify_change(calendar_id)
            return dict(rec.resource)

    def delete_event_external(self, calendar_id: str, event_id: str) -> None:
        with self.lock:
            rec = self.events.get(calendar_id, {}).get(event_id)
            if rec is None:
                raise KeyError(f"unknown event {calendar_id}/{event_id}")
            rec.resource["status"] = "cancelled"
            touch(self, rec.resource, bump_sequence=False)
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

    def drop_channel(self, channel_id: str) -> None:
        """Google drops a channel on its side without telling anyone: no message, its owner still
        believes it live, and changes no longer reach it (``channels.stop`` on it then answers 404)."""
        with self.lock:
            ch = self.channels.get(channel_id)
            if ch is None:
                raise KeyError(f"unknown channel {channel_id}")
            ch.stopped = True

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

    # ---- snapshot ------------------------------------------------------------------------

    def snapshot_head(self) -> JSONDict:
        return {
            "settings": asdict(self.settings),
            "clients": [asdict(c) for c in self.clients.values()],
            "users": [{**asdict(u), "primary_calendar": u.email} for u in self.users.values()],
            "calendars": [asdict(c) for c in self.calendars.values()],
        }

    def snapshot_tail(self) -> JSONDict:
        return {
            "events": {cid: [dict(r.resource) for r in recs.values()] for cid, recs in self.events.items()},
            "channels": [asdict(c) for c in self.channels.values()],
            "push_deliveries": list(self.push_deliveries),
            "sent_updates": list(self.sent_updates),
            "request_findings": list(self.request_findings),
        }
