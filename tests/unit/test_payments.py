"""shared.schedule.payments: Stripe signature checks, event parsing, plan mapping and the webhook's domain
rules (once per event id, no lost or doubled jobs, order not trusted), on in-process moto."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from devstack import stripe_events
from shared.platform import aws
from shared.platform.api import ApiError
from shared.queues.meetings import JobQueue
from shared.schedule.payments import (
    EVENT_TTL_S,
    HANDLERS,
    IDEMPOTENCY_KEY_PREFIX,
    IDEMPOTENCY_PK,
    StripeEvent,
    StripeWebhook,
    Subscription,
    parse_event,
    persistence_layer,
    plan_for_subscription,
    subscription_event_key,
    verify_signature,
)
from shared.store import (
    Booking,
    BookingStatus,
    ClassFormat,
    ClassItem,
    MeetingProvider,
    Plan,
    ScheduleStore,
    Session,
    Store,
)
from shared.store.schedule import session_id_for

TABLE = "mentor-connections-test"  # tests/conftest.py's aws_env table
SECRET = "whsec_unitTestSecret0123456789abcdef"
START = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)

# No Lambda context here, so Powertools cannot bound an in-flight record by the remaining time.
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")


# --- helpers ---------------------------------------------------------------------------------------


def make_bookings(schedule: ScheduleStore, count: int, class_id: str = "cls_pay") -> list[str]:
    """One class, one session with room for ``count``, ``count`` PENDING bookings."""
    item = ClassItem(
        class_id=class_id,
        mentor_id="m-pay",
        title="Payments 101",
        format=ClassFormat.ONLINE,
        timezone="UTC",
        duration_minutes=60,
        capacity=count,
        meeting_provider=MeetingProvider.ZOOM,
    )
    session = Session(
        class_id=class_id,
        session_id=session_id_for(class_id, 1),
        mentor_id="m-pay",
        start=START,
        end=START + timedelta(hours=1),
        capacity=count,
    )
    schedule.create_class(item, [session])
    ids = []
    for n in range(count):
        booking = Booking(
            booking_id=f"bkg_{class_id}_{n}",
            session_id=session.session_id,
            class_id=class_id,
            mentor_id="m-pay",
            student_email=f"s{n}@example.com",
            student_name=f"Student {n}",
            token_hash=hashlib.sha256(f"t{n}".encode()).hexdigest(),
            price_amount=stripe_events.DEFAULT_AMOUNT,
            currency=stripe_events.DEFAULT_CURRENCY.upper(),
            hold_expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )
        ids.append(schedule.create_booking(booking).booking_id)
    return ids


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every job body on the queue (received for good: hidden for the rest of the test)."""
    sqs = aws.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        messages = got.get("Messages", [])
        if not messages:
            return bodies
        bodies += [json.loads(m["Body"]) for m in messages]


def idempotency_sk(event_id: str) -> str:
    """Powertools' key: ``<prefix>#md5(json.dumps(<event_key_jmespath result>))``."""
    return f"{IDEMPOTENCY_KEY_PREFIX}#" + hashlib.md5(json.dumps(event_id).encode()).hexdigest()  # noqa: S324


@pytest.fixture
def queue_url(aws_env: None) -> str:
    url: str = aws.client("sqs").create_queue(QueueName="meetings-unit")["QueueUrl"]
    return url


@pytest.fixture
def hook(store: Store, schedule: ScheduleStore, queue_url: str) -> StripeWebhook:
    return StripeWebhook(
        secret=SECRET,
        schedule=schedule,
        store=store,
        queue=JobQueue(aws.client("sqs"), queue_url),
        persistence=persistence_layer(aws.client("dynamodb"), TABLE),
    )


@pytest.fixture
def deliver(hook: StripeWebhook) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Sign ``event`` now, as Stripe does on every delivery attempt, and hand it to the webhook."""

    def send(event: dict[str, Any]) -> dict[str, Any]:
        body, headers = stripe_events.signed_request(event, SECRET)
        return hook.handle(body=body, signature=headers["stripe-signature"])

    return send


# --- signatures ------------------------------------------------------------------------------------


def test_sdk_signed_body_verifies() -> None:
    """Given a body signed by the SDK's helper, when verified, then it passes."""
    body = b'{"id": "evt_1", "object": "event"}'
    verify_signature(body, stripe_events.sign(body, SECRET), SECRET)


