"""MeetingLedger: one reservation at a time per session, takeover after a crash, once-only e-mails."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from classes_support import one_session_zoom_class

from shared.platform import aws
from shared.store import (
    Booking,
    MeetingProvider,
    MeetingRef,
    MeetingStatus,
    ScheduleStore,
    Session,
    Table,
)
from shared.store.meetings import MeetingBusy, MeetingLedger, Reservation

START = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
ZOOM = MeetingProvider.ZOOM


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(schedule: ScheduleStore, clock: Clock) -> MeetingLedger:
    return MeetingLedger(Table(aws.client("dynamodb"), schedule.table.name), schedule, clock=clock)


@pytest.fixture
def session(schedule: ScheduleStore) -> Session:
    return one_session_zoom_class(schedule, "cls_m", START)


def _fresh(schedule: ScheduleStore, session: Session) -> Session:
    found = schedule.get_session(session.session_id)
    assert found is not None
    return found


def test_reserve_then_record_then_reuse(ledger: MeetingLedger, schedule: ScheduleStore, session: Session) -> None:
    """Given no meeting, a reservation is granted; once recorded, the next caller reuses the meeting."""
    held = ledger.reserve(session, ZOOM, lease_s=60)
    assert isinstance(held, Reservation)
    assert (held.generation, held.takeover) == (1, False)
    with pytest.raises(MeetingBusy):
        ledger.reserve(_fresh(schedule, session), ZOOM, lease_s=60)
    ledger.record(held, status=MeetingStatus.CREATED, meeting_id="123", url="https://zoom.example/j/123")
    again = ledger.reserve(_fresh(schedule, session), ZOOM, lease_s=60)
    assert isinstance(again, MeetingRef)
    assert again.url == "https://zoom.example/j/123"


def test_crashed_reservation_is_taken_over_after_its_lease(
    ledger: MeetingLedger, schedule: ScheduleStore, session: Session, clock: Clock
) -> None:
    """Given a worker that reserved and died, when its lease expires, the next one takes over and must look first."""
    first = ledger.reserve(session, ZOOM, lease_s=60)
    assert isinstance(first, Reservation)
    clock.now += 61
    second = ledger.reserve(_fresh(schedule, session), ZOOM, lease_s=60)
    assert isinstance(second, Reservation)
    assert second.takeover
    assert second.generation == 1
    # The crashed worker's late write no longer counts.
    from shared.store import ConflictError

    with pytest.raises(ConflictError):
        ledger.record(first, status=MeetingStatus.CREATED, meeting_id="dup", url="https://x")


def test_delete_waits_for_no_confirmed_and_bumps_generation(
    ledger: MeetingLedger, schedule: ScheduleStore, session: Session
) -> None:
    held = ledger.reserve(session, ZOOM, lease_s=60)
    assert isinstance(held, Reservation)
    ledger.record(held, status=MeetingStatus.CREATED, meeting_id="1", url="https://x/1")
    booking = Booking(
        booking_id="bkg_1",
        session_id=session.session_id,
        class_id="cls_m",
        mentor_id="m-1",
        student_email="s@example.com",
        student_name="S",
        token_hash=hashlib.sha256(b"t").hexdigest(),
    )
    schedule.create_booking(booking)
    schedule.confirm_booking("bkg_1")
    assert ledger.begin_delete(_fresh(schedule, session), require_no_confirmed=True) is None
    schedule.cancel_booking("bkg_1", "student")
    deleting = ledger.begin_delete(_fresh(schedule, session), require_no_confirmed=True)
    assert deleting is not None
    assert deleting.status is MeetingStatus.DELETING
    with pytest.raises(MeetingBusy):
        ledger.reserve(_fresh(schedule, session), ZOOM, lease_s=60)
    ledger.finish_delete(session.session_id, deleting)
    fresh = ledger.reserve(_fresh(schedule, session), ZOOM, lease_s=60)
    assert isinstance(fresh, Reservation)
    assert fresh.generation == 2


def test_failure_notified_once_across_attempts(
    ledger: MeetingLedger, schedule: ScheduleStore, session: Session
) -> None:
    held = ledger.reserve(session, ZOOM, lease_s=60)
    assert isinstance(held, Reservation)
    ledger.record(held, status=MeetingStatus.FAILED, reason="needs_reconnect: zoom")
    assert ledger.mark_notified(session.session_id) is True
    assert ledger.mark_notified(session.session_id) is False
    retry = ledger.reserve(_fresh(schedule, session), ZOOM, lease_s=60)
    assert isinstance(retry, Reservation)
    ledger.record(retry, status=MeetingStatus.FAILED, reason="needs_reconnect: zoom")
    assert ledger.mark_notified(session.session_id) is False


def test_email_claimed_once_and_released_on_failure(
    ledger: MeetingLedger, schedule: ScheduleStore, session: Session
) -> None:
    booking = Booking(
        booking_id="bkg_e",
        session_id=session.session_id,
        class_id="cls_m",
        mentor_id="m-1",
        student_email="s@example.com",
        student_name="S",
        token_hash=hashlib.sha256(b"t").hexdigest(),
    )
    schedule.create_booking(booking)
    assert ledger.claim_email("bkg_e", "confirmation")
    assert not ledger.claim_email("bkg_e", "confirmation")
    assert ledger.claim_email("bkg_e", "moved#1")
    ledger.release_email("bkg_e", "confirmation")
    assert ledger.claim_email("bkg_e", "confirmation")
