"""The Microsoft emulator's Flask app and server (:class:`MicrosoftEmulator`).

Rules: the app is the common hooks and admin routes plus one blueprint per resource; the server
starts the notification dispatcher with itself and drains it before a reset. Its settings for
``shared.platform.config.ProviderSettings`` are ``MICROSOFT_AUTH_URL``, ``MICROSOFT_TOKEN_URL``,
``MICROSOFT_API_BASE`` (``.../v1.0``), ``MICROSOFT_CLIENT_ID`` and ``MICROSOFT_CLIENT_SECRET`` -
no revocation URL: the identity platform has none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask

from devstack.emulators.common import (
    ADMIN_PREFIX,
    LOOPBACK,
    JSONDict,
    OAuthEmulator,
    ProviderSpec,
    create_oauth_app,
    run_standalone,
)
from devstack.emulators.microsoft import admin, events, me, schedule, subscriptions
from devstack.emulators.microsoft.errors import fault_responder
from devstack.emulators.microsoft.model import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, MsClient, MsSettings, MsUser
from devstack.emulators.microsoft.notify import Notifier
from devstack.emulators.microsoft.oauth import MicrosoftOAuth
from devstack.emulators.microsoft.state import MicrosoftState

SPEC = ProviderSpec(
    state=MicrosoftState,
    oauth=MicrosoftOAuth,
    fault_responder=fault_responder,
    # me last: its catch-all answers every other /v1.0 path.
    blueprints=(events.blueprint, schedule.blueprint, subscriptions.blueprint, admin.blueprint, me.blueprint),
    env_prefix="MICROSOFT_",
    default_client_id=DEFAULT_CLIENT_ID,
    default_client_secret=DEFAULT_CLIENT_SECRET,
)


def create_app(state: MicrosoftState) -> Flask:
    return create_oauth_app(state, SPEC)


class MicrosoftEmulator(OAuthEmulator[MsClient]):
    """The Microsoft identity platform + Graph emulator. ``MicrosoftEmulator().start()``;
    ``.base_url``; ``.stop()``. Python knobs mirror the admin API (``/_admin/...``)."""

    state: MicrosoftState
    SPEC = SPEC

    def __init__(
        self,
        host: str = LOOPBACK,
        port: int = 0,
        clients: Iterable[MsClient] | None = None,
        users: Iterable[Mapping[str, Any]] | None = None,
        *,
        allow_http_loopback_notifications: bool = False,
    ) -> None:
        """``allow_http_loopback_notifications``: take ``http://`` notification URLs on loopback
        (the local stack's receivers); otherwise, as Graph, only ``https://`` (kept across resets)."""
        super().__init__(host, port, clients, users)
        self.state.allow_http_loopback_notifications = allow_http_loopback_notifications

    def _on_started(self) -> None:
        self.state.notifier = Notifier(self.state)
        self.state.notifier.start()

    def _on_stopping(self) -> None:
        if self.state.notifier is not None:
            self.state.notifier.stop()
            self.state.notifier = None

    # endpoints ------------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1.0"

    def api_urls(self) -> dict[str, tuple[str, str]]:
        return {"graph": ("API_BASE", self.api_base)}

    def environment(self, client_id: str | None = None, client_secret: str | None = None) -> dict[str, str]:
        """The ``ProviderSettings`` variables pointing our code here (no revocation URL)."""
        p = self.SPEC.env_prefix
        env = {f"{p}AUTH_URL": self.authorize_url, f"{p}TOKEN_URL": self.token_url}
        env.update({f"{p}{name}": url for name, url in self.api_urls().values()})
        env[f"{p}CLIENT_ID"] = client_id if client_id is not None else self.SPEC.default_client_id
        env[f"{p}CLIENT_SECRET"] = client_secret if client_secret is not None else self.SPEC.default_client_secret
        return env

    def endpoints(self) -> dict[str, str]:
        out = {"base_url": self.base_url, "authorize": self.authorize_url, "token": self.token_url}
        out.update({key: url for key, (_, url) in self.api_urls().items()})
        out["admin"] = f"{self.base_url}{ADMIN_PREFIX}"
        return out

    @property
    def revoke_url(self) -> str:
        raise AttributeError("the Microsoft identity platform has no token revocation endpoint")

    # knobs ----------------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str]) -> MsClient:
        return self.state.add_client(client_id, client_secret, redirect_uris)

    def add_user(self, email: str, name: str | None = None, **kw: Any) -> MsUser:
        return self.state.add_user(email, name, **kw)

    def set_next_consent(self, email: str | None = None, *, deny: bool = False, sticky: bool = False) -> None:
        self.set_consent(email, deny=deny, sticky=sticky)

    def configure(self, **settings: Any) -> MsSettings:
        result: MsSettings = self.state.apply_settings(settings)
        return result

    def seed_event(self, calendar_id: str, event: Mapping[str, Any]) -> JSONDict:
        return self.state.seed_event(calendar_id, event)

    def update_event_external(self, event_id: str, changes: Mapping[str, Any]) -> JSONDict:
        return self.state.update_event_external(event_id, changes)

    def delete_event_external(self, event_id: str) -> None:
        self.state.delete_event_external(event_id)

    def send_lifecycle(self, subscription_id: str, event: str) -> JSONDict:
        """Send a lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``,
        ``missed``) to the subscription's lifecycleNotificationUrl."""
        return admin.send_lifecycle(self.state, subscription_id, event)

    # reads ----------------------------------------------------------------------------------

    def default_calendar_id(self, email: str) -> str:
        with self.state.lock:
            user = self.state.user_by_email(email)
            if user is None:
                raise KeyError(email)
            return self.state.default_calendar(user).id

    def events(self, email: str | None = None) -> list[JSONDict]:
        with self.state.lock:
            user = self.state.user_by_email(email) if email else None
            recs = [r for r in self.state.events.values() if not r.deleted]
            if user is not None:
                recs = [r for r in recs if r.calendar_id in user.calendars]
            return [json.loads(json.dumps(self.state.show(r))) for r in recs]

    def subscriptions(self) -> list[JSONDict]:
        with self.state.lock:
            return [subscriptions.subscription_json(s) for s in self.state.subscriptions.values()]

    def deliveries(self, kind: str | None = None) -> list[JSONDict]:
        with self.state.lock:
            return [dict(d) for d in self.state.deliveries if kind is None or d["kind"] == kind]

    def validations(self) -> list[JSONDict]:
        with self.state.lock:
            return [dict(v) for v in self.state.validations]

    def flush_notifications(self, timeout: float = 5.0) -> bool:
        notifier = self.state.notifier
        return notifier.wait_idle(timeout) if notifier is not None else True

    def reset(self) -> None:
        notifier = self.state.notifier
        if notifier is not None:
            notifier.wait_idle(2.0)
        super().reset()


def main(argv: list[str] | None = None) -> int:
    return run_standalone(
        "microsoft",
        "Microsoft identity platform + Graph emulator on loopback",
        lambda h, p: MicrosoftEmulator(host=h, port=p),
        argv,
    )