def test_any_v1_signature_may_match_while_the_secret_rolls() -> None:
    """Given a header carrying the old secret's and the new secret's v1, when verified with the new
    one, then it passes (Stripe signs with both for up to 24 h after a roll)."""
    body = b"{}"
    ts = int(time.time())
    old = stripe_events.sign(body, "whsec_oldSecret00000000", ts).split("v1=")[1]
    new = stripe_events.sign(body, SECRET, ts).split("v1=")[1]
    verify_signature(body, f"t={ts},v1={old},v1={new}", SECRET)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing header"),
        ("", "empty header"),
        ("garbage", "no timestamp"),
        ("t=abc,v1=00", "timestamp not a number"),
        ("t={now},v0={good}", "only the test-mode v0 scheme (downgrade)"),
        ("t={now},v1={bad}", "wrong HMAC"),
        ("t={stale},v1={good_stale}", "timestamp older than 300 s"),
    ],
)
def test_bad_signatures_are_400_invalid_signature(header: str | None, why: str) -> None:
    """Given a header that Stripe did not produce for this body now, when verified, then 400."""
    body = b'{"id": "evt_1"}'
    now, stale = int(time.time()), int(time.time()) - 301
    if header:
        header = header.format(
            now=now,
            stale=stale,
            good=stripe_events.sign(body, SECRET, now).split("v1=")[1],
            good_stale=stripe_events.sign(body, SECRET, stale).split("v1=")[1],
            bad="0" * 64,
        )
    with pytest.raises(ApiError) as caught:
        verify_signature(body, header, SECRET)
    assert (caught.value.status, caught.value.code) == (400, "invalid_signature"), why
    assert SECRET not in caught.value.message


def test_a_body_altered_after_signing_is_rejected() -> None:
    """Given a signed body, when one byte of it changes, then the signature no longer matches."""
    body = b'{"amount": 100}'
    header = stripe_events.sign(body, SECRET)
    with pytest.raises(ApiError, match="matching"):
        verify_signature(b'{"amount": 1}', header, SECRET)


def test_without_a_configured_secret_everything_is_refused() -> None:
    """Given no STRIPE_WEBHOOK_SECRET, when even a 'valid' request arrives, then it fails closed."""
    body = b"{}"
    with pytest.raises(ApiError) as caught:
        verify_signature(body, stripe_events.sign(body, ""), "")
    assert caught.value.code == "invalid_signature"


def test_a_body_that_is_not_utf8_is_rejected_not_crashed() -> None:
    """Given a body that is not UTF-8, when verified, then 400 invalid_signature (not a 500)."""
    with pytest.raises(ApiError) as caught:
        verify_signature(b"\xff\xfe", "t=1,v1=00", SECRET)
    assert caught.value.code == "invalid_signature"


def test_our_signer_is_the_scheme_stripe_documents() -> None:
    """Given NOTES.md §1's recipe, when we compute it by hand, then the SDK-made header matches."""
    import hmac

    body, ts = b'{"x": "\xc3\xa9"}', 1_700_000_000
    expected = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert stripe_events.sign(body, SECRET, ts) == f"t={ts},v1={expected}"
    stripe.WebhookSignature.verify_header(body.decode(), f"t={ts},v1={expected}", SECRET, tolerance=None)


# --- parsing and plans -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": "evt_1"}', b'{"id": "", "type": "x", "created": 1}'])
def test_a_verified_body_that_is_not_an_event_is_400_invalid_request(body: bytes) -> None:
    """Given a body that is not a Stripe event envelope, when parsed, then 400 invalid_request."""
    with pytest.raises(ApiError) as caught:
        parse_event(body)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")


