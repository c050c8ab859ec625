"""Bearer-token JSON calls to a provider API, shared by the Google and Zoom adapters.

One place builds the ``Authorization`` header, applies the timeout and the retry policy
(:func:`shared.platform.http.send`: backoff with full jitter on 429/5xx/transport errors, ``Retry-After``
honoured) and turns a transport failure into :class:`ProviderUnreachable`, whose message names
only the exception type. Callers map the returned response's status to their own errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from shared.platform.http import http_client, send


class ProviderUnreachable(Exception):
    """No answer: connection refused/reset, DNS failure or timeout (after the retries)."""

    def __init__(self, provider: str, exc: BaseException) -> None:
        super().__init__(f"{provider} could not be reached: {type(exc).__name__}")
        self.provider = provider
        self.kind = type(exc).__name__


def path_segment(value: str) -> str:
    """``value`` encoded for one URL path segment (calendar ids hold ``@`` and sometimes ``#``)."""
    return quote(value, safe="@")


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or ``None`` when the body is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def parse_instant(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from a provider's JSON as an aware UTC datetime, or ``None``
    (not a string, empty, unreadable, or without an offset). Accepts ``Z`` and ``z``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def redact(text: str, token: SecretStr) -> str:
    """``text`` without the token's value (providers do not echo tokens; this makes sure)."""
    secret = token.get_secret_value()
    return text.replace(secret, "[redacted]") if secret and len(secret) >= 4 else text


@dataclass(frozen=True)
class BearerApi:
    """Calls under one API base with a bearer token."""

    provider: str
    base: str
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 8.0
    budget_s: float = 25.0
    retry_if: Callable[[httpx.Response], bool] | None = None
    max_retry_after_s: float | None = None
    sleep: Callable[[float], Any] = field(default=time.sleep, repr=False)

    def url(self, *segments: str) -> str:
        """``{base}/{segment}/…`` with each segment percent-encoded."""
        return "/".join([self.base.rstrip("/"), *(path_segment(s) for s in segments)])

    def call(
        self,
        method: str,
        url: str,
        token: SecretStr,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send with retries; the last response, whatever its status. Raises :class:`ProviderUnreachable`."""
        client = http_client(self.timeout_s)
        headers = {"authorization": f"Bearer {token.get_secret_value()}", "accept": "application/json"}
        query = dict(params) if params else None

        def request() -> httpx.Response:
            if json is None:
                return client.request(method, url, params=query, headers=headers)
            return client.request(method, url, params=query, headers=headers, json=json)

        try:
            return send(
                request,
                attempts=self.attempts,
                base_s=self.backoff_base_s,
                cap_s=self.backoff_cap_s,
                budget_s=self.budget_s,
                retry_if=self.retry_if,
                max_retry_after_s=self.max_retry_after_s,
                sleep=self.sleep,
            )
        except httpx.TransportError as exc:
            raise ProviderUnreachable(self.provider, exc) from None
