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

from datetime import datetime
from typing import Any

from shared.store.bookings import BookingOps
from shared.store.errors import ConflictError, NotFoundError
from shared.store.models import (
    ClassItem,
    Session,
    SessionStatus,
    utcnow,
)
from shared.store.schedule_keys import (
    SessionNotBookable,
    booking_pk,
    class_id_of,
    class_pk,
    hold_bucket,
    hold_sk,
    iso_text,
    session_id_for,
    session_sk,
)
from shared.store.table import (
    MAX_TRANSACTION_OPS,
    Table,
    tx_put,
)

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

#: A class and all its sessions are written in one transaction (DynamoDB allows 100 operations).
MAX_SESSIONS = MAX_TRANSACTION_OPS - 1


class ScheduleStore(BookingOps):
    """Repository of classes, sessions and bookings over the single table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # -- classes and sessions ------------------------------------------------------------------
    def create_class(self, item: ClassItem, sessions: list[Session]) -> None:
        """Write the class and every session at once (all or nothing; at most :data:`MAX_SESSIONS`)."""
        if not sessions or len(sessions) > MAX_SESSIONS:
            raise ValueError(f"a class needs 1 to {MAX_SESSIONS} sessions, got {len(sessions)}")
        ops = [tx_put(_class_to_item(item), condition="attribute_not_exists(PK)")]
        ops += [tx_put(_session_to_item(s), condition="attribute_not_exists(PK)") for s in sessions]
        self.table.transact(ops)

    def get_class(self, class_id: str) -> ClassItem | None:
        """The class, or ``None``."""
        item = self.table.get(class_pk(class_id), "CLASS")
        return _class_from_item(item) if item else None

    def list_sessions(self, class_id: str) -> list[Session]:
        """The class's sessions in start order."""
        items = self.table.query(class_pk(class_id), sk_prefix="SESSION#")
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

    def move_session(self, session_id: str, start: datetime, end: datetime) -> Session:
        """Reschedule a scheduled session (``sequence`` + 1). Raises :class:`NotFoundError` /
        :class:`SessionNotBookable` (``session_cancelled``)."""
        class_id = self._class_id(session_id)
        try:
            item = self.table.update(
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
        except ConflictError:
            self._raise_for_session(session_id)
            raise
        return _session_from_item(item)

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
