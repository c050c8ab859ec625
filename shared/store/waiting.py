"""Bookings waiting for a reconnect, and the resume batches that re-queue them (PRODUCT.md §2.2, §2.6).

Two item kinds in the mentor's partition (see :mod:`shared.store.schema`)::

    waiting marker   PK=MENTOR#<mentorId>  SK=WAITING#<bookingId>
                     provider (the connection: google | zoom), booking_id, session_id, class_id,
                     reason (needs_reconnect | not_connected), recorded_at, ``ttl`` = session end + 30 days;
                     while a resume batch has re-queued it: resume_id, queued_at
    resume batch     PK=MENTOR#<mentorId>  SK=RESUME#<provider>#<resumeId>
                     pending (string set of booking ids still being re-done), created / waiting / failed / dropped
                     (string sets: how each one ended), created_sessions (string set), started (the
                     bookings of sessions that had already started: listed in the summary, not
                     re-minted), summary_sent_at, ``ttl`` = opened + 30 days

Invariants:

* **A marker is written in the same write that records the failure on the booking**
  (:meth:`WaitingStore.record_failure`: one ``TransactWriteItems`` — the booking's
  ``meeting_status`` / ``meeting_error`` conditional on the booking still being CONFIRMED, and the
  marker's ``Put``). A booking that shows ``needs_reconnect`` / ``not_connected`` therefore always has
  its marker, and a reconnect finds every one with one ``Query`` (``PK=MENTOR#id``,
  ``SK begins_with WAITING#``), never a table scan. The key has no provider so the meetings worker
  can drop the marker of any booking with one ``DeleteItem`` without reading the class first; the
  query keeps the reconnected provider's markers (a mentor's markers are a handful).
* **A marker leaves when its booking no longer waits**: the worker deletes it after every
  ``booking.confirmed`` job that did not fail for the connection again (:meth:`take`, which returns
  the deleted marker so its resume batch can be settled), a reconnect deletes those of sessions that
  already started or bookings that no longer need a link, and ``ttl`` removes forgotten ones.
* **Re-queueing is claimed once** (:meth:`claim`): ``SET resume_id`` only if the marker has none, or
  its claim is older than ``stale_s`` (a job lost on the way). A second reconnect finds the markers
  claimed and queues nothing. A failure for the connection again re-puts the marker without a claim,
  so the next reconnect picks it up.
* **One summary per batch**: :meth:`settle` moves a booking from ``pending`` to its outcome set only
  while it is pending (a duplicate settle changes nothing); :meth:`claim_summary` sets
  ``summary_sent_at`` only when ``pending`` is gone (DynamoDB drops an empty set) and it is not set yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from shared.store.errors import ConflictError
from shared.store.models import Provider, utcnow
from shared.store.repository import mentor_pk
from shared.store.schedule_keys import booking_pk
from shared.store.table import Table, UpdateExpression, from_item, is_conditional_failure, to_item, tx_put, tx_update

WAITING_PREFIX = "WAITING#"
RESUME_PREFIX = "RESUME#"
#: How long a marker outlives its session's end, and a batch its opening.
KEEP_S = 30 * 24 * 3600
#: The booking statuses a marker stands for.
WAITING_REASONS = frozenset({"needs_reconnect", "not_connected"})

Outcome = Literal["created", "waiting", "failed", "dropped"]


def waiting_sk(booking_id: str) -> str:
    """The marker's sort key."""
    return f"{WAITING_PREFIX}{booking_id}"


def resume_sk(provider: Provider, resume_id: str) -> str:
    """The resume batch's sort key."""
    return f"{RESUME_PREFIX}{provider.value}#{resume_id}"


