"""What the Zoom emulator holds: clients, users, codes and tokens (grouped by grant), meetings,
list page tokens, daily-cap counters, webhook deliveries, and every call made.

Rules: every read or write happens under ``state.lock``; revoking any token of a grant revokes
the whole grant (access and refresh tokens).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from devstack.emulators.common import JSONDict, OAuthState, random_from
from devstack.emulators.zoom.model import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    DEFAULT_SCOPES,
    DEFAULT_USER_EMAIL,
    PLAN_LICENSED,
    ZoomAccessToken,
    ZoomClient,
    ZoomCode,
    ZoomRefreshToken,
    ZoomSettings,
    ZoomUser,
    op_scopes,
)

_DEFAULT_USER: JSONDict = {
    "email": DEFAULT_USER_EMAIL,
    "first_name": "Maya",
    "last_name": "Mentor",
    "type": PLAN_LICENSED,
    "timezone": "Europe/Berlin",
}


def _zoom_user_id() -> str:
    return random_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 22)


class ZoomState(OAuthState[ZoomClient, ZoomCode, ZoomAccessToken, ZoomRefreshToken]):
    name = "zoom"

    def __init__(
        self,
        clients: Iterable[ZoomClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            clients,
            users,
            lambda: [ZoomClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, [DEFAULT_REDIRECT_URI])],
            lambda: [dict(_DEFAULT_USER)],
        )
        self.op_scopes = op_scopes()
        self._init_data()

    def _init_data(self) -> None:
        self._init_oauth()
        self.settings: ZoomSettings = ZoomSettings()
        self.account_id = random_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", 22)
        self.users: dict[str, ZoomUser] = {}
        self.meetings: dict[int, JSONDict] = {}
        self.deleted_meetings: dict[int, JSONDict] = {}
        # next_page_token -> (user id, query fingerprint, offset, expires at)
        self.page_tokens: dict[str, tuple[str, str, int, float]] = {}
        self.daily_counts: Counter[tuple[str, str]] = Counter()
        self.webhook_deliveries: list[JSONDict] = []
        #: Refreshes whose answer is lost after the rotation (``ZoomEmulator.lose_refresh_answers``).
        self.lost_refresh_answers = 0
        self.lost_refresh_status = 502
        self._seed(_copy_client)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._init_data()

    # ---- seeding -------------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: Iterable[str],
        scopes: Iterable[str] | None = None,
        webhook_secret_token: str | None = None,
        **_ignored: Any,
    ) -> ZoomClient:
        uris = list(redirect_uris)

        def update(existing: ZoomClient) -> None:
            if scopes is not None:
                existing.scopes = list(scopes)
            if webhook_secret_token:
                existing.webhook_secret_token = webhook_secret_token

        def make() -> ZoomClient:
            client = ZoomClient(
                client_id, client_secret, uris, list(scopes) if scopes is not None else list(DEFAULT_SCOPES)
            )
            if webhook_secret_token:
                client.webhook_secret_token = webhook_secret_token
            return client

        return self._add_client(client_id, client_secret, uris, make, update)

    def client_extras(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"scopes": body.get("scopes"), "webhook_secret_token": body.get("webhook_secret_token")}

    def has_user(self, email: str) -> bool:
        return self.user_by_email(email) is not None

    def user_json(self, user: Any) -> JSONDict:
        return {**asdict(user), "display_name": user.display_name}

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
    # ---- snapshot ------------------------------------------------------------------------

    def snapshot_head(self) -> JSONDict:
        return {
            "settings": asdict(self.settings),
            "account_id": self.account_id,
            "clients": [asdict(c) for c in self.clients.values()],
            "users": [{**asdict(u), "display_name": u.display_name} for u in self.users.values()],
        }

    def snapshot_tail(self) -> JSONDict:
        return {
            "meetings": [dict(m) for m in self.meetings.values()],
            "deleted_meetings": [dict(m) for m in self.deleted_meetings.values()],
            "daily_meeting_counts": {f"{uid}/{day}": n for (uid, day), n in self.daily_counts.items()},
            "request_findings": list(self.request_findings),
            "webhook_deliveries": list(self.webhook_deliveries),
        }


def _copy_client(c: ZoomClient) -> ZoomClient:
    return ZoomClient(c.client_id, c.client_secret, list(c.redirect_uris), list(c.scopes), c.webhook_secret_token)
