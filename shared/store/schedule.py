"""Classes, sessions and bookings in the single table (PRODUCT.md §2.4).

Key design (see :mod:`shared.store.schema` for the whole table)::

    item        PK                  SK                   GSI1PK / GSI1SK
    class       CLASS#<classId>     CLASS                CLASSES#<mentorId> / <created_at>#<classId>
    session     CLASS#<classId>     SESSION#<sessionId>  -
    booking     BOOKING#<bookingId> BOOKING              BOOKINGS#<sessionId> / <bookingId>

A session id is ``<classId>-s<nn>``, so a session is found from its id alone (``POST /bookings``
names only the session) without an index read that could lag.

Seat accounting is exact: a session carries ``seats_taken`` (PENDING + CONFIRMED) and ``confirmed``
(CONFIRMED), and every booking status change moves them **in the same transaction**, conditional
on the booking's status and the session's capacity. Two racing bookings for the last seat cannot
both succeed; a duplicate Stripe confirmation cannot count a seat twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.store.errors import ConflictError, NotFoundError
from shared.store.models import (
    Booking,
    BookingStatus,
    ClassItem,
    Session,
    SessionStatus,
    utcnow,
)
from shared.store.table import (
    MAX_TRANSACTION_OPS,
    Table,
    TransactionConflict,
    UpdateExpression,
    tx_put,
    tx_update,
)

#: A class and all its sessions are written in one transaction (DynamoDB allows 100 operations).
MAX_SESSIONS = MAX_TRANSACTION_OPS - 1


class SessionNotBookable(ConflictError):
    """The session cannot take this booking; ``reason`` is ``session_full`` or ``session_cancelled``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def class_pk(class_id: str) -> str:
    """Partition of a class and its sessions."""
    return f"CLASS#{class_id}"


def session_sk(session_id: str) -> str:
    """Sort key of a session under its class."""
    return f"SESSION#{session_id}"


def booking_pk(booking_id: str) -> str:
    """Partition of a booking."""
    return f"BOOKING#{booking_id}"


def session_id_for(class_id: str, index: int) -> str:
    """The id of the ``index``-th (1-based) session of ``class_id``."""
    return f"{class_id}-s{index:02d}"


def class_id_of(session_id: str) -> str | None:
    """The class id inside a session id, or ``None`` if it is not one of ours."""
    head, sep, tail = session_id.rpartition("-s")
    return head if sep and head and tail.isdigit() else None


def _iso(value: datetime) -> str:
    return value.isoformat()


