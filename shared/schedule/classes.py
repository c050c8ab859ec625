"""Classes and their sessions (PRODUCT.md §2.4, §3): create, read, move a session, cancel a session.

* ``POST /classes`` — :func:`create_class`. The body is checked field by field (400
  ``invalid_request`` with ``fields``), the sessions are expanded (explicit ``starts``, or
  ``rrule`` + ``dtstart`` in the class's zone, see :mod:`shared.schedule.recurrence`), then the rules of
  §2.4 apply in this order:

  1. ``format: "online"`` needs plan Pro or Premium — else 403 ``plan_required`` (no profile = Free);
  2. the video provider (:func:`resolve_provider`): the named one must be connected — else 409
     ``provider_not_connected``; when none is named, only Google → ``google_meet``, only Zoom →
     ``zoom``, both → 400 ``meeting_provider_required`` with ``choices``, neither → 409
     ``no_video_provider`` with ``connectUrl``. Apple never counts (it cannot mint meetings), nor
     does a connection that ``needs_reconnect``;
  3. a Zoom Basic account (plan type 1) and a duration over 40 minutes → created, with the warning
     ``zoom_free_40_min_cap``.

  The class and all its sessions are written in one transaction: nothing is half-written.
* ``GET /classes/{id}`` — :func:`get_class` (the owner only; anyone else gets 404).
* ``PATCH /classes/{id}/sessions/{sid}`` ``{start}`` — :func:`move_session`: the session's
  ``sequence`` goes up and a ``session.moved`` job is queued. Moving to the same start again
  changes nothing but re-queues the job at the current sequence (a client retry heals a lost job).
  A cancelled session answers 409 ``session_cancelled``.
* ``DELETE /classes/{id}/sessions/{sid}`` — :func:`cancel_session`: 202 (the state changed now;
  the meeting is deleted and the students e-mailed by the worker). Every live booking is cancelled
  (reason ``session_cancelled``), one ``session.cancelled`` job is queued, then the bookings'
  pending jobs are cleared. Idempotent: a repeat answers 202 again, sweeps any booking left live
  and re-queues the job (the worker deduplicates by session sequence).

Times: a start with an offset is that instant; a naive one is a wall time in the class's zone.
Responses give every time in the class's zone with its offset.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from itertools import pairwise
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.schedule.recurrence import RecurrenceError, expand, parse_datetime, place, to_wall, zone
from shared.store import (
    MAX_SESSIONS,
    BookingStatus,
    ClassFormat,
    ClassItem,
    Connection,
    ConnectionStatus,
    MeetingProvider,
    NotFoundError,
    Plan,
    ScheduleStore,
    Session,
    SessionNotBookable,
    SessionStatus,
    Store,
)
from shared.store.schedule import class_id_of, session_id_for

#: Where the mentor app connects providers (``connectUrl`` of ``no_video_provider``).
CONNECTIONS_PAGE = "/mentor/settings/connections"
ONLINE_PLANS = (Plan.PRO, Plan.PREMIUM)
#: Zoom user type 1 is Basic (free): meetings with others end after 40 minutes.
ZOOM_BASIC = 1
ZOOM_FREE_CAP_MINUTES = 40
WARNINGS = {
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


class WarningView(_Camel):
    code: str
    message: str


class SessionView(_Camel):
    session_id: str
    start: str
    end: str
    status: SessionStatus
    seats_taken: int
    capacity: int
    sequence: int
    meeting_url: str | None = None


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


def invalid(field: str, message: str) -> ApiError:
    """400 ``invalid_request`` shaped like a validation error (``fields`` names the field)."""
    return ApiError(
        HTTPStatus.BAD_REQUEST, "invalid_request", f"{field}: {message}", fields=[{"field": field, "message": message}]
    )


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


def _instant(value: datetime) -> datetime:
    return value.astimezone(UTC)


def session_end(start: datetime, duration_minutes: int, tz: ZoneInfo) -> datetime:
    """``duration_minutes`` of elapsed time after ``start`` (across a DST change too), in ``tz``."""
    return (start.astimezone(UTC) + timedelta(minutes=duration_minutes)).astimezone(tz)


def session_starts(body: CreateClassRequest, tz: ZoneInfo, now: datetime) -> list[datetime]:
    """The sessions' starts (aware, in ``tz``, sorted), or 400 ``invalid_request`` naming the field."""
    if body.starts is not None and body.rrule is not None:
        raise invalid("starts", "give either starts (one-off sessions) or rrule + dtstart (a recurrence), not both")
    if body.starts is None and body.rrule is None:
        raise invalid("starts", "the class needs sessions: starts (one-off) or rrule + dtstart (a recurrence)")
    if body.rrule is None:
        if body.dtstart is not None:
            raise invalid("dtstart", "dtstart goes with rrule")
        # Compared as UTC instants: aware datetimes sharing a tzinfo compare by wall time (PEP 495),
        # which would merge the two 02:30s of a fall-back night.
        starts = sorted((place(s, tz) for s in body.starts or []), key=_instant)
        for first, second in pairwise(starts):
            if _instant(first) == _instant(second):
                raise invalid("starts", f"{first.isoformat()} is given twice")
    else:
        if body.dtstart is None:
            raise invalid("dtstart", "rrule needs dtstart, the first session's start")
        try:
            starts = expand(body.rrule, to_wall(body.dtstart, tz), tz, max_sessions=MAX_SESSIONS)
        except RecurrenceError as exc:
            raise invalid(exc.field, exc.message) from None
    if _instant(starts[0]) <= now:
        field = "starts" if body.rrule is None else "dtstart"
        raise invalid(field, f"sessions must start in the future ({starts[0].isoformat()} has passed)")
    return starts