def test_fixture_shaped_events_parse_and_empty_metadata_forms_are_tolerated() -> None:
    """Given fixtures3-shaped events (metadata {}, null, or the [] some serialisers emit), then they parse."""
    event = stripe_events.build_event("charge.refunded", booking_id="b1")
    parsed = parse_event(stripe_events.encode(event))
    assert (parsed.id, parsed.type, parsed.object["metadata"]) == (event["id"], "charge.refunded", {"booking_id": "b1"})
    for empty in (None, [], {}):
        sub = Subscription.model_validate({"id": "sub_1", "status": "active", "metadata": empty})
        assert sub.metadata == {}


def _subscription(status: str = "active", metadata: dict[str, str] | None = None, **price: Any) -> Subscription:
    item = {"price": {"id": "price_1", "lookup_key": None, "metadata": {}, **price}}
    return Subscription.model_validate(
        {"id": "sub_1", "status": status, "metadata": metadata or {}, "items": {"data": [item]}}
    )


@pytest.mark.parametrize(
    ("sub", "plan"),
    [
        (_subscription(metadata={"plan": "premium"}), Plan.PREMIUM),
        (_subscription(metadata={"plan": "PRO"}), Plan.PRO),
        (_subscription(metadata={"plan": "gold"}, lookup_key="pro_monthly"), Plan.PRO),
        (_subscription(lookup_key="mentor_premium_yearly"), Plan.PREMIUM),
        (_subscription(lookup_key="mentor-pro-monthly"), Plan.PRO),
        (_subscription(lookup_key="professional_monthly"), None),  # a whole word, not a prefix
        (_subscription(lookup_key=None, metadata={"tier": "x"}), None),
        (_subscription(status="trialing", lookup_key="pro"), Plan.PRO),
        (_subscription(status="past_due", lookup_key="premium"), Plan.PREMIUM),
        (_subscription(status="canceled", lookup_key="premium"), Plan.FREE),
        (_subscription(status="incomplete", lookup_key="pro"), Plan.FREE),
        (_subscription(status="unpaid", lookup_key="pro"), Plan.FREE),
    ],
)
def test_subscription_maps_to_a_plan(sub: Subscription, plan: Plan | None) -> None:
    """Given a subscription's status, metadata and price, when mapped, then the expected plan (None: unknown)."""
    assert plan_for_subscription(sub) is plan


def test_price_metadata_plan_is_used_and_premium_beats_pro() -> None:
    """Given items naming pro and premium, when mapped, then premium; when deleted, then free."""
    sub = Subscription.model_validate(
        {
            "id": "sub_1",
            "status": "active",
            "items": {
                "data": [
                    {"price": {"lookup_key": "addon_pro_seats"}},
                    {"price": {"metadata": {"plan": "premium"}}},
                ]
            },
        }
    )
    assert plan_for_subscription(sub) is Plan.PREMIUM
    assert plan_for_subscription(sub, deleted=True) is Plan.FREE


def test_subscription_event_keys_order_by_time_then_type() -> None:
    """Given events' created times, types and ids, when keyed, then string order is event order."""

    def key(kind: str, created: int, eid: str = "evt_a") -> str:
        return subscription_event_key(
            StripeEvent.model_validate(
                {"id": eid, "type": f"customer.subscription.{kind}", "created": created, "data": {"object": {}}}
            )
        )

    assert key("created", 99) < key("created", 100)  # zero-padded: 99 < 100 as strings too
    assert key("deleted", 100) < key("created", 101)
    assert key("created", 100) < key("updated", 100) < key("deleted", 100)
    assert key("updated", 100, "evt_a") < key("updated", 100, "evt_b")


def test_store_applies_a_plan_only_from_a_later_event(store: Store) -> None:
    """Given a plan set by an event, when an older one or the same one arrives, then it is stale."""
    assert store.set_plan_from_event("m1", Plan.PREMIUM, event_key="0000000200#1#evt_b", event_at=200) is not None
    assert store.set_plan_from_event("m1", Plan.PRO, event_key="0000000100#1#evt_a", event_at=100) is None
    assert store.set_plan_from_event("m1", Plan.PRO, event_key="0000000200#1#evt_b", event_at=200) is None
    mentor = store.get_mentor("m1")
    assert mentor is not None
    assert mentor.plan is Plan.PREMIUM
    item = store.table.get("MENTOR#m1", "PROFILE")
    assert item is not None
    assert (item["plan_event_at"], item["plan_event_key"]) == (200, "0000000200#1#evt_b")
    # A manual override (devstack token --plan) does not forget the ordering.
    store.upsert_mentor("m1", plan="free")
    assert store.set_plan_from_event("m1", Plan.PRO, event_key="0000000150#1#evt_c", event_at=150) is None
    updated = store.set_plan_from_event("m1", Plan.PRO, event_key="0000000300#0#evt_d", event_at=300)
    assert updated is not None
    assert updated.plan is Plan.PRO


