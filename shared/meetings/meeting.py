"""The session's one meeting at its provider: create (reserve → look or create → record), move, delete.

:class:`SessionMeetings` holds the meetings worker's dependencies and what its jobs do at the
provider (:mod:`shared.meetings.worker` runs the jobs). The meeting's life is recorded with
:class:`~shared.store.meetings.MeetingLedger`; a provider error becomes :class:`RetryLater` or
:class:`PermanentFailure` through :func:`shared.meetings.outcomes.provider_outcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from shared.meetings.messages import facts as _facts
from shared.meetings.messages import words as _words
from shared.meetings.outcomes import RetryLater, provider_outcome
from shared.notify.emails import Mailer
from shared.notify.emails import meeting_failed_email as failed_email
from shared.platform.observability import logger
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
from shared.store.meeting_index import MeetingIndex
from shared.store.meetings import MeetingBusy, MeetingLedger, Reservation

if TYPE_CHECKING:
    from shared.providers.meetings import MeetingsClient, MeetingSpec, MintedMeeting


class TokenSource(Protocol):
    """The credential accessor's ``access_token`` (``reject=``: force one refresh of a refused token)."""

    def __call__(self, mentor_id: str, provider: Provider, /, *, reject: SecretStr | None = None) -> SecretStr: ...


class _Settled(Exception):
    """The forced refresh found the connection unusable: the meeting is recorded as failed."""

    def __init__(self, ref: MeetingRef) -> None:
        super().__init__(ref.reason)
        self.ref = ref


