"""The Zoom emulator's Flask app and server (:class:`ZoomEmulator`).

Rules: the app is the common hooks and admin routes plus one blueprint per resource; Python knobs
mirror the admin API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Flask

from devstack.emulators.common import JSONDict, OAuthEmulator, ProviderSpec, create_oauth_app, run_standalone
from devstack.emulators.zoom import meeting_events, meetings, meetings_list, users, webhooks
from devstack.emulators.zoom.errors import fault_responder
from devstack.emulators.zoom.model import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ZoomClient, ZoomSettings, ZoomUser
from devstack.emulators.zoom.oauth import ZoomOAuth
from devstack.emulators.zoom.state import ZoomState
from devstack.emulators.zoom.webhooks import deauthorization_payload, secret_for, send_webhook, url_validation_payload

SPEC = ProviderSpec(
    state=ZoomState,
    oauth=ZoomOAuth,
    fault_responder=fault_responder,
    blueprints=(
        users.blueprint,
        meetings_list.blueprint,
        meetings.blueprint,
        webhooks.blueprint,
        meeting_events.blueprint,
    ),
    env_prefix="ZOOM_",
    default_client_id=DEFAULT_CLIENT_ID,
    default_client_secret=DEFAULT_CLIENT_SECRET,
)


def create_app(state: ZoomState) -> Flask:
    return create_oauth_app(state, SPEC)


class ZoomEmulator(OAuthEmulator[ZoomClient]):
    """The Zoom emulator server. ``ZoomEmulator().start()``; ``.base_url``; ``.stop()``."""

    state: ZoomState
    SPEC = SPEC

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v2"

    def api_urls(self) -> dict[str, tuple[str, str]]:
        return {"api": ("API_BASE", self.api_base)}

    # knobs ----------------------------------------------------------------------------------

    def add_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str], scopes: Iterable[str] | None = None
    ) -> ZoomClient:
        return self.state.add_client(client_id, client_secret, redirect_uris, scopes)

    def add_user(self, email: str, **kw: Any) -> ZoomUser:
        return self.state.add_user(email, **kw)

    def set_next_consent(self, email: str | None = None, *, deny: bool = False, sticky: bool = False) -> None:
        self.set_consent(email, deny=deny, sticky=sticky)

    def configure(self, **settings: Any) -> ZoomSettings:
        result: ZoomSettings = self.state.apply_settings(settings)
        return result

    def lose_refresh_answers(self, count: int = 1, status: int = 502) -> None:
        """The next ``count`` refreshes rotate the refresh token, then answer ``status`` instead of
        the new tokens (the answer is lost after Zoom rotated: only the latest token works)."""
        with self.state.lock:
            self.state.lost_refresh_answers = count
            self.state.lost_refresh_status = status

    def send_url_validation(self, url: str, secret_token: str | None = None) -> JSONDict:
        secret = secret_for(self.state, DEFAULT_CLIENT_ID, secret_token)
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
        secret = secret_for(self.state, client_id, secret_token)
        if revoke:
            self.state.revoke_user(email)
        return send_webhook(self.state, url, deauthorization_payload(self.state, user, client_id), secret)

    def subscribe_meeting_events(self, url: str, client_id: str = DEFAULT_CLIENT_ID) -> None:
        """Send ``meeting.deleted`` / ``meeting.updated`` of every meeting change to ``url`` ("" stops)."""
        self.configure(meeting_events_url=url, meeting_events_client_id=client_id)

    def host_delete_meeting(self, meeting_id: int | str) -> JSONDict:
        """The host deletes the meeting in Zoom (not through the app): ``meeting.deleted`` follows."""
        return meeting_events.host_delete(self.state, int(meeting_id))

    def host_update_meeting(self, meeting_id: int | str, **changes: Any) -> JSONDict | None:
        """The host edits the meeting in Zoom (e.g. ``start_time="2027-01-05T10:00:00Z"``): ``meeting.updated``."""
        return meeting_events.host_update(self.state, int(meeting_id), changes)

    def wait_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait for meeting events in flight to be delivered."""
        return meeting_events.wait_idle(timeout)

    # reads ----------------------------------------------------------------------------------

    def meetings(self, include_deleted: bool = False) -> list[JSONDict]:
        with self.state.lock:
            out = [json.loads(json.dumps(m)) for m in self.state.meetings.values()]
            if include_deleted:
                out += [json.loads(json.dumps({**m, "_deleted": True})) for m in self.state.deleted_meetings.values()]
            return out


def main(argv: list[str] | None = None) -> int:
    return run_standalone(
        "zoom", "Zoom OAuth + API emulator on loopback", lambda h, p: ZoomEmulator(host=h, port=p), argv
    )
