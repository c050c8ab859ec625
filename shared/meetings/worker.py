"""The meetings worker's logic (PRODUCT.md §2.6): converge the provider and the e-mails to the table.

A :class:`~shared.queues.meetings.MeetingJob` only says what happened; :class:`MeetingsWorker` reads the
current booking / session / class and acts on that, so duplicate, late and reordered jobs are
harmless:

* ``booking.confirmed`` — make sure the session has its one meeting (reserve → look or create →
  record, see :mod:`shared.store.meetings`), put the join URL on the booking if it is still
  confirmed, e-mail the student once (link + ``.ics``).
* ``booking.cancelled`` — e-mail the student once; delete the meeting if no confirmed booking is
  left in the session (404/410 counts as deleted).
* ``session.moved`` — patch the Google event / Zoom meeting to the session's current times (the
  link stays), e-mail every confirmed student once per move.
* ``session.cancelled`` — e-mail the students the session's cancellation took out, delete the
  meeting.
* ``meeting.check`` / ``calendar.changed`` — drift repair: restore a meeting deleted or moved
  outside the platform (:mod:`shared.meetings.repair`).

Outcomes the worker cannot fix are recorded, not retried: a provider that is not connected or
needs reconnecting puts a readable ``meetingStatus`` / ``meetingError`` on the booking and
e-mails the mentor once per session; with ``resumes`` the same write leaves a waiting marker, and
every ``booking.confirmed`` outcome settles it, so a reconnect re-queues the booking once
(:mod:`shared.meetings.resume`). Transient trouble raises :class:`RetryLater` (the message
comes back after ``delay_s``); a permanent provider refusal records its reason on the booking and
raises :class:`PermanentFailure`, so the message ends in the dead-letter queue after 5 receives.

No job reaches the dead-letter queue without a reason: when the last receive
(``MEETINGS_MAX_RECEIVES``, the queue's ``maxReceiveCount``) still fails — a provider down for
longer than the retries, or an unexpected error — :meth:`MeetingsWorker.give_up` records
``meetingStatus: failed`` and the reason on the confirmation's booking and e-mails the mentor (once
per session), before the message moves on to the DLQ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from shared.meetings.meeting import TokenSource
from shared.meetings.messages import facts as _facts
from shared.meetings.messages import ics as _ics
from shared.meetings.messages import student as _student
from shared.meetings.messages import words as _words
from shared.meetings.outcomes import MeetingsSettings, PermanentFailure, RetryLater
from shared.meetings.repair import MeetingRepair
from shared.meetings.resume import Resumes
from shared.meetings.runner import process_message
from shared.notify.emails import OutgoingEmail, cancellation_email, confirmation_email, over_capacity_email
from shared.platform.observability import logger
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import Booking, BookingStatus, ClassItem, MeetingStatus, Session, SessionStatus
from shared.store.waiting import WAITING_REASONS

__all__ = ["MeetingsSettings", "MeetingsWorker", "PermanentFailure", "RetryLater", "TokenSource", "process_message"]


@dataclass
class MeetingsWorker(MeetingRepair):
    """Handles one :class:`MeetingJob` at a time; every dependency is passed in (tests plug emulators)."""

    resumes: Resumes | None = None  # bookings waiting on a reconnect (shared.meetings.resume)

    def handle(self, job: MeetingJob) -> str:
        """Converge the state ``job`` is about; returns a short outcome label (for logs and metrics)."""
        handlers = {
            JobKind.BOOKING_CONFIRMED: self._booking_confirmed,
            JobKind.BOOKING_CANCELLED: self._booking_cancelled,
            JobKind.SESSION_MOVED: self._session_moved,
            JobKind.SESSION_CANCELLED: self._session_cancelled,
            JobKind.MEETING_CHECK: self.check_meeting,  # drift repair (shared.meetings.repair)
            JobKind.CALENDAR_CHANGED: self.calendar_changed,
        }
        if job.kind is not JobKind.BOOKING_CONFIRMED or self.resumes is None:
            return handlers[job.kind](job)
        try:  # a booking that waited on a reconnect settles its resume batch (shared.meetings.resume)
            outcome = self._booking_confirmed(job)
        except PermanentFailure:
            self.resumes.settle(job.mentor_id, job.booking_id or "", "failed:refused")
            raise
        self.resumes.settle(job.mentor_id, job.booking_id or "", outcome)
        return outcome

    # -- jobs ----------------------------------------------------------------------------------
    def _booking_confirmed(self, job: MeetingJob) -> str:
        booking = self.schedule.get_booking(job.booking_id or "")
        if booking is None or booking.status is not BookingStatus.CONFIRMED:
            return "skipped:not_confirmed"
        session, klass = self._session_and_class(booking.session_id)
        if booking.over_capacity and session is not None and klass is not None:
            self._notify_over_capacity(booking, klass, session)
        if session is None or klass is None or klass.meeting_provider is None:
            return "skipped:no_online_session"
        if session.status is SessionStatus.CANCELLED:
            return "skipped:session_cancelled"
        meeting = self._ensure_meeting(klass, session)
        if meeting.status is not MeetingStatus.CREATED or not meeting.url:
            code = meeting.reason.split(":", 1)[0] if meeting.reason else "failed"
            if self.resumes is not None and code in WAITING_REASONS:  # with its marker, for the reconnect
                self.resumes.waiting_for_reconnect(booking, klass, session, code, _words(meeting.reason))
            else:
                self.ledger.set_booking_meeting(
                    booking.booking_id, status=code, provider=klass.meeting_provider, error=_words(meeting.reason)
                )
            return f"failed:{code}"
        if not self.ledger.set_booking_meeting(
            booking.booking_id,
            status="ready",
            url=meeting.url,
            provider=klass.meeting_provider,
            meeting_id=meeting.meeting_id,
        ):
            return "skipped:cancelled_meanwhile"
        ics = _ics(klass, session, meeting.url)
        self._email_once(
            booking,
            "confirmation",
            lambda: confirmation_email(*_student(booking), _facts(klass, session), meeting.url or "", ics),
        )
        return "ready"

    def _booking_cancelled(self, job: MeetingJob) -> str:
        booking = self.schedule.get_booking(job.booking_id or "")
        if booking is None or booking.status is not BookingStatus.CANCELLED:
            return "skipped:not_cancelled"
        session, klass = self._session_and_class(booking.session_id)
        if session is None or klass is None:
            return "skipped:no_session"
        self._email_once(
            booking,
            "cancellation",
            lambda: cancellation_email(*_student(booking), _facts(klass, session), booking.cancel_reason),
        )
        if klass.meeting_provider is None or session.status is SessionStatus.CANCELLED:
            return "cancelled"  # the session.cancelled job owns the meeting then
        return "cancelled:" + self._delete_meeting(klass, session, require_no_confirmed=True)

    def _session_moved(self, job: MeetingJob) -> str:
        session, klass = self._session_and_class(job.session_id)
        if session is None or klass is None or session.status is SessionStatus.CANCELLED:
            return "skipped:no_session"
        outcome = "moved"
        meeting = session.meeting
        if klass.meeting_provider is not None and meeting is not None:
            if meeting.status in (MeetingStatus.RESERVED, MeetingStatus.PENDING):
                raise RetryLater("meeting still being created", delay_s=5.0)
            if meeting.status is MeetingStatus.CREATED and meeting.meeting_id:
                outcome = self._move_meeting(klass, session, meeting)
        bookings = [b for b in self._bookings(session.session_id) if b.status is BookingStatus.CONFIRMED]
        facts = _facts(klass, session)
        for booking in bookings:
            link = booking.meeting_url or (meeting.url if meeting else None)
            if not link:
                continue
            ics: bytes = _ics(klass, session, link)
            self._email_once(
                booking,
                f"moved#{session.sequence}",
                partial(confirmation_email, *_student(booking), facts, link, ics, moved=True),
            )
        return outcome

    def _session_cancelled(self, job: MeetingJob) -> str:
        session, klass = self._session_and_class(job.session_id)
        if session is None or klass is None or session.status is not SessionStatus.CANCELLED:
            return "skipped:not_cancelled"
        for booking in self._bookings(session.session_id):
            if booking.status is BookingStatus.CANCELLED and booking.cancel_reason == "session_cancelled":
                self._email_once(
                    booking,
                    "cancellation",
                    partial(cancellation_email, *_student(booking), _facts(klass, session), booking.cancel_reason),
                )
        if klass.meeting_provider is None:
            return "cancelled"
        return "cancelled:" + self._delete_meeting(klass, session, require_no_confirmed=False)

    def give_up(self, job: MeetingJob, reason: str) -> str:
        """:meth:`_give_up`, then a booking that waited on a reconnect settles its resume batch."""
        outcome = self._give_up(job, reason)
        if self.resumes is not None and job.kind is JobKind.BOOKING_CONFIRMED:
            label = "failed:gave_up" if outcome == "gave_up:recorded" else outcome
            self.resumes.settle(job.mentor_id, job.booking_id or "", label)
        return outcome

    def _give_up(self, job: MeetingJob, reason: str) -> str:
        """The job's last receive failed too (it goes to the dead-letter queue): record why.

        A confirmation whose booking has no link gets ``meetingStatus: failed`` with the reason in
        words, and the mentor one "no join link" e-mail per session (the same as a permanent
        refusal). A redrive from the DLQ later simply runs the job again: a link it makes replaces
        the failure. Other kinds have no booking field to hold a reason; they are logged as errors
        (the DLQ's alarm is the signal). Returns a short outcome label.
        """
        logger.error(
            "job gave up: dead-letter queue next",
            extra={"kind": job.kind.value, "key": job.dedupe_key(), "reason": reason[:300]},
        )
        if job.kind is not JobKind.BOOKING_CONFIRMED:
            return "gave_up:logged"
        booking = self.schedule.get_booking(job.booking_id or "")
        if booking is None or booking.status is not BookingStatus.CONFIRMED or booking.meeting_url:
            return "gave_up:nothing_to_record"  # cancelled meanwhile, or it has its link (an e-mail failed)
        session, klass = self._session_and_class(booking.session_id)
        if session is None or klass is None or klass.meeting_provider is None:
            return "gave_up:nothing_to_record"
        failure = f"failed: {reason}"
        if not self.ledger.set_booking_meeting(
            booking.booking_id, status="failed", provider=klass.meeting_provider, error=_words(failure)
        ):
            return "gave_up:nothing_to_record"
        self._notify_mentor(klass, session, failure)
        return "gave_up:recorded"

    # -- helpers -------------------------------------------------------------------------------
    def _notify_over_capacity(self, booking: Booking, klass: ClassItem, session: Session) -> None:
        """A late payment confirmed into a full session: the mentor is told once (per booking)."""
        mentor = self.store.get_mentor(klass.mentor_id)
        if mentor is None or not mentor.email:
            logger.warning("over-capacity e-mail skipped: mentor has no e-mail", extra={"mentor_id": klass.mentor_id})
            return
        to = mentor.email
        self._email_once(
            booking,
            "over_capacity",
            lambda: over_capacity_email(to, _facts(klass, session), booking.student_name, booking.booking_id),
        )

    def _email_once(self, booking: Booking, key: str, render: Callable[[], OutgoingEmail]) -> None:
        if not self.ledger.claim_email(booking.booking_id, key):
            return
        try:
            self.mailer.send(render())
        except Exception:
            self.ledger.release_email(booking.booking_id, key)
            raise
        logger.info("booking e-mail sent", extra={"booking_id": booking.booking_id, "kind": key})
