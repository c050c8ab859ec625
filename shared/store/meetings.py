"""The meetings worker's records: a session's one meeting, and which e-mails a booking has had.

Exactly one meeting per session (PRODUCT.md §2.6) rests on three conditional writes on the session
item's ``meeting`` map (see :class:`shared.store.MeetingRef`):

1. :meth:`MeetingLedger.reserve` — before any provider call, claim the right to create the
   meeting with a reservation id and a lease (``reserved_until``). It succeeds only when there is
   no meeting yet, the last one failed or was deleted, or a previous reservation's lease ran out
   (that worker crashed: the new one is told ``takeover=True`` and must look for a meeting the
   crashed attempt may have created before creating one).
2. :meth:`MeetingLedger.record` — after the provider call, store id + join URL, conditional on
   still holding the reservation.
3. :meth:`MeetingLedger.begin_delete` / :meth:`finish_delete` — delete only while the session has
   no confirmed booking (checked on the same item, in the same write), so a confirmation racing
   a cancellation never loses its link.

E-mails are claimed per booking with :meth:`claim_email` (a string set ``emails_sent``): claim,
send, and :meth:`release_email` if sending failed, so a redelivered job does not e-mail twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.store.errors import ConflictError, NotFoundError
from shared.store.models import MeetingProvider, MeetingRef, MeetingStatus, Session, utcnow
from shared.store.schedule import ScheduleStore, booking_pk, class_pk, session_sk
from shared.store.table import Table, UpdateExpression

#: Statuses from which a new reservation may start without waiting.
_REUSABLE = frozenset({MeetingStatus.FAILED, MeetingStatus.DELETED})


class MeetingBusy(ConflictError):
    """Another worker holds a live reservation (or a deletion is in progress): try again later."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Reservation:
    """A claim on creating a session's meeting."""

    session_id: str
    reservation: str
    generation: int
    provider: MeetingProvider
    takeover: bool  # a previous attempt may have created the meeting: look for it first
    previous_meeting_id: str | None = None
    notified: bool = False  # the mentor was already told this session's meeting failed


def _ref_to_map(ref: MeetingRef) -> dict[str, Any]:
    """The ``meeting`` map as DynamoDB stores it (floats become Decimals)."""
    data = ref.model_dump(mode="json", exclude_none=True)
    return {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in data.items()}


