"""The providers of the local stack: Google, Zoom and Microsoft emulators, Radicale for Apple (PRODUCT.md §4).

Each class is a :class:`devstack.stack.Component`: ``start``/``stop``, ``endpoints()`` (merged into
the JSON line ``python -m devstack up`` prints) and ``environment()`` (the ``ProviderSettings``
variables that point the functions at it). :class:`~devstack.stack.LocalStack` starts them before
the API gateway, then calls :meth:`bind_api` with the gateway's URL so the emulators' OAuth clients
accept ``<API_URL>/oauth/{google,zoom,microsoft}/callback`` as redirect URIs.

    stack.component("zoom").send_deauthorization("mentor@example.com")   # signed, to /webhooks/zoom
    stack.component("caldav").server.add_user("ada@icloud.com", "abcd-efgh-ijkl-mnop")
"""

from __future__ import annotations

from typing import Any, Final

from devstack.emulators.common import LOOPBACK
from devstack.emulators.google import DEFAULT_CLIENT_ID as GOOGLE_CLIENT_ID
from devstack.emulators.google import DEFAULT_CLIENT_SECRET as GOOGLE_CLIENT_SECRET
from devstack.emulators.google import DEFAULT_REDIRECT_URI as GOOGLE_REDIRECT_URI
from devstack.emulators.google import GoogleEmulator, OAuthClient
from devstack.emulators.microsoft import DEFAULT_CLIENT_ID as MICROSOFT_CLIENT_ID
from devstack.emulators.microsoft import DEFAULT_CLIENT_SECRET as MICROSOFT_CLIENT_SECRET
from devstack.emulators.microsoft import DEFAULT_REDIRECT_URI as MICROSOFT_REDIRECT_URI
from devstack.emulators.microsoft import MicrosoftEmulator, MsClient
from devstack.emulators.zoom import DEFAULT_CLIENT_ID as ZOOM_CLIENT_ID
from devstack.emulators.zoom import DEFAULT_CLIENT_SECRET as ZOOM_CLIENT_SECRET
from devstack.emulators.zoom import DEFAULT_REDIRECT_URI as ZOOM_REDIRECT_URI
from devstack.emulators.zoom import ZoomClient, ZoomEmulator
from devstack.radicale import RadicaleServer
from shared.platform.config import ProviderSettings

#: The Zoom app's webhook Secret Token in the local stack (the emulator signs with it too).
DEV_ZOOM_WEBHOOK_SECRET_TOKEN: Final = "devstack-zoom-webhook-secret-token"


def callback_url(api_url: str, provider: str) -> str:
    """Where the provider sends the browser back: ``<API_URL>/oauth/<provider>/callback``."""
    return f"{api_url.rstrip('/')}/oauth/{provider}/callback"


class GoogleProvider:
    """The Google emulator (OAuth, userinfo, Calendar v3) as a stack component."""

    name = "google"

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        client_id: str = GOOGLE_CLIENT_ID,
        client_secret: str = GOOGLE_CLIENT_SECRET,
    ) -> None:
        # The seed client is kept (and extended by bind_api) so an emulator reset keeps its URIs.
        self.client = OAuthClient(client_id, client_secret, [GOOGLE_REDIRECT_URI])
        # Our webhook receiver is http on loopback; the emulator, like Google, takes only https
        # push addresses unless told otherwise.
        self.emulator = GoogleEmulator(host=host, port=port, clients=[self.client], allow_http_loopback_push=True)

    def start(self) -> None:
        self.emulator.start()

    def stop(self) -> None:
        self.emulator.stop()

    def bind_api(self, api_url: str) -> None:
        """Accept ``<api_url>/oauth/google/callback`` as a redirect URI of the OAuth client."""
        uri = callback_url(api_url, "google")
        if uri not in self.client.redirect_uris:
            self.client.redirect_uris.append(uri)
        self.emulator.state.add_client(self.client.client_id, self.client.client_secret, [uri])

    def endpoints(self) -> dict[str, str]:
        return {"google": self.emulator.base_url}

    def environment(self) -> dict[str, str]:
        return self.emulator.environment(self.client.client_id, self.client.client_secret)


