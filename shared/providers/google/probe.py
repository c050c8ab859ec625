"""The Google half of :mod:`shared.providers.meetings.probe`: read our Meet events back.

``observe`` is one ``events.get`` (cancelled events are returned with ``status: cancelled``; a 404 /
410 is gone too). ``changed`` is one ``events.list`` of a calendar with ``updatedMin`` and
``showDeleted=true`` (Google then includes events deleted since ``updatedMin``), paged up to a
bound: a push notification says only *that* the calendar changed, this says which events did.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from pydantic import SecretStr

from shared.providers.google.api import google_api
from shared.providers.google.errors import GOOGLE, QUOTA_REASONS, RATE_LIMIT_REASONS, google_reason
from shared.providers.meetings.base import MAX_INLINE_WAIT_S, MeetingError, json_object, meeting_error, send
from shared.providers.meetings.observed import Observed
from shared.providers.rest import parse_instant

#: ``events.list`` pages read per check (250 events each): a push rarely names more than a few.
MAX_PAGES: Final = 4


def _error(response: httpx.Response, token: SecretStr) -> MeetingError:
    reason, message = google_reason(response)
    return meeting_error(
        GOOGLE,
        response,
        token,
        detail=message,
        reason=reason,
        retryable_reason=response.status_code == 403 and reason in RATE_LIMIT_REASONS | QUOTA_REASONS,
    )


def observed(event: Mapping[str, Any]) -> Observed:
    """An event resource as :class:`Observed` (cancelled → gone)."""
    event_id = str(event.get("id") or "")
    if event.get("status") == "cancelled":
        return Observed(meeting_id=event_id, gone=True)
    start = parse_instant((event.get("start") or {}).get("dateTime"))
    end = parse_instant((event.get("end") or {}).get("dateTime"))
    return Observed(meeting_id=event_id, gone=False, start=start, end=end)


class GoogleProbe:
    """Reads events of the mentor's calendars (``calendar.events`` scope)."""

    def __init__(
        self, *, api_base: str, timeout_s: float = 10.0, attempts: int = 4, sleep: Callable[[float], Any] = time.sleep
    ) -> None:
        self._api = google_api(
            api_base.rstrip("/"),
            timeout_s=timeout_s,
            attempts=attempts,
            max_retry_after_s=MAX_INLINE_WAIT_S,
            sleep=sleep,
        )

    def observe(self, token: SecretStr, meeting_id: str, calendar_id: str | None) -> Observed:
        url = self._api.url("calendars", calendar_id or "primary", "events", meeting_id)
        response = send(self._api, "GET", url, token)
        if response.status_code in (404, 410):
            return Observed(meeting_id=meeting_id, gone=True)
        if response.status_code >= 400:
            raise _error(response, token)
        return observed(json_object(GOOGLE, response))

    def changed(self, token: SecretStr, calendar_id: str, since: datetime) -> list[Observed]:
        """Events of ``calendar_id`` changed (or deleted) since ``since``, at most ``MAX_PAGES`` pages."""
        url = self._api.url("calendars", calendar_id, "events")
        params = {
            "updatedMin": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "showDeleted": "true",
            "maxResults": "250",
        }
        found: list[Observed] = []
        for _ in range(MAX_PAGES):
            response = send(self._api, "GET", url, token, params=params)
            if response.status_code >= 400:
                raise _error(response, token)
            body = json_object(GOOGLE, response)
            found += [observed(item) for item in body.get("items") or [] if isinstance(item, dict) and item.get("id")]
            page = body.get("nextPageToken")
            if not isinstance(page, str) or not page:
                break
            params = {**params, "pageToken": page}
        return found
