"""ScheduleStore: classes with their sessions, exact seat accounting, booking status transitions."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared.store import (
    Booking,
    BookingStatus,
    ClassFormat,
    ClassItem,
    MeetingProvider,
    NotFoundError,
    ScheduleStore,
    Session,
    SessionNotBookable,
)
from shared.store.schedule import class_id_of, session_id_for
from shared.store.table import TransactionConflict

START = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def _class(schedule: ScheduleStore, capacity: int = 2, sessions: int = 2, class_id: str = "cls_abc") -> list[Session]:
    item = ClassItem(
        class_id=class_id,
        mentor_id="m-1",
        title="Intro to Rust",
        format=ClassFormat.ONLINE,
        timezone="Europe/Berlin",
        duration_minutes=60,
        capacity=capacity,
        meeting_provider=MeetingProvider.GOOGLE_MEET,
    )
    rows = [
        Session(
            class_id=class_id,
            session_id=session_id_for(class_id, n + 1),
            mentor_id="m-1",
            start=START + timedelta(weeks=n),
            end=START + timedelta(weeks=n, hours=1),
            capacity=capacity,
        )
        for n in range(sessions)
    ]
    schedule.create_class(item, rows)
    return rows


def _booking(session: Session, n: int) -> Booking:
    return Booking(
        booking_id=f"bkg_{n}",
        session_id=session.session_id,
        class_id=session.class_id,
        mentor_id=session.mentor_id,
        student_email=f"s{n}@example.com",
        student_name=f"Student {n}",
        token_hash=hashlib.sha256(f"t{n}".encode()).hexdigest(),
    )


def test_session_ids_name_their_class() -> None:
    assert class_id_of(session_id_for("cls_a-sb", 7)) == "cls_a-sb"
    assert class_id_of("nonsense") is None
    assert class_id_of("cls_x-sZZ") is None


def test_class_and_sessions_written_together(schedule: ScheduleStore) -> None:
    """Given a class with two sessions, when it is created, then both read back in order."""
    rows = _class(schedule)
    assert schedule.get_class("cls_abc") is not None
    assert [s.session_id for s in schedule.list_sessions("cls_abc")] == [r.session_id for r in rows]
    assert schedule.get_session(rows[1].session_id) == schedule.list_sessions("cls_abc")[1]
    assert [c.class_id for c in schedule.list_classes("m-1")] == ["cls_abc"]


def test_class_id_collision_writes_nothing(schedule: ScheduleStore) -> None:
    _class(schedule, sessions=1)
    with pytest.raises(TransactionConflict):
        _class(schedule, sessions=3)
    assert len(schedule.list_sessions("cls_abc")) == 1


def test_capacity_is_enforced_and_cancel_frees_a_seat(schedule: ScheduleStore) -> None:
    session = _class(schedule, capacity=1)[0]
    schedule.create_booking(_booking(session, 1))
    with pytest.raises(SessionNotBookable) as full:
        schedule.create_booking(_booking(session, 2))
    assert full.value.reason == "session_full"
    assert schedule.get_booking("bkg_2") is None
    cancelled = schedule.cancel_booking("bkg_1", "student")
    assert cancelled is not None
    assert cancelled.status is BookingStatus.CANCELLED
    assert cancelled.job_pending == "cancel"
    schedule.create_booking(_booking(session, 3))
    assert schedule.get_session(session.session_id).seats_taken == 1  # type: ignore[union-attr]


def test_unknown_or_cancelled_session(schedule: ScheduleStore) -> None:
    session = _class(schedule)[0]
    with pytest.raises(NotFoundError):
        schedule.create_booking(_booking(session.model_copy(update={"session_id": "cls_abc-s99"}), 1))
    assert schedule.cancel_session(session.session_id) is not None
    assert schedule.cancel_session(session.session_id) is None  # idempotent
    with pytest.raises(SessionNotBookable) as cancelled:
        schedule.create_booking(_booking(session, 2))
    assert cancelled.value.reason == "session_cancelled"


def test_confirm_once_and_cancelled_is_final(schedule: ScheduleStore) -> None:
    """Given a PENDING booking, a duplicate confirmation counts once; a refund first means no resurrection."""
    session = _class(schedule)[0]
    schedule.create_booking(_booking(session, 1))
    schedule.create_booking(_booking(session, 2))
    confirmed = schedule.confirm_booking("bkg_1")
    assert confirmed is not None
    assert confirmed.status is BookingStatus.CONFIRMED
    assert confirmed.job_pending == "create"
    assert schedule.confirm_booking("bkg_1") is None
    assert schedule.cancel_booking("bkg_2", "refund") is not None
    assert schedule.confirm_booking("bkg_2") is None
    assert schedule.get_booking("bkg_2").status is BookingStatus.CANCELLED  # type: ignore[union-attr]
    now = schedule.get_session(session.session_id)
    assert now is not None
    assert (now.seats_taken, now.confirmed) == (1, 1)
    schedule.cancel_booking("bkg_1", "mentor")
    now = schedule.get_session(session.session_id)
    assert now is not None
    assert (now.seats_taken, now.confirmed) == (0, 0)


def test_move_bumps_sequence(schedule: ScheduleStore) -> None:
    session = _class(schedule)[0]
    moved = schedule.move_session(session.session_id, START + timedelta(hours=2), START + timedelta(hours=3))
    assert moved.sequence == 1
    assert moved.start == START + timedelta(hours=2)
    schedule.cancel_session(session.session_id)
    with pytest.raises(SessionNotBookable):
        schedule.move_session(session.session_id, START, START + timedelta(hours=1))


def test_pending_job_cleared_only_if_unchanged(schedule: ScheduleStore) -> None:
    session = _class(schedule)[0]
    schedule.create_booking(_booking(session, 1))
    schedule.confirm_booking("bkg_1")
    schedule.clear_pending_job("bkg_1", "cancel")  # not the recorded job: no-op
    assert schedule.get_booking("bkg_1").job_pending == "create"  # type: ignore[union-attr]
    schedule.clear_pending_job("bkg_1", "create")
    assert schedule.get_booking("bkg_1").job_pending is None  # type: ignore[union-attr]


@pytest.mark.usefixtures("atomic_dynamodb")
def test_racing_bookings_take_exactly_capacity_seats(schedule: ScheduleStore) -> None:
    """Given capacity 5, when 40 bookings race, then exactly 5 succeed and the count says 5."""
    session = _class(schedule, capacity=5, sessions=1)[0]

    def attempt(n: int) -> bool:
        try:
            schedule.create_booking(_booking(session, n))
        except SessionNotBookable:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(attempt, range(40)))
    assert sum(results) == 5
    assert schedule.get_session(session.session_id).seats_taken == 5  # type: ignore[union-attr]
    assert len(schedule.bookings_of_session(session.session_id)) == 5