class ScheduleStore:
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
                    ":start": _iso(start),
                    ":end": _iso(end),
                    ":one": 1,
                    ":u": _iso(utcnow()),
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
                    ":u": _iso(utcnow()),
                },
            )
        except ConflictError:
            if self.get_session(session_id) is None:
                raise NotFoundError(f"no session {session_id}") from None
            return None
        return _session_from_item(item)

    # -- bookings ------------------------------------------------------------------------------
    def create_booking(self, booking: Booking) -> Booking:
        """Take a seat and write the PENDING booking, atomically.

        Raises :class:`NotFoundError` for an unknown session and :class:`SessionNotBookable`
        (``session_full`` / ``session_cancelled``) when the seat cannot be taken.
        """
        class_id = self._class_id(booking.session_id)
        seat = tx_update(
            class_pk(class_id),
            session_sk(booking.session_id),
            expression="SET #taken = #taken + :one, #u = :u",
            condition="attribute_exists(PK) AND #st = :scheduled AND #taken < #cap",
            names={"#taken": "seats_taken", "#cap": "capacity", "#st": "status", "#u": "updated_at"},
            values={":one": 1, ":scheduled": SessionStatus.SCHEDULED.value, ":u": _iso(utcnow())},
        )
        put = tx_put(_booking_to_item(booking), condition="attribute_not_exists(PK)")
        try:
            self.table.transact([seat, put])
        except TransactionConflict as exc:
            if 0 in exc.failed:
                self._raise_for_session(booking.session_id)
            raise
        return booking

    def get_booking(self, booking_id: str) -> Booking | None:
        """The booking, read consistently, or ``None``."""
        item = self.table.get(booking_pk(booking_id), "BOOKING")
        return _booking_from_item(item) if item else None

    def bookings_of_session(self, session_id: str) -> list[Booking]:
        """Every booking of a session (GSI1, eventually consistent: re-read each one before acting)."""
        return [_booking_from_item(i) for i in self.table.query(f"BOOKINGS#{session_id}", index="GSI1")]

    def confirm_booking(self, booking_id: str) -> Booking | None:
        """PENDING → CONFIRMED with ``job_pending = "create"``; ``None`` if it was not PENDING.

        ``None`` covers a duplicate confirmation (already CONFIRMED), a confirmation that arrives
        after a refund or cancellation (CANCELLED is final: no resurrection) and an unknown id;
        read the booking to tell them apart.
        """
        booking = self.get_booking(booking_id)
        if booking is None or booking.status is not BookingStatus.PENDING:
            return None
        now = _iso(utcnow())
        ops = [
            tx_update(
                booking_pk(booking_id),
                "BOOKING",
                expression="SET #st = :confirmed, #job = :create, #u = :u, #c = :u",
                condition="#st = :pending",
                names={"#st": "status", "#job": "job_pending", "#u": "updated_at", "#c": "confirmed_at"},
                values={
                    ":confirmed": BookingStatus.CONFIRMED.value,
                    ":pending": BookingStatus.PENDING.value,
                    ":create": "create",
                    ":u": now,
                },
            ),
            tx_update(
                class_pk(booking.class_id),
                session_sk(booking.session_id),
                expression="SET #conf = #conf + :one, #u = :u",
                names={"#conf": "confirmed", "#u": "updated_at"},
                values={":one": 1, ":u": now},
            ),
        ]
        try:
            self.table.transact(ops)
        except TransactionConflict:
            return None  # lost to a concurrent transition: whoever won decided
        return self.get_booking(booking_id)

    def cancel_booking(self, booking_id: str, reason: str, *, attempts: int = 3) -> Booking | None:
        """PENDING / CONFIRMED → CANCELLED (seat freed, ``meeting_url`` cleared, ``job_pending = "cancel"``).

        Returns the cancelled booking, or ``None`` if it was already cancelled or does not exist.
        A CONFIRMED booking also leaves the session's ``confirmed`` count, in the same transaction.
        """
        for _ in range(attempts):
            booking = self.get_booking(booking_id)
            if booking is None or booking.status is BookingStatus.CANCELLED:
                return None
            was_confirmed = booking.status is BookingStatus.CONFIRMED
            now = _iso(utcnow())
            seat_expr = "SET #taken = #taken - :one, #u = :u" + (", #conf = #conf - :one" if was_confirmed else "")
            seat_names = {"#taken": "seats_taken", "#u": "updated_at"}
            if was_confirmed:
                seat_names["#conf"] = "confirmed"
            ops = [
                tx_update(
                    booking_pk(booking_id),
                    "BOOKING",
                    expression="SET #st = :cancelled, #r = :r, #job = :job, #u = :u, #ca = :u REMOVE #url",
                    condition="#st = :was",
                    names={
                        "#st": "status",
                        "#r": "cancel_reason",
                        "#job": "job_pending",
                        "#u": "updated_at",
                        "#ca": "cancelled_at",
                        "#url": "meeting_url",
                    },
                    values={
                        ":cancelled": BookingStatus.CANCELLED.value,
                        ":was": booking.status.value,
                        ":r": reason,
                        ":job": "cancel",
                        ":u": now,
                    },
                ),
                tx_update(
                    class_pk(booking.class_id),
                    session_sk(booking.session_id),
                    expression=seat_expr,
                    names=seat_names,
                    values={":one": 1, ":u": now},
                ),
            ]
            try:
                self.table.transact(ops)
            except TransactionConflict:
                continue  # the status moved under us (e.g. confirmed meanwhile): re-read, cancel that
            return self.get_booking(booking_id)
        raise ConflictError(f"booking {booking_id} kept changing; cancellation not applied")

    def clear_pending_job(self, booking_id: str, job: str) -> None:
        """Forget ``job_pending`` once the job is queued (no-op if it changed meanwhile)."""
        try:
            self.table.update(
                booking_pk(booking_id),
                "BOOKING",
                expression="REMOVE #job",
                condition="#job = :job",
                names={"#job": "job_pending"},
                values={":job": job},
            )
        except ConflictError:
            return

    def update_booking(self, booking_id: str, **changes: Any) -> Booking:
        """Set (``None``: remove) meeting fields of an existing booking (the meetings worker's record)."""
        allowed = {"meeting_url", "meeting_provider", "meeting_id", "meeting_status"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown booking fields: {sorted(unknown)}")
        update = UpdateExpression(names={"#u": "updated_at"}, values={":u": _iso(utcnow())})
        update.set("#u = :u").changes(changes)
        try:
            item = self.table.update(
                booking_pk(booking_id),
                "BOOKING",
                expression=update.expression,
                condition="attribute_exists(PK)",
                names=update.names,
                values=update.values,
            )
        except ConflictError:
            raise NotFoundError(f"no booking {booking_id}") from None
        return _booking_from_item(item)

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
        "GSI1SK": f"{_iso(c.created_at)}#{c.class_id}",
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


def _booking_to_item(b: Booking) -> dict[str, Any]:
    return {
        "PK": booking_pk(b.booking_id),
        "SK": "BOOKING",
        "type": "booking",
        "GSI1PK": f"BOOKINGS#{b.session_id}",
        "GSI1SK": b.booking_id,
        **b.model_dump(mode="json", exclude_none=True),
    }


def _booking_from_item(item: dict[str, Any]) -> Booking:
    return Booking.model_validate({k: v for k, v in item.items() if k in Booking.model_fields})
