"""Microsoft account reads for the connect flow and the clean-up of disconnect (PRODUCT.md §2.2).

* :meth:`MicrosoftClient.account` - ``GET /me``: who connected. The product shows
  "Connected as <mail or userPrincipalName>": ``mail`` is null for accounts without a mailbox
  address attribute, and the UPN then names the account.
* :meth:`MicrosoftClient.calendars` - ``GET /me/calendars`` (every page, ``@odata.nextLink``
  followed within a bound), default calendar first; :func:`writable` keeps those with
  ``canEdit`` - the only ones a mentor may choose, since classes are written there.
* :meth:`MicrosoftClient.delete_subscription` - ``DELETE /subscriptions/{id}`` on disconnect;
  404 means already gone (expired, removed by Graph), which is what disconnect wants.

Calls go through :func:`shared.providers.microsoft.api.graph_api` (retries on 429/5xx with
backoff, jitter and ``Retry-After`` up to :data:`MAX_INLINE_WAIT_S`); a 401 is
:class:`MicrosoftAuthError`, throttling that outlasts the retries :class:`MicrosoftRateLimited`
(with the wait Graph asked for), anything else :class:`MicrosoftApiError`. No error carries the
token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from shared.platform.http import retry_after_seconds
from shared.providers.microsoft.api import graph_api
from shared.providers.microsoft.errors import (
    MicrosoftApiError,
    MicrosoftAuthError,
    MicrosoftRateLimited,
    graph_code,
)
from shared.providers.rest import ProviderUnreachable, json_body, redact

#: In-process retries only for waits up to this long; longer ones go back to the caller.
MAX_INLINE_WAIT_S: Final = 5.0
#: Calendar pages followed at most (Graph pages calendars by 10 by default).
MAX_PAGES: Final = 20
#: The longest display value kept from Graph (names, addresses).
MAX_TEXT: Final = 256


@dataclass(frozen=True)
class MicrosoftAccount:
    """The signed-in user of a token."""

    id: str
    mail: str | None
    user_principal_name: str
    display_name: str

    @property
    def connected_as(self) -> str:
        """What "Connected as …" shows: the mail, else the userPrincipalName."""
        return self.mail or self.user_principal_name


@dataclass(frozen=True)
class MicrosoftCalendar:
    """One calendar of the signed-in user."""

    id: str
    name: str
    is_default: bool
    can_edit: bool


def writable(calendars: list[MicrosoftCalendar]) -> list[MicrosoftCalendar]:
    """The calendars a mentor may choose: those the account can write to (``canEdit``)."""
    return [c for c in calendars if c.can_edit]


def _text(value: Any) -> str:
    return str(value)[:MAX_TEXT] if value is not None else ""


class MicrosoftClient:
    """Graph reads over the configured base (the emulator in dev)."""

    def __init__(
        self,
        *,
        api_base: str,
        timeout_s: float = 10.0,
        attempts: int = 4,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._api = graph_api(
            self.api_base, timeout_s=timeout_s, attempts=attempts, max_retry_after_s=MAX_INLINE_WAIT_S, sleep=sleep
        )

    def _send(self, method: str, url: str, token: SecretStr, body: Any = None) -> httpx.Response:
        try:
            response = self._api.call(method, url, token, json=body)
        except ProviderUnreachable as exc:
            raise MicrosoftApiError(str(exc)) from None
        status = response.status_code
        if status < 400 or (method == "DELETE" and status == 404):
            return response
        code, _ = graph_code(response)
        if status == 401:
            raise MicrosoftAuthError(f"Microsoft refused the access token ({code or 401}).", status=401, code=code)
        if status == 429 or (status == 503 and retry_after_seconds(response) is not None):
            raise MicrosoftRateLimited(
                redact(f"Microsoft Graph throttled the request ({code or status}).", token),
                status=status,
                code=code,
                retry_after_s=retry_after_seconds(response),
            )
        raise MicrosoftApiError(
            f"Microsoft Graph answered HTTP {status} ({code or 'no code'}).", status=status, code=code
        )

    def _get(self, url: str, token: SecretStr) -> dict[str, Any]:
        body = json_body(self._send("GET", url, token))
        if not isinstance(body, dict):
            raise MicrosoftApiError("Microsoft Graph answered with a body that is not a JSON object.")
        return body

    def account(self, token: SecretStr) -> MicrosoftAccount:
        """The signed-in user (``User.Read``)."""
        body = self._get(f"{self.api_base}/me", token)
        upn = _text(body.get("userPrincipalName"))
        if not body.get("id") or not (upn or body.get("mail")):
            raise MicrosoftApiError("Microsoft Graph answered /me without an id or a user name.")
        return MicrosoftAccount(
            id=_text(body["id"]),
            mail=_text(body["mail"]) if body.get("mail") else None,
            user_principal_name=upn or _text(body.get("mail")),
            display_name=_text(body.get("displayName")),
        )

    def calendars(self, token: SecretStr) -> list[MicrosoftCalendar]:
        """Every calendar of the signed-in user, the default one first."""
        found: list[MicrosoftCalendar] = []
        url: str | None = f"{self.api_base}/me/calendars"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            body = self._get(url, token)
            for item in body.get("value") or []:
                if isinstance(item, dict) and item.get("id"):
                    found.append(
                        MicrosoftCalendar(
                            id=_text(item["id"]),
                            name=_text(item.get("name")) or "Calendar",
                            is_default=bool(item.get("isDefaultCalendar", False)),
                            can_edit=bool(item.get("canEdit", False)),
                        )
                    )
            url = self._next_link(body.get("@odata.nextLink"))
        found.sort(key=lambda c: not c.is_default)
        return found

    def _next_link(self, link: Any) -> str | None:
        """Follow ``@odata.nextLink`` only to Graph's own host (never send the token elsewhere)."""
        if not isinstance(link, str) or not link:
            return None
        if urlsplit(link).netloc != urlsplit(self.api_base).netloc:
            raise MicrosoftApiError("Microsoft Graph sent a next link to another host.")
        return link

    def delete_subscription(self, token: SecretStr, subscription_id: str) -> bool:
        """Delete a change-notification subscription; ``False`` when it was already gone (404)."""
        response = self._send("DELETE", self._api.url("subscriptions", subscription_id), token)
        return response.status_code != 404
