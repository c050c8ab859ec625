"""The request and view models of classes and sessions, and the helpers both :mod:`shared.schedule.classes`
and :mod:`shared.schedule.sessions` answer with.

Times: a start with an offset is that instant; a naive one is a wall time in the class's zone.
Responses give every time in the class's zone with its offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.platform.bounds import control_characters, in_range, plausible_year, range_message
from shared.schedule.recurrence import RecurrenceError, parse_datetime, place, zone
from shared.store import (
    MAX_SESSIONS,
    ClassFormat,
    ClassItem,
    MeetingProvider,
    ScheduleStore,
    Session,
    SessionStatus,
)

WARNINGS = {
    "calendar_conflict": (
        "Some sessions overlap busy times in your calendar or a private session a student has booked. The "
        "class was saved as you asked; move or cancel those sessions if you cannot teach them."
    ),
    "zoom_free_40_min_cap": (
        "Your Zoom account is on the free Basic plan, which ends meetings after 40 minutes; this class "
        "runs longer. Upgrade Zoom to Pro or use Google Meet to avoid the cut-off."
    ),
}


def _iso_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return parse_datetime(value)


#: An ISO 8601 date-time string; naive = wall time in the class's zone.
LocalDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class CreateClassRequest(BaseModel):
    """Body of ``POST /classes``. Sessions: ``starts`` *or* ``rrule`` + ``dtstart``."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    title: str = Field(min_length=1, max_length=200)
    format: ClassFormat = Field(description="online | in_person")
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Berlin")
    duration_minutes: int = Field(gt=0, le=24 * 60)
    capacity: int = Field(gt=0, le=10_000)
    location: str | None = Field(default=None, min_length=1, max_length=500, description="In-person only")
    meeting_provider: MeetingProvider | None = Field(
        default=None, description="Online only; resolved from the connections when omitted"
    )
    starts: list[LocalDateTime] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SESSIONS,
        description="One-off session starts (ISO 8601; no offset = the class's zone)",
    )
    rrule: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="RFC 5545 RRULE with COUNT or UNTIL, e.g. FREQ=WEEKLY;COUNT=8",
    )
    dtstart: LocalDateTime | None = Field(default=None, description="First start of the rrule (ISO 8601)")

    @field_validator("title", "location")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # CR/LF in a title broke the confirmation e-mail's Subject; no control character is text.
        if value is not None and control_characters(value):
            raise ValueError("must not contain control characters (line breaks, tabs, NUL…)")
        return value

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            zone(value)
        except RecurrenceError as exc:
            raise ValueError(exc.message) from None
        return value


class MoveSessionRequest(BaseModel):
    """Body of ``PATCH /classes/{id}/sessions/{sid}``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    start: LocalDateTime = Field(description="New start (ISO 8601; no offset = the class's zone)")


class ConflictView(_Camel):
    """What one session overlaps: a calendar busy block (``source``: google / apple / …) or a held or
    booked private session (``sessionId``)."""

    kind: str = Field(description="calendar | private_session")
    start: str
    end: str
    source: str | None = None
    session_id: str | None = None


class SessionConflictView(_Camel):
    """A session of the class and what it overlaps (at most a few listed)."""

    session_id: str
    start: str
    end: str
    conflicts: list[ConflictView]


class WarningView(_Camel):
    code: str
    message: str
    sessions: list[SessionConflictView] | None = Field(
        default=None, description="calendar_conflict: the sessions that overlap busy time, and with what."
    )


class SessionView(_Camel):
    session_id: str
    start: str
    end: str
    status: SessionStatus
    seats_taken: int
    capacity: int
    sequence: int
    meeting_url: str | None = None


class MovedSessionView(SessionView):
    """Body of ``PATCH /classes/{id}/sessions/{sid}``: the session and what its new time overlaps."""

    warnings: list[WarningView] = Field(default_factory=list)


class ClassView(_Camel):
    """A class with its sessions (times in the class's zone)."""

    class_id: str
    title: str
    format: ClassFormat
    timezone: str
    duration_minutes: int
    capacity: int
    location: str | None = None
    meeting_provider: MeetingProvider | None = None
    rrule: str | None = None
    sessions: list[SessionView]
    warnings: list[WarningView]


class SessionCancelled(_Camel):
    """Body of ``DELETE /classes/{id}/sessions/{sid}`` (202)."""

    session_id: str
    status: SessionStatus
    cancelled_bookings: int


# --- helpers ---------------------------------------------------------------------------------------


def invalid(field: str, message: str, code: str | None = None) -> ApiError:
    """400 ``invalid_request`` shaped like a validation error (``fields`` names the field, and
    ``code`` — e.g. ``out_of_range`` — says what is wrong with it, for machines)."""
    entry = {"field": field, "message": message} | ({"code": code} if code else {})
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", f"{field}: {message}", fields=[entry])


def placed_in_range(value: datetime, tz: ZoneInfo, field: str, now: datetime) -> datetime:
    """``value`` placed in ``tz`` (:func:`~shared.schedule.recurrence.place`) if it lies in the API's
    date range (a day ago to ten years ahead), else 400 with ``code: out_of_range``.

    The year is looked at before any zone conversion, which overflows near years 1 and 9999.
    """
    if plausible_year(value, now):
        start = place(value, tz)
        if in_range(start, now):
            return start
    raise invalid(field, f"{value.isoformat()[:40]} is out of range: dates {range_message(now)}", code="out_of_range")


def session_view(session: Session, tz: ZoneInfo) -> SessionView:
    return SessionView(
        session_id=session.session_id,
        start=session.start.astimezone(tz).isoformat(),
        end=session.end.astimezone(tz).isoformat(),
        status=session.status,
        seats_taken=session.seats_taken,
        capacity=session.capacity,
        sequence=session.sequence,
        meeting_url=session.meeting.url if session.meeting else None,
    )


def class_view(item: ClassItem, sessions: Iterable[Session]) -> ClassView:
    tz = ZoneInfo(item.timezone)
    return ClassView(
        class_id=item.class_id,
        title=item.title,
        format=item.format,
        timezone=item.timezone,
        duration_minutes=item.duration_minutes,
        capacity=item.capacity,
        location=item.location,
        meeting_provider=item.meeting_provider,
        rrule=item.recurrence,
        sessions=[session_view(s, tz) for s in sessions],
        warnings=[WarningView(code=c, message=WARNINGS.get(c, c)) for c in item.warnings],
    )


def instant(value: datetime) -> datetime:
    """``value`` as a UTC instant (aware datetimes sharing a tzinfo compare by wall time, PEP 495)."""
    return value.astimezone(UTC)


def session_end(start: datetime, duration_minutes: int, tz: ZoneInfo) -> datetime:
    """``duration_minutes`` of elapsed time after ``start`` (across a DST change too), in ``tz``."""
    return (start.astimezone(UTC) + timedelta(minutes=duration_minutes)).astimezone(tz)


def owned_class(schedule: ScheduleStore, mentor_id: str, class_id: str) -> ClassItem:
    """The mentor's class, or 404 ``class_not_found`` (also when another mentor owns it)."""
    item = schedule.get_class(class_id) if class_id else None
    if item is None or item.mentor_id != mentor_id:
        raise ApiError(HTTPStatus.NOT_FOUND, "class_not_found", "No such class.")
    return item
