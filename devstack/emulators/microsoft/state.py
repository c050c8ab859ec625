"""What the Microsoft emulator holds: the app registrations, users with their calendars, codes and
tokens (one refresh-token family per consent), events, subscriptions with their deliveries, the
per-app-and-mailbox request windows, and every call made.

Rules: every read or write happens under ``state.lock``; a change to an event - through Graph or
through the admin API (the mentor editing Outlook) - notifies the live subscriptions on its
calendar; revoking a token revokes its whole family.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from devstack.emulators.common import JSONDict, OAuthState, random_urlsafe
from devstack.emulators.microsoft import event_data
from devstack.emulators.microsoft.model import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TENANT_ID,
    DEFAULT_USER_EMAIL,
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

if TYPE_CHECKING:
    from devstack.emulators.microsoft.notify import Notifier


def _guid(seed: str) -> str:
    return str(uuid.UUID(hashlib.sha256(seed.encode()).hexdigest()[:32]))


class MicrosoftState(OAuthState[MsClient, MsCode, MsAccessToken, MsRefreshToken]):
    name = "microsoft"

    def __init__(
        self,
        clients: Iterable[MsClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            clients,
            users,
            lambda: [MsClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [DEFAULT_REDIRECT_URI])],
            lambda: [{"email": DEFAULT_USER_EMAIL, "name": "Maya Mentor", "time_zone": "Europe/Berlin"}],
        )
        self.tenant_id = DEFAULT_TENANT_ID
        self.notifier: Notifier | None = None
        #: Accept ``http://`` notification URLs on loopback (the local stack); kept across resets.
        self.allow_http_loopback_notifications = False
        self._init_data()

    def _init_data(self) -> None:
        self._init_oauth()
        self.settings: MsSettings = MsSettings()
        self.users: dict[str, MsUser] = {}
        self.calendars: dict[str, MsCalendar] = {}
        self.events: dict[str, EventRecord] = {}
        self.transactions: dict[tuple[str, str], str] = {}  # (user id, transactionId) -> event id
        self.subscriptions: dict[str, Subscription] = {}
        self.deleted_subscriptions: list[JSONDict] = []
        self.validations: list[JSONDict] = []
        self.deliveries: list[JSONDict] = []
        self.windows: dict[tuple[str, str], deque[float]] = {}
        self._seed(lambda c: MsClient(c.client_id, c.client_secret, list(c.redirect_uris), c.display_name))

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._init_data()

    # ---- seeding -------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str], **_: Any) -> MsClient:
        uris = list(redirect_uris)
        return self._add_client(
            client_id, client_secret, uris, lambda: MsClient(client_id, client_secret, uris), lambda _c: None
        )

    def has_user(self, email: str) -> bool:
        return self.user_by_email(email) is not None

    def user_by_email(self, email: str) -> MsUser | None:
        e = email.lower()
        return next(
            (u for u in self.users.values() if e in ((u.mail or "").lower(), u.user_principal_name.lower())), None
        )

    def add_user(
        self,
        email: str,
        name: str | None = None,
        time_zone: str = "UTC",
        calendars: Iterable[Mapping[str, Any]] | None = None,
        has_mail: bool = True,
        user_principal_name: str | None = None,
        online_meetings: bool = True,
        **_ignored: Any,
    ) -> MsUser:
        """Seed a work account: ``email`` is its mail (``has_mail=False``: none, only the UPN) and,
        unless given, its userPrincipalName. It gets a default calendar "Calendar"; ``calendars``
        adds more: ``{"name", "can_edit", "online_meetings", "id"}``."""
        email = email.lower()
        with self.lock:
            user = self.user_by_email(email)
            if user is None:
                display = name or email.split("@")[0].replace(".", " ").title()
                given, _, surname = display.partition(" ")
                user = MsUser(
                    id=_guid("user:" + email),
                    mail=email if has_mail else None,
                    user_principal_name=user_principal_name or email,
                    display_name=display,
                    given_name=given,
                    surname=surname,
                    time_zone=time_zone,
                )
                self.users[user.id] = user
                self._add_calendar(user, {"name": "Calendar", "online_meetings": online_meetings}, default=True)
            elif name:
                user.display_name = name
            for cal in calendars or []:
                self._add_calendar(user, cal, default=False)
            return user

    def _add_calendar(self, user: MsUser, spec: Mapping[str, Any], *, default: bool) -> MsCalendar:
        cid = str(
            spec.get("id") or "AAMkAD" + _guid(f"calendar:{user.id}:{spec.get('name')}").replace("-", "") + "AAA="
        )
        cal = MsCalendar(
            id=cid,
            name=str(spec.get("name", "Calendar")),
            owner_id=user.id,
            owner_email=user.address,
            can_edit=bool(spec.get("can_edit", True)),
            is_default=default,
            online_meetings=bool(spec.get("online_meetings", True)),
        )
        self.calendars[cid] = cal
        if cid not in user.calendars:
            user.calendars.append(cid)
        return cal

    def default_calendar(self, user: MsUser) -> MsCalendar:
        return self.calendars[user.calendars[0]]

    def resolve_user_for_consent(self, login_hint: str | None) -> MsUser:
        """Who consents: the one-shot choice, the login hint, the sticky choice, else the default
        test user (created when nobody is seeded)."""
        email = self.next_consent_user or login_hint or self.consent_user or DEFAULT_USER_EMAIL
        self.next_consent_user = None
        return self.user_by_email(email) or self.add_user(email)

    # ---- tokens --------------------------------------------------------------------------

    def revoke_family(self, family: str) -> int:
        n = 0
        tokens: list[MsAccessToken | MsRefreshToken] = [*self.access_tokens.values(), *self.refresh_tokens.values()]
        for tok in tokens:
            if tok.family == family and not tok.revoked:
                tok.revoked = True
                n += 1
        return n

    def revoke_token(self, token: str) -> bool:
        with self.lock:
            tok = self.access_tokens.get(token) or self.refresh_tokens.get(token)
            return tok is not None and not tok.revoked and self.revoke_family(tok.family) > 0

    def revoke_user(self, email: str) -> int:
        """Revoke every grant of a user (an admin's "revoke sessions", [RT] §3)."""
        with self.lock:
            user = self.user_by_email(email)
            if user is None:
                return 0
            families = {t.family for t in self.refresh_tokens.values() if t.user_id == user.id}
            families |= {t.family for t in self.access_tokens.values() if t.user_id == user.id}
            return sum(self.revoke_family(f) for f in families)

    def expire_access_tokens(self, email: str | None = None, token: str | None = None) -> int:
        with self.lock:
            user = self.user_by_email(email) if email else None
            past, n = self.now() - 1, 0
            for at in self.access_tokens.values():
                if (token and at.token == token) or (user and at.user_id == user.id) or (not token and not email):
                    at.expires_at = min(at.expires_at, past)
                    n += 1
            return n

    # ---- external changes (the mentor editing Outlook) -----------------------------------

    def _calendar(self, calendar_id: str) -> MsCalendar:
        cal = self.calendars.get(calendar_id)
        if cal is None:
            raise KeyError(f"unknown calendar {calendar_id}")
        return cal

    def _event(self, event_id: str) -> EventRecord:
        rec = self.events.get(event_id)
        if rec is None or rec.deleted:
            raise KeyError(f"unknown event {event_id}")
        return rec

    def seed_event(self, calendar_id: str, body: Mapping[str, Any]) -> JSONDict:
        """Create an event as Outlook would (no Graph checks beyond the event's own); notifies."""
        with self.lock:
            cal = self._calendar(calendar_id)
            user = self.users[cal.owner_id]
            eid = event_data.new_event_id()
            resource, start, end = event_data.new_event(eid, cal, user, body, self.now(), self.tenant_id)
            rec = EventRecord(eid, cal.id, resource, start, end)
            self.events[eid] = rec
            self.notify_change(rec, "created")
            return self.show(rec)

    def update_event_external(self, event_id: str, changes: Mapping[str, Any]) -> JSONDict:
        with self.lock:
            rec = self._event(event_id)
            cal = self.calendars[rec.calendar_id]
            start, end = event_data.apply_patch(
                rec.resource, changes, cal, self.users[cal.owner_id], self.tenant_id, self.now()
            )
            rec.start_ts = start if start is not None else rec.start_ts
            rec.end_ts = end if end is not None else rec.end_ts
            self.notify_change(rec, "updated")
            return self.show(rec)

    def delete_event_external(self, event_id: str) -> None:
        with self.lock:
            rec = self._event(event_id)
            rec.deleted = True
            self.notify_change(rec, "deleted")

    def show(self, rec: EventRecord, tz_name: str = "UTC") -> JSONDict:
        user_id = self.calendars[rec.calendar_id].owner_id
        context = f"https://graph.microsoft.com/v1.0/$metadata#users('{user_id}')/events/$entity"
        return event_data.show_event(rec.resource, rec.start_ts, rec.end_ts, tz_name, context)

    # ---- change notifications ------------------------------------------------------------

    def notify_change(self, rec: EventRecord, change_type: str) -> None:
        """Queue a change notification for every live subscription watching the event's calendar."""
        now = self.now()
        user_id = self.calendars[rec.calendar_id].owner_id
        for sub in self.subscriptions.values():
            if sub.calendar_id != rec.calendar_id or sub.expiration <= now or change_type not in sub.change_types:
                continue
            resource = f"Users/{user_id}/Events/{rec.id}"
            item: JSONDict = {
                "id": random_urlsafe(12),
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": event_data.graph_timestamp(sub.expiration),
                "changeType": change_type,
                "resource": resource,
                "tenantId": self.tenant_id,
                "clientState": sub.client_state,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "@odata.etag": f'W/"{rec.resource["changeKey"]}"',
                    "id": rec.id,
                },
            }
            self.deliver(sub.notification_url, {"value": [item]}, kind="change", subscription_id=sub.id)

    def lifecycle_payload(self, sub: Subscription, event: str) -> JSONDict:
        return {
            "value": [
                {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": event_data.graph_timestamp(sub.expiration),
                    "tenantId": self.tenant_id,
                    "clientState": sub.client_state,
                    "lifecycleEvent": event,
                }
            ]
        }

    def deliver(self, url: str, payload: JSONDict, *, kind: str, subscription_id: str) -> None:
        record: JSONDict = {"ts": self.now(), "kind": kind, "url": url, "subscription_id": subscription_id}
        record["payload"] = payload
        if self.notifier is None:
            record["error"] = "emulator not running"
            self.deliveries.append(record)
            return
        self.notifier.enqueue(record, self.settings.notification_delay_ms)

    # ---- snapshot ------------------------------------------------------------------------

    def snapshot_head(self) -> JSONDict:
        return {
            "settings": asdict(self.settings),
            "tenant_id": self.tenant_id,
            "clients": [asdict(c) for c in self.clients.values()],
            "users": [asdict(u) for u in self.users.values()],
            "calendars": [asdict(c) for c in self.calendars.values()],
        }

    def snapshot_tail(self) -> JSONDict:
        return {
            "events": [self.show(r) for r in self.events.values() if not r.deleted],
            "deleted_events": [r.id for r in self.events.values() if r.deleted],
            "subscriptions": [asdict(s) for s in self.subscriptions.values()],
            "deleted_subscriptions": list(self.deleted_subscriptions),
            "validations": list(self.validations),
            "deliveries": list(self.deliveries),
            "request_findings": list(self.request_findings),
        }
