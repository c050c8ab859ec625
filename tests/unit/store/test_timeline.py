"""The mentor's timeline (shared.store.timeline) and the private-session write, with the races made
deterministic: the competing write lands exactly between a request's read and its write (moto)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.availability.bookable import MentorTime
from shared.availability.rules import AvailabilityRules
from shared.platform.api import ApiError
from shared.schedule.private import CreatePrivateSessionRequest, PrivateSessions
from shared.store import BookingStatus, ClassFormat, ClassItem, ScheduleStore, Session, Store
from shared.store.schedule import session_id_for
from shared.store.table import TransactionConflict
from shared.store.timeline import HOUR, Span, Timeline, hours_of

MENTOR = "m-tl"
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
T10 = int(datetime(2027, 3, 3, 10, 0, tzinfo=UTC).timestamp())


def _span(n: int, start: int, minutes: int = 60) -> Span:
    return Span(f"bkg_{n}", f"cls_p{n}-s01", start, start + minutes * 60)


def _claim(schedule: ScheduleStore, span: Span, lo: int | None = None, hi: int | None = None) -> list[dict[str, Any]]:
    lo, hi = span.start if lo is None else lo, span.end if hi is None else hi
    snap = schedule.timeline.snapshot(MENTOR, min(lo, span.start), max(hi, span.end))
    return schedule.timeline.claim_ops(snap, MENTOR, span, lo, hi)


def _class(schedule: ScheduleStore, class_id: str, start: int, minutes: int = 60) -> None:
    item = ClassItem(
        class_id=class_id,
        mentor_id=MENTOR,
        title="Yoga",
        format=ClassFormat.IN_PERSON,
        timezone="UTC",
        duration_minutes=minutes,
        capacity=5,
        location="Studio",
    )
    begin = datetime.fromtimestamp(start, UTC)
    session = Session(
        class_id=class_id,
        session_id=session_id_for(class_id, 1),
        mentor_id=MENTOR,
        start=begin,
        end=begin + timedelta(minutes=minutes),
        capacity=5,
    )
    schedule.create_class(item, [session])


def test_hours_of_covers_every_touched_hour() -> None:
    assert hours_of(T10, T10 + 1) == [T10]
    assert hours_of(T10 + 1800, T10 + HOUR + 1) == [T10, T10 + HOUR]
    assert hours_of(T10, T10 + HOUR) == [T10]  # ends exactly on the next hour: not touched


def test_of_two_claims_read_at_the_same_time_only_the_first_commits(schedule: ScheduleStore) -> None:
    first, second = _span(1, T10), _span(2, T10 + 1800)
    ops_1, ops_2 = _claim(schedule, first), _claim(schedule, second)  # both read before either writes
    schedule.table.transact(ops_1)
    with pytest.raises(TransactionConflict):
        schedule.table.transact(ops_2)
    spans = schedule.timeline.spans_between(MENTOR, T10 - HOUR, T10 + 3 * HOUR, consistent=True)
    assert spans == [first]


def test_a_claim_fails_when_a_class_lands_between_its_read_and_its_write(schedule: ScheduleStore) -> None:
    span = _span(1, T10 + 4 * HOUR)
    ops = _claim(schedule, span)
    _class(schedule, "cls_far", T10 + 48 * HOUR)  # anywhere: the head's version moved
    with pytest.raises(TransactionConflict) as caught:
        schedule.table.transact(ops)
    assert 0 in caught.value.failed  # the head check


def test_a_claim_whose_buffer_hour_changed_fails(schedule: ScheduleStore) -> None:
    # Given a claim at 12:00-13:00 that keeps 11:00-12:00 free (a 60-minute buffer before), read first
    span = _span(1, T10 + 2 * HOUR)
    ops = _claim(schedule, span, lo=span.start - HOUR, hi=span.end)
    # When another session takes 11:00-11:30 (its own bucket is the buffer's) / Then the claim fails
    schedule.table.transact(_claim(schedule, _span(2, T10 + HOUR, 30)))
    with pytest.raises(TransactionConflict):
        schedule.table.transact(ops)


def test_released_spans_leave_every_hour_and_the_time_can_be_claimed_again(schedule: ScheduleStore) -> None:
    span = _span(1, T10 + 1800, 120)  # 10:30-12:30: three hours
    schedule.table.transact(_claim(schedule, span))
    schedule.table.transact(Timeline.release_ops(MENTOR, span.booking_id, span.start, span.end, now=T10 - HOUR))
    assert schedule.timeline.spans_between(MENTOR, T10, T10 + 3 * HOUR, consistent=True) == []
    schedule.table.transact(_claim(schedule, _span(2, T10 + 1800, 120)))


def _mentor_time(rules: dict[str, Any]) -> Callable[[str, datetime], MentorTime | None]:
    hours = AvailabilityRules.model_validate(rules).hours()
    return lambda _mentor, _now: MentorTime(hours=hours, busy=())


RULES = {
    "timezone": "UTC",
    "weekly": {d: [{"start": "08:00", "end": "18:00"}] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "minimumNoticeMinutes": 0,
    "slotStepMinutes": 30,
}


def _request(start: int, minutes: int = 60, mentor: str = MENTOR) -> CreatePrivateSessionRequest:
    return CreatePrivateSessionRequest.model_validate(
        {
            "mentorId": mentor,
            "start": datetime.fromtimestamp(start, UTC).isoformat(),
            "durationMinutes": minutes,
            "format": "in_person",
            "location": "Studio",
            "studentEmail": "s@example.com",
            "studentName": "Sam",
            "priceAmount": 5000,
            "currency": "EUR",
        }
    )


def _service(store: Store, schedule: ScheduleStore) -> PrivateSessions:
    return PrivateSessions(
        store=store,
        schedule=schedule,
        mentor_time=_mentor_time(RULES),
        hold=timedelta(minutes=30),
        clock=lambda: NOW,
    )


def test_a_class_created_between_the_re_check_and_the_write_refuses_the_private_session(
    store: Store, schedule: ScheduleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request whose re-check finds 10:00 free, and a class at 10:00 created right after that read
    service = _service(store, schedule)
    read = schedule.timeline.snapshot
    calls: list[int] = []

    def snapshot_then_class(*args: Any, **kwargs: Any) -> Any:
        snap = read(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            _class(schedule, "cls_sametime", T10)
        return snap

    monkeypatch.setattr(schedule.timeline, "snapshot", snapshot_then_class)
    # When the write goes ahead / Then it fails on the head, re-reads, sees the class: 409
    with pytest.raises(ApiError) as caught:
        service.create(_request(T10))
    assert (caught.value.status, caught.value.code) == (409, "slot_unavailable")
    assert len(calls) == 2
    assert schedule.timeline.spans_between(MENTOR, T10, T10 + HOUR, consistent=True) == []


def test_a_private_session_whose_hour_changed_meanwhile_reads_again_and_wins(
    store: Store, schedule: ScheduleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request for 10:00-10:30, and another private session for 10:50-11:00 (the same hour
    # bucket, not overlapping) committed right after the request's read
    service = _service(store, schedule)
    read = schedule.timeline.snapshot
    calls: list[int] = []

    def snapshot_then_write(*args: Any, **kwargs: Any) -> Any:
        snap = read(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            other = _span(8, T10 + 3000, 10)
            theirs = read(MENTOR, other.start, other.end)
            schedule.table.transact(schedule.timeline.claim_ops(theirs, MENTOR, other, other.start, other.end))
        return snap

    monkeypatch.setattr(schedule.timeline, "snapshot", snapshot_then_write)
    # When the request writes / Then its first write fails (the bucket's version moved), the second
    # read finds 10:00-10:30 still free: 201, and both spans are kept
    created = service.create(_request(T10, 30))
    assert created.status is BookingStatus.PENDING
    assert len(calls) == 2
    assert sorted(service_spans(schedule)) == sorted(["bkg_8", created.booking_id])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=21), st.sampled_from([30, 60, 90, 120])),
        min_size=1,
        max_size=8,
    )
)
def test_private_sessions_are_granted_exactly_when_their_time_is_free(
    store: Store, schedule: ScheduleStore, requests: list[tuple[int, int]]
) -> None:
    """Property: requests on the 30-minute grid of an 08:00-18:00 day, in any order: each is 201
    exactly when it lies within the hours and overlaps no session granted before it, else 409."""
    mentor = f"m-prop-{uuid.uuid4().hex[:8]}"
    service = _service(store, schedule)
    day_start = T10 - 2 * HOUR  # 08:00 UTC
    kept: list[tuple[int, int]] = []
    for slot, minutes in requests:
        start = day_start + slot * 1800
        end = start + minutes * 60
        free = end <= day_start + 10 * HOUR and not any(a < end and start < b for a, b in kept)
        if not free:
            with pytest.raises(ApiError) as refused:
                service.create(_request(start, minutes, mentor))
            assert (refused.value.status, refused.value.code) == (409, "slot_unavailable")
            continue
        service.create(_request(start, minutes, mentor))
        kept.append((start, end))
    spans = schedule.timeline.spans_between(mentor, day_start, day_start + 10 * HOUR, consistent=True)
    assert sorted((s.start, s.end) for s in spans) == sorted(kept)


def test_expiring_the_hold_frees_the_time_and_a_late_payment_takes_it_back_if_still_free(
    store: Store, schedule: ScheduleStore
) -> None:
    service = _service(store, schedule)
    made = service.create(_request(T10))
    assert service_spans(schedule) == [made.booking_id]
    expired = schedule.expire_booking(made.booking_id, force=True)
    assert expired is not None
    assert expired.status is BookingStatus.EXPIRED
    assert service_spans(schedule) == []
    # When the payment arrives late and the time is still free / Then CONFIRMED and the time held again
    paid = schedule.confirm_booking(made.booking_id, payment_intent="pi_1")
    assert paid is not None
    assert (paid.status, paid.over_capacity) == (BookingStatus.CONFIRMED, False)
    assert service_spans(schedule) == [made.booking_id]
    # When it is cancelled / Then the time is free again
    cancelled = schedule.cancel_booking(made.booking_id, "platform")
    assert cancelled is not None
    assert service_spans(schedule) == []


def test_a_late_payment_for_time_taken_meanwhile_is_confirmed_over_capacity(
    store: Store, schedule: ScheduleStore
) -> None:
    service = _service(store, schedule)
    first = service.create(_request(T10))
    schedule.expire_booking(first.booking_id, force=True)
    second = service.create(_request(T10 + 1800, 30))  # 10:30: inside the first's time
    paid = schedule.confirm_booking(first.booking_id, payment_intent="pi_2")
    assert paid is not None
    assert (paid.status, paid.over_capacity) == (BookingStatus.CONFIRMED, True)
    assert service_spans(schedule) == [second.booking_id]  # the over-capacity one holds no span
    # And cancelling the over-capacity booking leaves the other's span alone
    schedule.cancel_booking(first.booking_id, "platform")
    assert service_spans(schedule) == [second.booking_id]


def service_spans(schedule: ScheduleStore) -> list[str]:
    return [s.booking_id for s in schedule.timeline.spans_between(MENTOR, T10 - HOUR, T10 + 3 * HOUR, consistent=True)]
