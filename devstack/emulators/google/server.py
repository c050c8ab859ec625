"""The Google emulator's Flask app and server (:class:`GoogleEmulator`).

Rules: the app is the common hooks and admin routes plus one blueprint per resource; the server
starts the push dispatcher with itself and drains it before a reset.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask

from devstack.emulators.common import (
    LOOPBACK,
    JSONDict,
    OAuthEmulator,
    ProviderSpec,
    create_oauth_app,
    run_standalone,
)
from devstack.emulators.google import admin, calendar_list, channels, events, freebusy
from devstack.emulators.google.errors import fault_responder
from devstack.emulators.google.model import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    GoogleSettings,
    GoogleUser,
    OAuthClient,
)
from devstack.emulators.google.oauth import GoogleOAuth
from devstack.emulators.google.push import PushDispatcher
from devstack.emulators.google.state import GoogleState

SPEC = ProviderSpec(
    state=GoogleState,
    oauth=GoogleOAuth,
    fault_responder=fault_responder,
    blueprints=(calendar_list.blueprint, events.blueprint, freebusy.blueprint, channels.blueprint, admin.blueprint),
    env_prefix="GOOGLE_",
    default_client_id=DEFAULT_CLIENT_ID,
    default_client_secret=DEFAULT_CLIENT_SECRET,
)


def create_app(state: GoogleState) -> Flask:
    return create_oauth_app(state, SPEC)


class GoogleEmulator(OAuthEmulator[OAuthClient]):
    """The Google emulator server. ``GoogleEmulator().start()``; ``.base_url``; ``.stop()``.

    Python knobs mirror the admin API (``/_admin/...``)."""

    state: GoogleState
    SPEC = SPEC

    def __init__(
        self,
        host: str = LOOPBACK,
        port: int = 0,
        clients: Iterable[OAuthClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
        *,
        allow_http_loopback_push: bool = False,
    ) -> None:
        """``allow_http_loopback_push``: take ``http://`` watch addresses on loopback (the local
        stack's receivers); otherwise, as Google, only ``https://`` ones (kept across resets)."""
        super().__init__(host, port, clients, users)
        self.state.allow_http_loopback_push = allow_http_loopback_push

    def _on_started(self) -> None:
        self.state.pusher = PushDispatcher(self.state)
        self.state.pusher.start()

    def _on_stopping(self) -> None:
        if self.state.pusher is not None:
            self.state.pusher.stop()
            self.state.pusher = None

    # endpoints ------------------------------------------------------------------------------

    @property
    def userinfo_url(self) -> str:
        return f"{self.base_url}/v1/userinfo"

    @property
    def calendar_base(self) -> str:
        return f"{self.base_url}/calendar/v3"

    def api_urls(self) -> dict[str, tuple[str, str]]:
        return {"userinfo": ("USERINFO_URL", self.userinfo_url), "calendar": ("API_BASE", self.calendar_base)}

    # knobs ----------------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> OAuthClient:
        return self.state.add_client(client_id, client_secret, redirect_uris)

    def add_user(self, email: str, name: str | None = None, **kw: Any) -> GoogleUser:
        return self.state.add_user(email, name, **kw)

    def set_next_consent(
        self, email: str | None = None, *, deny: bool = False, scopes: Iterable[str] | None = None, sticky: bool = False
    ) -> None:
        with self.state.lock:
            self.set_consent(email, deny=deny, sticky=sticky)
            self.state.next_grant_scopes = list(scopes) if scopes is not None else None

    def configure(self, **settings: Any) -> GoogleSettings:
        result: GoogleSettings = self.state.apply_settings(settings)
        return result

    def seed_event(self, calendar_id: str, event: Mapping[str, Any]) -> JSONDict:
        return self.state.seed_event(calendar_id, event)

    def update_event_external(self, calendar_id: str, event_id: str, changes: Mapping[str, Any]) -> JSONDict:
        return self.state.update_event_external(calendar_id, event_id, changes)

    def delete_event_external(self, calendar_id: str, event_id: str) -> None:
        self.state.delete_event_external(calendar_id, event_id)

    def drop_channel(self, channel_id: str) -> None:
        """Google drops the watch channel silently (no message; ``/_admin/channels/{id}/drop``)."""
        self.state.drop_channel(channel_id)

    # reads ----------------------------------------------------------------------------------

    def events(self, calendar_id: str) -> list[JSONDict]:
        with self.state.lock:
            recs = self.state.events.get(calendar_id) or self.state.events.get(calendar_id.lower(), {})
            return [json.loads(json.dumps(r.resource)) for r in recs.values()]

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
    return run_standalone(
        "google", "Google OAuth + Calendar emulator on loopback", lambda h, p: GoogleEmulator(host=h, port=p), argv
    )
