"""Bookings and their seat holds in the single table: the booking half of :class:`~shared.store.schedule.ScheduleStore`.

The keys, the seat accounting and the hold markers are described in :mod:`shared.store.schedule`;
every status change here moves the session's counters and the hold marker in one transaction,
conditional on the booking's status and the session's capacity.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from shared.store.errors import ConflictError, NotFoundError
from shared.store.models import (
    Booking,
    BookingStatus,
    Session,
    SessionStatus,
    utcnow,
)
from shared.store.schedule_keys import SessionNotBookable as SessionNotBookable
from shared.store.schedule_keys import (
    booking_from_item,
    booking_pk,
    booking_to_item,
    class_pk,
    epoch_ms,
    hold_bucket,
    hold_sk,
    hold_to_item,
    iso_text,
    session_sk,
)
from shared.store.schema import GSI1
from shared.store.table import (
    Table,
    TransactionConflict,
    UpdateExpression,
    from_item,
    to_item,
    tx_delete,
    tx_put,
    tx_update,
)
from shared.store.timeline import Timeline, reclaim_time, release_time


class BookingOps:
    """Booking reads and transitions; :class:`~shared.store.schedule.ScheduleStore` mixes them in."""

    table: Table
    timeline: Timeline

    def get_session(self, session_id: str) -> Session | None:  # provided by ScheduleStore
        raise NotImplementedError

    def _class_id(self, session_id: str) -> str:  # provided by ScheduleStore
        raise NotImplementedError

    def _raise_for_session(self, session_id: str) -> None:  # provided by ScheduleStore
        raise NotImplementedError

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
            values={":one": 1, ":scheduled": SessionStatus.SCHEDULED.value, ":u": iso_text(utcnow())},
        )
        ops = [seat, tx_put(booking_to_item(booking), condition="attribute_not_exists(PK)")]
        if booking.hold_expires_at is not None:
            ops.append(tx_put(hold_to_item(booking), condition="attribute_not_exists(PK)"))
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
        return booking_from_item(item) if item else None

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
        return [booking_from_item(i) for i in self.table.query(f"BOOKINGS#{session_id}", index="GSI1")]

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
            now = iso_text(utcnow())
            expired = booking.status is BookingStatus.EXPIRED
            attempts = [False, True] if expired else [False]
            for over_capacity in attempts:
                ops = [self._confirm_op(booking, payment_intent, now, over_capacity=over_capacity)]
                ops.append(self._seat_op(booking, now, take=expired, confirm=1, checked=expired and not over_capacity))
                if not expired:
                    ops += self._hold_release(booking)
                elif booking.claim is not None and not over_capacity:  # a private session: re-take its time
                    reclaim = reclaim_time(self.timeline, booking)
                    if reclaim is None:
                        continue  # the time was taken meanwhile: confirm over capacity
                    ops += reclaim
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
        stamp = iso_text(utcnow())
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
            *release_time(booking),
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
                        {":pk": class_pk(class_id), ":lo": prefix, ":hi": f"{prefix}{epoch_ms(now):013d}#~"}
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
                    "ExpressionAttributeValues": to_item(
                        {":pk": hold_bucket(bucket), ":bound": f"{epoch_ms(now):013d}#~"}
                    ),
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
            now = iso_text(utcnow())
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
                ops += [self._seat_op(booking, now, take=-1, confirm=-1), *release_time(booking)]
            elif booking.status is BookingStatus.PENDING:
                ops += [
                    self._seat_op(booking, now, take=-1),
                    *self._hold_release(booking),
                    *release_time(booking),
                ]
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
        update = UpdateExpression(names={"#u": "updated_at"}, values={":u": iso_text(utcnow())})
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
        return booking_from_item(item)