@dataclass
class SessionMeetings:
    """The worker's dependencies (all passed in: tests plug emulators) and the session's meeting."""

    schedule: ScheduleStore
    ledger: MeetingLedger
    store: Store
    tokens: TokenSource
    clients: Callable[[MeetingProvider], MeetingsClient]
    mailer: Mailer
    app_url: str
    lease_s: float = 120.0
    index: MeetingIndex | None = None  # where webhooks and the pre-flight find our meetings (drift repair)

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
        from shared.providers.fresh_token import with_fresh_token
        from shared.providers.meetings import MeetingAuthError, MeetingError

        def mint(bearer: SecretStr) -> MintedMeeting:
            found = client.find(bearer, spec) if held.takeover else None
            return found if found is not None else client.create(bearer, spec)

        def refresh(rejected: SecretStr) -> SecretStr:
            fresh = self._token(klass, session, held, reject=rejected)
            if isinstance(fresh, MeetingRef):
                raise _Settled(fresh)
            return fresh

        try:
            minted = with_fresh_token(token, mint, refresh, auth_error=MeetingAuthError)
        except _Settled as settled:
            return settled.ref
        except MeetingError as exc:
            outcome = provider_outcome(exc)
            if isinstance(outcome, RetryLater):
                # Unknown outcome: leave the reservation open (lease expired) so the retry looks first.
                self._record(held, MeetingStatus.RESERVED, spec)
            else:
                ref = self._record(held, MeetingStatus.FAILED, spec, reason=f"failed: {exc.code}: {exc}")
                self._notify_mentor(klass, session, ref.reason)
                self._mark_bookings_failed(session, ref)
            raise outcome from None
        if minted.pending or not minted.join_url:
            self._record(held, MeetingStatus.PENDING, spec, meeting_id=minted.meeting_id)
            raise RetryLater("conference creation pending", delay_s=5.0)
        ref = self._record(held, MeetingStatus.CREATED, spec, meeting_id=minted.meeting_id, url=minted.join_url)
        logger.info("meeting created", extra={"session_id": session.session_id, "provider": provider.value})
        self._index_meeting(klass, session, ref)
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

    def _token(
        self, klass: ClassItem, session: Session, held: Reservation, *, reject: SecretStr | None = None
    ) -> SecretStr | MeetingRef:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.oauth import OAuthError, ProviderUnavailableError

        provider = held.provider
        try:
            if reject is not None:
                return self.tokens(klass.mentor_id, provider.connection, reject=reject)
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
            raise provider_outcome(exc) from None

    def _with_token(self, klass: ClassItem, call: Callable[[SecretStr], object]) -> None:
        """``call(token)`` for the class's provider, with one forced refresh on a 401 (move and delete).

        Raises :class:`~shared.providers.credentials.ConnectionUnavailable` (not connected or a dead
        grant) and the provider's :class:`~shared.providers.meetings.MeetingError`.
        """
        from shared.providers.fresh_token import with_fresh_token
        from shared.providers.meetings import MeetingAuthError

        assert klass.meeting_provider is not None
        mentor_id, connection = klass.mentor_id, klass.meeting_provider.connection
        with_fresh_token(
            self.tokens(mentor_id, connection),
            call,
            lambda rejected: self.tokens(mentor_id, connection, reject=rejected),
            auth_error=MeetingAuthError,
        )

    def _move_meeting(self, klass: ClassItem, session: Session, meeting: MeetingRef) -> str:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.meetings import MeetingError

        assert klass.meeting_provider is not None
        meeting_id = meeting.meeting_id
        assert meeting_id is not None
        client = self.clients(klass.meeting_provider)
        spec = self._spec(klass, session, meeting.generation, calendar_id=meeting.calendar_id)
        try:
            self._with_token(klass, lambda bearer: client.move(bearer, meeting_id, spec))
        except ConnectionUnavailable as exc:
            logger.warning("meeting not moved: provider unavailable", extra={"status": exc.status.value})
            return f"moved:provider_{exc.status.value}"
        except MeetingError as exc:
            raise provider_outcome(exc, action="move") from None
        self._index_meeting(klass, session, meeting)
        return "moved"

    def _delete_meeting(self, klass: ClassItem, session: Session, *, require_no_confirmed: bool) -> str:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.meetings import MeetingError

        ref = self.ledger.begin_delete(session, require_no_confirmed=require_no_confirmed)
        if ref is None:
            return "meeting_kept"
        assert klass.meeting_provider is not None
        if ref.meeting_id:
            meeting_id = ref.meeting_id
            client = self.clients(klass.meeting_provider)
            spec = self._spec(klass, session, ref.generation, calendar_id=ref.calendar_id)
            try:
                self._with_token(klass, lambda bearer: client.delete(bearer, meeting_id, spec))
            except ConnectionUnavailable:
                # Disconnected: existing meetings stay where they are (PRODUCT.md §2.2).
                self.ledger.finish_delete(session.session_id, ref.model_copy(update={"reason": "left_at_provider"}))
                return "meeting_left"
            except MeetingError as exc:
                raise provider_outcome(exc, action="delete") from None
            if self.index is not None:
                self.index.drop(klass.meeting_provider, meeting_id)
        self.ledger.finish_delete(session.session_id, ref)
        return "meeting_deleted"

    # -- helpers -------------------------------------------------------------------------------
    def _index_meeting(self, klass: ClassItem, session: Session, ref: MeetingRef) -> None:
        """(Re)write the meeting's index item at the session's times (:mod:`shared.store.meeting_index`)."""
        if self.index is None or klass.meeting_provider is None or not ref.meeting_id:
            return
        self.index.put(
            klass.meeting_provider,
            ref.meeting_id,
            session_id=session.session_id,
            mentor_id=klass.mentor_id,
            start=session.start,
            end=session.end,
        )

    def _spec(
        self, klass: ClassItem, session: Session, generation: int, *, calendar_id: str | None = None
    ) -> MeetingSpec:
        from shared.providers.meetings import MeetingSpec

        if calendar_id is None and klass.meeting_provider in (MeetingProvider.GOOGLE_MEET, MeetingProvider.TEAMS):
            conn = self.store.get_connection(klass.mentor_id, klass.meeting_provider.connection)
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
