"""Drift repair (PRODUCT.md §2.6, self-healing): the platform is the truth for sessions.

A meeting we created can be deleted or moved outside MoveMentors (the host in Zoom, the mentor in
Google Calendar). Three signals lead to a **check** of one session's meeting against the ledger
(:class:`~shared.store.meetings.MeetingLedger`, the session item's ``meeting`` map):

* a signed Zoom ``meeting.deleted`` / ``meeting.updated`` for a meeting id the meeting index knows
  (:mod:`shared.store.meeting_index`) → a ``meeting.check`` job (:meth:`MeetingRepair.check_meeting`,
  one GET of the meeting);
* a Google push on the mentor's selected calendar → a ``calendar.changed`` job
  (:meth:`MeetingRepair.calendar_changed`): one ``events.list`` of the events changed in the last
  :attr:`~MeetingRepair.push_lookback_s` (deleted ones included); each of ours (its id is in the
  index) is checked with what the list says, no further GET;
* the pre-flight (:mod:`shared.meetings.preflight`): one ``meeting.check`` per meeting starting
  within 24 hours.

What a check does, given the meeting as the provider has it now:

* **gone** (404, or a cancelled Google event) → the ledger marks it deleted, conditional on still
  naming that meeting id (:meth:`~shared.store.meetings.MeetingLedger.mark_gone`: two checks of one
  deletion re-create once), and the session gets a new one through the usual reserve → create →
  record path with generation + 1, so the provider key — Google's event id, derived from
  ``<sessionId>.g<generation>`` — is new and deterministic (Google never reuses a deleted event's
  id). Confirmed bookings whose link changed get the new one and one "new join link" e-mail each
  (claimed per booking and generation); the mentor gets one e-mail per new meeting.
* **moved** (its times differ from the session's) → moved back (the link stays; students are not
  e-mailed: for them nothing changed); the mentor gets one e-mail per outside move.
* **as the ledger says** → nothing, apart from the convergence step below.

No loops: our own creates, moves and deletes also make Zoom and Google notify us, but a check
compares the provider with the session, and what we wrote already matches it — so our writes
trigger no provider write and no e-mail. A session the platform moved whose ``session.moved`` job
has not run yet is not mistaken for an outside move: the index item holds the times we last wrote
to the provider, and a meeting still at those times is left to that job.

Every check ends with the convergence step: a confirmed booking carrying a link other than the
session's live meeting's (a re-creation interrupted after the new meeting was recorded) gets it then,
so a retried job finishes what a failed one started. A re-creation that cannot get a meeting (the
connection needs reconnecting) records the reason on those bookings as a confirmation would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import SecretStr

from shared.meetings.meeting import SessionMeetings
from shared.meetings.messages import facts as _facts
from shared.meetings.messages import ics as _ics
from shared.meetings.messages import student as _student
from shared.meetings.messages import words as _words
from shared.meetings.outcomes import PermanentFailure, provider_outcome
from shared.notify.repair_emails import Restored, meeting_restored_email, new_link_email
from shared.platform.observability import logger
from shared.queues.meetings import MeetingJob
from shared.store import (
    Booking,
    BookingStatus,
    ClassItem,
    ConnectionStatus,
    MeetingProvider,
    MeetingRef,
    MeetingStatus,
    Provider,
    Session,
    SessionStatus,
)

if TYPE_CHECKING:
    from shared.providers.meetings.probe import MeetingProbe, Observed

#: ``reason`` of a ledger meeting that vanished at its provider.
GONE = "gone_at_provider"
#: Zoom's longest scheduled meeting (minutes); a longer session's meeting ends there.
_ZOOM_MAX_MINUTES = 1440
#: Google event ids we mint start with this (:func:`shared.providers.google.meet.google_event_id`).
_OUR_EVENT_PREFIX = "mc"


def _meeting_end(klass: ClassItem, start: datetime, end: datetime) -> datetime:
    """When the provider's meeting of a session ``start``-``end`` ends: Zoom keeps whole minutes (≤ a day)."""
    if klass.meeting_provider is MeetingProvider.ZOOM:
        minutes = max(1, math.ceil((end - start).total_seconds() / 60))
        return start + timedelta(minutes=min(minutes, _ZOOM_MAX_MINUTES))
    return end


