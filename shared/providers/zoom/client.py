"""Zoom account reads for the connections flow: ``GET /users/me`` (display name, plan type).

Calls go through the shared httpx client with retries on 429/5xx; errors never carry the token.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from shared.providers.rest import BearerApi, ProviderUnreachable
from shared.providers.zoom.errors import ZOOM, ZoomApiError

__all__ = ["ZoomApiError", "ZoomClient", "ZoomUser", "zoom_client"]


@dataclass(frozen=True)
class ZoomUser:
    """What the connections page needs about the Zoom user."""

    id: str
    display_name: str
    email: str | None
    type: int  # 1 = Basic (free, 40-minute cap), 2 = Licensed, …


class ZoomClient:
    """``GET /users/me`` over the configured API base (the emulator in dev)."""

    def __init__(self, *, api_base: str, timeout_s: float = 10.0, attempts: int = 4) -> None:
        self.api_base = api_base.rstrip("/")
        self._api = BearerApi(ZOOM, self.api_base, timeout_s=timeout_s, attempts=attempts)

    def me(self, token: SecretStr) -> ZoomUser:
        """The user who granted ``token``."""
        try:
            response = self._api.call("GET", self._api.url("users", "me"), token)
        except ProviderUnreachable as exc:
            raise ZoomApiError(str(exc)) from None
        if response.status_code >= 400:
            raise ZoomApiError(f"Zoom answered HTTP {response.status_code}.", status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise ZoomApiError("Zoom answered with a body that is not JSON.") from None
        if not isinstance(body, dict) or not body.get("id"):
            raise ZoomApiError("Zoom answered with an unexpected body.")
        name = str(body.get("display_name") or f"{body.get('first_name', '')} {body.get('last_name', '')}".strip())
        return ZoomUser(
            id=str(body["id"]),
            display_name=name or str(body.get("email") or body["id"]),
            email=str(body["email"]) if body.get("email") else None,
            type=int(body.get("type", 1)),
        )


def zoom_client() -> ZoomClient:
    """A client over the configured Zoom API base."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    cfg = settings(ProviderSettings)
    return ZoomClient(api_base=cfg.zoom_api_base, timeout_s=settings(BaseFunctionSettings).http_timeout_s)
