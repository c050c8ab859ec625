"""The provider-neutral part of the meetings adapters: :class:`MeetingSpec`, :class:`MintedMeeting`,
the :class:`MeetingsClient` protocol and the :class:`MeetingError` family with the one mapping of a
provider's HTTP error answer to it (:func:`meeting_error`), used by
:mod:`shared.providers.google.meet` and :mod:`shared.providers.zoom.meetings`.

This module imports no adapter, so both can import it without knowing each other; the factory
that picks one is in :mod:`shared.providers.meetings`. Messages never hold the access token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import SecretStr

from shared.platform.http import retry_after_seconds
from shared.providers.rest import BearerApi, ProviderUnreachable, json_body, redact

#: In-process retries only for waits up to this long; longer ``Retry-After`` goes to the caller.
MAX_INLINE_WAIT_S = 5.0

# --------------------------------------------------------------------------------------------
# interface
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingSpec:
    """What the meeting of one session should look like."""

    key: str  # stable idempotency key derived from the session id; same key -> same meeting
    title: str
    start: datetime  # aware
    end: datetime  # aware
    timezone: str  # IANA zone of the class
    description: str | None = None
    calendar_id: str = "primary"  # Google only

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("MeetingSpec.key must not be empty")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("MeetingSpec.start and .end must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("MeetingSpec.end must be after .start")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"MeetingSpec.timezone is not an IANA zone: {self.timezone!r}") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def duration_minutes(self) -> int:
        return max(1, math.ceil((self.end - self.start).total_seconds() / 60))


@dataclass(frozen=True)
class MintedMeeting:
    """The provider's meeting: id and the link students join with."""

    meeting_id: str  # Google event id / Zoom meeting id (as str)
    join_url: str | None  # Meet URI / Zoom join_url
    pending: bool = False  # Google conference create still pending: ask again later


class MeetingError(Exception):
    """A provider call failed. ``code`` is short and machine-readable; the message is readable
    (it may go into the booking's failure reason) and never holds a token.

    Codes: ``rate_limited``, ``daily_cap``, ``unavailable`` (5xx), ``unreachable`` (transport),
    ``unauthorized`` (401, :class:`MeetingAuthError`), ``forbidden`` (403, missing scope or
    calendar access), ``not_found``, ``invalid_request`` (other 4xx), ``conflict``,
    ``conference_failed`` (Google could not attach a Meet link), ``bad_response``.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.provider = provider

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, retryable={self.retryable!r}, "
            f"retry_after_s={self.retry_after_s!r}, message={self.message!r})"
        )


class MeetingAuthError(MeetingError):
    """401: the provider refused the access token (expired, revoked)."""


class MeetingsClient(Protocol):
    def create(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting:
        """Make the meeting of ``spec.key`` exist at ``spec``'s time; the same key gives the same meeting."""
        ...

    def find(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting | None:
        """The meeting a previous :meth:`create` made for ``spec.key``, or ``None``."""
        ...

    def move(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> MintedMeeting:
        """Move the meeting to ``spec``'s time (the join link stays)."""
        ...

    def delete(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> bool:
        """Delete the meeting: ``True`` deleted now, ``False`` already gone (404/410)."""
        ...


# --------------------------------------------------------------------------------------------
# shared error mapping
# --------------------------------------------------------------------------------------------


def wait_hint(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (rounded to ms), or ``None``."""
    asked = retry_after_seconds(response)
    return round(asked, 3) if asked is not None else None


def meeting_error(
    provider: str,
    response: httpx.Response,
    token: SecretStr,
    *,
    detail: str,
    reason: str | None,
    retryable_reason: bool = False,
    forbidden_reason: bool = False,
) -> MeetingError:
    """The :class:`MeetingError` for an error answer (``detail``/``reason`` from the body)."""
    status = response.status_code
    shown = f" ({reason})" if reason else ""
    message = redact(f"{provider} answered HTTP {status}{shown}: {detail}".rstrip(": "), token)
    if status == 401:
        return MeetingAuthError(message, code="unauthorized", status=401, provider=provider)
    if status == 429 or retryable_reason or status >= 500:
        return MeetingError(
            message,
            code="rate_limited" if status == 429 or retryable_reason else "unavailable",
            status=status,
            retryable=True,
            retry_after_s=wait_hint(response),
            provider=provider,
        )
    if status == 403 or forbidden_reason:
        return MeetingError(message, code="forbidden", status=status, provider=provider)
    if status in (404, 410):
        return MeetingError(message, code="not_found", status=status, provider=provider)
    if status == 409:
        return MeetingError(message, code="conflict", status=status, provider=provider)
    return MeetingError(message, code="invalid_request", status=status, provider=provider)


def meeting_unreachable(exc: ProviderUnreachable) -> MeetingError:
    """The retryable ``unreachable`` :class:`MeetingError` for a provider never reached."""
    return MeetingError(str(exc), code="unreachable", retryable=True, provider=exc.provider)


def send(
    api: BearerApi,
    method: str,
    url: str,
    token: SecretStr,
    *,
    params: Mapping[str, str] | None = None,
    json: Any = None,
) -> httpx.Response:
    """One API call with the client's retries; a provider never reached becomes a :class:`MeetingError`."""
    try:
        return api.call(method, url, token, params=params, json=json)
    except ProviderUnreachable as exc:
        raise meeting_unreachable(exc) from None


def json_object(provider: str, response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; anything else is a retryable ``bad_response`` :class:`MeetingError`."""
    body = json_body(response)
    if not isinstance(body, dict):
        raise MeetingError(
            f"{provider} answered HTTP {response.status_code} with a body that is not a JSON object.",
            code="bad_response",
            status=response.status_code,
            retryable=True,
            provider=provider,
        )
    return body
