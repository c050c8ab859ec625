"""Seat holds (PRODUCT.md §2.9): a PENDING booking holds its seat until ``hold_expires_at``; a hold
that ends unpaid turns the booking ``EXPIRED`` and releases the seat exactly once.

Three things end a hold unpaid, all through :meth:`ScheduleStore.expire_booking` (one transaction,
conditional on the booking still being PENDING, so whichever comes first wins and the others do
nothing):

* Stripe's ``checkout.session.expired`` (:mod:`shared.schedule.payments`), at once;
* a booking that finds its session full first expires that session's holds that have ended
  (:func:`release_due_holds`: one consistent Query reading only the session's due hold markers), so
  an abandoned checkout never blocks the last seat past its hold, whatever the sweep's cadence;
* the **sweep** (:func:`sweep`), a maintenance task of the scheduled ``calendar_poll``
  (:func:`shared.wiring.maintenance_tasks`, every 5 minutes): it reads the GSI1 partitions
  ``HOLDS#<hour>`` of the last ``lookback`` hours, each only up to now (``GSI1SK < <now ms>``), so
  it reads due holds only — never the open ones — and a run with nothing due costs one empty Query
  per hour of look-back. README "Seat holds" has the cost at 100k open holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import Field

from shared.platform.env import EnvSettings
from shared.platform.observability import logger
from shared.store import ScheduleStore


class HoldSettings(EnvSettings):
    """How long a checkout holds a seat, and how far back the sweep looks."""

    booking_hold_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="How long POST /bookings holds the seat unpaid."
    )
    booking_hold_sweep_lookback_hours: int = Field(
        default=48, ge=1, le=24 * 31, description="Hours of ended holds the sweep reads (covers an outage)."
    )

    @property
    def hold(self) -> timedelta:
        return timedelta(minutes=self.booking_hold_minutes)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: holds found due, and how many of them it expired (others were paid,
    cancelled or expired by someone else meanwhile)."""

    due: int = 0
    expired: int = 0
    buckets: int = 0


def release_due_holds(schedule: ScheduleStore, session_id: str, *, now: datetime | None = None) -> int:
    """Expire the session's holds that ended by ``now``; how many this call expired."""
    now = now or datetime.now(UTC)
    released = 0
    for booking_id in schedule.due_holds(session_id, now):
        if schedule.expire_booking(booking_id, now=now) is not None:
            released += 1
            logger.info("seat hold expired", extra={"booking_id": booking_id, "by": "booking"})
    return released


def sweep(schedule: ScheduleStore, *, now: datetime | None = None, lookback_hours: int = 48) -> SweepResult:
    """Expire every hold that ended in the last ``lookback_hours`` hours and is still open."""
    now = now or datetime.now(UTC)
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    due = expired = 0
    buckets = [hour - timedelta(hours=h) for h in range(lookback_hours, -1, -1)]
    for bucket in buckets:
        for booking_id in schedule.holds_due_in_bucket(bucket, now):
            due += 1
            if schedule.expire_booking(booking_id, now=now) is not None:
                expired += 1
                logger.info("seat hold expired", extra={"booking_id": booking_id, "by": "sweep"})
    return SweepResult(due=due, expired=expired, buckets=len(buckets))
