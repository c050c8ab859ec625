"""Create, find, move and delete the one video meeting of a class session (PRODUCT.md §2.6).

Two adapters implement :class:`MeetingsClient`:

* :class:`GoogleMeetings` — an event on the mentor's selected calendar with a Google Meet link
  (``conferenceData.createRequest``, ``conferenceDataVersion=1``, ``sendUpdates=none``).
  Idempotent through a client-supplied event id derived from the session key: a second insert
  answers 409 and the existing event is read back (and restored if it was deleted).
* :class:`ZoomMeetings` — a scheduled meeting (type 2) of the mentor's Zoom user. Zoom has no
  idempotency key, so the agenda's last line carries a marker (``ref:<key>``); :meth:`find`
  lists the user's scheduled meetings and matches it, and :meth:`create` looks before it creates
  — and again before it re-posts after an answer that got lost (5xx, timeout), since the first
  POST may have made the meeting.

Every call has a timeout and retries 429/5xx/transport errors in-process with backoff, full
jitter and ``Retry-After`` (Zoom's create POST only as described above) — but only short waits:
a ``Retry-After`` longer than a few seconds (Zoom's daily create cap) is raised at once as a
retryable :class:`MeetingError` with ``retry_after_s`` so the worker re-queues with a delay
instead of sleeping. Messages never hold the access token.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import SecretStr

from shared.platform.http import RETRY_STATUSES, retry_after_seconds
from shared.platform.observability import logger
from shared.providers.rest import BearerApi, ProviderUnreachable, json_body, redact
from shared.store.models import MeetingProvider

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


def _wait_hint(response: httpx.Response) -> float | None:
    asked = retry_after_seconds(response)
    return round(asked, 3) if asked is not None else None


def _error(
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
    if status == 429 or retryable_reason:
        return MeetingError(
            message,
            code="rate_limited",
            status=status,
            retryable=True,
            retry_after_s=_wait_hint(response),
            provider=provider,
        )
    if status >= 500:
        return MeetingError(
            message,
            code="unavailable",
            status=status,
            retryable=True,
            retry_after_s=_wait_hint(response),
            provider=provider,
        )
    if status == 403 or forbidden_reason:
        return MeetingError(message, code="forbidden", status=status, provider=provider)
    if status in (404, 410):
        return MeetingError(message, code="not_found", status=status, provider=provider)
    if status == 409:
        return MeetingError(message, code="conflict", status=status, provider=provider)
    return MeetingError(message, code="invalid_request", status=status, provider=provider)


def _unreachable(exc: ProviderUnreachable) -> MeetingError:
    return MeetingError(str(exc), code="unreachable", retryable=True, provider=exc.provider)


def _send(
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
        raise _unreachable(exc) from None


def _object(provider: str, response: httpx.Response) -> dict[str, Any]:
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


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


# --------------------------------------------------------------------------------------------
# Google Calendar + Meet
# --------------------------------------------------------------------------------------------

GOOGLE = "Google"
_GOOGLE_RETRY_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# Quotas that last longer than a request's retries (the project's daily quota, the user's
# Calendar usage limits): retryable, but by the caller after a while, never in-process.
_GOOGLE_QUOTA_REASONS = frozenset({"dailyLimitExceeded", "quotaExceeded"})
GOOGLE_QUOTA_WAIT_S = 900.0
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


def _google_reason(body: Any) -> tuple[str | None, str]:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, ""
    errors = err.get("errors")
    reason = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = errors[0].get("reason")
    return (str(reason) if reason else None), str(err.get("message") or "")


def _google_retryable(response: httpx.Response) -> bool:
    if response.status_code in RETRY_STATUSES:
        return True
    if response.status_code == 403:
        reason, _ = _google_reason(json_body(response))
        return reason in _GOOGLE_RETRY_REASONS
    return False


def _google_error(response: httpx.Response, token: SecretStr) -> MeetingError:
    reason, message = _google_reason(json_body(response))
    if response.status_code == 403 and reason in _GOOGLE_QUOTA_REASONS:
        return MeetingError(
            redact(f"Google answered HTTP 403 ({reason}): {message}", token),
            code="rate_limited",
            status=403,
            retryable=True,
            retry_after_s=_wait_hint(response) or GOOGLE_QUOTA_WAIT_S,
            provider=GOOGLE,
        )
    return _error(
        GOOGLE,
        response,
        token,
        detail=message,
        reason=reason,
        retryable_reason=response.status_code == 403 and reason in _GOOGLE_RETRY_REASONS,
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
        self._api = BearerApi(
            GOOGLE,
            self.api_base,
            timeout_s=timeout_s,
            attempts=attempts,
            retry_if=_google_retryable,
            max_retry_after_s=max_inline_wait_s,
            sleep=sleep,
        )
        self._pending_polls = pending_polls
        self._pending_backoff_s = pending_backoff_s
        self._sleep = sleep

    # ---- plumbing ----------------------------------------------------------------------

    def _events_url(self, calendar_id: str, event_id: str | None = None) -> str:
        parts = ["calendars", calendar_id, "events"] + ([event_id] if event_id else [])
        return self._api.url(*parts)

    def _get_event(self, token: SecretStr, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        response = _send(self._api, "GET", self._events_url(calendar_id, event_id), token)
        if response.status_code in (404, 410):
            return None
        if response.status_code >= 400:
            raise _google_error(response, token)
        return _object(GOOGLE, response)

    def _patch(self, token: SecretStr, calendar_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = _send(
            self._api,
            "PATCH",
            self._events_url(calendar_id, event_id),
            token,
            params={"conferenceDataVersion": "1", "sendUpdates": "none"},
            json=body,
        )
        if response.status_code >= 400:
            raise _google_error(response, token)
        return _object(GOOGLE, response)

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
        start = _utc((event.get("start") or {}).get("dateTime"))
        end = _utc((event.get("end") or {}).get("dateTime"))
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
        response = _send(
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
            event = _object(GOOGLE, response)
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
        response = _send(
            self._api, "DELETE", self._events_url(spec.calendar_id, meeting_id), token, params={"sendUpdates": "none"}
        )
        if response.status_code in (404, 410):
            return False
        if response.status_code >= 400:
            raise _google_error(response, token)
        return True


# --------------------------------------------------------------------------------------------
# Zoom
# --------------------------------------------------------------------------------------------

ZOOM = "Zoom"
ZOOM_AGENDA_MAX = 2000  # meetingCreate: agenda maxLength
ZOOM_LIST_AGENDA_MAX = 250  # "The length of agenda gets truncated to 250 characters when you list"
ZOOM_TOPIC_MAX = 200
ZOOM_MAX_DURATION = 1440
_ZOOM_SCOPE_ERROR = 4711  # "Invalid access token, does not contain scopes: [...]"
_ZOOM_MEETING_GONE = 3001  # "Meeting does not exist: {meetingId}."
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


def _is_daily_limit(response: httpx.Response, message: str) -> bool:
    return response.headers.get("x-ratelimit-type", "").lower() == "daily-limit" or "daily rate limit" in message


def _zoom_retryable(response: httpx.Response) -> bool:
    """429 (per-second limits) and 5xx, but never the daily cap: it lifts at 00:00 UTC."""
    if response.status_code == 429:
        return str(response.headers.get("x-ratelimit-type", "")).lower() != "daily-limit"
    return response.status_code in RETRY_STATUSES


#: Transport failures raised before the request left: nothing can have been created.
_NOT_SENT = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout"})


def _backoff_s(attempt: int, retry_after_s: float | None, *, base_s: float = 0.2, cap_s: float = 8.0) -> float:
    """Full-jitter exponential backoff (as :func:`shared.platform.http.send`), at least the asked ``Retry-After``."""
    delay = random.uniform(0.0, min(cap_s, base_s * 2**attempt))  # noqa: S311 - jitter, not crypto
    return max(delay, min(retry_after_s, cap_s)) if retry_after_s else delay


def _seconds_to_utc_midnight() -> float:
    now = datetime.now(UTC)
    return ((now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds()


def _zoom_error(response: httpx.Response, token: SecretStr) -> MeetingError:
    body = json_body(response)
    code = body.get("code") if isinstance(body, dict) else None
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    if response.status_code == 429 and _is_daily_limit(response, message.lower()):
        wait = _wait_hint(response)
        return MeetingError(
            redact(f"Zoom answered HTTP 429 (daily limit): {message}", token),
            code="daily_cap",
            status=429,
            retryable=True,
            retry_after_s=wait if wait is not None else round(_seconds_to_utc_midnight(), 3),
            provider=ZOOM,
        )
    return _error(
        ZOOM,
        response,
        token,
        detail=message,
        reason=str(code) if code is not None else None,
        forbidden_reason=code == _ZOOM_SCOPE_ERROR,
    )


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
            retry_if=_zoom_retryable,
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
        response = _send(self._api, "GET", self._api.url("meetings", meeting_id), token)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise _zoom_error(response, token)
        return _object(ZOOM, response)

    @staticmethod
    def _times_match(meeting: Mapping[str, Any], spec: MeetingSpec) -> bool:
        start = _utc(meeting.get("start_time"))
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
            response = _send(self._api, "GET", self._api.url("users", "me", "meetings"), token, params=params)
            if response.status_code >= 400:
                raise _zoom_error(response, token)
            body = _object(ZOOM, response)
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
                error, unknown = _unreachable(exc), exc.kind not in _NOT_SENT
            else:
                if response.status_code < 400:
                    return self._created(token, response)
                error = _zoom_error(response, token)
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
        body = _object(ZOOM, response)
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
        response = _send(self._api, "PATCH", self._api.url("meetings", meeting_id), token, json=body)
        if response.status_code >= 400:
            raise _zoom_error(response, token)
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
        response = _send(self._api, "DELETE", self._api.url("meetings", meeting_id), token)
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise _zoom_error(response, token)
        return True


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------

_lock = threading.Lock()
_clients: dict[tuple[MeetingProvider, str, float], MeetingsClient] = {}


def meetings_client(provider: MeetingProvider) -> MeetingsClient:
    """The adapter for ``provider`` over the configured API base, built once per container."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    which = MeetingProvider(provider)
    cfg = settings(ProviderSettings)
    timeout_s = settings(BaseFunctionSettings).http_timeout_s
    base = cfg.google_api_base if which is MeetingProvider.GOOGLE_MEET else cfg.zoom_api_base
    key = (which, base, timeout_s)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                if which is MeetingProvider.GOOGLE_MEET:
                    found = GoogleMeetings(api_base=base, timeout_s=timeout_s)
                else:
                    found = ZoomMeetings(api_base=base, timeout_s=timeout_s)
                _clients[key] = found
    return found


def reset_meetings_clients() -> None:
    """Forget the cached adapters (tests that change settings)."""
    with _lock:
        _clients.clear()
