"""The Zoom half of :mod:`shared.providers.meetings.probe`: one ``GET /meetings/{meetingId}``.

A 404 (Zoom code 3001, "Meeting does not exist") is gone; otherwise the meeting's ``start_time``
and ``start_time + duration`` are its times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from shared.providers.meetings.base import MAX_INLINE_WAIT_S, json_object, send
from shared.providers.meetings.observed import Observed
from shared.providers.rest import BearerApi, parse_instant
from shared.providers.zoom.errors import ZOOM, zoom_meeting_error, zoom_retryable


class ZoomProbe:
    """Reads the meetings of the user who granted the token."""

    def __init__(
        self, *, api_base: str, timeout_s: float = 10.0, attempts: int = 4, sleep: Callable[[float], Any] = time.sleep
    ) -> None:
        self._api = BearerApi(
            ZOOM,
            api_base.rstrip("/"),
            timeout_s=timeout_s,
            attempts=attempts,
            retry_if=zoom_retryable,
            max_retry_after_s=MAX_INLINE_WAIT_S,
            sleep=sleep,
        )

    def observe(self, token: SecretStr, meeting_id: str, calendar_id: str | None = None) -> Observed:
        response = send(self._api, "GET", self._api.url("meetings", meeting_id), token)
        if response.status_code == 404:
            return Observed(meeting_id=meeting_id, gone=True)
        if response.status_code >= 400:
            raise zoom_meeting_error(response, token)
        body = json_object(ZOOM, response)
        start = parse_instant(body.get("start_time"))
        duration = body.get("duration")
        minutes = duration if isinstance(duration, int) and not isinstance(duration, bool) else None
        end = start + timedelta(minutes=minutes) if start is not None and minutes is not None else None
        return Observed(meeting_id=meeting_id, gone=False, start=start, end=end)