class MeetingLedger:
    """Conditional writes on sessions' ``meeting`` and bookings' ``emails_sent``."""

    def __init__(self, table: Table, schedule: ScheduleStore, *, clock: Any = time.time) -> None:
        self.table = table
        self.schedule = schedule
        self._clock = clock

    # -- the session's meeting -----------------------------------------------------------------
    def reserve(self, session: Session, provider: MeetingProvider, *, lease_s: float) -> Reservation | MeetingRef:
        """Claim the creation of ``session``'s meeting, or return the meeting that already exists.

        Returns the existing :class:`MeetingRef` when it is ``created`` (or ``pending``, to be
        completed by whoever reserved it); raises :class:`MeetingBusy` while another worker's lease
        is live or a deletion is under way.
        """
        now = self._clock()
        current = session.meeting
        takeover = False
        generation = 1
        if current is not None:
            if current.status is MeetingStatus.CREATED:
                return current
            if current.status is MeetingStatus.DELETING:
                raise MeetingBusy("the session's meeting is being deleted", retry_after_s=5.0)
            if current.status in (MeetingStatus.RESERVED, MeetingStatus.PENDING):
                until = current.reserved_until or 0.0
                if until > now:
                    raise MeetingBusy("another worker is creating this meeting", retry_after_s=max(1.0, until - now))
                takeover = True
                generation = current.generation
            elif current.status is MeetingStatus.DELETED:
                generation = current.generation + 1
            else:  # failed: same generation (nothing was created), a fresh attempt
                generation = current.generation
        token = uuid.uuid4().hex
        ref = MeetingRef(
            provider=provider,
            status=MeetingStatus.RESERVED,
            generation=generation,
            reservation=token,
            reserved_until=now + lease_s,
            meeting_id=current.meeting_id if takeover and current is not None else None,
            notified=bool(current and current.notified),
        )
        if current is None:
            condition, values = "attribute_not_exists(#m)", {}
        else:
            condition = "#m.#res = :old" if current.reservation else "#m.#st = :oldst"
            values = {":old": current.reservation} if current.reservation else {":oldst": current.status.value}
        self._write_meeting(session.session_id, ref, condition, values, extra_names={"#res": "reservation"})
        return Reservation(
            session_id=session.session_id,
            reservation=token,
            generation=generation,
            provider=provider,
            takeover=takeover,
            previous_meeting_id=ref.meeting_id,
            notified=ref.notified,
        )

    def record(
        self,
        held: Reservation,
        *,
        status: MeetingStatus,
        meeting_id: str | None = None,
        url: str | None = None,
        calendar_id: str | None = None,
        reason: str | None = None,
    ) -> MeetingRef:
        """Record the outcome of a reservation, if still ours.

        ``created`` and ``failed`` end it. ``reserved`` / ``pending`` keep it but with an expired
        lease: the provider call's outcome is unknown (timeout, 5xx) or incomplete (Google's
        conference still pending), so the next attempt takes over and looks before creating.
        """
        open_ended = status in (MeetingStatus.RESERVED, MeetingStatus.PENDING)
        ref = MeetingRef(
            provider=held.provider,
            status=status,
            generation=held.generation,
            reservation=held.reservation if open_ended else None,
            reserved_until=self._clock() if open_ended else None,
            meeting_id=meeting_id,
            url=url,
            calendar_id=calendar_id,
            reason=reason,
            notified=held.notified,
        )
        self._write_meeting(held.session_id, ref, "#m.#res = :res", {":res": held.reservation}, {"#res": "reservation"})
        return ref

    def mark_notified(self, session_id: str) -> bool:
        """Flag that the mentor was told the meeting failed; ``True`` only for the first caller."""
        try:
            self.table.update(
                class_pk(_class_of(session_id)),
                session_sk(session_id),
                expression="SET #m.#n = :yes",
                condition="attribute_exists(#m) AND (attribute_not_exists(#m.#n) OR #m.#n = :no)",
                names={"#m": "meeting", "#n": "notified"},
                values={":yes": True, ":no": False},
            )
        except ConflictError:
            return False
        return True

    def begin_delete(self, session: Session, *, require_no_confirmed: bool) -> MeetingRef | None:
        """Move a created meeting to ``deleting``; ``None`` if there is nothing to delete now.

        With ``require_no_confirmed`` the write also requires ``confirmed = 0`` on the session, so a
        booking confirmed meanwhile keeps the meeting.
        """
        current = session.meeting
        if current is None or current.status not in (MeetingStatus.CREATED, MeetingStatus.DELETING):
            return None
        if current.status is MeetingStatus.DELETING:
            return current  # a previous attempt started: finish it
        condition = "#m.#st = :created"
        values: dict[str, Any] = {":created": MeetingStatus.CREATED.value}
        if require_no_confirmed:
            condition += " AND #conf = :zero"
            values[":zero"] = 0
        ref = current.model_copy(update={"status": MeetingStatus.DELETING, "updated_at": utcnow()})
        try:
            self._write_meeting(session.session_id, ref, condition, values, {"#conf": "confirmed"})
        except ConflictError:
            return None
        return ref

    def finish_delete(self, session_id: str, ref: MeetingRef) -> MeetingRef:
        """The provider meeting is gone: ``deleted`` (the URL is dropped; the id stays as history)."""
        done = ref.model_copy(update={"status": MeetingStatus.DELETED, "url": None, "updated_at": utcnow()})
        self._write_meeting(session_id, done, "#m.#st = :deleting", {":deleting": MeetingStatus.DELETING.value})
        return done

    def mark_gone(self, session_id: str, ref: MeetingRef, reason: str) -> bool:
        """The created meeting ``ref`` vanished at the provider: ``deleted`` (the next reserve mints
        generation + 1, a new provider id). Conditional on the ledger still naming that meeting, so
        two repairs of one deletion re-create once; ``False`` if something else changed it first."""
        gone = ref.model_copy(update={"status": MeetingStatus.DELETED, "url": None, "reason": reason})
        try:
            self._write_meeting(
                session_id,
                gone.model_copy(update={"updated_at": utcnow()}),
                "#m.#st = :created AND #m.#mid = :mid",
                {":created": MeetingStatus.CREATED.value, ":mid": ref.meeting_id},
                {"#mid": "meeting_id"},
            )
        except ConflictError:
            return False
        return True

    def _write_meeting(
        self,
        session_id: str,
        ref: MeetingRef,
        condition: str,
        values: dict[str, Any],
        extra_names: dict[str, str] | None = None,
    ) -> None:
        names = {"#m": "meeting", "#u": "updated_at", "#st": "status", **(extra_names or {})}
        used = {k: v for k, v in names.items() if k in condition or k in ("#m", "#u")}
        self.table.update(
            class_pk(_class_of(session_id)),
            session_sk(session_id),
            expression="SET #m = :ref, #u = :u",
            condition=f"attribute_exists(PK) AND ({condition})",
            names=used,
            values={":ref": _ref_to_map(ref), ":u": utcnow().isoformat(), **values},
        )

    # -- bookings ------------------------------------------------------------------------------
    def set_booking_meeting(
        self,
        booking_id: str,
        *,
        status: str,
        url: str | None = None,
        provider: MeetingProvider | None = None,
        meeting_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the meeting outcome on a booking that is still CONFIRMED; ``False`` if it is not.

        The condition keeps a join URL off a booking cancelled while the meeting was being made.
        """
        fields: dict[str, Any] = {
            "meeting_status": status,
            "meeting_url": url,
            "meeting_provider": provider.value if provider else None,
            "meeting_id": meeting_id,
            "meeting_error": error,
        }
        update = UpdateExpression(
            names={"#u": "updated_at", "#st": "status"}, values={":u": utcnow().isoformat(), ":confirmed": "CONFIRMED"}
        )
        update.set("#u = :u").changes(fields)
        try:
            self.table.update(
                booking_pk(booking_id),
                "BOOKING",
                expression=update.expression,
                condition="#st = :confirmed",
                names=update.names,
                values=update.values,
            )
        except ConflictError:
            return False
        return True

    # -- bookings' e-mails ---------------------------------------------------------------------
    def claim_email(self, booking_id: str, key: str) -> bool:
        """Claim sending e-mail ``key`` (e.g. ``confirmation``, ``moved#3``) for a booking; ``True`` once."""
        try:
            self.table.update(
                booking_pk(booking_id),
                "BOOKING",
                expression="ADD #e :k",
                condition="attribute_exists(PK) AND NOT contains(#e, :key)",
                names={"#e": "emails_sent"},
                values={":k": {key}, ":key": key},
            )
        except ConflictError:
            return False
        return True

    def release_email(self, booking_id: str, key: str) -> None:
        """Give a claim back (sending failed), so a retry sends it."""
        self.table.update(
            booking_pk(booking_id),
            "BOOKING",
            expression="DELETE #e :k",
            names={"#e": "emails_sent"},
            values={":k": {key}},
        )


def _class_of(session_id: str) -> str:
    from shared.store.schedule import class_id_of

    class_id = class_id_of(session_id)
    if class_id is None:
        raise NotFoundError(f"no session {session_id}")
    return class_id
