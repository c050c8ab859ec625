"""The Microsoft adapter of :class:`shared.providers.meetings.MeetingsClient` (and its drift probe):
an event on the mentor's selected Outlook calendar with a Teams link (PRODUCT.md §2.6).

* **Create** — ``POST /me/events`` (the default calendar, ``primary``) or
  ``POST /me/calendars/{id}/events`` with ``isOnlineMeeting: true``,
  ``onlineMeetingProvider: "teamsForBusiness"``; the join URL is ``onlineMeeting.joinUrl``
  (NOTES-msgraph §5). Start and end are the session's wall times in the class's IANA zone, which
  Graph's ``dateTimeTimeZone`` accepts besides Windows names (the emulator maps both).
* **No double create** — every create carries a ``transactionId`` derived from the session key
  (:func:`transaction_id`): Graph answers a repeated POST of the same id with the event it already
  made ("avoid redundant POST operations in case of client retries", user-post-events). So the
  in-process retries of a 5xx / timeout whose answer was lost, and the worker's retry after a lost
  lease, make one event. That same rule is :meth:`TeamsMeetings.find`: Graph has no read by
  ``transactionId``, and the caller's next step is :meth:`create`, which finds it.
* **Move** — ``PATCH /me/events/{id}`` with subject, start and end only: the online meeting stays
  (Graph refuses changing it back or to another provider), so the join URL is the same.
* **Delete** — ``DELETE /me/events/{id}``; 404 is "already gone".

An event Outlook created without a Teams meeting (the account or calendar cannot host them) is
deleted again and reported as ``conference_failed`` (not retryable: the mentor has to act). Calls
retry 429/5xx/transport errors in-process with backoff, jitter and ``Retry-After`` (short waits
only; longer ones go back to the worker). Errors are
:class:`~shared.providers.meetings.base.MeetingError` and never hold the access token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from pydantic import SecretStr

from shared.providers.meetings.base import (
    MAX_INLINE_WAIT_S,
    MeetingError,
    MeetingSpec,
    MintedMeeting,
    json_object,
    meeting_error,
    send,
)
from shared.providers.meetings.observed import Observed
from shared.providers.microsoft.api import graph_api
from shared.providers.microsoft.errors import MICROSOFT, graph_code

TEAMS_PROVIDER: Final = "teamsForBusiness"
#: The namespace of our ``transactionId`` values (a fixed, arbitrary UUID: ids are uuid5(namespace, key)).
_TRANSACTION_NAMESPACE: Final = uuid.UUID("6f1c2a9e-3b57-4d0c-9a51-1e0f7c4d2b83")
#: The longest subject / body text sent (Graph's own limits are larger).
MAX_SUBJECT: Final = 255
MAX_BODY: Final = 4000


def transaction_id(key: str) -> str:
    """The ``transactionId`` of a session key's event: the same key always gives the same id."""
    return str(uuid.uuid5(_TRANSACTION_NAMESPACE, key))


def _teams_error(response: httpx.Response, token: SecretStr) -> MeetingError:
    code, message = graph_code(response)
    return meeting_error(MICROSOFT, response, token, detail=message[:300], reason=code)


def _wall(value: datetime, spec: MeetingSpec) -> dict[str, str]:
    """A ``dateTimeTimeZone``: the wall time in the class's zone, and that zone."""
    local = value.astimezone(spec.zone).replace(tzinfo=None)
    return {"dateTime": local.isoformat(timespec="seconds"), "timeZone": spec.timezone}


def _instant(value: Any) -> datetime | None:
    """A Graph ``dateTimeTimeZone`` answer (UTC unless ``Prefer: outlook.timezone``) as aware UTC."""
    if not isinstance(value, Mapping) or not isinstance(value.get("dateTime"), str):
        return None
    try:
        parsed = datetime.fromisoformat(str(value["dateTime"]))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if str(value.get("timeZone") or "UTC") not in ("UTC", "Etc/UTC", "tzone://Microsoft/Utc"):
            return None  # we never ask for another zone; do not guess one
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _join_url(event: Mapping[str, Any]) -> str | None:
    meeting = event.get("onlineMeeting")
    url = meeting.get("joinUrl") if isinstance(meeting, Mapping) else None
    return str(url) if isinstance(url, str) and url.startswith("https://") else None


