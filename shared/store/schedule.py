"""Classes, sessions and bookings in the single table (PRODUCT.md §2.4).

Key design (see :mod:`shared.store.schema` for the whole table)::

    item        PK                  SK                   GSI1PK / GSI1SK
    class       CLASS#<classId>     CLASS                CLASSES#<mentorId> / <created_at>#<classId>
    session     CLASS#<classId>     SESSION#<sessionId>  -
    booking     BOOKING#<bookingId> BOOKING              BOOKINGS#<sessionId> / <bookingId>
    hold        CLASS#<classId>     HOLD#<sessionId>#<expiry ms:013d>#<bookingId>
                                                         HOLDS#<expiry UTC hour> / <expiry ms:013d>#<bookingId>

A session id is ``<classId>-s<nn>``, so a session is found from its id alone (``POST /bookings``
names only the session) without an index read that could lag.

Seat accounting is exact: a session carries ``seats_taken`` (PENDING + CONFIRMED) and ``confirmed``
(CONFIRMED), and every booking status change moves them **in the same transaction**, conditional
on the booking's status and the session's capacity. Two racing bookings for the last seat cannot
both succeed; a duplicate Stripe confirmation cannot count a seat twice.

Seat holds (PRODUCT.md §2.9): a PENDING booking holds its seat until ``hold_expires_at``. Its
*hold marker* is written with it and deleted by whichever transition ends the hold (confirm,
cancel, expire) in that transition's transaction, so the markers are exactly the open holds. They
are found two ways, each reading only due holds: per session (a consistent Query on the class
partition, when a booking finds the session full) and per hour of expiry (GSI1 ``HOLDS#<hour>``,
the sweep). PENDING → EXPIRED releases the seat once (conditional on PENDING); a payment after
that re-takes a free seat or confirms over capacity.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from shared.store.bookings import BookingOps
from shared.store.errors import ConflictError, NotFoundError
from shared.store.models import (
    Booking,
    ClassItem,
    Session,
    SessionStatus,
    utcnow,
)
from shared.store.schedule_keys import (
    SessionNotBookable,
    booking_pk,
    booking_to_item,
    class_id_of,
    class_pk,
    hold_bucket,
    hold_sk,
    hold_to_item,
    iso_text,
    session_id_for,
    session_sk,
)
from shared.store.table import (
    MAX_TRANSACTION_OPS,
    Table,
    TransactionConflict,
    tx_put,
    tx_update,
)
from shared.store.timeline import Timeline

__all__ = [
    "MAX_SESSIONS",
    "ScheduleStore",
    "SessionNotBookable",
    "booking_pk",
    "class_id_of",
    "class_pk",
    "hold_bucket",
    "hold_sk",
    "session_id_for",
    "session_sk",
]

#: A class, all its sessions and the mentor's timeline head are written in one transaction
#: (DynamoDB allows 100 operations).
MAX_SESSIONS = MAX_TRANSACTION_OPS - 2
#: Attempts of a timeline write that lost to a concurrent one (re-read, then write again).
TIMELINE_ATTEMPTS = 4


class ScheduleStore(BookingOps):
    """Repository of classes, sessions and bookings over the single table."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.timeline = Timeline(table)

    # -- classes and sessions ------------------------------------------------------------------
    def create_class(self, item: ClassItem, sessions: list[Session]) -> None:
        """Write the class, every session and its entry in the mentor's timeline head at once (all or
        nothing; at most :data:`MAX_SESSIONS`), see :mod:`shared.store.timeline`."""
        if not sessions or len(sessions) > MAX_SESSIONS:
            raise ValueError(f"a class needs 1 to {MAX_SESSIONS} sessions, got {len(sessions)}")
        ops = [tx_put(_class_to_item(item), condition="attribute_not_exists(PK)")]
        ops += [tx_put(_session_to_item(s), condition="attribute_not_exists(PK)") for s in sessions]
        first = min(int(s.start.timestamp()) for s in sessions)
        last = max(int(s.end.timestamp()) for s in sessions)
        for attempt in range(TIMELINE_ATTEMPTS):
            snap = self.timeline.head(item.mentor_id)
            if not snap.head_exists:
                self.timeline.ensure_head(item.mentor_id)
            stale = Timeline.stale_classes(snap, int(utcnow().timestamp()))
            head = Timeline.class_created_op(item.mentor_id, item.class_id, first, last, stale=stale)
            try:
                self.table.transact([*ops, head])
                return
            except TransactionConflict as exc:
                if len(ops) not in exc.failed or attempt == TIMELINE_ATTEMPTS - 1:
                    raise

    def create_private(self, item: ClassItem, session: Session, booking: Booking, claim: list[dict[str, Any]]) -> None:
        """Write a private session (its class, session, PENDING booking with the seat taken, and hold)
        with the ``claim`` of :meth:`Timeline.claim_ops`, all or nothing. A failed claim raises
        :class:`TransactionConflict` (the time changed since it was read)."""
        seat = session.model_copy(update={"seats_taken": 1})
        ops = [
            *claim,
            tx_put(_class_to_item(item), condition="attribute_not_exists(PK)"),
            tx_put(_session_to_item(seat), condition="attribute_not_exists(PK)"),
            tx_put(booking_to_item(booking), condition="attribute_not_exists(PK)"),
        ]
        if booking.hold_expires_at is not None:
            ops.append(tx_put(hold_to_item(booking), condition="attribute_not_exists(PK)"))
        self.table.transact(ops)

    def sessions_over(
        self, class_ids: list[str], lo: datetime, hi: datetime, *, consistent: bool = True
    ) -> list[Session]:
        """The scheduled sessions of ``class_ids`` overlapping ``[lo, hi)`` (one Query per class, 8 at a
        time; read consistently unless ``consistent`` is false)."""
        if not class_ids:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(class_ids))) as pool:
            found = list(pool.map(lambda c: self.list_sessions(c, consistent=consistent), class_ids))
        return [
            s for group in found for s in group if s.status is SessionStatus.SCHEDULED and s.start < hi and s.end > lo
        ]

    def get_class(self, class_id: str) -> ClassItem | None:
        """The class, or ``None``."""
        item = self.table.get(class_pk(class_id), "CLASS")
        return _class_from_item(item) if item else None

    def list_sessions(self, class_id: str, *, consistent: bool = False) -> list[Session]:
        """The class's sessions in start order."""
        items = self.table.query(class_pk(class_id), sk_prefix="SESSION#", consistent=consistent)
        return sorted((_session_from_item(i) for i in items), key=lambda s: (s.start, s.session_id))

    def list_classes(self, mentor_id: str) -> list[ClassItem]:
        """Every class of a mentor, oldest first (GSI1; may lag a just-created class by a moment)."""
        return [_class_from_item(i) for i in self.table.query(f"CLASSES#{mentor_id}", index="GSI1")]

    def get_session(self, session_id: str) -> Session | None:
        """A session by its id alone, or ``None``."""
        class_id = class_id_of(session_id)
        if class_id is None:
            return None
        item = self.table.get(class_pk(class_id), session_sk(session_id))
        return _session_from_item(item) if item else None

    def move_session(self, session_id: str, start: datetime, end: datetime, *, mentor_id: str | None = None) -> Session:
        """Reschedule a scheduled session (``sequence`` + 1) and widen its class's span in the mentor's
        timeline head (version bumped) in one transaction. Raises :class:`NotFoundError` /
        :class:`SessionNotBookable` (``session_cancelled``)."""
        class_id = self._class_id(session_id)
        move = tx_update(
            class_pk(class_id),
            session_sk(session_id),
            expression="SET #start = :start, #end = :end, #seq = #seq + :one, #u = :u",
            condition="attribute_exists(PK) AND #st = :scheduled",
            names={"#start": "start", "#end": "end", "#seq": "sequence", "#u": "updated_at", "#st": "status"},
            values={
                ":start": iso_text(start),
                ":end": iso_text(end),
                ":one": 1,
                ":u": iso_text(utcnow()),
                ":scheduled": SessionStatus.SCHEDULED.value,
            },
        )
        if mentor_id is None:
            current = self.get_session(session_id)
            if current is None:
                raise NotFoundError(f"no session {session_id}")
            mentor_id = current.mentor_id
        lo, hi = int(start.timestamp()), int(end.timestamp())
        for attempt in range(TIMELINE_ATTEMPTS):
            snap = self.timeline.head(mentor_id)
            if not snap.head_exists:
                self.timeline.ensure_head(mentor_id)
                snap = self.timeline.head(mentor_id)
            first, last = snap.classes.get(class_id, (lo, hi))
            head = Timeline.class_moved_op(
                mentor_id, class_id, min(first, lo), max(last, hi), version=snap.head_version
            )
            try:
                self.table.transact([move, head])
            except TransactionConflict as exc:
                if 0 in exc.failed:
                    self._raise_for_session(session_id)
                    raise
                if attempt == TIMELINE_ATTEMPTS - 1:
                    raise
                continue
            found = self.get_session(session_id)
            if found is None:
                raise NotFoundError(f"no session {session_id}")
            return found
        raise ConflictError("the timeline kept changing")  # pragma: no cover - the loop returns or raises

    def cancel_session(self, session_id: str) -> Session | None:
        """Mark a session cancelled (``sequence`` + 1); ``None`` if it already was (idempotent).

        Its bookings are cancelled one by one by the caller (:meth:`cancel_booking`), so each
        keeps its own reason and seat accounting.
        """
        class_id = self._class_id(session_id)
        try:
            item = self.table.update(
                class_pk(class_id),
                session_sk(session_id),
                expression="SET #st = :cancelled, #seq = #seq + :one, #u = :u",
                condition="attribute_exists(PK) AND #st = :scheduled",
                names={"#st": "status", "#seq": "sequence", "#u": "updated_at"},
                values={
                    ":cancelled": SessionStatus.CANCELLED.value,
                    ":scheduled": SessionStatus.SCHEDULED.value,
                    ":one": 1,
                    ":u": iso_text(utcnow()),
                },
            )
        except ConflictError:
            if self.get_session(session_id) is None:
                raise NotFoundError(f"no session {session_id}") from None
            return None
        return _session_from_item(item)

    # -- booking transition pieces ----------------------------------------------------------------
    # -- helpers -------------------------------------------------------------------------------
    def _class_id(self, session_id: str) -> str:
        class_id = class_id_of(session_id)
        if class_id is None:
            raise NotFoundError(f"no session {session_id}")
        return class_id

    def _raise_for_session(self, session_id: str) -> None:
        """Explain why a conditional write on a session failed."""
        session = self.get_session(session_id)
        if session is None:
            raise NotFoundError(f"no session {session_id}")
        if session.status is SessionStatus.CANCELLED:
            raise SessionNotBookable("session_cancelled", "This session was cancelled.")
        if session.seats_taken >= session.capacity:
            raise SessionNotBookable("session_full", "This session is full.")


def _class_to_item(c: ClassItem) -> dict[str, Any]:
    return {
        "PK": class_pk(c.class_id),
        "SK": "CLASS",
        "type": "class",
        "GSI1PK": f"CLASSES#{c.mentor_id}",
        "GSI1SK": f"{iso_text(c.created_at)}#{c.class_id}",
        **c.model_dump(mode="json", exclude_none=True),
    }


def _class_from_item(item: dict[str, Any]) -> ClassItem:
    return ClassItem.model_validate({k: v for k, v in item.items() if k in ClassItem.model_fields})


def _session_to_item(s: Session) -> dict[str, Any]:
    return {
        "PK": class_pk(s.class_id),
        "SK": session_sk(s.session_id),
        "type": "session",
        **s.model_dump(mode="json", exclude_none=True),
    }


def _session_from_item(item: dict[str, Any]) -> Session:
    return Session.model_validate({k: v for k, v in item.items() if k in Session.model_fields})
