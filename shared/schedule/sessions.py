"""Move and cancel one session of a class (PRODUCT.md §2.4, §3), see :mod:`shared.schedule.classes`.

* ``PATCH /classes/{id}/sessions/{sid}`` ``{start}`` — :func:`move_session`: the session's
  ``sequence`` goes up and a ``session.moved`` job is queued. Moving to the same start again
  changes nothing but re-queues the job at the current sequence (a client retry heals a lost job).
  A cancelled session answers 409 ``session_cancelled``, a private session 409
  ``private_session_fixed`` (it keeps the booked time). The answer carries a ``calendar_conflict``
  warning when the new time overlaps busy time or a private session (the move happens anyway).
* ``DELETE /classes/{id}/sessions/{sid}`` — :func:`cancel_session`: 202 (the state changed now;
  the meeting is deleted and the students e-mailed by the worker). Every live booking is cancelled
  (reason ``session_cancelled``), one ``session.cancelled`` job is queued, then the bookings'
  pending jobs are cleared. Idempotent: a repeat answers 202 again, sweeps any booking left live
  and re-queues the job (the worker deduplicates by session sequence).
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from zoneinfo import ZoneInfo

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.schedule.class_models import (
    MovedSessionView,
    MoveSessionRequest,
    SessionCancelled,
    instant,
    invalid,
    owned_class,
    placed_in_range,
    session_end,
    session_view,
)
from shared.schedule.conflicts import conflict_warning, find_conflicts
from shared.store import (
    BookingStatus,
    ClassItem,
    NotFoundError,
    ScheduleStore,
    Session,
    SessionNotBookable,
    SessionStatus,
)
from shared.store.busy import BusyStore
from shared.store.schedule import class_id_of


def _owned_session(
    schedule: ScheduleStore, mentor_id: str, class_id: str, session_id: str
) -> tuple[ClassItem, Session]:
    item = owned_class(schedule, mentor_id, class_id)
    session = schedule.get_session(session_id) if class_id_of(session_id) == class_id else None
    if session is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "session_not_found", "No such session in this class.")
    return item, session


def _mentor_job(kind: JobKind, mentor_id: str, class_id: str, session_id: str, sequence: int) -> MeetingJob:
    """The job of a session the mentor changed, at the session's current ``sequence``."""
    return MeetingJob(
        kind=kind,
        mentor_id=mentor_id,
        class_id=class_id,
        session_id=session_id,
        sequence=sequence,
        cause="mentor",
    )


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
    busy: BusyStore | None = None,
) -> MovedSessionView:
    """Reschedule one session and queue ``session.moved`` (at the session's new sequence); the answer
    warns (``calendar_conflict``) when it now overlaps busy time or a private session."""
    now = now or datetime.now(UTC)
    item, session = _owned_session(schedule, mentor_id, class_id, session_id)
    tz = ZoneInfo(item.timezone)
    if session.status is SessionStatus.CANCELLED:
        raise _session_cancelled()
    if item.private:
        raise ApiError(
            HTTPStatus.CONFLICT,
            "private_session_fixed",
            "A private session keeps the time the student booked; cancel it and let the student book again.",
        )
    start = placed_in_range(body.start, tz, "start", now)
    if instant(start) != instant(session.start):
        if start <= now:
            raise invalid("start", f"a session must move to the future ({start.isoformat()} has passed)")
        try:
            session = schedule.move_session(
                session_id, start, session_end(start, item.duration_minutes, tz), mentor_id=mentor_id
            )
        except SessionNotBookable:
            raise _session_cancelled() from None
        except NotFoundError:
            raise ApiError(HTTPStatus.NOT_FOUND, "session_not_found", "No such session in this class.") from None
    queue.send(_mentor_job(JobKind.SESSION_MOVED, mentor_id, class_id, session_id, session.sequence))
    logger.info("session moved", extra={"session_id": session_id, "sequence": session.sequence})
    view = session_view(session, tz)
    warnings = conflict_warning(find_conflicts(schedule, busy, mentor_id, [session], tz))
    return MovedSessionView(**view.model_dump(), warnings=warnings)


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
    queue.send(_mentor_job(JobKind.SESSION_CANCELLED, mentor_id, class_id, session_id, session.sequence))
    for booking_id in pending:
        schedule.clear_pending_job(booking_id, "cancel")
    logger.info("session cancelled", extra={"session_id": session_id, "bookings_cancelled": len(cancelled)})
    return SessionCancelled(session_id=session_id, status=SessionStatus.CANCELLED, cancelled_bookings=len(cancelled))
