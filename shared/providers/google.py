"""Google account reads for the connections flow: the calendar list and the userinfo e-mail.

Calls go through :class:`shared.providers.rest.BearerApi` (the shared httpx client, retries on
429/5xx with backoff and jitter). Errors never carry the access token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from shared.providers.rest import BearerApi, ProviderUnreachable


class GoogleApiError(Exception):
    """Google answered with an error (``status``) or could not be reached (``status`` is None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GoogleAuthError(GoogleApiError):
    """Google refused the access token (401): expired, revoked or missing scope."""


@dataclass(frozen=True)
class CalendarEntry:
    """One entry of the mentor's calendar list."""

    id: str
    summary: str
    primary: bool
    access_role: str
    time_zone: str | None = None


class GoogleClient:
    """Calendar list and userinfo over the configured endpoints (the emulator in dev)."""

    def __init__(self, *, api_base: str, userinfo_url: str, timeout_s: float = 10.0, attempts: int = 4) -> None:
        self.api_base = api_base.rstrip("/")
        self.userinfo_url = userinfo_url
        self._api = BearerApi("Google", self.api_base, timeout_s=timeout_s, attempts=attempts)

    def _get(self, url: str, token: SecretStr, params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self._api.call("GET", url, token, params=params)
        except ProviderUnreachable as exc:
            raise GoogleApiError(str(exc)) from None
        if response.status_code == 401:
            raise GoogleAuthError("Google refused the access token.", status=401)
        if response.status_code >= 400:
            raise GoogleApiError(f"Google answered HTTP {response.status_code}.", status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise GoogleApiError("Google answered with a body that is not JSON.") from None
        if not isinstance(body, dict):
            raise GoogleApiError("Google answered with an unexpected body.")
        return body

    def calendar_list(self, token: SecretStr) -> list[CalendarEntry]:
        """Every calendar of the calendar list (all pages), primary first."""
        entries: list[CalendarEntry] = []
        page: str | None = None
        for _ in range(50):  # at most 50 pages of 250: far more than any mentor has
            params = {"maxResults": "250"}
            if page:
                params["pageToken"] = page
            body = self._get(f"{self.api_base}/users/me/calendarList", token, params)
            for item in body.get("items", []):
                if not isinstance(item, dict) or not item.get("id"):
                    continue
                entries.append(
                    CalendarEntry(
                        id=str(item["id"]),
                        summary=str(item.get("summaryOverride") or item.get("summary") or item["id"]),
                        primary=bool(item.get("primary", False)),
                        access_role=str(item.get("accessRole", "reader")),
                        time_zone=str(item["timeZone"]) if item.get("timeZone") else None,
                    )
                )
            page = body.get("nextPageToken")
            if not page:
                break
        entries.sort(key=lambda e: not e.primary)
        return entries

    def userinfo_email(self, token: SecretStr) -> str | None:
        """The account e-mail from OpenID userinfo, if the granted scopes include it."""
        body = self._get(self.userinfo_url, token)
        email = body.get("email")
        return str(email) if email else None

    def account_email(self, token: SecretStr, calendars: list[CalendarEntry] | None = None) -> str | None:
        """The account e-mail: the primary calendar's id (our scopes carry no ``email``), else userinfo."""
        calendars = self.calendar_list(token) if calendars is None else calendars
        primary = next((c for c in calendars if c.primary), None)
        if primary is not None and "@" in primary.id:
            return primary.id
        try:
            return self.userinfo_email(token)
        except GoogleApiError:
            return None


def google_client() -> GoogleClient:
    """A client over the configured Google endpoints."""
    from shared.config import BaseFunctionSettings, ProviderSettings, settings

    cfg = settings(ProviderSettings)
    return GoogleClient(
        api_base=cfg.google_api_base,
        userinfo_url=cfg.google_userinfo_url,
        timeout_s=settings(BaseFunctionSettings).http_timeout_s,
    )
