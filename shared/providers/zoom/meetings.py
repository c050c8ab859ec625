"""The Zoom adapter of :class:`shared.providers.meetings.MeetingsClient`: a scheduled meeting
(type 2) of the mentor's Zoom user.

Zoom has no idempotency key, so the agenda's last line carries a marker (``ref:<key>``);
:meth:`ZoomMeetings.find` lists the user's scheduled meetings and matches it, and
:meth:`ZoomMeetings.create` looks before it creates — and again before it re-posts after an answer
that got lost (5xx, timeout), since the first POST may have made the meeting. Errors are
:class:`shared.providers.meetings.base.MeetingError` (mapped in :mod:`.errors`) and never hold
the access token.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import httpx
from pydantic import SecretStr

from shared.platform.observability import logger
from shared.providers.meetings.base import (
    MAX_INLINE_WAIT_S,
    MeetingError,
    MeetingSpec,
    MintedMeeting,
    json_object,
    meeting_unreachable,
    send,
)
from shared.providers.rest import BearerApi, ProviderUnreachable, parse_instant
from shared.providers.zoom.errors import ZOOM, zoom_meeting_error, zoom_retryable

ZOOM_AGENDA_MAX = 2000  # meetingCreate: agenda maxLength
ZOOM_LIST_AGENDA_MAX = 250  # "The length of agenda gets truncated to 250 characters when you list"
ZOOM_TOPIC_MAX = 200
ZOOM_MAX_DURATION = 1440
_ZOOM_LIST_PAGES = 20  # 20 pages of 300: far more scheduled meetings than a mentor has


def zoom_marker(key: str) -> str:
    """The agenda line that ties a Zoom meeting to its session key."""
    return f"ref:{key}"


def zoom_agenda(spec: MeetingSpec) -> str:
    """The description (cut short if needed), then the marker as the last line.

    The whole agenda stays within 250 characters so the list endpoint, which truncates agendas
    there, still shows the marker.
    """
    marker = zoom_marker(spec.key)
    text = (spec.description or "").strip()
    room = ZOOM_LIST_AGENDA_MAX - len(marker) - 2
    if len(text) > room:
        text = text[: max(0, room - 1)].rstrip() + "…" if room > 1 else ""
    return f"{text}\n\n{marker}" if text else marker


def _has_marker(agenda: Any, key: str) -> bool:
    if not isinstance(agenda, str):
        return False
    marker = zoom_marker(key)
    return any(line.strip() == marker for line in agenda.splitlines())


#: Transport failures raised before the request left: nothing can have been created.
_NOT_SENT = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout"})


def _backoff_s(attempt: int, retry_after_s: float | None, *, base_s: float = 0.2, cap_s: float = 8.0) -> float:
    """Full-jitter exponential backoff (as :func:`shared.platform.http.send`), at least the asked ``Retry-After``."""
    delay = random.uniform(0.0, min(cap_s, base_s * 2**attempt))  # noqa: S311 - jitter, not crypto
    return max(delay, min(retry_after_s, cap_s)) if retry_after_s else delay


class ZoomMeetings:
    """Scheduled Zoom meetings (type 2) of the user who granted the token."""

    def __init__(
        self,
        *,
        api_base: str,
        timeout_s: float = 10.0,
        attempts: int = 4,
        max_inline_wait_s: float = MAX_INLINE_WAIT_S,
        find_before_create: bool = True,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._api = BearerApi(
            ZOOM,
            self.api_base,
            timeout_s=timeout_s,
            attempts=attempts,
            retry_if=zoom_retryable,
            max_retry_after_s=max_inline_wait_s,
            sleep=sleep,
        )
        # The create POST is never retried blindly (see _post_meeting): one attempt per call.
        self._post_api = BearerApi(ZOOM, self.api_base, timeout_s=timeout_s, attempts=1, sleep=sleep)
        self._attempts = max(1, attempts)
        self._max_inline_wait_s = max_inline_wait_s
        self._sleep = sleep
        self._find_before_create = find_before_create

    # ---- plumbing ----------------------------------------------------------------------

    @staticmethod
    def _when(spec: MeetingSpec) -> dict[str, Any]:
        # Local wall time without offset + the zone: Zoom keeps the class's zone on the meeting.
        return {
            "start_time": spec.start.astimezone(spec.zone).strftime("%Y-%m-%dT%H:%M:%S"),
            "timezone": spec.timezone,
            "duration": min(spec.duration_minutes, ZOOM_MAX_DURATION),
        }

    def _create_body(self, spec: MeetingSpec) -> dict[str, Any]:
        return {
            "topic": spec.title[:ZOOM_TOPIC_MAX],
            "type": 2,
            **self._when(spec),
            "agenda": zoom_agenda(spec)[:ZOOM_AGENDA_MAX],
            "settings": {"join_before_host": True, "waiting_room": False},
        }

    def _get_meeting(self, token: SecretStr, meeting_id: str) -> dict[str, Any] | None:
        response = send(self._api, "GET", self._api.url("meetings", meeting_id), token)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise zoom_meeting_error(response, token)
        return json_object(ZOOM, response)

    @staticmethod
    def _times_match(meeting: Mapping[str, Any], spec: MeetingSpec) -> bool:
        start = parse_instant(meeting.get("start_time"))
        duration = meeting.get("duration")
        return start == spec.start.astimezone(UTC) and duration == min(spec.duration_minutes, ZOOM_MAX_DURATION)

    def _found(self, token: SecretStr, item: Mapping[str, Any]) -> MintedMeeting | None:
        meeting_id = str(item["id"])
        join_url = item.get("join_url")
        if not join_url:
            full = self._get_meeting(token, meeting_id)
            if full is None:
                return None
            join_url = full.get("join_url")
        return MintedMeeting(meeting_id=meeting_id, join_url=str(join_url) if join_url else None)

    def _find_item(self, token: SecretStr, spec: MeetingSpec) -> dict[str, Any] | None:
        """The listed meeting whose agenda carries the key's marker (the oldest if several)."""
        matches: list[dict[str, Any]] = []
        page_token: str | None = None
        for _ in range(_ZOOM_LIST_PAGES):
            params = {"type": "scheduled", "page_size": "300"}
            if page_token:
                params["next_page_token"] = page_token
            response = send(self._api, "GET", self._api.url("users", "me", "meetings"), token, params=params)
            if response.status_code >= 400:
                raise zoom_meeting_error(response, token)
            body = json_object(ZOOM, response)
            for item in body.get("meetings") or []:
                if isinstance(item, dict) and item.get("id") and _has_marker(item.get("agenda"), spec.key):
                    matches.append(item)
            page_token = str(body.get("next_page_token") or "") or None
            if not page_token:
                break
        if not matches:
            return None
        if len(matches) > 1:
            logger.warning("several Zoom meetings carry one session key", extra={"count": len(matches)})
        matches.sort(key=lambda m: (str(m.get("created_at") or ""), int(m["id"])))
        return matches[0]

    # ---- MeetingsClient ----------------------------------------------------------------

    def create(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting:
        if self._find_before_create:
            found = self._look(token, spec)
            if found is not None:
                return found
        return self._post_meeting(token, spec)

    def _look(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting | None:
        """The meeting carrying ``spec.key``'s marker (moved to ``spec``'s time if needed), or ``None``."""
        try:
            item = self._find_item(token, spec)
        except MeetingError as exc:
            if exc.code != "forbidden":
                raise
            # A token granted before listing was in the app's scopes: create without looking.
            logger.warning("cannot list Zoom meetings; creating without the duplicate check")
            return None
        if item is None:
            return None
        if not self._times_match(item, spec):
            return self.move(token, str(item["id"]), spec)
        return self._found(token, item)

    def _post_meeting(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting:
        """POST the meeting, retried in-process only in ways that cannot make a second one.

        Zoom has no idempotency key. A 429 (the rate limiter refused before doing anything) and a
        connection that was never made are simply posted again after the wait. A 5xx, a timeout
        or a dropped connection leave the outcome unknown (the meeting may exist, only the answer
        was lost), so the next attempt first looks for the key's marker and posts again only if
        no meeting carries it; a blind retry would mint a duplicate.
        """
        url = self._api.url("users", "me", "meetings")
        body = self._create_body(spec)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._post_api.call("POST", url, token, json=body)
            except ProviderUnreachable as exc:
                error, unknown = meeting_unreachable(exc), exc.kind not in _NOT_SENT
            else:
                if response.status_code < 400:
                    return self._created(token, response)
                error = zoom_meeting_error(response, token)
                unknown = response.status_code >= 500
                if not error.retryable or (error.retry_after_s or 0.0) > self._max_inline_wait_s:
                    raise error  # e.g. the daily cap: the caller's queue waits, not this call
            if attempt >= self._attempts:
                raise error
            self._sleep(_backoff_s(attempt, error.retry_after_s))
            if unknown:
                found = self._look(token, spec)
                if found is not None:
                    logger.info("Zoom meeting found after an unanswered create", extra={"attempt": attempt})
                    return found

    def _created(self, token: SecretStr, response: httpx.Response) -> MintedMeeting:
        body = json_object(ZOOM, response)
        if not body.get("id"):
            raise MeetingError("Zoom created a meeting without an id.", code="bad_response", provider=ZOOM)
        meeting_id = str(body["id"])
        join_url = body.get("join_url")
        if not join_url:
            full = self._get_meeting(token, meeting_id)
            join_url = full.get("join_url") if full else None
        return MintedMeeting(meeting_id=meeting_id, join_url=str(join_url) if join_url else None)

    def find(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting | None:
        item = self._find_item(token, spec)
        return self._found(token, item) if item is not None else None

    def move(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> MintedMeeting:
        body = {"topic": spec.title[:ZOOM_TOPIC_MAX], **self._when(spec)}
        response = send(self._api, "PATCH", self._api.url("meetings", meeting_id), token, json=body)
        if response.status_code >= 400:
            raise zoom_meeting_error(response, token)
        meeting = self._get_meeting(token, meeting_id)
        if meeting is None:
            raise MeetingError(
                f"Zoom meeting {meeting_id} disappeared after it was moved.",
                code="not_found",
                status=404,
                provider=ZOOM,
            )
        join_url = meeting.get("join_url")
        return MintedMeeting(meeting_id=meeting_id, join_url=str(join_url) if join_url else None)

    def delete(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> bool:
        response = send(self._api, "DELETE", self._api.url("meetings", meeting_id), token)
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise zoom_meeting_error(response, token)
        return True
