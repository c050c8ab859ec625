"""A storm of Stripe deliveries through the whole stack: 1,000 deliveries, 30 % re-deliveries, 5 % forged.

Everything is the real path on loopback: the deliveries go concurrently through the local API gateway
to ``stripe_webhook``; while they arrive, the pump runs ``mint_meeting`` on the meetings queue
against the Google and Zoom emulators; e-mails land in moto's SES. The classes are created through
the API by mentors connected with the real OAuth flows; the PENDING bookings are written straight
to the table (the webhook is the subject here, ``POST /bookings`` has its own tests).

Per booking a scenario decides which events Stripe sends and the state the booking must end in
(paid, paid twice over, async payment, partial refund, refunded in either order, refund only,
never paid); subscription changes for a few mentors and event types we ignore are mixed in. Then:

* 650 distinct events, 300 re-deliveries of them, 50 forgeries (wrong secret, body altered after
  signing, a stale timestamp, no header) — 1,000 deliveries, shuffled, 4 at a time. A delivery
  answered 409 ``event_in_progress`` (its twin is being processed) is retried, as Stripe does.
* Final states right: every booking in its scenario's state, seat counts that add up, every mentor
  on the plan of their latest subscription event; each forgery answered 400 ``invalid_signature``
  and without effect (the forged bodies would confirm or cancel the wrong bookings).
* No duplicate meetings: each session with a confirmed booking has exactly one live meeting at its
  provider, recorded on the session, and each confirmed booking carries its link; every tenth
  session has all its bookings paid then refunded, and has none.
* Nothing lost: exactly 300 deliveries answered as duplicates, no job left pending on a booking,
  every confirmed student got exactly one confirmation e-mail, the meetings DLQ is empty.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from classes_support import create, future, live_meetings, meetings_dlq_depth, oauth_mentor, online, tables
from e2e_support import Providers

from devstack import stripe_events
from devstack.outbox import read_outbox
from devstack.stack import LocalStack
from shared.store import Booking, BookingStatus, MeetingStatus

Headers = Callable[..., dict[str, str]]

# Per booking: which events Stripe sends for it, and the state the booking must end in.
SCENARIOS: dict[str, tuple[list[str], BookingStatus]] = {
    "paid": (["checkout"], BookingStatus.CONFIRMED),
    "paid_pi_too": (["checkout", "intent"], BookingStatus.CONFIRMED),
    "async": (["checkout_unpaid", "async"], BookingStatus.CONFIRMED),
    "partial_refund": (["checkout", "partial"], BookingStatus.CONFIRMED),
    "refunded": (["checkout", "refund"], BookingStatus.CANCELLED),
    "refunded_pi_too": (["intent", "checkout", "refund"], BookingStatus.CANCELLED),
    "refund_only": (["refund"], BookingStatus.CANCELLED),
    "unpaid": (["checkout_unpaid"], BookingStatus.PENDING),
}
KINDS: dict[str, dict[str, Any]] = {
    "checkout": {"event_type": "checkout.session.completed"},
    "checkout_unpaid": {"event_type": "checkout.session.completed", "payment_status": "unpaid"},
    "async": {"event_type": "checkout.session.async_payment_succeeded"},
    "intent": {"event_type": "payment_intent.succeeded"},
    "refund": {"event_type": "charge.refunded"},
    "partial": {"event_type": "charge.refunded", "partial_refund": True},
}
SESSIONS_PER_PROVIDER = 30
BOOKINGS = 300  # 5 per session
UNIQUE, DUPLICATES, FORGED = 650, 300, 50
SUBSCRIPTION_MENTORS = 8
NOISE = 30
SENDERS = 4


def _booking(session: dict[str, Any], mentor: str, n: int) -> Booking:
    booking_id = f"bkg_storm_{session['sessionId'].replace('-', '_')}_{n}"
    return Booking(
        booking_id=booking_id,
        session_id=session["sessionId"],
        class_id=session["sessionId"].rsplit("-", 1)[0],
        mentor_id=mentor,
        student_email=f"{booking_id}@students.example.com",
        student_name=f"Student {n}",
        token_hash=hashlib.sha256(booking_id.encode()).hexdigest(),
        price_amount=stripe_events.DEFAULT_AMOUNT,
        currency=stripe_events.DEFAULT_CURRENCY.upper(),
        hold_expires_at=datetime.now(UTC) + timedelta(hours=2),
    )


def _forge(kind: int, event: dict[str, Any], secret: str, rng: random.Random) -> tuple[bytes, dict[str, str]]:
    """A delivery whose signature must not verify, of four kinds in turn."""
    body = stripe_events.encode(event)
    headers = {"content-type": "application/json; charset=utf-8"}
    if kind == 0:  # signed with another endpoint's secret
        headers["stripe-signature"] = stripe_events.sign(body, "whsec_" + "f0rg3d" * 6)
    elif kind == 1:  # a genuine signature over another body
        other = stripe_events.encode({**event, "id": stripe_events.stripe_id("evt")})
        headers["stripe-signature"] = stripe_events.sign(other, secret)
    elif kind == 2:  # genuine, but replayed an hour later (tolerance is 300 s)
        headers["stripe-signature"] = stripe_events.sign(body, secret, int(time.time()) - 3600 - rng.randrange(600))
    # kind 3: no Stripe-Signature header at all
    return body, headers


@pytest.mark.slow
def test_a_storm_of_deliveries_ends_in_the_right_state_with_one_meeting_per_session(
    api: httpx.Client, local_stack: LocalStack, providers: Providers, mentor: str, mentor_headers: Headers
) -> None:
    rng = random.Random(20261121)
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]
    store, schedule = tables(local_stack)
    assert meetings_dlq_depth(local_stack) == 0

    # Given: a Google Meet class and a Zoom class, 30 sessions each, 5 PENDING bookings per session.
    classes: dict[str, dict[str, Any]] = {}
    sessions: list[dict[str, Any]] = []
    for which, (meeting_provider, first_day) in {"google": ("google_meet", 100), "zoom": ("zoom", 140)}.items():
        owner = f"{mentor}-{which}"
        headers = oauth_mentor(api, local_stack, providers, mentor_headers, owner, which)
        title = f"Storm {which} {mentor}"
        starts = [future(first_day + n, 18) for n in range(SESSIONS_PER_PROVIDER)]
        klass = create(api, headers, online(title=title, meetingProvider=meeting_provider, capacity=5, starts=starts))
        classes[which] = {"title": title, "email": f"{owner}@example.com", "owner": owner}
        sessions += [{**s, "provider": which, "owner": owner} for s in klass["sessions"]]
    names = list(SCENARIOS)
    bookings: dict[str, tuple[str, dict[str, Any]]] = {}  # booking id -> (scenario, session)
    for n in range(BOOKINGS):
        position = n % len(sessions)
        session = sessions[position]
        booking = schedule.create_booking(_booking(session, session["owner"], n // len(sessions)))
        # Every tenth session: all its bookings paid, then refunded (its meeting must go).
        scenario = "refunded" if position % 10 == 9 else names[n % len(names)]
        bookings[booking.booking_id] = (scenario, session)
    events: list[dict[str, Any]] = []
    for booking_id, (scenario, _) in bookings.items():
        paid_by = f"pi_storm_{booking_id}"  # one payment per booking: its checkout, intent and refund agree
        events += [
            stripe_events.build_event(booking_id=booking_id, payment_intent=paid_by, **KINDS[k])
            for k in SCENARIOS[scenario][0]
        ]
    latest: dict[str, tuple[int, int, str, str]] = {}
    rank = {"created": 0, "updated": 1, "deleted": 2}
    subscriptions = UNIQUE - len(events) - NOISE
    assert subscriptions >= 2 * SUBSCRIPTION_MENTORS
    for n in range(subscriptions):
        who = f"{mentor}-sub-{n % SUBSCRIPTION_MENTORS}"
        kind = rng.choice(["created", "updated", "updated", "deleted"])
        plan = rng.choice(["pro", "premium"])
        created = 1_800_000_000 + rng.randrange(0, 40)  # collisions on purpose
        event = stripe_events.build_event(f"customer.subscription.{kind}", mentor_id=who, plan=plan, created=created)
        events.append(event)
        key = (created, rank[kind], event["id"], "free" if kind == "deleted" else plan)
        latest[who] = max(latest.get(who, key), key)
    events += [stripe_events.build_event(rng.choice(["invoice.paid", "customer.created"])) for _ in range(NOISE)]
    assert len(events) == UNIQUE
    # Forgeries: a paid checkout for a booking that stays unpaid, a refund for one that stays paid.
    unpaid = [b for b, (s, _) in bookings.items() if s == "unpaid"]
    paid = [b for b, (s, _) in bookings.items() if s == "paid"]
    forged_events = [
        stripe_events.build_event("checkout.session.completed", booking_id=unpaid[i % len(unpaid)])
        if i % 2
        else stripe_events.build_event("charge.refunded", booking_id=paid[i % len(paid)])
        for i in range(FORGED)
    ]
    deliveries: list[tuple[str, int]] = [("event", i) for i in range(UNIQUE)]
    deliveries += [("event", rng.randrange(UNIQUE)) for _ in range(DUPLICATES)]
    deliveries += [("forged", i) for i in range(FORGED)]
    rng.shuffle(deliveries)
    assert len(deliveries) == 1_000

    # When: every delivery, signed at send time as Stripe does, 4 at a time through the gateway,
    # while the pump runs the meetings worker.
    bodies = [stripe_events.encode(e) for e in events]

    def deliver(delivery: tuple[str, int]) -> tuple[str, int, int, dict[str, Any], int]:
        what, index = delivery
        retries = 0
        with httpx.Client(base_url=local_stack.api_url, timeout=30) as client:
            while True:
                if what == "forged":
                    body, headers = _forge(index % 4, forged_events[index], secret, rng)
                else:
                    body = bodies[index]
                    headers = {
                        "content-type": "application/json; charset=utf-8",
                        "stripe-signature": stripe_events.sign(body, secret),
                    }
                resp = client.post("/webhooks/stripe", content=body, headers=headers)
                if resp.status_code == 409 and _code(resp.json()) == "event_in_progress" and retries < 50:
                    retries += 1  # its twin is being processed; Stripe retries later
                    time.sleep(0.1)
                    continue
                return what, index, resp.status_code, resp.json(), retries

    started = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(deliver, deliveries))
    storm_s = time.perf_counter() - started
    local_stack.drain(timeout=240)
    drained_s = time.perf_counter() - started

    # Then: every delivery answered as it should be.
    duplicates = 0
    for what, index, status, body, _ in answers:
        if what == "forged":
            assert (status, _code(body)) == (400, "invalid_signature"), (index, status, body)
        else:
            assert status == 200, (index, status, body)
            duplicates += bool(body.get("duplicate"))
    assert duplicates == DUPLICATES

    # Final states, jobs never left pending, seats that add up.
    by_session: dict[str, list[Booking]] = defaultdict(list)
    for session in sessions:
        by_session[session["sessionId"]] = schedule.bookings_of_session(session["sessionId"])
    seen = 0
    for session in sessions:
        found = by_session[session["sessionId"]]
        for booking in found:
            scenario, _ = bookings[booking.booking_id]
            expected = SCENARIOS[scenario][1]
            assert (booking.booking_id, booking.status) == (booking.booking_id, expected), scenario
            assert booking.job_pending is None, booking.booking_id
            if expected is BookingStatus.CANCELLED:
                assert booking.cancel_reason == "refund", booking.booking_id
        seen += len(found)
        stored = schedule.get_session(session["sessionId"])
        assert stored is not None
        statuses = Counter(b.status for b in found)
        assert stored.confirmed == statuses[BookingStatus.CONFIRMED], session["sessionId"]
        assert stored.seats_taken == statuses[BookingStatus.CONFIRMED] + statuses[BookingStatus.PENDING]
    assert seen == BOOKINGS
    for who, (*_, final) in latest.items():
        profile = store.get_mentor(who)
        assert profile is not None
        assert profile.plan.value == final, who

    # One live meeting per session that has a confirmed booking, none for the others; every
    # confirmed booking carries its session's link.
    meetings_made, without_meeting = 0, 0
    for which, info in classes.items():
        held = {str(m["id"]): m for m in live_meetings(providers, which, info["email"], info["title"])}
        recorded: dict[str, str] = {}
        for session in (s for s in sessions if s["provider"] == which):
            stored = schedule.get_session(session["sessionId"])
            assert stored is not None
            confirmed = [b for b in by_session[session["sessionId"]] if b.status is BookingStatus.CONFIRMED]
            if confirmed:
                assert stored.meeting is not None, stored
                assert stored.meeting.status is MeetingStatus.CREATED, stored
                assert stored.meeting.meeting_id is not None
                assert stored.meeting.url
                recorded[stored.meeting.meeting_id] = stored.meeting.url
                for booking in confirmed:
                    assert booking.meeting_status == "ready", (booking.booking_id, booking.meeting_status)
                    assert booking.meeting_url == stored.meeting.url, booking.booking_id
            else:
                assert stored.meeting is None or stored.meeting.status is MeetingStatus.DELETED, stored
                without_meeting += 1
        assert set(held) == set(recorded), f"{which}: {len(held)} live meetings, {len(recorded)} sessions need one"
        meetings_made += len(held)
    assert without_meeting == len(sessions) // 10

    # Nothing lost: one confirmation e-mail per confirmed student, an empty DLQ.
    confirmations: Counter[str] = Counter()
    for mail in read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"]):  # students unique to this test
        if mail.subject.startswith("Booked:"):
            confirmations.update(mail.to)
    for booking_id, (scenario, _) in bookings.items():
        student = f"{booking_id}@students.example.com"
        wanted = 1 if SCENARIOS[scenario][1] is BookingStatus.CONFIRMED else confirmations[student]
        assert confirmations[student] == wanted <= 1, (booking_id, scenario, confirmations[student])
    assert meetings_dlq_depth(local_stack) == 0
    retried = sum(r for *_, r in answers)
    print(
        f"stripe storm: {len(deliveries)} deliveries ({DUPLICATES} re-deliveries, {FORGED} forged), "
        f"{BOOKINGS} bookings, {meetings_made} live meetings, {sum(confirmations.values())} confirmations; "
        f"{retried} in-progress retries; storm {storm_s:.1f} s, drained {drained_s:.1f} s"
    )


def _code(body: dict[str, Any]) -> str | None:
    """The machine code of an error answer (``{"error": {"code": …, "message": …}}``)."""
    error = body.get("error")
    return error.get("code") if isinstance(error, dict) else None


def test_the_forgeries_are_of_four_kinds() -> None:
    """The forgery helper really forges: each kind fails the stripe SDK's own verification."""
    import stripe

    secret = "whsec_" + "a" * 32
    event = stripe_events.build_event("invoice.paid")
    for kind in range(4):
        body, headers = _forge(kind, event, secret, random.Random(kind))
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(body.decode(), headers.get("stripe-signature", ""), secret, 300)
    assert json.loads(body)["id"] == event["id"]