@dataclass
class MeetingRepair(SessionMeetings):
    """The checks of drift repair (module docstring), on top of the worker's meeting operations."""

    probes: Callable[[MeetingProvider], MeetingProbe | None] | None = None
    clock: Callable[[], float] = time.time
    push_lookback_s: float = 900.0
    max_changed_events: int = 50

    # -- jobs ----------------------------------------------------------------------------------
    def check_meeting(self, job: MeetingJob) -> str:
        """``meeting.check``: read the session's meeting at its provider (one GET) and restore it."""
        session, klass = self._session_and_class(job.session_id)
        if session is None or klass is None or klass.meeting_provider is None:
            return "check:no_session"
        if session.status is SessionStatus.CANCELLED or session.end.timestamp() <= self.clock():
            return "check:not_live"
        meeting = session.meeting
        if meeting is None or meeting.status is not MeetingStatus.CREATED or not meeting.meeting_id:
            return self._resume(klass, session)
        seen = self._observe(klass, meeting)
        if isinstance(seen, str):
            return seen
        return self._reconcile(klass, session, meeting, seen)

    def calendar_changed(self, job: MeetingJob) -> str:
        """``calendar.changed`` (a Google push): check our events among those changed lately."""
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.fresh_token import with_fresh_token
        from shared.providers.meetings import MeetingAuthError, MeetingError

        conn = self.store.get_connection(job.mentor_id, Provider.GOOGLE)
        if conn is None or conn.status is not ConnectionStatus.CONNECTED or self.index is None:
            return "calendar:not_connected"
        changed = getattr(self._probe(MeetingProvider.GOOGLE_MEET), "changed", None)
        if changed is None:
            return "calendar:unsupported"
        since = datetime.fromtimestamp(self.clock() - self.push_lookback_s, UTC)
        calendar = conn.selected_calendar or "primary"
        mentor = job.mentor_id
        try:
            seen: list[Observed] = with_fresh_token(
                self.tokens(mentor, Provider.GOOGLE),
                lambda bearer: changed(bearer, calendar, since),
                lambda rejected: self.tokens(mentor, Provider.GOOGLE, reject=rejected),
                auth_error=MeetingAuthError,
            )
        except ConnectionUnavailable as exc:
            return f"calendar:provider_{exc.status.value}"
        except MeetingError as exc:
            raise provider_outcome(exc) from None
        ours = [o for o in seen if o.meeting_id.startswith(_OUR_EVENT_PREFIX)][: self.max_changed_events]
        outcomes: list[str] = []
        for observed in ours:
            found = self.index.lookup(MeetingProvider.GOOGLE_MEET, observed.meeting_id)
            if found is None or found.mentor_id != mentor:
                continue  # not ours, or no longer the live meeting of a session
            session, klass = self._session_and_class(found.session_id)
            if session is None or klass is None or klass.meeting_provider is not MeetingProvider.GOOGLE_MEET:
                continue
            meeting = session.meeting
            if (
                meeting is None
                or meeting.status is not MeetingStatus.CREATED
                or meeting.meeting_id != observed.meeting_id
            ):
                continue
            if session.status is SessionStatus.CANCELLED or session.end.timestamp() <= self.clock():
                continue
            outcomes.append(self._reconcile(klass, session, meeting, observed))
        acted = [o for o in outcomes if o != "check:ok"]
        logger.info("calendar change checked", extra={"listed": len(seen), "ours": len(outcomes), "acted": acted})
        return f"calendar:checked:{len(outcomes)}:acted:{len(acted)}"

    # -- the check -----------------------------------------------------------------------------
    def _reconcile(self, klass: ClassItem, session: Session, meeting: MeetingRef, seen: Observed) -> str:
        assert klass.meeting_provider is not None
        assert meeting.meeting_id is not None
        if seen.gone:
            if not self.ledger.mark_gone(session.session_id, meeting, GONE):
                return "check:changed_meanwhile"
            logger.warning("meeting deleted outside the platform", extra={"session_id": session.session_id})
            if self.index is not None:
                self.index.drop(klass.meeting_provider, meeting.meeting_id)
            return self._recreate(klass, session)
        if seen.start is None or seen.end is None:
            return "check:unreadable"
        if seen.start == session.start and seen.end == _meeting_end(klass, session.start, session.end):
            # Stale links exist only after a re-creation (generation > 1): no booking reads otherwise.
            return (meeting.generation > 1 and self._relink(klass, session, meeting)) or "check:ok"
        if self._where_we_put_it(klass, meeting, seen):
            return "check:move_pending"  # the platform moved the session: its session.moved job converges
        logger.warning("meeting moved outside the platform", extra={"session_id": session.session_id})
        try:
            outcome = self._move_meeting(klass, session, meeting)
        except PermanentFailure as refused:  # e.g. deleted meanwhile: that change's own check re-creates it
            logger.warning("moving the meeting back was refused", extra={"reason": str(refused)[:300]})
            return "check:move_refused"
        if outcome != "moved":
            return f"check:{outcome}"
        self._tell_mentor(klass, session, "moved_back", f"moved_back#{meeting.meeting_id}#{seen.start.isoformat()}")
        return "check:moved_back"

    def _resume(self, klass: ClassItem, session: Session) -> str:
        """A check finding no created meeting: finish a re-creation a failed attempt started."""
        meeting = session.meeting
        if meeting is None or meeting.status in (MeetingStatus.DELETING, MeetingStatus.FAILED):
            return "check:no_meeting"
        if meeting.status is MeetingStatus.DELETED and meeting.reason != GONE:
            return "check:no_meeting"
        if session.confirmed <= 0 or not self._stale(session, None):
            return "check:no_meeting"
        return self._recreate(klass, session)

    def _recreate(self, klass: ClassItem, session: Session) -> str:
        current = self.schedule.get_session(session.session_id) or session
        if current.confirmed <= 0:
            return "check:gone_unbooked"
        ref = self._ensure_meeting(klass, current)  # generation + 1: a new, deterministic provider key
        if ref.status is not MeetingStatus.CREATED or not ref.url:
            code = ref.reason.split(":", 1)[0] if ref.reason else "failed"
            for booking in self._stale(current, None):
                self.ledger.set_booking_meeting(
                    booking.booking_id, status=code, provider=ref.provider, error=_words(ref.reason)
                )
            return f"check:recreate_failed:{code}"
        return self._relink(klass, current, ref, recreated=True) or "check:recreated"

    def _relink(self, klass: ClassItem, session: Session, ref: MeetingRef, *, recreated: bool = False) -> str | None:
        """Give confirmed bookings with another link the live one (module docstring); ``None`` if none had."""
        stale = self._stale(session, ref.url)
        if not stale and not recreated:
            return None
        self._tell_mentor(klass, session, "recreated", f"recreated#g{ref.generation}", students=len(stale))
        url = ref.url or ""
        for booking in stale:
            if not self.ledger.set_booking_meeting(
                booking.booking_id, status="ready", url=url, provider=ref.provider, meeting_id=ref.meeting_id
            ):
                continue  # cancelled meanwhile
            self._send_once(booking, f"relinked#g{ref.generation}", klass, session, url)
        return "check:recreated"

    # -- helpers -------------------------------------------------------------------------------
    def _stale(self, session: Session, live_url: str | None) -> list[Booking]:
        return [
            b
            for b in self._bookings(session.session_id)
            if b.status is BookingStatus.CONFIRMED and b.meeting_url and b.meeting_url != live_url
        ]

    def _where_we_put_it(self, klass: ClassItem, meeting: MeetingRef, seen: Observed) -> bool:
        """The meeting is at the times we last wrote (the index item's), not moved by someone else."""
        if self.index is None or klass.meeting_provider is None or meeting.meeting_id is None:
            return False
        ours = self.index.lookup(klass.meeting_provider, meeting.meeting_id)
        return ours is not None and seen.start == ours.start and seen.end == _meeting_end(klass, ours.start, ours.end)

    def _probe(self, provider: MeetingProvider) -> MeetingProbe | None:
        if self.probes is None:
            from shared.providers.meetings.probe import meeting_probe

            return meeting_probe(provider)
        return self.probes(provider)

    def _observe(self, klass: ClassItem, meeting: MeetingRef) -> Observed | str:
        """The meeting at its provider (one GET), or the check's outcome when it cannot be read."""
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.meetings import MeetingError

        assert klass.meeting_provider is not None
        assert meeting.meeting_id is not None
        probe, meeting_id = self._probe(klass.meeting_provider), meeting.meeting_id
        if probe is None:
            return "check:unsupported_provider"
        box: list[Observed] = []

        def read(bearer: SecretStr) -> None:
            box.append(probe.observe(bearer, meeting_id, meeting.calendar_id))

        try:
            self._with_token(klass, read)
        except ConnectionUnavailable as exc:
            return f"check:provider_{exc.status.value}"
        except MeetingError as exc:
            if exc.retryable or exc.code == "unauthorized":
                raise provider_outcome(exc) from None
            logger.warning("meeting check refused", extra={"code": exc.code, "status": exc.status})
            return f"check:refused:{exc.code}"
        return box[-1]

    def _tell_mentor(self, klass: ClassItem, session: Session, what: Restored, key: str, *, students: int = 0) -> None:
        """One e-mail to the mentor per ``key`` (claimed on the session; released if sending fails)."""
        if self.index is None or not self.index.claim_note(session.session_id, key):
            return
        mentor = self.store.get_mentor(klass.mentor_id)
        if mentor is None or not mentor.email:
            logger.warning("repair e-mail skipped: mentor has no e-mail", extra={"mentor_id": klass.mentor_id})
            return
        try:
            self.mailer.send(
                meeting_restored_email(mentor.email, _facts(klass, session), what, self.app_url, students_told=students)
            )
        except Exception:
            self.index.release_note(session.session_id, key)
            raise
        logger.info("mentor told of a repair", extra={"session_id": session.session_id, "what": what})

    def _send_once(self, booking: Booking, key: str, klass: ClassItem, session: Session, url: str) -> None:
        if not self.ledger.claim_email(booking.booking_id, key):
            return
        try:
            self.mailer.send(new_link_email(*_student(booking), _facts(klass, session), url, _ics(klass, session, url)))
        except Exception:
            self.ledger.release_email(booking.booking_id, key)
            raise
        logger.info("booking e-mail sent", extra={"booking_id": booking.booking_id, "kind": key})
