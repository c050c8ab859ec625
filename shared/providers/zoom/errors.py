"""Zoom's error answers, read in one place: :class:`ZoomApiError` (account reads), the retryable
test of the REST calls and the mapping of a meetings answer to
:class:`shared.providers.meetings.base.MeetingError`.

Zoom's JSON error body is ``{"code": <int>, "message": "…"}``. A 429 whose message says "daily
rate limit" is the daily create cap (the real answer carries only that message: no
``X-RateLimit-Type`` and no ``Retry-After``, ../shared/specs/NOTES.md §6; the header
``X-RateLimit-Type: Daily-limit`` of Zoom's rate-limit docs is honoured too): it lifts at 00:00
UTC, so it is never retried in-process. Messages never hold a token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from pydantic import SecretStr

from shared.platform.http import RETRY_STATUSES
from shared.providers.meetings.base import MeetingError, meeting_error, wait_hint
from shared.providers.rest import json_body, redact

#: The provider name in messages and :class:`shared.providers.rest.BearerApi`.
ZOOM = "Zoom"
_ZOOM_SCOPE_ERROR = 4711  # "Invalid access token, does not contain scopes: [...]"
_ZOOM_MEETING_GONE = 3001  # "Meeting does not exist: {meetingId}."


class ZoomApiError(Exception):
    """Zoom answered with an error (``status``) or could not be reached (``status`` is None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def is_daily_limit(response: httpx.Response, message: str) -> bool:
    """The daily cap: by the (lower-cased) ``message`` - all the real answer has - or by header."""
    return "daily rate limit" in message or response.headers.get("x-ratelimit-type", "").lower() == "daily-limit"


def _message(response: httpx.Response) -> str:
    body = json_body(response)
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def zoom_retryable(response: httpx.Response) -> bool:
    """429 (per-second limits) and 5xx, but never the daily cap: it lifts at 00:00 UTC."""
    if response.status_code == 429:
        return not is_daily_limit(response, _message(response).lower())
    return response.status_code in RETRY_STATUSES


def _seconds_to_utc_midnight() -> float:
    now = datetime.now(UTC)
    return ((now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds()


def zoom_meeting_error(response: httpx.Response, token: SecretStr) -> MeetingError:
    """The :class:`MeetingError` for a Zoom error answer (the daily cap waits until 00:00 UTC)."""
    body = json_body(response)
    code = body.get("code") if isinstance(body, dict) else None
    message = _message(response)
    if response.status_code == 429 and is_daily_limit(response, message.lower()):
        wait = wait_hint(response)
        return MeetingError(
            redact(f"Zoom answered HTTP 429 (daily limit): {message}", token),
            code="daily_cap",
            status=429,
            retryable=True,
            retry_after_s=wait if wait is not None else round(_seconds_to_utc_midnight(), 3),
            provider=ZOOM,
        )
    return meeting_error(
        ZOOM,
        response,
        token,
        detail=message,
        reason=str(code) if code is not None else None,
        forbidden_reason=code == _ZOOM_SCOPE_ERROR,
    )
