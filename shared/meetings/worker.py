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

Outcomes the worker cannot fix are recorded, not retried: a provider that is not connected or
needs reconnecting puts a readable ``meetingStatus`` / ``meetingError`` on the booking and
e-mails the mentor once per session. Transient trouble raises :class:`RetryLater` (the message
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
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.notify.emails import Mailer, OutgoingEmail, SessionFacts, cancellation_email, confirmation_email
from shared.notify.emails import meeting_failed_email as failed_email
from shared.platform.observability import logger
from shared.platform.queue import Received, run_record
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import (
    Booking,
    BookingStatus,
    ClassItem,
    ConflictError,
    MeetingProvider,
    MeetingRef,
    MeetingStatus,
    Provider,
    ScheduleStore,
    Session,
    SessionStatus,
    Store,
)
from shared.store.meetings import MeetingBusy, MeetingLedger, Reservation

if TYPE_CHECKING:
    from shared.providers.meetings import MeetingsClient, MeetingSpec

TokenSource = Callable[[str, Provider], SecretStr]

PROVIDER_NAMES = {MeetingProvider.GOOGLE_MEET: "Google Meet", MeetingProvider.ZOOM: "Zoom"}


class MeetingsSettings(BaseSettings):
    """Meetings-worker tuning (environment variables of the same names, upper-cased)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)

    meetings_max_receives: int = Field(
        default=5,
        ge=1,
        description="The meetings queue's maxReceiveCount: a job failing this receive goes to the DLQ.",
    )


class RetryLater(Exception):
    """Transient: try this job again after ``delay_s`` seconds."""

    def __init__(self, reason: str, delay_s: float = 10.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class PermanentFailure(Exception):
    """The provider refused for good; the reason is on the booking and the message goes to the DLQ."""


@dataclass
class MeetingsWorker:
    """Handles one :class:`MeetingJob` at a time; every dependency is passed in (tests plug emulators)."""

    schedule: ScheduleStore
    ledger: MeetingLedger
    store: Store
    tokens: TokenSource
    clients: Callable[[MeetingProvider], MeetingsClient]
    mailer: Mailer
    app_url: str
    lease_s: float = 120.0

    def handle(self, job: MeetingJob) -> str:
        """Converge the state ``job`` is about; returns a short outcome label (for logs and metrics)."""
        handlers = {
            JobKind.BOOKING_CONFIRMED: self._booking_confirmed,
            JobKind.BOOKING_CANCELLED: self._booking_cancelled,
            JobKind.SESSION_MOVED: self._session_moved,
            JobKind.SESSION_CANCELLED: self._session_cancelled,
        }
        return handlers[job.kind](job)

    # -- jobs ----------------------------------------------------------------------------------
    def _booking_confirmed(self, job: MeetingJob) -> str:
        booking = self.schedule.get_booking(job.booking_id or "")
        if booking is None or booking.status is not BookingStatus.CONFIRMED:
            return "skipped:not_confirmed"
        session, klass = self._session_and_class(booking.session_id)
        if session is None or klass is None or klass.meeting_provider is None:
            return "skipped:no_online_session"
        if session.status is SessionStatus.CANCELLED:
            return "skipped:session_cancelled"
        meeting = self._ensure_meeting(klass, session)
        if meeting.status is not MeetingStatus.CREATED or not meeting.url:
            code = meeting.reason.split(":", 1)[0] if meeting.reason else "failed"
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

    # -- the session's meeting -----------------------------------------------------------------
    def _ensure_meeting(self, klass: ClassItem, session: Session) -> MeetingRef:
        provider = klass.meeting_provider
        assert provider is not None
        try:
            held = self.ledger.reserve(session, provider, lease_s=self.lease_s)
        except MeetingBusy as busy:
            raise RetryLater(str(busy), delay_s=busy.retry_after_s) from None
        except ConflictError:
            raise RetryLater("lost the reservation race", delay_s=1.0) from None
        if isinstance(held, MeetingRef):
            return held
        token = self._token(klass, session, held)
        if isinstance(token, MeetingRef):
            return token  # recorded as failed (not connected / needs reconnect)
        spec = self._spec(klass, session, held.generation)
        client = self.clients(provider)
        from shared.providers.meetings import MeetingAuthError, MeetingError

        try:
            minted = client.find(token, spec) if held.takeover else None
            if minted is None:
                minted = client.create(token, spec)
        except MeetingAuthError:
            self._record(held, MeetingStatus.RESERVED, spec)
            raise RetryLater("the provider refused the access token", delay_s=30.0) from None
        except MeetingError as exc:
            if exc.retryable:
                # Unknown outcome: leave the reservation open (lease expired) so the retry looks first.
                self._record(held, MeetingStatus.RESERVED, spec)
                raise RetryLater(f"{exc.code}: {exc}", delay_s=exc.retry_after_s or 10.0) from None
            ref = self._record(held, MeetingStatus.FAILED, spec, reason=f"failed: {exc.code}: {exc}")
            self._notify_mentor(klass, session, ref.reason)
            self._mark_bookings_failed(session, ref)
            raise PermanentFailure(f"{exc.code}: {exc}") from None
        if minted.pending or not minted.join_url:
            self._record(held, MeetingStatus.PENDING, spec, meeting_id=minted.meeting_id)
            raise RetryLater("conference creation pending", delay_s=5.0)
        ref = self._record(held, MeetingStatus.CREATED, spec, meeting_id=minted.meeting_id, url=minted.join_url)
        logger.info("meeting created", extra={"session_id": session.session_id, "provider": provider.value})
        current = self.schedule.get_session(session.session_id)
        if current is not None and current.status is SessionStatus.CANCELLED:
            # Cancelled while we were creating: the session.cancelled job may have found nothing to delete.
            self._delete_meeting(klass, current, require_no_confirmed=False)
        return ref

    def _record(
        self,
        held: Reservation,
        status: MeetingStatus,
        spec: MeetingSpec,
        *,
        meeting_id: str | None = None,
        url: str | None = None,
        reason: str | None = None,
    ) -> MeetingRef:
        try:
            return self.ledger.record(
                held,
                status=status,
                meeting_id=meeting_id or held.previous_meeting_id,
                url=url,
                calendar_id=spec.calendar_id if held.provider is MeetingProvider.GOOGLE_MEET else None,
                reason=reason,
            )
        except ConflictError:
            # Our lease ran out and another worker took over; it will find what we made.
            raise RetryLater("reservation taken over by another worker", delay_s=5.0) from None

    def _token(self, klass: ClassItem, session: Session, held: Reservation) -> SecretStr | MeetingRef:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.oauth import OAuthError, ProviderUnavailableError

        provider = held.provider
        try:
            return self.tokens(klass.mentor_id, provider.connection)
        except ConnectionUnavailable as exc:
            code = exc.status.value  # not_connected | needs_reconnect
            spec = self._spec(klass, session, held.generation)
            ref = self._record(held, MeetingStatus.FAILED, spec, reason=f"{code}: {exc}")
            self._notify_mentor(klass, session, ref.reason)
            return ref
        except (ProviderUnavailableError, OAuthError) as exc:
            # No provider call was made: a plain failure, so the retry reserves afresh.
            self.ledger.record(held, status=MeetingStatus.FAILED, reason="retrying: token endpoint unavailable")
            raise RetryLater(f"token unavailable: {type(exc).__name__}", delay_s=30.0) from None

    def _move_meeting(self, klass: ClassItem, session: Session, meeting: MeetingRef) -> str:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.meetings import MeetingError

        assert klass.meeting_provider is not None
        assert meeting.meeting_id is not None
        try:
            token = self.tokens(klass.mentor_id, klass.meeting_provider.connection)
        except ConnectionUnavailable as exc:
            logger.warning("meeting not moved: provider unavailable", extra={"status": exc.status.value})
            return f"moved:provider_{exc.status.value}"
        spec = self._spec(klass, session, meeting.generation, calendar_id=meeting.calendar_id)
        try:
            self.clients(klass.meeting_provider).move(token, meeting.meeting_id, spec)
        except MeetingError as exc:
            if exc.retryable:
                raise RetryLater(f"{exc.code}: {exc}", delay_s=exc.retry_after_s or 10.0) from None
            raise PermanentFailure(f"move refused: {exc.code}: {exc}") from None
        return "moved"

    def _delete_meeting(self, klass: ClassItem, session: Session, *, require_no_confirmed: bool) -> str:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.meetings import MeetingError

        ref = self.ledger.begin_delete(session, require_no_confirmed=require_no_confirmed)
        if ref is None:
            return "meeting_kept"
        assert klass.meeting_provider is not None
        if ref.meeting_id:
            try:
                token = self.tokens(klass.mentor_id, klass.meeting_provider.connection)
            except ConnectionUnavailable:
                # Disconnected: existing meetings stay where they are (PRODUCT.md §2.2).
                self.ledger.finish_delete(session.session_id, ref.model_copy(update={"reason": "left_at_provider"}))
                return "meeting_left"
            spec = self._spec(klass, session, ref.generation, calendar_id=ref.calendar_id)
            try:
                self.clients(klass.meeting_provider).delete(token, ref.meeting_id, spec)
            except MeetingError as exc:
                if exc.retryable:
                    raise RetryLater(f"{exc.code}: {exc}", delay_s=exc.retry_after_s or 10.0) from None
                raise PermanentFailure(f"delete refused: {exc.code}: {exc}") from None
        self.ledger.finish_delete(session.session_id, ref)
        return "meeting_deleted"

    # -- helpers -------------------------------------------------------------------------------
    def _spec(
        self, klass: ClassItem, session: Session, generation: int, *, calendar_id: str | None = None
    ) -> MeetingSpec:
        from shared.providers.meetings import MeetingSpec

        if calendar_id is None and klass.meeting_provider is MeetingProvider.GOOGLE_MEET:
            conn = self.store.get_connection(klass.mentor_id, Provider.GOOGLE)
            calendar_id = (conn.selected_calendar if conn else None) or "primary"
        return MeetingSpec(
            key=f"{session.session_id}.g{generation}",
            title=klass.title,
            start=session.start,
            end=session.end,
            timezone=klass.timezone,
            description=f"{klass.title}: online class booked on the marketplace.",
            calendar_id=calendar_id or "primary",
        )

    def _session_and_class(self, session_id: str) -> tuple[Session | None, ClassItem | None]:
        session = self.schedule.get_session(session_id)
        return session, (self.schedule.get_class(session.class_id) if session else None)

    def _bookings(self, session_id: str) -> list[Booking]:
        """The session's bookings, each re-read consistently (the index may lag)."""
        found = []
        for listed in self.schedule.bookings_of_session(session_id):
            booking = self.schedule.get_booking(listed.booking_id)
            if booking is not None:
                found.append(booking)
        return found

    def _email_once(self, booking: Booking, key: str, render: Callable[[], OutgoingEmail]) -> None:
        if not self.ledger.claim_email(booking.booking_id, key):
            return
        try:
            self.mailer.send(render())
        except Exception:
            self.ledger.release_email(booking.booking_id, key)
            raise
        logger.info("booking e-mail sent", extra={"booking_id": booking.booking_id, "kind": key})

    def _notify_mentor(self, klass: ClassItem, session: Session, reason: str | None) -> None:
        if not self.ledger.mark_notified(session.session_id):
            return
        mentor = self.store.get_mentor(klass.mentor_id)
        if mentor is None or not mentor.email:
            logger.warning("meeting failure e-mail skipped: mentor has no e-mail", extra={"mentor_id": klass.mentor_id})
            return
        self.mailer.send(failed_email(mentor.email, _facts(klass, session), _words(reason), self.app_url))

    def _mark_bookings_failed(self, session: Session, ref: MeetingRef) -> None:
        for booking in self._bookings(session.session_id):
            if booking.status is BookingStatus.CONFIRMED:
                self.ledger.set_booking_meeting(
                    booking.booking_id, status="failed", provider=ref.provider, error=_words(ref.reason)
                )


def _student(booking: Booking) -> tuple[str, str]:
    return booking.student_email, booking.student_name


def _facts(klass: ClassItem, session: Session) -> SessionFacts:
    provider = PROVIDER_NAMES.get(klass.meeting_provider) if klass.meeting_provider else None
    return SessionFacts(
        title=klass.title, start=session.start, end=session.end, timezone=klass.timezone, provider_name=provider or ""
    )


def _words(reason: str | None) -> str:
    """The booking's readable ``meetingError`` for a recorded reason."""
    if not reason:
        return "The meeting could not be created."
    code, _, detail = reason.partition(":")
    return {
        "needs_reconnect": "The mentor's video provider needs to be reconnected; the join link will follow.",
        "not_connected": "The mentor's video provider is not connected; the join link will follow.",
    }.get(code, f"The meeting could not be created ({detail.strip() or code}).")


def _ics(klass: ClassItem, session: Session, url: str | None) -> bytes:
    from shared.notify.ics import calendar, session_event

    event = session_event(
        session_id=session.session_id,
        title=klass.title,
        start=session.start,
        end=session.end,
        timezone=klass.timezone,
        sequence=session.sequence,
        url=url,
        stamp=session.updated_at,
    )
    return bytes(calendar([event]).to_ical())


def process_message(
    body: str, receipt_handle: str | None = None, *, receive_count: int = 1, worker: MeetingsWorker
) -> str:
    """Handle one SQS message body; what the ``mint_meeting`` handler calls for each record.

    A :class:`RetryLater` first stretches the message's visibility to the delay it asks for (a
    Zoom daily cap asks for hours), then propagates, so the batch reports this record as failed
    and SQS redelivers it then. Malformed bodies and :class:`PermanentFailure` propagate too and
    end in the dead-letter queue after the queue's ``maxReceiveCount``.

    On the last receive (``receive_count`` ≥ ``MEETINGS_MAX_RECEIVES``) a job that still fails —
    retryable or unexpected — is handed to :meth:`MeetingsWorker.give_up` first, so it reaches the
    DLQ with its reason on the booking; its visibility is not stretched (the DLQ is next anyway).
    """
    from shared.platform.config import QueueSettings, settings

    job = MeetingJob.model_validate_json(body)
    received = Received(
        queue_url=settings(QueueSettings).meetings_queue_url,
        receipt_handle=receipt_handle,
        receive_count=receive_count,
        max_receives=settings(MeetingsSettings).meetings_max_receives,
    )

    def retry_delay(exc: Exception) -> float | None:
        if not isinstance(exc, RetryLater):
            return None
        extra = {"kind": job.kind.value, "reason": exc.reason, "delay_s": exc.delay_s, "receive": receive_count}
        logger.info("job retried later", extra=extra)
        return exc.delay_s

    def on_last(exc: Exception) -> None:
        if isinstance(exc, PermanentFailure):
            return  # its reason is on the booking already
        reason = exc.reason if isinstance(exc, RetryLater) else f"internal error: {type(exc).__name__}"
        _give_up(worker, job, reason)

    outcome = run_record(received, lambda: worker.handle(job), retry_delay=retry_delay, on_last=on_last)
    logger.info("job done", extra={"kind": job.kind.value, "outcome": outcome, "key": job.dedupe_key()})
    return outcome


def _give_up(worker: MeetingsWorker, job: MeetingJob, reason: str) -> None:
    """:meth:`MeetingsWorker.give_up`, never hiding the job's own failure behind a second one."""
    try:
        outcome = worker.give_up(job, reason)
    except Exception:
        logger.exception("recording why a job gave up failed", extra={"kind": job.kind.value})
        return
    logger.warning("job failed its last receive", extra={"kind": job.kind.value, "outcome": outcome})