class TeamsMeetings:
    """Outlook events with a Teams meeting, on the calendar ``spec.calendar_id`` (``primary`` = default)."""

    def __init__(
        self,
        *,
        api_base: str,
        timeout_s: float = 10.0,
        attempts: int = 4,
        max_inline_wait_s: float = MAX_INLINE_WAIT_S,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._api = graph_api(
            self.api_base, timeout_s=timeout_s, attempts=attempts, max_retry_after_s=max_inline_wait_s, sleep=sleep
        )

    def _collection(self, calendar_id: str) -> str:
        if calendar_id in ("", "primary"):
            return self._api.url("me", "events")
        return self._api.url("me", "calendars", calendar_id, "events")

    def _event_url(self, event_id: str) -> str:
        return self._api.url("me", "events", event_id)

    @staticmethod
    def _times(spec: MeetingSpec) -> dict[str, Any]:
        return {"subject": spec.title[:MAX_SUBJECT], "start": _wall(spec.start, spec), "end": _wall(spec.end, spec)}

    def _event(self, response: httpx.Response, token: SecretStr) -> dict[str, Any]:
        if response.status_code >= 400:
            raise _teams_error(response, token)
        return json_object(MICROSOFT, response)

    # ---- MeetingsClient ----------------------------------------------------------------

    def create(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting:
        body: dict[str, Any] = {
            **self._times(spec),
            "isOnlineMeeting": True,
            "onlineMeetingProvider": TEAMS_PROVIDER,
            "transactionId": transaction_id(spec.key),
        }
        if spec.description:
            body["body"] = {"contentType": "text", "content": spec.description[:MAX_BODY]}
        event = self._event(send(self._api, "POST", self._collection(spec.calendar_id), token, json=body), token)
        event_id = str(event.get("id") or "")
        if not event_id:
            raise MeetingError(
                "Microsoft Graph created an event but answered without its id.",
                code="bad_response",
                retryable=True,
                provider=MICROSOFT,
            )
        url = _join_url(event)
        if url is None:
            # Outlook makes the event without a meeting when the account cannot host Teams meetings.
            self.delete(token, event_id, spec)
            raise MeetingError(
                "Outlook created the event without a Teams meeting: this Microsoft account or calendar "
                "cannot host Teams meetings (an administrator must allow them).",
                code="conference_failed",
                provider=MICROSOFT,
            )
        return MintedMeeting(meeting_id=event_id, join_url=url)

    def find(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting | None:
        """Always ``None``: Graph has no read by ``transactionId``; :meth:`create` with the same key
        returns the event an earlier attempt made (module docstring)."""
        return None

    def move(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> MintedMeeting:
        event = self._event(send(self._api, "PATCH", self._event_url(meeting_id), token, json=self._times(spec)), token)
        if event.get("isCancelled") is True:
            raise MeetingError(
                "The Outlook event was cancelled; it was not moved.", code="not_found", status=410, provider=MICROSOFT
            )
        return MintedMeeting(meeting_id=str(event.get("id") or meeting_id), join_url=_join_url(event))

    def delete(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> bool:
        response = send(self._api, "DELETE", self._event_url(meeting_id), token)
        if response.status_code in (404, 410):
            return False
        if response.status_code >= 400:
            raise _teams_error(response, token)
        return True


class TeamsProbe:
    """Drift repair's eyes on an Outlook event: one ``GET /me/events/{id}`` (404 or cancelled = gone)."""

    def __init__(
        self, *, api_base: str, timeout_s: float = 10.0, attempts: int = 4, sleep: Callable[[float], Any] = time.sleep
    ) -> None:
        self._api = graph_api(
            api_base.rstrip("/"),
            timeout_s=timeout_s,
            attempts=attempts,
            max_retry_after_s=MAX_INLINE_WAIT_S,
            sleep=sleep,
        )

    def observe(self, token: SecretStr, meeting_id: str, calendar_id: str | None = None) -> Observed:
        response = send(self._api, "GET", self._api.url("me", "events", meeting_id), token)
        if response.status_code in (404, 410):
            return Observed(meeting_id=meeting_id, gone=True)
        if response.status_code >= 400:
            raise _teams_error(response, token)
        event = json_object(MICROSOFT, response)
        if event.get("isCancelled") is True:
            return Observed(meeting_id=meeting_id, gone=True)
        return Observed(
            meeting_id=meeting_id, gone=False, start=_instant(event.get("start")), end=_instant(event.get("end"))
        )