def mentor_plan(store: Store, mentor_id: str) -> Plan:
    """The mentor's plan; a mentor without a profile is on Free."""
    mentor = store.get_mentor(mentor_id)
    return mentor.plan if mentor is not None else Plan.FREE


def resolve_provider(
    requested: MeetingProvider | None, connections: Iterable[Connection]
) -> tuple[MeetingProvider, Connection]:
    """The online class's video provider and its connection, by the rules of PRODUCT.md §2.4."""
    found = {c.provider: c for c in connections}
    if requested is not None:
        conn = found.get(requested.connection)
        if conn is None or conn.status is not ConnectionStatus.CONNECTED:
            state = conn.status.value if conn is not None else ConnectionStatus.NOT_CONNECTED.value
            verb = "needs reconnecting" if conn is not None else "is not connected"
            raise ApiError(
                HTTPStatus.CONFLICT,
                "provider_not_connected",
                f"{requested.value} {verb}; connect it or choose another provider.",
                provider=requested.value,
                connectionStatus=state,
                connectUrl=CONNECTIONS_PAGE,
            )
        return requested, conn
    usable = [
        (p, found[p.connection])
        for p in MeetingProvider
        if p.connection in found and found[p.connection].status is ConnectionStatus.CONNECTED
    ]
    if len(usable) == 1:
        return usable[0]
    if usable:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "meeting_provider_required",
            "Both Google Meet and Zoom are connected: choose meetingProvider.",
            choices=[p.value for p, _ in usable],
        )
    raise ApiError(
        HTTPStatus.CONFLICT,
        "no_video_provider",
        "Online classes need Google (Meet) or Zoom connected; Apple Calendar cannot host meetings.",
        connectUrl=CONNECTIONS_PAGE,
    )


def class_warnings(provider: MeetingProvider | None, conn: Connection | None, duration_minutes: int) -> list[str]:
    """Warnings of a class that is created anyway (codes of :data:`WARNINGS`)."""
    if (
        provider is MeetingProvider.ZOOM
        and conn is not None
        and conn.plan_type == ZOOM_BASIC
        and duration_minutes > ZOOM_FREE_CAP_MINUTES
    ):
        return ["zoom_free_40_min_cap"]
    return []


def new_class_id() -> str:
    return "cls_" + secrets.token_hex(8)


# --- operations -----------------------------------------------------------------------------------


def create_class(
    store: Store,
    schedule: ScheduleStore,
    mentor_id: str,
    body: CreateClassRequest,
    *,
    now: datetime | None = None,
) -> ClassView:
    """Check, resolve and write a class with all its sessions (one transaction)."""
    now = now or datetime.now(UTC)
    tz = zone(body.timezone)
    online = body.format is ClassFormat.ONLINE
    if online and body.location is not None:
        raise invalid("location", "an online class has no location (its meeting link is minted per session)")
    if not online and body.location is None:
        raise invalid("location", "an in-person class needs a location")
    if not online and body.meeting_provider is not None:
        raise invalid("meetingProvider", "only online classes have a meeting provider")
    starts = session_starts(body, tz, now)

    provider: MeetingProvider | None = None
    warnings: list[str] = []
    if online:
        if mentor_plan(store, mentor_id) not in ONLINE_PLANS:
            raise ApiError(
                HTTPStatus.FORBIDDEN,
                "plan_required",
                "Online classes need the Pro or Premium plan.",
                plans=[p.value for p in ONLINE_PLANS],
            )
        provider, conn = resolve_provider(body.meeting_provider, store.list_connections(mentor_id))
        warnings = class_warnings(provider, conn, body.duration_minutes)

    class_id = new_class_id()
    item = ClassItem(
        class_id=class_id,
        mentor_id=mentor_id,
        title=body.title,
        format=body.format,
        timezone=body.timezone,
        duration_minutes=body.duration_minutes,
        capacity=body.capacity,
        location=body.location,
        meeting_provider=provider,
        recurrence=body.rrule,
        warnings=tuple(warnings),
    )
    sessions = [
        Session(
            class_id=class_id,
            session_id=session_id_for(class_id, n),
            mentor_id=mentor_id,
            start=start,
            end=session_end(start, body.duration_minutes, tz),
            capacity=body.capacity,
        )
        for n, start in enumerate(starts, start=1)
    ]
    schedule.create_class(item, sessions)
    logger.info(
        "class created",
        extra={"class_id": class_id, "format": item.format.value, "sessions": len(sessions), "warnings": warnings},
    )
    return class_view(item, sessions)


