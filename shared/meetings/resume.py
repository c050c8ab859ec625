"""Reconnecting resumes (PRODUCT.md §2.2, §2.6): bookings that waited on a connection get their links.

When a ``booking.confirmed`` job cannot get a token because the mentor's video connection is
``needs_reconnect`` or ``not_connected``, the worker records that on the booking and writes a
*waiting marker* in the same transaction (:meth:`Resumes.waiting_for_reconnect`, keys and
invariants in :mod:`shared.store.waiting`). When the connection becomes ``connected`` again (OAuth
``complete``), :meth:`Resumes.reconnected` runs — built and called by :mod:`shared.wiring`, best
effort, after the connection is saved:

1. one ``Query`` finds the mentor's markers for that provider (at most ``max_bookings``); markers
   claimed by a live batch are skipped, so **a second reconnect queues nothing new**;
2. each booking is re-read: one no longer CONFIRMED, already linked or moved to another provider
   loses its marker; one whose session **already started is listed, not re-minted** (its marker
   goes);
3. a *resume batch* is written with the future bookings as ``pending`` *before* anything is
   queued, each marker is claimed for the batch, and one ``booking.confirmed`` job per claimed
   booking goes to the meetings queue (the worker is idempotent: one meeting per session, one
   student e-mail per booking);
4. as the worker finishes each re-queued job it settles the booking in the batch — ``created``
   (the link is on the booking and the student was e-mailed as usual), ``waiting`` (the connection
   failed again: the marker is back, unclaimed, for the next reconnect), ``failed`` (another
   refusal, reason on the booking) or ``dropped`` (cancelled meanwhile).

**The mentor gets one summary e-mail per batch, once nothing is pending** ("N join links were
created after you reconnected", the already-started sessions listed, anything still without a link
counted). Waiting for the links rather than announcing "N are being created" makes the e-mail true
when it arrives; the cost is that a job retried for long (a provider's daily cap) delays it, and a
job that reaches the dead-letter queue settles through :meth:`settle` from ``give_up``. A batch
whose bookings all turned out claimed elsewhere or dropped sends nothing.

Bounds and edges: the reconnect runs on the request path, so it takes at most ``max_bookings``
markers (200, about three reads each); more are logged and stay unclaimed for the next reconnect.
A claim older than ``claim_stale_s`` (15 minutes: its job was lost) may be claimed again. Two
reconnects racing each claim a share of the bookings, never the same one, and each summarizes its
share. A summary SES refused is logged as an error and not retried (the links are made).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.meetings.messages import PROVIDER_NAMES
from shared.notify.emails import Mailer
from shared.notify.summaries import StartedSession, reconnect_summary_email
from shared.platform.observability import logger
from shared.platform.queue import Queue
from shared.queues.busy import SyncJob, SyncReason
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import Booking, BookingStatus, ClassItem, Provider, ScheduleStore, Session, SessionStatus, Store
from shared.store.waiting import WAITING_REASONS, Outcome, WaitingStore

#: Already-started sessions kept on a batch for the summary (the rest are counted).
MAX_LISTED = 50


@dataclass(frozen=True)
class ResumeReport:
    """What one reconnect did (logs and tests)."""

    resume_id: str | None = None
    queued: int = 0
    started: int = 0
    dropped: int = 0
    skipped_claimed: int = 0


@dataclass
class Resumes:
    """Waiting markers → re-queued jobs → one summary; every dependency passed in."""

    waiting: WaitingStore
    schedule: ScheduleStore
    store: Store
    mailer: Mailer
    queue: Callable[[Sequence[MeetingJob]], object]
    app_url: str
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    max_bookings: int = 200  # per reconnect, on the request path (≈ 3 reads each; sessions/classes cached)
    claim_stale_s: float = 900.0

    # -- the reconnect -------------------------------------------------------------------------
    def reconnected(self, mentor_id: str, connection: Provider) -> ResumeReport:
        """Re-queue every future booking that waited on ``connection``; see the module docstring."""
        now = self.clock()
        markers = self.waiting.waiting(mentor_id, connection, limit=self.max_bookings)
        if len(markers) >= self.max_bookings:
            logger.warning("resume capped: more waiting bookings than one reconnect takes", extra={"cap": len(markers)})
        future: list[tuple[Booking, Session]] = []
        started: list[dict[str, Any]] = []
        dropped = claimed_elsewhere = 0
        stale_before = now.timestamp() - self.claim_stale_s
        seen: dict[str, Any] = {}  # session / class reads, shared by the bookings of one session
        for marker in markers:
            if marker.get("resume_id") and float(marker.get("queued_at") or 0) >= stale_before:
                claimed_elsewhere += 1
                continue
            booking_id = str(marker["booking_id"])
            found = self._still_waiting(booking_id, connection, seen)
            if found is None:
                self.waiting.take(mentor_id, booking_id)
                dropped += 1
                continue
            booking, session, klass = found
            if session.start <= now:
                if len(started) < MAX_LISTED:
                    started.append(_listed(booking, session, klass))
                self.waiting.take(mentor_id, booking_id)
                continue
            future.append((booking, session))
        if not future and not started:
            return ResumeReport(dropped=dropped, skipped_claimed=claimed_elsewhere)
        resume_id = f"{int(now.timestamp() * 1000):013d}-{uuid.uuid4().hex[:8]}"
        self.waiting.open_batch(
            mentor_id, connection, resume_id, pending=[b.booking_id for b, _ in future], started=started
        )
        jobs = [job for job in (self._claim(mentor_id, connection, resume_id, b, s) for b, s in future) if job]
        try:
            if jobs:
                self.queue(jobs)
        except Exception:
            logger.exception("resume jobs could not be queued", extra={"count": len(jobs)})
            for job in jobs:  # they still wait: the next reconnect picks them up
                self.waiting.release(mentor_id, job.booking_id or "", resume_id)
                self._settle(mentor_id, connection, resume_id, job.booking_id or "", "waiting", job.session_id)
        self._summarize_if_done(mentor_id, connection, resume_id)
        report = ResumeReport(
            resume_id=resume_id,
            queued=len(jobs),
            started=len(started),
            dropped=dropped,
            skipped_claimed=claimed_elsewhere,
        )
        logger.info("reconnect resumed bookings", extra={"provider": connection.value, **report.__dict__})
        return report

    def _still_waiting(
        self, booking_id: str, connection: Provider, seen: dict[str, Any]
    ) -> tuple[Booking, Session, ClassItem] | None:
        booking = self.schedule.get_booking(booking_id)
        if (
            booking is None
            or booking.status is not BookingStatus.CONFIRMED
            or booking.meeting_url
            or booking.meeting_status not in WAITING_REASONS
        ):
            return None
        sid, cid = booking.session_id, booking.class_id
        if sid not in seen:
            seen[sid] = self.schedule.get_session(sid)
        if cid not in seen:
            seen[cid] = self.schedule.get_class(cid)
        session, klass = seen[sid], seen[cid]
        if session is None or klass is None or session.status is SessionStatus.CANCELLED:
            return None
        if klass.meeting_provider is None or klass.meeting_provider.connection is not connection:
            return None
        return booking, session, klass

    def _claim(
        self, mentor_id: str, connection: Provider, resume_id: str, booking: Booking, session: Session
    ) -> MeetingJob | None:
        if not self.waiting.claim(mentor_id, booking.booking_id, resume_id, stale_s=self.claim_stale_s):
            self._settle(mentor_id, connection, resume_id, booking.booking_id, "dropped", session.session_id)
            return None
        return MeetingJob(
            kind=JobKind.BOOKING_CONFIRMED,
            mentor_id=mentor_id,
            class_id=booking.class_id,
            session_id=booking.session_id,
            booking_id=booking.booking_id,
            cause="reconnect",
        )

    # -- what the meetings worker reports ------------------------------------------------------
    def waiting_for_reconnect(
        self, booking: Booking, klass: ClassItem, session: Session, reason: str, error: str
    ) -> bool:
        """Record ``reason`` (needs_reconnect / not_connected) on the booking with its marker, in one write.

        ``False`` when the booking is no longer CONFIRMED. A booking a resume batch had re-queued is
        settled there as still ``waiting``.
        """
        assert klass.meeting_provider is not None
        connection = klass.meeting_provider.connection
        recorded, previous = self.waiting.record_failure(
            booking_id=booking.booking_id,
            mentor_id=klass.mentor_id,
            session_id=session.session_id,
            class_id=klass.class_id,
            connection=connection,
            meeting_provider=klass.meeting_provider.value,
            reason=reason,
            error=error,
            session_end=session.end,
        )
        if previous and previous.get("resume_id"):
            resume_id = str(previous["resume_id"])
            self._settle(klass.mentor_id, connection, resume_id, booking.booking_id, "waiting", session.session_id)
            self._summarize_if_done(klass.mentor_id, connection, resume_id)
        return recorded

    def settle(self, mentor_id: str, booking_id: str, outcome: str) -> None:
        """A ``booking.confirmed`` job ended with ``outcome`` (the worker's label): drop the marker, settle its batch.

        ``failed:needs_reconnect`` / ``failed:not_connected`` were settled by
        :meth:`waiting_for_reconnect` (their marker is back); ``ready`` counts as created; any
        other ``failed:`` / ``gave_up`` as failed; anything else (cancelled meanwhile) as dropped.
        """
        code = outcome.removeprefix("failed:")
        if outcome.startswith("failed:") and code in WAITING_REASONS:
            return
        marker = self.waiting.take(mentor_id, booking_id)
        if marker is None or not marker.get("resume_id"):
            return
        result: Outcome = "created" if outcome == "ready" else "failed" if outcome.startswith("failed:") else "dropped"
        connection, resume_id = Provider(str(marker["provider"])), str(marker["resume_id"])
        self._settle(mentor_id, connection, resume_id, booking_id, result, str(marker.get("session_id") or ""))
        self._summarize_if_done(mentor_id, connection, resume_id)

    # -- the summary ---------------------------------------------------------------------------
    def _settle(
        self, mentor_id: str, connection: Provider, resume_id: str, booking_id: str, outcome: Outcome, sid: str
    ) -> None:
        if self.waiting.settle(mentor_id, connection, resume_id, booking_id, outcome, sid) is not None:
            logger.info("resumed booking settled", extra={"resume_id": resume_id, "outcome": outcome})

    def _summarize_if_done(self, mentor_id: str, connection: Provider, resume_id: str) -> None:
        batch = self.waiting.claim_summary(mentor_id, connection, resume_id)
        if batch is None:
            return  # still pending, or sent already
        created = len(batch.get("created") or ())
        links = len(batch.get("created_sessions") or ())
        waiting, failed = len(batch.get("waiting") or ()), len(batch.get("failed") or ())
        started = [StartedSession.from_item(s) for s in batch.get("started") or ()]
        if not (created or waiting or failed or started):
            return  # everything was cancelled meanwhile or claimed by another batch: nothing to tell
        mentor = self.store.get_mentor(mentor_id)
        if mentor is None or not mentor.email:
            logger.warning("reconnect summary skipped: mentor has no e-mail", extra={"mentor_id": mentor_id})
            return
        email = reconnect_summary_email(
            mentor.email,
            _display_name(connection),
            links=links,
            bookings=created,
            started=started,
            still_waiting=waiting,
            failed=failed,
            app_url=self.app_url,
        )
        try:
            self.mailer.send(email)
        except Exception:
            # Given back so a later settle of this batch could send it; the jobs themselves are done.
            self.waiting.release_summary(mentor_id, connection, resume_id)
            logger.exception("reconnect summary could not be sent", extra={"resume_id": resume_id})
            return
        logger.info("reconnect summary sent", extra={"resume_id": resume_id, "links": links, "started": len(started)})


def _listed(booking: Booking, session: Session, klass: ClassItem) -> dict[str, Any]:
    return {
        "booking_id": booking.booking_id,
        "title": klass.title[:200],
        "start": session.start.isoformat(),
        "end": session.end.isoformat(),
        "timezone": klass.timezone,
        "student": booking.student_name[:200],
    }


def _display_name(connection: Provider) -> str:
    names = {m.connection: name for m, name in PROVIDER_NAMES.items()}
    return names.get(connection, connection.value.title())


def after_connect(
    mentor_id: str,
    connection: Provider,
    reconnected: bool,
    *,
    sync_queue: Callable[[], Queue[SyncJob]],
    resumes: Callable[[], Resumes],
) -> None:
    """What a saved connection sets off (:func:`shared.wiring.on_connected`); never raises.

    A *re*connected calendar (Google, Apple) gets a busy sync queued now; a video connection
    (Google, Zoom, Microsoft) resumes the bookings that waited on it — after a first connect too (a booking
    confirmed while Zoom was disconnected waits as ``not_connected``). Google's push channel is
    reopened by ``on_google_connected``, which the OAuth completion calls for every Google connect.
    """
    steps: list[tuple[str, Callable[[], object]]] = []
    if reconnected and connection in (Provider.GOOGLE, Provider.APPLE):
        job = SyncJob(mentor_id=mentor_id, provider=connection, reason=SyncReason.CONNECT)
        steps.append(("busy sync after reconnect not queued", lambda: sync_queue().send(job)))
    if connection in (Provider.GOOGLE, Provider.ZOOM, Provider.MICROSOFT):
        steps.append(("resuming waiting bookings failed", lambda: resumes().reconnected(mentor_id, connection)))
    for failure, step in steps:
        try:
            step()
        except Exception:
            logger.exception(failure, extra={"provider": connection.value})