class WaitingStore:
    """Waiting markers and resume batches over the single table."""

    def __init__(self, table: Table, *, clock: Any = time.time) -> None:
        self.table = table
        self._clock = clock

    # -- markers -------------------------------------------------------------------------------
    def record_failure(
        self,
        *,
        booking_id: str,
        mentor_id: str,
        session_id: str,
        class_id: str,
        connection: Provider,
        meeting_provider: str,
        reason: str,
        error: str,
        session_end: datetime,
    ) -> tuple[bool, dict[str, Any] | None]:
        """Record ``reason`` on the still-CONFIRMED booking and (re)put its marker, in one transaction.

        Returns ``(recorded, previous marker)``: ``recorded`` is ``False`` when the booking is no
        longer CONFIRMED (nothing written); the previous marker tells the caller which resume batch,
        if any, had re-queued it (it ended waiting again).
        """
        if reason not in WAITING_REASONS:
            raise ValueError(f"not a waiting reason: {reason}")
        previous = self.table.get(mentor_pk(mentor_id), waiting_sk(booking_id))
        now = self._clock()
        update = UpdateExpression(
            names={"#u": "updated_at", "#st": "status"}, values={":u": utcnow().isoformat(), ":confirmed": "CONFIRMED"}
        )
        update.set("#u = :u").changes(
            {
                "meeting_status": reason,
                "meeting_url": None,
                "meeting_provider": meeting_provider,
                "meeting_id": None,
                "meeting_error": error,
            }
        )
        marker = {
            "PK": mentor_pk(mentor_id),
            "SK": waiting_sk(booking_id),
            "provider": connection.value,
            "booking_id": booking_id,
            "session_id": session_id,
            "class_id": class_id,
            "reason": reason,
            "recorded_at": int(now),
            "ttl": int(session_end.timestamp()) + KEEP_S,
        }
        try:
            self.table.transact(
                [
                    tx_update(
                        booking_pk(booking_id),
                        "BOOKING",
                        expression=update.expression,
                        condition="#st = :confirmed",
                        names=update.names,
                        values=update.values,
                    ),
                    tx_put(marker),
                ]
            )
        except ConflictError:
            return False, None
        return True, previous

    def waiting(self, mentor_id: str, connection: Provider, *, limit: int) -> list[dict[str, Any]]:
        """The mentor's markers for ``connection`` (one consistent Query), at most ``limit``."""
        found: list[dict[str, Any]] = []
        for item in self.table.query(mentor_pk(mentor_id), sk_prefix=WAITING_PREFIX, consistent=True):
            if item.get("provider") == connection.value:
                found.append(item)
                if len(found) >= limit:
                    break
        return found

    def claim(self, mentor_id: str, booking_id: str, resume_id: str, *, stale_s: float) -> bool:
        """Mark the marker as re-queued by ``resume_id``; ``False`` if absent or claimed (and not stale)."""
        now = self._clock()
        try:
            self.table.update(
                mentor_pk(mentor_id),
                waiting_sk(booking_id),
                expression="SET #r = :r, #q = :now",
                condition="attribute_exists(PK) AND (attribute_not_exists(#r) OR #q < :stale)",
                names={"#r": "resume_id", "#q": "queued_at"},
                values={":r": resume_id, ":now": int(now), ":stale": int(now - stale_s)},
            )
        except ConflictError:
            return False
        return True

    def release(self, mentor_id: str, booking_id: str, resume_id: str) -> None:
        """Give a claim back (its job could not be queued), if it is still ``resume_id``'s."""
        try:
            self.table.update(
                mentor_pk(mentor_id),
                waiting_sk(booking_id),
                expression="REMOVE #r, #q",
                condition="#r = :r",
                names={"#r": "resume_id", "#q": "queued_at"},
                values={":r": resume_id},
            )
        except ConflictError:
            return

    def take(self, mentor_id: str, booking_id: str) -> dict[str, Any] | None:
        """Delete the booking's marker; what it held, or ``None`` if there was none."""
        try:
            resp = self.table.client.delete_item(
                TableName=self.table.name,
                Key=to_item({"PK": mentor_pk(mentor_id), "SK": waiting_sk(booking_id)}),
                ConditionExpression="attribute_exists(PK)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise
        attributes = resp.get("Attributes")
        return from_item(attributes) if attributes else None

    # -- resume batches ------------------------------------------------------------------------
    def open_batch(
        self,
        mentor_id: str,
        connection: Provider,
        resume_id: str,
        *,
        pending: Sequence[str],
        started: Sequence[Mapping[str, Any]],
    ) -> None:
        """Create the batch before any of its jobs is queued (a fast worker must find it)."""
        now = int(self._clock())
        self.table.put(
            {
                "PK": mentor_pk(mentor_id),
                "SK": resume_sk(connection, resume_id),
                "provider": connection.value,
                "resume_id": resume_id,
                "pending": set(pending) or None,
                "started": [dict(s) for s in started],
                "opened_at": now,
                "ttl": now + KEEP_S,
            },
            condition="attribute_not_exists(PK)",
        )

    def settle(
        self, mentor_id: str, connection: Provider, resume_id: str, booking_id: str, outcome: Outcome, session_id: str
    ) -> dict[str, Any] | None:
        """Move ``booking_id`` from ``pending`` to ``outcome``; the batch after, or ``None`` if not pending."""
        names = {"#p": "pending", "#o": outcome}
        values: dict[str, Any] = {":b": {booking_id}, ":bid": booking_id}
        expression = "DELETE #p :b ADD #o :b"
        if outcome == "created":
            expression += ", #cs :s"
            names["#cs"] = "created_sessions"
            values[":s"] = {session_id}
        try:
            return self.table.update(
                mentor_pk(mentor_id),
                resume_sk(connection, resume_id),
                expression=expression,
                condition="attribute_exists(PK) AND contains(#p, :bid)",
                names=names,
                values=values,
            )
        except ConflictError:
            return None

    def claim_summary(self, mentor_id: str, connection: Provider, resume_id: str) -> dict[str, Any] | None:
        """The batch, once, when nothing is pending and no summary went out yet; else ``None``."""
        try:
            return self.table.update(
                mentor_pk(mentor_id),
                resume_sk(connection, resume_id),
                expression="SET #s = :now",
                condition="attribute_exists(PK) AND attribute_not_exists(#p) AND attribute_not_exists(#s)",
                names={"#s": "summary_sent_at", "#p": "pending"},
                values={":now": int(self._clock())},
            )
        except ConflictError:
            return None

    def release_summary(self, mentor_id: str, connection: Provider, resume_id: str) -> None:
        """Give the summary claim back (sending failed), so a retry sends it."""
        self.table.update(
            mentor_pk(mentor_id),
            resume_sk(connection, resume_id),
            expression="REMOVE #s",
            names={"#s": "summary_sent_at"},
        )

    def batches(self, mentor_id: str, connection: Provider) -> Iterator[dict[str, Any]]:
        """The mentor's resume batches for ``connection`` (tests and operators)."""
        return self.table.query(mentor_pk(mentor_id), sk_prefix=f"{RESUME_PREFIX}{connection.value}#", consistent=True)