def owned_class(schedule: ScheduleStore, mentor_id: str, class_id: str) -> ClassItem:
    """The mentor's class, or 404 ``class_not_found`` (also when another mentor owns it)."""
    item = schedule.get_class(class_id) if class_id else None
    if item is None or item.mentor_id != mentor_id:
        raise ApiError(HTTPStatus.NOT_FOUND, "class_not_found", "No such class.")
    return item


def get_class(schedule: ScheduleStore, mentor_id: str, class_id: str) -> ClassView:
    item = owned_class(schedule, mentor_id, class_id)
    return class_view(item, schedule.list_sessions(class_id))


def _owned_session(
    schedule: ScheduleStore, mentor_id: str, class_id: str, session_id: str
) -> tuple[ClassItem, Session]:
    item = owned_class(schedule, mentor_id, class_id)
    session = schedule.get_session(session_id) if class_id_of(session_id) == class_id else None
    if session is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "session_not_found", "No such session in this class.")
    return item, session


def _session_cancelled() -> ApiError:
    return ApiError(HTTPStatus.CONFLICT, "session_cancelled", "This session was cancelled; it cannot be moved.")


def move_session(
    schedule: ScheduleStore,
    queue: JobQueue,
    mentor_id: str,
    class_id: str,
    session_id: str,
    body: MoveSessionRequest,
    *,
    now: datetime | None = None,
) -> SessionView:
    """Reschedule one session and queue ``session.moved`` (at the session's new sequence)."""
    now = now or datetime.now(UTC)
    item, session = _owned_session(schedule, mentor_id, class_id, session_id)
    tz = ZoneInfo(item.timezone)
    start = place(body.start, tz)
    if session.status is SessionStatus.CANCELLED:
        raise _session_cancelled()
    if _instant(start) != _instant(session.start):
        if start <= now:
            raise invalid("start", f"a session must move to the future ({start.isoformat()} has passed)")
        try:
            session = schedule.move_session(session_id, start, session_end(start, item.duration_minutes, tz))
        except SessionNotBookable:
            raise _session_cancelled() from None
        except NotFoundError:
            raise ApiError(HTTPStatus.NOT_FOUND, "session_not_found", "No such session in this class.") from None
    queue.send(
        MeetingJob(
            kind=JobKind.SESSION_MOVED,
            mentor_id=mentor_id,
            class_id=class_id,
            session_id=session_id,
            sequence=session.sequence,
            cause="mentor",
        )
    )
    logger.info("session moved", extra={"session_id": session_id, "sequence": session.sequence})
    return session_view(session, tz)


def cancel_session(
    schedule: ScheduleStore, queue: JobQueue, mentor_id: str, class_id: str, session_id: str
) -> SessionCancelled:
    """Cancel a session and its live bookings; queue one ``session.cancelled`` job (idempotent)."""
    _, session = _owned_session(schedule, mentor_id, class_id, session_id)
    # None: it already was cancelled (a repeat); re-read it for the current sequence.
    session = schedule.cancel_session(session_id) or schedule.get_session(session_id) or session
    bookings = schedule.bookings_of_session(session_id)
    cancelled = [
        done.booking_id
        for booking in bookings
        if (done := schedule.cancel_booking(booking.booking_id, "session_cancelled")) is not None
    ]
    # A repeat also finishes what an interrupted first call left: bookings whose job was not queued.
    pending = cancelled + [
        b.booking_id
        for b in bookings
        if b.status is BookingStatus.CANCELLED and b.cancel_reason == "session_cancelled" and b.job_pending == "cancel"
    ]
    queue.send(
        MeetingJob(
            kind=JobKind.SESSION_CANCELLED,
            mentor_id=mentor_id,
            class_id=class_id,
            session_id=session_id,
            sequence=session.sequence,
            cause="mentor",
        )
    )
    for booking_id in pending:
        schedule.clear_pending_job(booking_id, "cancel")
    logger.info("session cancelled", extra={"session_id": session_id, "bookings_cancelled": len(cancelled)})
    return SessionCancelled(session_id=session_id, status=SessionStatus.CANCELLED, cancelled_bookings=len(cancelled))
