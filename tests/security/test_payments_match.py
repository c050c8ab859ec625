"""Attack: payments that are not the booking's own (PRODUCT.md §2.5, issue 14 "What was found" 2).

Before issue 14 a signed ``payment_intent.succeeded`` for 1 JPY naming another mentor's 25 EUR
booking confirmed it, and a 1-unit ``charge.refunded`` cancelled it: the webhook read only
``metadata.booking_id``. Now a payment confirms only for the booking's amount and currency, the
confirming PaymentIntent is recorded, and a refund applies only when it fully refunds that
PaymentIntent; anything else is logged with the event id, answered 200 and changes nothing.
Each test goes through the local gateway, as Stripe (signed with the stack's secret) would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from classes_support import in_person, tables

from devstack import stripe_events
from devstack.stack import LocalStack
from shared.store import BookingStatus, ScheduleStore

PRICE = {"priceAmount": 2500, "currency": "eur"}  # 25.00 EUR, currency in any case


def _book_one_seat(
    api: httpx.Client, mentor: dict[str, str], platform: dict[str, str], *, capacity: int = 1
) -> dict[str, Any]:
    """An in-person class of ``capacity`` seats and one 25 EUR booking of its first session."""
    created = api.post("/classes", json=in_person(capacity=capacity, starts=in_person()["starts"][:1]), headers=mentor)
    assert created.status_code == 201, created.text
    session_id = created.json()["sessions"][0]["sessionId"]
    body = {"sessionId": session_id, "studentEmail": "victim@example.com", "studentName": "Victim", **PRICE}
    booked = api.post("/bookings", json=body, headers=platform)
    assert booked.status_code == 201, booked.text
    return dict(booked.json())


def _stripe(api: httpx.Client, stack: LocalStack, event_type: str, **fields: Any) -> dict[str, Any]:
    """Deliver a signed Stripe event through the gateway; Stripe must always get a 200."""
    event = stripe_events.build_event(event_type, **fields)
    resp = stripe_events.send(str(api.base_url), event, stack.stripe_webhook_secret, client=api)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _state(schedule: ScheduleStore, booking_id: str, session_id: str) -> tuple[Any, ...]:
    booking = schedule.get_booking(booking_id)
    session = schedule.get_session(session_id)
    assert booking is not None
    assert session is not None
    return booking.status, booking.payment_intent, session.seats_taken, session.confirmed


def test_a_1_jpy_payment_does_not_confirm_a_25_eur_booking(
    api: httpx.Client,
    local_stack: LocalStack,
    mentor_headers: Callable[..., dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    # Given a PENDING 25 EUR booking of another mentor's class
    mentor = mentor_headers(f"sec-pay-{uuid.uuid4().hex[:8]}")
    booking = _book_one_seat(api, mentor, platform_headers)
    booking_id, session_id = booking["bookingId"], booking["sessionId"]
    _, schedule = tables(local_stack)
    stored = schedule.get_booking(booking_id)
    assert stored is not None
    assert (stored.price_amount, stored.currency) == (2500, "EUR")

    # When Stripe reports payments of the wrong amount or currency naming it
    for wrong in (
        {"amount": 1, "currency": "jpy"},
        {"amount": 2500, "currency": "jpy"},
        {"amount": 1, "currency": "eur"},
    ):
        for kind in ("payment_intent.succeeded", "checkout.session.completed"):
            answer = _stripe(api, local_stack, kind, booking_id=booking_id, **wrong)
            # Then each is refused (200 to Stripe, logged) and nothing changes
            assert answer["outcome"] == "payment_mismatch", answer
    assert _state(schedule, booking_id, session_id) == (BookingStatus.PENDING, None, 1, 0)

    # And the booking's own payment still confirms it, recording its PaymentIntent
    answer = _stripe(
        api,
        local_stack,
        "payment_intent.succeeded",
        booking_id=booking_id,
        amount=2500,
        currency="eur",
        payment_intent="pi_theRealOne",
    )
    assert answer["outcome"] == "confirmed"
    assert _state(schedule, booking_id, session_id) == (BookingStatus.CONFIRMED, "pi_theRealOne", 1, 1)


def test_a_1_unit_refund_does_not_cancel_a_paid_booking(
    api: httpx.Client,
    local_stack: LocalStack,
    mentor_headers: Callable[..., dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    # Given a 25 EUR booking confirmed by its own payment
    mentor = mentor_headers(f"sec-refund-{uuid.uuid4().hex[:8]}")
    booking = _book_one_seat(api, mentor, platform_headers)
    booking_id, session_id = booking["bookingId"], booking["sessionId"]
    _, schedule = tables(local_stack)
    paid = {"booking_id": booking_id, "amount": 2500, "currency": "eur", "payment_intent": "pi_paidInFull"}
    assert _stripe(api, local_stack, "checkout.session.completed", **paid)["outcome"] == "confirmed"

    # When a 1 JPY charge naming it is fully refunded (1 unit), and its own charge is refunded by 1 cent
    other = _stripe(
        api,
        local_stack,
        "charge.refunded",
        booking_id=booking_id,
        amount=1,
        currency="jpy",
        payment_intent="pi_attackersOwn",
    )
    partial = _stripe(api, local_stack, "charge.refunded", **paid, amount_refunded=1)

    # Then neither cancels it: the seat stays taken and confirmed
    assert other["outcome"] == "payment_mismatch"
    assert partial["outcome"] == "partial_refund"
    assert _state(schedule, booking_id, session_id) == (BookingStatus.CONFIRMED, "pi_paidInFull", 1, 1)

    # And the full refund of the PaymentIntent that paid it does cancel it and free the seat
    assert _stripe(api, local_stack, "charge.refunded", **paid)["outcome"] == "cancelled"
    assert _state(schedule, booking_id, session_id) == (BookingStatus.CANCELLED, "pi_paidInFull", 0, 0)


def test_a_full_refund_arriving_before_its_confirmation_still_cancels(
    api: httpx.Client,
    local_stack: LocalStack,
    mentor_headers: Callable[..., dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    """Order is not trusted (§2.5): with no PaymentIntent recorded yet, a full refund of the booking's
    own amount and currency cancels it, and the late confirmation of that payment does not revive it."""
    mentor = mentor_headers(f"sec-order-{uuid.uuid4().hex[:8]}")
    booking = _book_one_seat(api, mentor, platform_headers)
    booking_id, session_id = booking["bookingId"], booking["sessionId"]
    _, schedule = tables(local_stack)
    paid = {"booking_id": booking_id, "amount": 2500, "currency": "eur", "payment_intent": "pi_outOfOrder"}

    assert _stripe(api, local_stack, "charge.refunded", **{**paid, "amount": 1})["outcome"] == "payment_mismatch"
    assert _stripe(api, local_stack, "charge.refunded", **paid)["outcome"] == "cancelled"
    assert _stripe(api, local_stack, "payment_intent.succeeded", **paid)["outcome"] == "booking_cancelled"
    status, _, seats, confirmed = _state(schedule, booking_id, session_id)
    assert (status, seats, confirmed) == (BookingStatus.CANCELLED, 0, 0)
