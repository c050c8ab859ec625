"""Attack: an abandoned checkout holds a seat forever (PRODUCT.md §2.9, issue 14 "What was found" 1).

Before issue 14 a PENDING booking kept its seat until it was paid or cancelled: starting checkouts
and walking away emptied a class for good. Now ``POST /bookings`` holds the seat until
``holdExpiresAt``; the hold ends unpaid → ``EXPIRED`` and the seat is released exactly once, by
Stripe's ``checkout.session.expired``, by a booking that finds the session full, or by the sweep
(a maintenance task of the scheduled poll). A payment after that re-takes a free seat, or confirms
``overCapacity`` and e-mails the mentor once.

The first test goes through the local gateway; the others drive the domain functions on moto with
a clock in hand (a hold lasts minutes).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from classes_support import in_person, tables

from devstack import stripe_events
from devstack.outbox import read_outbox
from devstack.stack import LocalStack
from shared.schedule import bookings, holds
from shared.schedule.bookings import CreateBookingRequest
from shared.store import (
    BookingStatus,
    ClassFormat,
    ClassItem,
    ScheduleStore,
    Session,
)
from shared.store.schedule import session_id_for

PRICE = {"priceAmount": 2500, "currency": "EUR"}


def _stripe(api: httpx.Client, stack: LocalStack, event_type: str, **fields: Any) -> dict[str, Any]:
    event = stripe_events.build_event(event_type, amount=2500, currency="eur", **fields)
    resp = stripe_events.send(str(api.base_url), event, stack.stripe_webhook_secret, client=api)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_an_abandoned_checkout_gives_its_seat_back_and_a_late_payment_is_not_lost(
    api: httpx.Client,
    local_stack: LocalStack,
    mentor_headers: Callable[..., dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    # Given a 1-seat class whose seat a checkout holds
    mentor_id = f"sec-hold-{uuid.uuid4().hex[:8]}"
    store, schedule = tables(local_stack)
    store.upsert_mentor(mentor_id, email=f"{mentor_id}@example.com")
    created = api.post(
        "/classes", json=in_person(capacity=1, starts=in_person()["starts"][:1]), headers=mentor_headers(mentor_id)
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["sessions"][0]["sessionId"]

    def book(who: str) -> httpx.Response:
        body = {"sessionId": session_id, "studentEmail": f"{who}@example.com", "studentName": who, **PRICE}
        return api.post("/bookings", json=body, headers=platform_headers)

    first = book("abandoner")
    assert first.status_code == 201, first.text
    held_until = datetime.fromisoformat(first.json()["holdExpiresAt"])
    assert timedelta(minutes=29) < held_until - datetime.now(UTC) <= timedelta(minutes=30)
    abandoned = first.json()["bookingId"]
    assert book("second").json()["error"]["code"] == "session_full"  # the hold is live

    # When the checkout is abandoned (Stripe expires its session)
    assert _stripe(api, local_stack, "checkout.session.expired", booking_id=abandoned)["outcome"] == "expired"
    again = _stripe(api, local_stack, "checkout.session.expired", booking_id=abandoned)

    # Then the booking is EXPIRED, its seat is free (once), and the next student gets it
    assert again["outcome"] == "hold_already_ended"
    expired = schedule.get_booking(abandoned)
    session = schedule.get_session(session_id)
    assert expired is not None
    assert session is not None
    assert (expired.status, session.seats_taken) == (BookingStatus.EXPIRED, 0)
    taker = book("taker")
    assert taker.status_code == 201, taker.text

    # And a late payment of the abandoned booking is not lost: CONFIRMED over capacity, mentor told once
    late = {"booking_id": abandoned, "payment_intent": "pi_late"}
    assert _stripe(api, local_stack, "payment_intent.succeeded", **late)["outcome"] == "confirmed_over_capacity"
    assert _stripe(api, local_stack, "checkout.session.completed", **late)["outcome"] == "already_confirmed"
    local_stack.drain(timeout=20)
    confirmed = schedule.get_booking(abandoned)
    session = schedule.get_session(session_id)
    assert confirmed is not None
    assert session is not None
    assert (confirmed.status, confirmed.over_capacity, confirmed.payment_intent) == (
        BookingStatus.CONFIRMED,
        True,
        "pi_late",
    )
    assert (session.seats_taken, session.confirmed) == (2, 1)
    told = [m for m in read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"]) if f"{mentor_id}@" in str(m.to)]
    assert len([m for m in told if m.subject.startswith("Over capacity")]) == 1


# --- with a clock in hand (moto, domain functions) ------------------------------------------------------

START = datetime(2030, 3, 1, 17, 0, tzinfo=UTC)
T0 = datetime.now(UTC) - timedelta(hours=2)  # a checkout begun two hours ago: its 30-minute hold has ended


def one_session(schedule: ScheduleStore, capacity: int, class_id: str = "cls_hold") -> str:
    item = ClassItem(
        class_id=class_id,
        mentor_id="m-hold",
        title="Holds",
        format=ClassFormat.IN_PERSON,
        timezone="UTC",
        duration_minutes=60,
        capacity=capacity,
        location="Room 1",
    )
    sid = session_id_for(class_id, 1)
    session = Session(
        class_id=class_id,
        session_id=sid,
        mentor_id="m-hold",
        start=START,
        end=START + timedelta(hours=1),
        capacity=capacity,
    )
    schedule.create_class(item, [session])
    return sid


def hold(schedule: ScheduleStore, session_id: str, who: str, now: datetime) -> str:
    body = CreateBookingRequest.model_validate(
        {"sessionId": session_id, "studentEmail": f"{who}@example.com", "studentName": who, **PRICE}
    )
    return bookings.create_booking(schedule, body, now=now).booking_id


def counts(schedule: ScheduleStore, session_id: str) -> tuple[int, int]:
    session = schedule.get_session(session_id)
    assert session is not None
    return session.seats_taken, session.confirmed


def test_a_hold_that_ran_out_does_not_block_the_last_seat(schedule: ScheduleStore) -> None:
    # Given the only seat held by a checkout abandoned two hours ago (no webhook, no sweep yet)
    sid = one_session(schedule, capacity=1)
    abandoned = hold(schedule, sid, "abandoner", T0)

    # When another student books now
    taker = hold(schedule, sid, "taker", datetime.now(UTC))

    # Then the abandoned hold was expired first and its seat went to the taker, counted once
    old, new = schedule.get_booking(abandoned), schedule.get_booking(taker)
    assert old is not None
    assert new is not None
    assert (old.status, new.status) == (BookingStatus.EXPIRED, BookingStatus.PENDING)
    assert counts(schedule, sid) == (1, 0)
    # And a live hold is not taken away: the next one is refused
    with pytest.raises(Exception, match="full"):
        hold(schedule, sid, "third", datetime.now(UTC))


def test_the_sweep_expires_ended_holds_once_and_leaves_live_and_paid_ones(schedule: ScheduleStore) -> None:
    # Given ended holds, a live one and an ended one that was paid meanwhile
    sid = one_session(schedule, capacity=5)
    ended = [hold(schedule, sid, f"gone{n}", T0) for n in range(2)]
    live = hold(schedule, sid, "live", datetime.now(UTC))
    paid = hold(schedule, sid, "paid", T0)
    assert schedule.confirm_booking(paid, payment_intent="pi_paid") is not None
    assert counts(schedule, sid) == (4, 1)

    # When the sweep runs (twice: the second finds nothing)
    first = holds.sweep(schedule)
    second = holds.sweep(schedule)

    # Then exactly the two ended, unpaid holds expired and gave their seats back
    assert (first.expired, second.expired, second.due) == (2, 0, 0)
    statuses = {b: schedule.get_booking(b).status for b in [*ended, live, paid]}  # type: ignore[union-attr]
    assert statuses == {
        ended[0]: BookingStatus.EXPIRED,
        ended[1]: BookingStatus.EXPIRED,
        live: BookingStatus.PENDING,
        paid: BookingStatus.CONFIRMED,
    }
    assert counts(schedule, sid) == (2, 1)
    # And no hold marker is left but the live one
    markers = [i for i in schedule.table.query(f"CLASS#{sid.rsplit('-', 1)[0]}", sk_prefix="HOLD#")]
    assert [m["booking_id"] for m in markers] == [live]


def test_a_late_payment_retakes_a_free_seat(schedule: ScheduleStore) -> None:
    sid = one_session(schedule, capacity=2)
    late = hold(schedule, sid, "late", T0)
    assert holds.sweep(schedule).expired == 1
    assert counts(schedule, sid) == (0, 0)
    booking = schedule.confirm_booking(late, payment_intent="pi_late")
    assert booking is not None
    assert (booking.status, booking.over_capacity) == (BookingStatus.CONFIRMED, False)
    assert counts(schedule, sid) == (1, 1)


def test_the_hold_is_stored_with_the_price(schedule: ScheduleStore) -> None:
    sid = one_session(schedule, capacity=1)
    body = CreateBookingRequest.model_validate(
        {"sessionId": sid, "studentEmail": "s@example.com", "studentName": "S", "priceAmount": 2500, "currency": "eur"}
    )
    now = datetime.now(UTC)
    created = bookings.create_booking(schedule, body, now=now, hold=timedelta(minutes=10))
    stored = schedule.get_booking(created.booking_id)
    assert stored is not None
    assert (stored.price_amount, stored.currency, stored.hold_expires_at) == (2500, "EUR", now + timedelta(minutes=10))
    assert created.hold_expires_at == now + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priceAmount", 0),
        ("priceAmount", -5),
        ("priceAmount", 10**12),
        ("priceAmount", "2500"),
        ("priceAmount", 25.5),
        ("currency", "EURO"),
        ("currency", "€"),
        ("currency", None),
    ],
)
def test_a_price_out_of_bounds_is_refused(field: str, value: Any) -> None:
    body = {"sessionId": "cls_x-s01", "studentEmail": "s@example.com", "studentName": "S", **PRICE, field: value}
    with pytest.raises(ValueError, match=field):
        CreateBookingRequest.model_validate(body)