class ZoomProvider:
    """The Zoom emulator (OAuth, Users/Meetings API, signed webhooks) as a stack component."""

    name = "zoom"

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        client_id: str = ZOOM_CLIENT_ID,
        client_secret: str = ZOOM_CLIENT_SECRET,
        webhook_secret_token: str = DEV_ZOOM_WEBHOOK_SECRET_TOKEN,
    ) -> None:
        self.client = ZoomClient(
            client_id, client_secret, [ZOOM_REDIRECT_URI], webhook_secret_token=webhook_secret_token
        )
        self.emulator = ZoomEmulator(host=host, port=port, clients=[self.client])
        self.webhook_url: str | None = None

    def start(self) -> None:
        self.emulator.start()

    def stop(self) -> None:
        self.emulator.stop()

    def bind_api(self, api_url: str) -> None:
        """Accept ``<api_url>/oauth/zoom/callback``; send webhooks to ``<api_url>/webhooks/zoom``."""
        uri = callback_url(api_url, "zoom")
        if uri not in self.client.redirect_uris:
            self.client.redirect_uris.append(uri)
        self.emulator.state.add_client(self.client.client_id, self.client.client_secret, [uri])
        self.webhook_url = f"{api_url.rstrip('/')}/webhooks/zoom"

    def _webhook_url(self, url: str | None) -> str:
        target = url or self.webhook_url
        if not target:
            raise RuntimeError("no webhook URL: the stack has not bound the API yet")
        return target

    def send_url_validation(self, url: str | None = None, secret_token: str | None = None) -> dict[str, Any]:
        """Zoom's signed ``endpoint.url_validation`` challenge; the delivery record."""
        return self.emulator.send_url_validation(self._webhook_url(url), secret_token=secret_token)

    def send_deauthorization(
        self, email: str, url: str | None = None, secret_token: str | None = None, revoke: bool = True
    ) -> dict[str, Any]:
        """Zoom revokes ``email``'s tokens for the app and sends signed ``app_deauthorized``."""
        return self.emulator.send_deauthorization(
            self._webhook_url(url), email, client_id=self.client.client_id, secret_token=secret_token, revoke=revoke
        )

    def endpoints(self) -> dict[str, str]:
        return {"zoom": self.emulator.base_url}

    def environment(self) -> dict[str, str]:
        return {
            **self.emulator.environment(self.client.client_id, self.client.client_secret),
            "ZOOM_WEBHOOK_SECRET_TOKEN": self.client.webhook_secret_token,
        }


class MicrosoftProvider:
    """The Microsoft emulator (identity platform, Graph calendars/events/getSchedule/subscriptions)
    as a stack component; ``MICROSOFT_AUTH_URL``, ``MICROSOFT_TOKEN_URL``, ``MICROSOFT_API_BASE``,
    ``MICROSOFT_CLIENT_ID``, ``MICROSOFT_CLIENT_SECRET``."""

    name = "microsoft"

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        client_id: str = MICROSOFT_CLIENT_ID,
        client_secret: str = MICROSOFT_CLIENT_SECRET,
    ) -> None:
        self.client = MsClient(client_id, client_secret, [MICROSOFT_REDIRECT_URI])
        # Our webhook receiver is http on loopback; Graph, and the emulator by default, take https only.
        self.emulator = MicrosoftEmulator(
            host=host, port=port, clients=[self.client], allow_http_loopback_notifications=True
        )

    def start(self) -> None:
        self.emulator.start()

    def stop(self) -> None:
        self.emulator.stop()

    def bind_api(self, api_url: str) -> None:
        """Accept ``<api_url>/oauth/microsoft/callback`` as a redirect URI of the app registration."""
        uri = callback_url(api_url, "microsoft")
        if uri not in self.client.redirect_uris:
            self.client.redirect_uris.append(uri)
        self.emulator.state.add_client(self.client.client_id, self.client.client_secret, [uri])

    def endpoints(self) -> dict[str, str]:
        return {"microsoft": self.emulator.base_url}

    def environment(self) -> dict[str, str]:
        return self.emulator.environment(self.client.client_id, self.client.client_secret)


class CalDavProvider:
    """Radicale, the local iCloud CalDAV stand-in, as a stack component (``APPLE_CALDAV_URL``)."""

    name = "caldav"

    def __init__(self, *, port: int = 0, storage_dir: str | None = None) -> None:
        self._port = port
        self._storage_dir = storage_dir
        self._server: RadicaleServer | None = None

    @property
    def server(self) -> RadicaleServer:
        """The running Radicale (add Apple-ID-like users with ``server.add_user``)."""
        if self._server is None:
            raise RuntimeError("Radicale is not running")
        return self._server

    def start(self) -> None:
        # Built here, not in __init__: Radicale makes its storage directory when constructed.
        if self._server is None:
            server = RadicaleServer(port=self._port, storage_dir=self._storage_dir)
            server.start()
            self._server = server

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def endpoints(self) -> dict[str, str]:
        return {"caldav": self.server.url}

    def environment(self) -> dict[str, str]:
        return {"APPLE_CALDAV_URL": self.server.url}


def provider_components(host: str = LOOPBACK) -> list[Any]:
    """Fresh Google, Zoom, Microsoft and CalDAV components (what ``LocalStack(providers=True)`` adds)."""
    return [GoogleProvider(host=host), ZoomProvider(host=host), MicrosoftProvider(host=host), CalDavProvider()]


def provider_settings(google: GoogleEmulator, zoom: ZoomEmulator) -> ProviderSettings:
    """``ProviderSettings`` pointing at two running emulators with their default OAuth clients."""
    env = {**google.environment(), **zoom.environment()}
    return ProviderSettings.model_validate({name.lower(): value for name, value in env.items()})
