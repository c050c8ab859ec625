"""The Google adapter of :class:`shared.providers.meetings.MeetingsClient`: an event on the mentor's
selected calendar with a Google Meet link (``conferenceData.createRequest``,
``conferenceDataVersion=1``, ``sendUpdates=none``).

Idempotent through a client-supplied event id derived from the session key: a second insert
answers 409 and the existing event is read back (and restored if it was deleted). Calls retry
429/5xx/transport errors and Google's 403 rate-limit reasons in-process (short waits only, see
:mod:`shared.providers.meetings`); errors are
:class:`shared.providers.meetings.base.MeetingError` and never hold the access token.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import httpx
from pydantic import SecretStr

from shared.platform.observability import logger
from shared.providers.google.api import google_api
from shared.providers.google.errors import (
    GOOGLE,
    QUOTA_REASONS,
    QUOTA_WAIT_S,
    RATE_LIMIT_REASONS,
    google_reason,
)
from shared.providers.meetings.base import (
    MAX_INLINE_WAIT_S,
    MeetingError,
    MeetingSpec,
    MintedMeeting,
    json_object,
    meeting_error,
    send,
    wait_hint,
)
from shared.providers.rest import parse_instant, redact

#: How long to stay away after a quota (not a rate) answer without ``Retry-After``.
GOOGLE_QUOTA_WAIT_S = QUOTA_WAIT_S
_GOOGLE_SOLUTION = "hangoutsMeet"


def google_event_id(key: str) -> str:
    """The event id for a session key: ``mc`` + 32 lowercase hex digits of SHA-256(key).

    Google accepts client ids of base32hex characters (``a``-``v``, ``0``-``9``), 5 to 1024 long,
    unique per calendar (discovery doc, ``Event.id``); hex is a subset, and 128 bits make a
    collision between two sessions negligible.
    """
    return "mc" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def google_request_id(key: str) -> str:
    """The conference ``requestId`` for a session key (a retry of the same create reuses it)."""
    return "mc-" + hashlib.sha256(("conference:" + key).encode("utf-8")).hexdigest()[:32]


def _google_error(response: httpx.Response, token: SecretStr) -> MeetingError:
    reason, message = google_reason(response)
    if response.status_code == 403 and reason in QUOTA_REASONS:
        return MeetingError(
            redact(f"Google answered HTTP 403 ({reason}): {message}", token),
            code="rate_limited",
            status=403,
            retryable=True,
            retry_after_s=wait_hint(response) or GOOGLE_QUOTA_WAIT_S,
            provider=GOOGLE,
        )
    return meeting_error(
        GOOGLE,
        response,
        token,
        detail=message,
        reason=reason,
        retryable_reason=response.status_code == 403 and reason in RATE_LIMIT_REASONS,
    )


def _conference_state(event: Mapping[str, Any]) -> str | None:
    """``success`` / ``pending`` / ``failure`` of the Meet create request, ``None`` if there is none."""
    conf = event.get("conferenceData")
    if not isinstance(conf, Mapping):
        return None
    status = ((conf.get("createRequest") or {}).get("status") or {}).get("statusCode")
    if status:
        return str(status)
    return "success" if _meet_uri(event) else None


def _meet_uri(event: Mapping[str, Any]) -> str | None:
    conf = event.get("conferenceData")
    if isinstance(conf, Mapping):
        for entry in conf.get("entryPoints") or []:
            if isinstance(entry, Mapping) and entry.get("entryPointType") == "video" and entry.get("uri"):
                return str(entry["uri"])
    link = event.get("hangoutLink")
    return str(link) if link else None


class GoogleMeetings:
    """Google Calendar events with a Meet link, on the calendar ``spec.calendar_id``."""

    def __init__(
        self,
        *,
        api_base: str,
        timeout_s: float = 10.0,
        attempts: int = 4,
        pending_polls: int = 3,
        pending_backoff_s: float = 0.5,
        max_inline_wait_s: float = MAX_INLINE_WAIT_S,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._api = google_api(
            self.api_base, timeout_s=timeout_s, attempts=attempts, max_retry_after_s=max_inline_wait_s, sleep=sleep
        )
        self._pending_polls = pending_polls
        self._pending_backoff_s = pending_backoff_s
        self._sleep = sleep

    # ---- plumbing ----------------------------------------------------------------------

    def _events_url(self, calendar_id: str, event_id: str | None = None) -> str:
        parts = ["calendars", calendar_id, "events"] + ([event_id] if event_id else [])
        return self._api.url(*parts)

    def _get_event(self, token: SecretStr, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        response = send(self._api, "GET", self._events_url(calendar_id, event_id), token)
        if response.status_code in (404, 410):
            return None
        if response.status_code >= 400:
            raise _google_error(response, token)
        return json_object(GOOGLE, response)

    def _patch(self, token: SecretStr, calendar_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = send(
            self._api,
            "PATCH",
            self._events_url(calendar_id, event_id),
            token,
            params={"conferenceDataVersion": "1", "sendUpdates": "none"},
            json=body,
        )
        if response.status_code >= 400:
            raise _google_error(response, token)
        return json_object(GOOGLE, response)

    @staticmethod
    def _when(spec: MeetingSpec) -> dict[str, Any]:
        zone = spec.zone
        return {
            "start": {"dateTime": spec.start.astimezone(zone).isoformat(timespec="seconds"), "timeZone": spec.timezone},
            "end": {"dateTime": spec.end.astimezone(zone).isoformat(timespec="seconds"), "timeZone": spec.timezone},
        }

    @staticmethod
    def _conference_request(request_id: str) -> dict[str, Any]:
        return {"createRequest": {"requestId": request_id, "conferenceSolutionKey": {"type": _GOOGLE_SOLUTION}}}

    def _insert_body(self, spec: MeetingSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"id": google_event_id(spec.key), "summary": spec.title}
        if spec.description:
            body["description"] = spec.description
        body.update(self._when(spec))
        body["conferenceData"] = self._conference_request(google_request_id(spec.key))
        body["reminders"] = {"useDefault": True}
        return body

    @staticmethod
    def _times_match(event: Mapping[str, Any], spec: MeetingSpec) -> bool:
        start = parse_instant((event.get("start") or {}).get("dateTime"))
        end = parse_instant((event.get("end") or {}).get("dateTime"))
        return start == spec.start.astimezone(UTC) and end == spec.end.astimezone(UTC)

    def _minted(self, event: Mapping[str, Any]) -> MintedMeeting:
        pending = _conference_state(event) == "pending"
        return MintedMeeting(
            meeting_id=str(event.get("id") or ""),
            join_url=None if pending else _meet_uri(event),
            pending=pending,
        )

    def _settle(self, token: SecretStr, spec: MeetingSpec, event: dict[str, Any]) -> MintedMeeting:
        """Wait a little for a pending Meet link; ask once more for a failed/missing one."""
        event_id = str(event["id"])
        asked_again = False
        polls = 0
        while True:
            state = _conference_state(event)
            if state == "success" and _meet_uri(event):
                return self._minted(event)
            if state == "pending":
                if polls >= self._pending_polls:
                    logger.info("Meet link still pending", extra={"event_id": event_id, "polls": polls})
                    return MintedMeeting(meeting_id=event_id, join_url=None, pending=True)
                self._sleep(self._pending_backoff_s * (2**polls))
                polls += 1
                found = self._get_event(token, spec.calendar_id, event_id)
                if found is None:
                    raise MeetingError(
                        "Google lost the event while its Meet link was being created.",
                        code="not_found",
                        status=404,
                        retryable=True,
                        provider=GOOGLE,
                    )
                event = found
                continue
            # failure, or no conference at all: a new create request (the old id would be ignored)
            if asked_again:
                raise MeetingError(
                    "Google could not create a Meet link for the event.",
                    code="conference_failed",
                    retryable=True,
                    provider=GOOGLE,
                )
            asked_again = True
            retry_id = google_request_id(f"{spec.key}#{event.get('sequence', 0)}#{time.time_ns()}")
            logger.info("asking Google again for a Meet link", extra={"event_id": event_id, "state": state})
            event = self._patch(
                token, spec.calendar_id, event_id, {"conferenceData": self._conference_request(retry_id)}
            )

    # ---- MeetingsClient ----------------------------------------------------------------

    def create(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting:
        body = self._insert_body(spec)
        response = send(
            self._api,
            "POST",
            self._events_url(spec.calendar_id),
            token,
            params={"conferenceDataVersion": "1", "sendUpdates": "none"},
            json=body,
        )
        if response.status_code == 409:
            # The id exists: an earlier attempt created it. Read it back (idempotency).
            existing = self._get_event(token, spec.calendar_id, body["id"])
            if existing is None:
                raise MeetingError(
                    "Google reported the event id as taken but cannot find the event.",
                    code="conflict",
                    status=409,
                    retryable=True,
                    provider=GOOGLE,
                )
            event = existing
            if event.get("status") == "cancelled" or not self._times_match(event, spec):
                # Deleted since (cancelled events keep their id and can be restored) or moved:
                # make it match the spec again; a kept conference keeps its Meet link.
                restore: dict[str, Any] = {"status": "confirmed", "summary": spec.title, **self._when(spec)}
                event = self._patch(token, spec.calendar_id, body["id"], restore)
        elif response.status_code >= 400:
            raise _google_error(response, token)
        else:
            event = json_object(GOOGLE, response)
        return self._settle(token, spec, event)

    def find(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting | None:
        event = self._get_event(token, spec.calendar_id, google_event_id(spec.key))
        if event is None or event.get("status") == "cancelled":
            return None
        return self._minted(event)

    def move(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> MintedMeeting:
        # Only the time and title: conferenceData is not sent, so the Meet link stays.
        event = self._patch(token, spec.calendar_id, meeting_id, {"summary": spec.title, **self._when(spec)})
        if event.get("status") == "cancelled":
            raise MeetingError(
                "The Google Calendar event was deleted; it was not moved.",
                code="not_found",
                status=410,
                provider=GOOGLE,
            )
        return self._minted(event)

    def delete(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> bool:
        response = send(
            self._api, "DELETE", self._events_url(spec.calendar_id, meeting_id), token, params={"sendUpdates": "none"}
        )
        if response.status_code in (404, 410):
            return False
        if response.status_code >= 400:
            raise _google_error(response, token)
        return True
