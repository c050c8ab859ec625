"""Google Calendar push channels: ``events.watch`` and ``channels.stop`` (discovery doc, ``Channel``).

``POST {api}/calendars/{calendarId}/events/watch`` with a ``Channel`` body::

    {"id": "<uuid>", "type": "web_hook", "address": "https://…/webhooks/google",
     "token": "<per-channel secret>", "params": {"ttl": "<seconds>"}}

answers the channel with Google's ``resourceId`` (the watched collection, needed to stop it) and
``expiration`` (Unix ms, as a string; Google may shorten the TTL asked for). ``POST
{api}/channels/stop`` with ``{"id", "resourceId"}`` answers 204 (404 when the channel is unknown or
already stopped). Google refuses non-HTTPS addresses (``push.webhookUrlNotHttps``).

Calls go through :class:`shared.providers.rest.BearerApi` (timeout, retries with backoff and jitter
on 429/5xx and Google's 403 rate-limit reasons). Errors are :mod:`shared.providers.google.errors` types
and never hold a token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from shared.providers.google.api import google_api
from shared.providers.google.errors import GoogleApiError, GoogleAuthError, google_reason
from shared.providers.rest import ProviderUnreachable, json_body


@dataclass(frozen=True)
class WatchedChannel:
    """What ``events.watch`` answered."""

    id: str
    resource_id: str
    expiration_ms: int
    resource_uri: str | None = None


def _error(what: str, response: httpx.Response) -> GoogleApiError:
    status = response.status_code
    reason, _ = google_reason(response)
    shown = f" ({reason})" if reason else ""
    if status == 401:
        return GoogleAuthError(f"Google refused the access token for {what}.", status=401)
    return GoogleApiError(f"Google answered HTTP {status}{shown} to {what}.", status=status)


class GoogleChannelsClient:
    """``events.watch`` / ``channels.stop`` over the configured Calendar API base."""

    def __init__(self, *, api_base: str, timeout_s: float = 10.0, attempts: int = 3, budget_s: float = 15.0) -> None:
        self._api = google_api(api_base.rstrip("/"), timeout_s=timeout_s, attempts=attempts, budget_s=budget_s)

    def _post(self, url: str, token: SecretStr, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._api.call("POST", url, token, json=body)
        except ProviderUnreachable as exc:
            raise GoogleApiError(str(exc)) from None

    def watch(
        self,
        token: SecretStr,
        calendar_id: str,
        *,
        channel_id: str,
        address: str,
        channel_token: SecretStr,
        ttl_s: int,
    ) -> WatchedChannel:
        """Open a channel on the calendar's events; raises :class:`GoogleApiError` on any failure."""
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": channel_token.get_secret_value(),
            "params": {"ttl": str(int(ttl_s))},
        }
        response = self._post(self._api.url("calendars", calendar_id, "events", "watch"), token, body)
        if response.status_code >= 400:
            raise _error("events.watch", response)
        data = json_body(response)
        if not isinstance(data, dict) or not data.get("resourceId"):
            raise GoogleApiError("Google answered events.watch without a resourceId.", status=response.status_code)
        if data.get("id") not in (None, channel_id):
            raise GoogleApiError("Google answered events.watch for another channel id.", status=response.status_code)
        try:
            expiration = int(data.get("expiration") or 0)
        except (TypeError, ValueError):
            expiration = 0
        if expiration <= 0:  # "Optional": without it, assume the TTL we asked for
            expiration = int((time.time() + ttl_s) * 1000)
        uri = data.get("resourceUri")
        return WatchedChannel(
            id=channel_id,
            resource_id=str(data["resourceId"]),
            expiration_ms=expiration,
            resource_uri=str(uri) if uri else None,
        )

    def stop(self, token: SecretStr, *, channel_id: str, resource_id: str) -> bool:
        """Stop a channel: ``True`` stopped now, ``False`` Google no longer knows it (404)."""
        response = self._post(self._api.url("channels", "stop"), token, {"id": channel_id, "resourceId": resource_id})
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise _error("channels.stop", response)
        return True


def google_channels_client() -> GoogleChannelsClient:
    """A client over the configured Google Calendar API base."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    return GoogleChannelsClient(
        api_base=settings(ProviderSettings).google_api_base,
        timeout_s=min(settings(BaseFunctionSettings).http_timeout_s, 10.0),
    )
