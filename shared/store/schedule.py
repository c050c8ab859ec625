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

from collections.abc import Iterator
from datetime import UTC, datetime
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
from shared.store.schema import GSI1
from shared.store.table import (
    MAX_TRANSACTION_OPS,
    Table,
    TransactionConflict,
    UpdateExpression,
    from_item,
    to_item,
    tx_delete,
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


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def hold_sk(session_id: str, expires: datetime, booking_id: str) -> str:
    """Sort key of a booking's hold marker under its class: ordered by session, then expiry."""
    return f"HOLD#{session_id}#{_ms(expires):013d}#{booking_id}"


def hold_bucket(expires: datetime) -> str:
    """The GSI1 partition of holds ending in ``expires``'s UTC hour (``HOLDS#2027-03-01T18``)."""
    return "HOLDS#" + expires.astimezone(UTC).strftime("%Y-%m-%dT%H")


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
        """Take a seat and write the PENDING booking (and its hold marker), atomically.

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
        ops = [seat, tx_put(_booking_to_item(booking), condition="attribute_not_exists(PK)")]
        if booking.hold_expires_at is not None:
            ops.append(tx_put(_hold_to_item(booking), condition="attribute_not_exists(PK)"))
        try:
            self.table.transact(ops)
        except TransactionConflict as exc:
            if 0 in exc.failed:
                self._raise_for_session(booking.session_id)
            raise
        return booking

    def get_booking(self, booking_id: str) -> Booking | None:
        """The booking, read consistently, or ``None``."""
        item = self.table.get(booking_pk(booking_id), "BOOKING")
        return _booking_from_item(item) if item else None

    def booking_token_hash(self, booking_id: str) -> str | None:
        """Only the stored hash of the booking's token (one GetItem projecting ``token_hash``), or ``None``.

        The booking-token check reads this first, so refusing a wrong token for an existing booking
        and refusing an unknown id cost the same: one small read, one comparison (PRODUCT.md §2.9).
        """
        item = self.table.get(booking_pk(booking_id), "BOOKING", attributes=("token_hash",))
        value = item.get("token_hash") if item else None
        return value if isinstance(value, str) else None

    def bookings_of_session(self, session_id: str) -> list[Booking]:
        """Every booking of a session (GSI1, eventually consistent: re-read each one before acting)."""
        return [_booking_from_item(i) for i in self.table.query(f"BOOKINGS#{session_id}", index="GSI1")]

    def confirm_booking(
        self, booking_id: str, *, payment_intent: str | None = None, read: Booking | None = None
    ) -> Booking | None:
        """PENDING / EXPIRED → CONFIRMED with ``job_pending = "create"``; ``None`` if it was neither.

        A PENDING booking already holds its seat (its hold marker goes). An EXPIRED one (paid after
        its hold ended) re-takes a seat if one is free; if the session is full (or no longer
        scheduled) it is confirmed anyway with ``over_capacity`` set and the seat counted — a paid
        booking is never dropped. ``payment_intent`` is recorded on the booking.

        ``None`` covers a duplicate confirmation (already CONFIRMED), a confirmation that arrives
        after a refund or cancellation (CANCELLED is final: no resurrection) and an unknown id;
        read the booking to tell them apart. ``read``: the booking as the caller just read it (saves a
        read; a stale one only costs a retry, the transaction is conditional on its status).
        """
        for _ in range(3):
            booking, read = read or self.get_booking(booking_id), None
            if booking is None or booking.status not in (BookingStatus.PENDING, BookingStatus.EXPIRED):
                return None
            now = _iso(utcnow())
            expired = booking.status is BookingStatus.EXPIRED
            attempts = [False, True] if expired else [False]
            for over_capacity in attempts:
                ops = [self._confirm_op(booking, payment_intent, now, over_capacity=over_capacity)]
                ops.append(self._seat_op(booking, now, take=expired, confirm=1, checked=expired and not over_capacity))
                if not expired:
                    ops += self._hold_release(booking)
                try:
                    self.table.transact(ops)
                except TransactionConflict as exc:
                    if 0 in exc.failed:
                        break  # the booking moved under us: re-read and decide again
                    continue  # no free seat for a late payment: confirm over capacity
                return self.get_booking(booking_id)
        return None  # lost to concurrent transitions every time: whoever won decided

    def expire_booking(self, booking_id: str, *, now: datetime | None = None, force: bool = False) -> Booking | None:
        """PENDING → EXPIRED once its hold has ended (or at once with ``force``: Stripe's
        ``checkout.session.expired``): the seat is released and the hold marker deleted in the same
        transaction, conditional on the booking still being PENDING, so the seat is released exactly
        once whoever (sweep, webhook, a booking that needs the seat) gets there first.

        Returns the expired booking, or ``None`` if it was not a PENDING booking whose hold ended.
        """
        now = now or utcnow()
        booking = self.get_booking(booking_id)
        if booking is None or booking.status is not BookingStatus.PENDING:
            return None
        if not force and (booking.hold_expires_at is None or booking.hold_expires_at > now):
            return None
        stamp = _iso(utcnow())
        ops = [
            tx_update(
                booking_pk(booking_id),
                "BOOKING",
                expression="SET #st = :expired, #u = :u, #ea = :u",
                condition="#st = :pending",
                names={"#st": "status", "#u": "updated_at", "#ea": "expired_at"},
                values={
                    ":expired": BookingStatus.EXPIRED.value,
                    ":pending": BookingStatus.PENDING.value,
                    ":u": stamp,
                },
            ),
            self._seat_op(booking, stamp, take=-1),
            *self._hold_release(booking),
        ]
        try:
            self.table.transact(ops)
        except TransactionConflict:
            return None  # paid, cancelled or expired meanwhile: that transition decided
        return self.get_booking(booking_id)

    def due_holds(self, session_id: str, now: datetime) -> list[str]:
        """Booking ids of the session's holds that ended by ``now`` (consistent Query on the class
        partition: ``SK`` between ``HOLD#<sid>#`` and ``HOLD#<sid>#<now ms>``)."""
        class_id = self._class_id(session_id)
        prefix = f"HOLD#{session_id}#"
        return [
            str(item["booking_id"])
            for item in self._range(
                {
                    "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                    "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
                    "ExpressionAttributeValues": to_item(
                        {":pk": class_pk(class_id), ":lo": prefix, ":hi": f"{prefix}{_ms(now):013d}#~"}
                    ),
                    "ConsistentRead": True,
                }
            )
        ]

    def holds_due_in_bucket(self, bucket: datetime, now: datetime) -> list[str]:
        """Booking ids of holds in ``bucket``'s hour that ended by ``now`` (GSI1 ``HOLDS#<hour>``,
        ``GSI1SK < <now ms>#~``): only due holds are read, however many are open."""
        return [
            str(item["booking_id"])
            for item in self._range(
                {
                    "IndexName": GSI1,
                    "KeyConditionExpression": "#pk = :pk AND #sk < :bound",
                    "ExpressionAttributeNames": {"#pk": "GSI1PK", "#sk": "GSI1SK"},
                    "ExpressionAttributeValues": to_item({":pk": hold_bucket(bucket), ":bound": f"{_ms(now):013d}#~"}),
                }
            )
        ]

    def cancel_booking(
        self,
        booking_id: str,
        reason: str,
        *,
        attempts: int = 3,
        from_expired: bool = False,
        read: Booking | None = None,
    ) -> Booking | None:
        """PENDING / CONFIRMED → CANCELLED (seat freed, ``meeting_url`` cleared, ``job_pending = "cancel"``).

        Returns the cancelled booking, or ``None`` if it was already cancelled, expired or does not
        exist. A CONFIRMED booking also leaves the session's ``confirmed`` count, in the same
        transaction; a PENDING one drops its hold marker. With ``from_expired`` (a refund of a
        payment that arrived after its hold ended, before the late confirmation) an EXPIRED booking
        is cancelled too; it held no seat, so no count moves. ``read`` as for :meth:`confirm_booking`.
        """
        for _ in range(attempts):
            booking, read = read or self.get_booking(booking_id), None
            if booking is None or booking.status is BookingStatus.CANCELLED:
                return None
            if booking.status is BookingStatus.EXPIRED and not from_expired:
                return None
            now = _iso(utcnow())
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
            ]
            if booking.status is BookingStatus.CONFIRMED:
                ops.append(self._seat_op(booking, now, take=-1, confirm=-1))
            elif booking.status is BookingStatus.PENDING:
                ops += [self._seat_op(booking, now, take=-1), *self._hold_release(booking)]
            try:
                self.table.transact(ops)
            except TransactionConflict:
                continue  # the status moved under us (e.g. confirmed meanwhile): re-read, cancel that
            return self.get_booking(booking_id)
        raise ConflictError(f"booking {booking_id} kept changing; cancellation not applied")

    # -- booking transition pieces ----------------------------------------------------------------
    @staticmethod
    def _confirm_op(booking: Booking, payment_intent: str | None, now: str, *, over_capacity: bool) -> dict[str, Any]:
        sets = "SET #st = :confirmed, #job = :create, #u = :u, #c = :u"
        names = {"#st": "status", "#job": "job_pending", "#u": "updated_at", "#c": "confirmed_at"}
        values: dict[str, Any] = {
            ":confirmed": BookingStatus.CONFIRMED.value,
            ":was": booking.status.value,
            ":create": "create",
            ":u": now,
        }
        if payment_intent:
            sets += ", #pi = :pi"
            names["#pi"] = "payment_intent"
            values[":pi"] = payment_intent
        if over_capacity:
            sets += ", #oc = :oc"
            names["#oc"] = "over_capacity"
            values[":oc"] = True
        return tx_update(
            booking_pk(booking.booking_id),
            "BOOKING",
            expression=sets,
            condition="#st = :was",
            names=names,
            values=values,
        )

    @staticmethod
    def _seat_op(booking: Booking, now: str, *, take: int, confirm: int = 0, checked: bool = False) -> dict[str, Any]:
        """The session's counters: ``seats_taken`` += ``take``, ``confirmed`` += ``confirm``; ``checked``
        requires a free seat in a scheduled session."""
        sets = ["#u = :u"]
        names = {"#u": "updated_at"}
        values: dict[str, Any] = {":u": now}
        if take:
            sets.append("#taken = #taken + :take")
            names["#taken"] = "seats_taken"
            values[":take"] = int(take)
        if confirm:
            sets.append("#conf = #conf + :conf")
            names["#conf"] = "confirmed"
            values[":conf"] = confirm
        condition = None
        if checked:
            condition = "#st = :scheduled AND #taken < #cap"
            names.update({"#st": "status", "#cap": "capacity", "#taken": "seats_taken"})
            values[":scheduled"] = SessionStatus.SCHEDULED.value
        return tx_update(
            class_pk(booking.class_id),
            session_sk(booking.session_id),
            expression="SET " + ", ".join(sets),
            condition=condition,
            names=names,
            values=values,
        )

    @staticmethod
    def _hold_release(booking: Booking) -> list[dict[str, Any]]:
        if booking.hold_expires_at is None:
            return []
        return [
            tx_delete(
                class_pk(booking.class_id), hold_sk(booking.session_id, booking.hold_expires_at, booking.booking_id)
            )
        ]

    def _range(self, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.table.name, "Limit": 100, **query}
        while True:
            resp = self.table.client.query(**kwargs)
            for raw in resp.get("Items", []):
                yield from_item(raw)
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

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


def _hold_to_item(b: Booking) -> dict[str, Any]:
    assert b.hold_expires_at is not None
    return {
        "PK": class_pk(b.class_id),
        "SK": hold_sk(b.session_id, b.hold_expires_at, b.booking_id),
        "type": "hold",
        "GSI1PK": hold_bucket(b.hold_expires_at),
        "GSI1SK": f"{_ms(b.hold_expires_at):013d}#{b.booking_id}",
        "booking_id": b.booking_id,
        "session_id": b.session_id,
        "hold_expires_at": _iso(b.hold_expires_at),
    }


def _booking_from_item(item: dict[str, Any]) -> Booking:
    return Booking.model_validate({k: v for k, v in item.items() if k in Booking.model_fields})