# --- the webhook's rules ---------------------------------------------------------------------------


def test_paid_checkout_confirms_and_queues_one_job(
    hook: StripeWebhook, schedule: ScheduleStore, queue_url: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given a PENDING booking, when its paid checkout.session.completed arrives, then it is CONFIRMED,
    one booking.confirmed job is queued and job_pending is cleared."""
    (booking_id,) = make_bookings(schedule, 1)
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    answer = deliver(event)
    assert answer == {
        "received": True,
        "eventId": event["id"],
        "type": "checkout.session.completed",
        "outcome": "confirmed",
        "bookingId": booking_id,
    }
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    assert (booking.status, booking.job_pending) == (BookingStatus.CONFIRMED, None)
    (job,) = drain(queue_url)
    assert job == {
        "kind": "booking.confirmed",
        "bookingId": booking_id,
        "mentorId": "m-pay",
        "classId": "cls_pay",
        "sessionId": "cls_pay-s01",
        "cause": f"stripe:{event['id']}",
    }


def test_a_duplicate_event_answers_200_and_does_nothing(
    hook: StripeWebhook, schedule: ScheduleStore, queue_url: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given a processed event, when Stripe delivers it again (re-signed), then the first answer comes
    back marked duplicate and no second job is queued."""
    (booking_id,) = make_bookings(schedule, 1)
    event = stripe_events.build_event("payment_intent.succeeded", booking_id=booking_id)
    first = deliver(event)
    again = deliver(event)
    assert again == {**first, "duplicate": True}
    assert len(drain(queue_url)) == 1


def test_the_event_id_is_remembered_for_seven_days_in_the_single_table(
    hook: StripeWebhook, schedule: ScheduleStore, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given a processed event, then its idempotency record sits under PK/SK with a ttl ≈ now + 7 days
    (longer than Stripe's 3-day retries) and a COMPLETED status."""
    event = stripe_events.build_event("invoice.paid")
    assert deliver(event)["outcome"] == "ignored"
    record = schedule.table.get(IDEMPOTENCY_PK, idempotency_sk(event["id"]))
    assert record is not None
    assert record["status"] == "COMPLETED"
    assert EVENT_TTL_S == 7 * 24 * 3600
    assert abs(int(record["ttl"]) - (time.time() + EVENT_TTL_S)) < 60


def test_a_refund_before_its_confirmation_ends_cancelled(
    hook: StripeWebhook, schedule: ScheduleStore, queue_url: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given charge.refunded arrives first, when the confirmation follows, then the booking stays
    CANCELLED (reason refund): one booking.cancelled job, no booking.confirmed job."""
    (booking_id,) = make_bookings(schedule, 1)
    assert deliver(stripe_events.build_event("charge.refunded", booking_id=booking_id))["outcome"] == "cancelled"
    late = deliver(stripe_events.build_event("checkout.session.completed", booking_id=booking_id))
    assert late["outcome"] == "booking_cancelled"
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    assert (booking.status, booking.cancel_reason, booking.job_pending) == (BookingStatus.CANCELLED, "refund", None)
    assert [j["kind"] for j in drain(queue_url)] == ["booking.cancelled"]
    session = schedule.get_session("cls_pay-s01")
    assert session is not None
    assert (session.seats_taken, session.confirmed) == (0, 0)


def test_a_refund_after_confirmation_cancels_and_frees_the_seat(
    hook: StripeWebhook, schedule: ScheduleStore, queue_url: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given a CONFIRMED booking, when it is refunded (twice), then CANCELLED once, the seat is free and
    exactly one booking.cancelled job follows the booking.confirmed one."""
    (booking_id,) = make_bookings(schedule, 1)
    paid = {"booking_id": booking_id, "payment_intent": "pi_refundAfterConfirmation"}
    deliver(stripe_events.build_event("checkout.session.completed", **paid))
    assert deliver(stripe_events.build_event("charge.refunded", **paid))["outcome"] == "cancelled"
    again = deliver(stripe_events.build_event("charge.refunded", **paid))
    assert again["outcome"] == "already_cancelled"
    assert [j["kind"] for j in drain(queue_url)] == ["booking.confirmed", "booking.cancelled"]
    session = schedule.get_session("cls_pay-s01")
    assert session is not None
    assert (session.seats_taken, session.confirmed) == (0, 0)


@pytest.mark.parametrize(
    ("event_kwargs", "outcome"),
    [
        ({"event_type": "charge.refunded", "partial_refund": True}, "partial_refund"),
        ({"event_type": "checkout.session.completed", "payment_status": "unpaid"}, "not_paid"),
        ({"event_type": "customer.created"}, "ignored"),
        ({"event_type": "payment_intent.payment_failed"}, "ignored"),
    ],
)
def test_events_that_change_nothing(
    hook: StripeWebhook,
    schedule: ScheduleStore,
    queue_url: str,
    deliver: Callable[..., dict[str, Any]],
    event_kwargs: dict[str, Any],
    outcome: str,
) -> None:
    """Given a PENDING booking, when a partial refund, an unpaid checkout or an unhandled type arrives,
    then the answer is 200 and the booking and queue are untouched."""
    (booking_id,) = make_bookings(schedule, 1)
    before = schedule.get_booking(booking_id)
    answer = deliver(stripe_events.build_event(booking_id=booking_id, **event_kwargs))
    assert answer["outcome"] == outcome
    assert schedule.get_booking(booking_id) == before
    assert drain(queue_url) == []


def test_async_payment_success_confirms_after_an_unpaid_checkout(
    hook: StripeWebhook, schedule: ScheduleStore, queue_url: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given an unpaid checkout (delayed payment method), when async_payment_succeeded arrives, then
    the booking is CONFIRMED with one job."""
    (booking_id,) = make_bookings(schedule, 1)
    deliver(stripe_events.build_event("checkout.session.completed", booking_id=booking_id, payment_status="unpaid"))
    done = deliver(stripe_events.build_event("checkout.session.async_payment_succeeded", booking_id=booking_id))
    assert done["outcome"] == "confirmed"
    assert len(drain(queue_url)) == 1


def test_events_without_a_known_booking(
    hook: StripeWebhook, schedule: ScheduleStore, queue_url: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given events without a booking id or with an unknown one, when they arrive, then 200 and
    nothing is queued (a subscription invoice's payment_intent.succeeded has no booking_id)."""
    assert deliver(stripe_events.build_event("payment_intent.succeeded"))["outcome"] == "no_booking_id"
    assert deliver(stripe_events.build_event("charge.refunded"))["outcome"] == "no_booking_id"
    unknown = deliver(stripe_events.build_event("checkout.session.completed", booking_id="bkg_nope"))
    assert unknown["outcome"] == "unknown_booking"
    assert drain(queue_url) == []


def test_a_crash_between_transition_and_send_is_repaired_by_stripes_retry(
    hook: StripeWebhook,
    schedule: ScheduleStore,
    queue_url: str,
    deliver: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given the first attempt confirms the booking and then dies before queueing the job, when Stripe
    retries the same event, then the job is sent (exactly once) and job_pending cleared."""
    (booking_id,) = make_bookings(schedule, 1)
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    original = JobQueue.send

    def crash(self: JobQueue, job: Any) -> None:
        raise ConnectionError("SQS unreachable")

    monkeypatch.setattr(JobQueue, "send", crash)
    with pytest.raises(ConnectionError):
        deliver(event)
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    assert (booking.status, booking.job_pending) == (BookingStatus.CONFIRMED, "create")
    assert schedule.table.get(IDEMPOTENCY_PK, idempotency_sk(event["id"])) is None  # released for the retry

    monkeypatch.setattr(JobQueue, "send", original)
    assert deliver(event)["outcome"] == "confirmed_job_resent"
    assert deliver(event)["duplicate"] is True
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    assert booking.job_pending is None
    assert [j["kind"] for j in drain(queue_url)] == ["booking.confirmed"]


def test_a_pending_cancel_job_is_resent_by_the_next_refund_event(
    hook: StripeWebhook, schedule: ScheduleStore, queue_url: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given a booking cancelled by a refund whose job was never sent, when a refund event arrives,
    then the booking.cancelled job goes out and job_pending is cleared."""
    (booking_id,) = make_bookings(schedule, 1)
    assert schedule.cancel_booking(booking_id, "refund") is not None  # job_pending = "cancel", nothing sent
    assert deliver(stripe_events.build_event("charge.refunded", booking_id=booking_id))["outcome"] == (
        "cancelled_job_resent"
    )
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    assert booking.job_pending is None
    assert [j["kind"] for j in drain(queue_url)] == ["booking.cancelled"]


def test_a_copy_arriving_while_the_first_is_in_flight_gets_409(
    hook: StripeWebhook, schedule: ScheduleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given an event still being processed, when Stripe's concurrent copy arrives, then it is told 409
    event_in_progress (Stripe retries it later) rather than processed twice."""
    event = stripe_events.build_event("customer.created")
    body, headers = stripe_events.signed_request(event, SECRET)
    seen: list[ApiError] = []

    def reenter(webhook: StripeWebhook, parsed: StripeEvent) -> dict[str, Any]:
        try:
            webhook.handle(body=body, signature=headers["stripe-signature"])
        except ApiError as exc:
            seen.append(exc)
        return {"outcome": "ignored"}

    monkeypatch.setitem(HANDLERS, "customer.created", reenter)
    assert hook.handle(body=body, signature=headers["stripe-signature"])["outcome"] == "ignored"
    assert [(e.status, e.code) for e in seen] == [(409, "event_in_progress")]


def test_subscription_events_set_the_plan_and_an_older_one_never_wins(
    hook: StripeWebhook, store: Store, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given created(pro) at t, updated(premium) at t+10 and deleted at t+20, when they arrive in the
    worst order, then the plan ends free, and each stale event is acknowledged as such."""
    t = 1_800_000_000
    created = stripe_events.build_event("customer.subscription.created", mentor_id="m9", plan="pro", created=t)
    updated = stripe_events.build_event("customer.subscription.updated", mentor_id="m9", plan="premium", created=t + 10)
    deleted = stripe_events.build_event("customer.subscription.deleted", mentor_id="m9", created=t + 20)
    assert deliver(updated)["plan"] == "premium"
    assert deliver(created)["outcome"] == "plan_stale"
    mentor = store.get_mentor("m9")
    assert mentor is not None
    assert mentor.plan is Plan.PREMIUM
    assert deliver(deleted) == {
        "received": True,
        "eventId": deleted["id"],
        "type": "customer.subscription.deleted",
        "outcome": "plan_set",
        "mentorId": "m9",
        "plan": "free",
    }
    mentor = store.get_mentor("m9")
    assert mentor is not None
    assert mentor.plan is Plan.FREE


def test_subscription_events_without_mentor_or_plan_change_nothing(
    hook: StripeWebhook, store: Store, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given subscription events without metadata.mentor_id or naming no known plan, when they arrive,
    then 200 and no profile is written."""
    assert deliver(stripe_events.build_event("customer.subscription.created"))["outcome"] == "no_mentor_id"
    unknown = stripe_events.build_event("customer.subscription.updated", mentor_id="m8", plan="gold")
    assert deliver(unknown)["outcome"] == "unknown_plan"
    assert store.get_mentor("m8") is None


def test_a_signed_event_whose_object_we_cannot_read_is_acknowledged_not_retried(
    hook: StripeWebhook, deliver: Callable[..., dict[str, Any]]
) -> None:
    """Given a signed charge.refunded whose object lacks its id, then 200 invalid_object (a 500 would
    make Stripe retry the same unreadable event for three days)."""
    event = stripe_events.build_event("charge.refunded", booking_id="b1")
    del event["data"]["object"]["id"]
    assert deliver(event)["outcome"] == "invalid_object"
