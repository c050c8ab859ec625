"""Stripe webhook events (PRODUCT.md §2.5): verify, de-duplicate, apply to bookings and plans.

``POST /webhooks/stripe`` (``functions/stripe_webhook``) hands the raw body and the
``Stripe-Signature`` header to :meth:`StripeWebhook.handle`, which

1. **verifies the signature** with the stripe SDK (``WebhookSignature.verify_header``: HMAC-SHA256
   over ``"<t>.<raw body>"`` with the endpoint secret, any ``v1`` may match, ``t`` at most 300 s
   old). Anything wrong — no header, no secret configured, bad HMAC, stale timestamp, a body that
   is not UTF-8 — is 400 ``invalid_signature`` and nothing is read or written;
2. **parses** the event envelope with pydantic models that hold only the fields used here
   (400 ``invalid_request`` if a verified body is not a Stripe event);
3. **processes each event id once**: Powertools Idempotency on the single table
   (``PK = IDEMPOTENCY#stripe_webhook``, ``SK = stripe_event#<md5 of the event id>``, expiring
   through the table's ``ttl`` attribute after 7 days — longer than Stripe's 3-day retry window).
   A duplicate answers 200 with the first answer (``"duplicate": true`` added) and does nothing.
   If processing raises, the record is deleted and Stripe's retry runs it again; while an attempt
   is in flight a concurrent copy gets 409 ``event_in_progress`` (Stripe retries it later); a
   crashed attempt's record expires with the Lambda's remaining time;
4. **dispatches** on ``type`` (:data:`HANDLERS`); other types answer 200 ``ignored``.

Bookings (``metadata.booking_id`` on the checkout session, payment intent or charge):

* ``checkout.session.completed`` with ``payment_status == "paid"``,
  ``checkout.session.async_payment_succeeded`` and ``payment_intent.succeeded`` → PENDING (or
  EXPIRED: a late payment re-takes a seat, or confirms ``over_capacity``) → CONFIRMED and a
  ``booking.confirmed`` job on the meetings queue, **only when the amount (``amount_total`` /
  ``amount_received``) and currency are the booking's** (PRODUCT.md §2.5); the PaymentIntent is
  recorded on the booking;
* ``charge.refunded`` when the charge is fully refunded (``refunded`` or ``amount_refunded >=
  amount``) **and** is of the recorded PaymentIntent (or, before any confirmation, of the
  booking's amount and currency) → CANCELLED (reason ``refund``) and a ``booking.cancelled`` job.
  A partial refund changes nothing;
* ``checkout.session.expired`` → the hold ends now (PENDING → EXPIRED, seat released once; see
  :mod:`shared.schedule.holds`).

A payment or refund that does not match changes nothing: it is logged (warning, with the event id,
what the booking expects and what the event says) and answered 200 ``payment_mismatch``, so Stripe
does not retry it.

Order is not trusted: CANCELLED is final in the store, so a refund that arrives before its
confirmation still ends CANCELLED and the late confirmation does not resurrect it. Jobs are never
lost (:mod:`shared.queues.meetings`): the transition records ``job_pending`` in the same write, the job is
sent, then ``job_pending`` is cleared; an event that finds the transition made but ``job_pending``
still set (the earlier attempt died in between) sends the job again. In a race between two
*different* events of one booking (Stripe sends both ``checkout.session.completed`` and
``payment_intent.succeeded``) the job can go out twice; the worker deduplicates on
:meth:`shared.queues.meetings.MeetingJob.dedupe_key`.

Plans (``customer.subscription.created|updated|deleted`` with ``metadata.mentor_id``), see
:func:`plan_for_subscription`: ``deleted`` → free; otherwise an active (``active``, ``trialing``,
``past_due``) subscription maps to pro / premium by, in order, the subscription's
``metadata.plan``, a price's ``metadata.plan``, then a price's ``lookup_key`` containing the word
``premium`` or ``pro`` (``pro_monthly``, ``mentor-premium-yearly``); any other status → free.
Subscription events also arrive out of order: :meth:`shared.store.Store.set_plan_from_event`
applies one only if its ordering key (``created``, then created < updated < deleted, then the
event id) is greater than the last applied one, so the final plan does not depend on arrival order.

The webhook only writes the table and queues jobs: it makes no provider call and no outbound
HTTP request (tests assert it), so it answers in milliseconds.

Cold start: the stripe SDK cannot be imported piecemeal (``stripe._webhook`` imports the ``stripe``
package, whose HTTP client pulls in ``requests``, ``httpx``, ``asyncio``, ``charset_normalizer``).
``make bench`` (``bench/bench_imports.py``, measured as Lambda loads it) puts that at about 30-40 ms,
a tenth of this function's cold import; the rest is the AWS SDK, Powertools (resolver, idempotency,
X-Ray) and pydantic, which every function pays. The SDK's own verifier is used rather than a copy of
its 20 lines; ``bench/README.md`` has the figures and the gap to the 1.5x target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer
from pydantic import ValidationError

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.schedule.stripe_events import (
    SIGNATURE_HEADER,
    SIGNATURE_TOLERANCE_S,
    Charge,
    CheckoutSession,
    Payment,
    PaymentIntent,
    StripeEvent,
    Subscription,
    parse_event,
    plan_for_subscription,
    subscription_event_key,
    verify_signature,
)
from shared.store import Booking, BookingStatus, ScheduleStore, Store
from shared.store.schema import PK, SK, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "EVENT_TTL_S",
    "HANDLERS",
    "IDEMPOTENCY_KEY_PREFIX",
    "IDEMPOTENCY_PK",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE_S",
    "StripeEvent",
    "StripeWebhook",
    "Subscription",
    "parse_event",
    "persistence_layer",
    "plan_for_subscription",
    "subscription_event_key",
    "verify_signature",
]

#: Processed event ids are remembered this long (Stripe retries for up to 3 days).
EVENT_TTL_S: Final = 7 * 24 * 3600
#: The partition holding the webhook's idempotency records (Powertools writes SK = <prefix>#<hash>).
IDEMPOTENCY_PK: Final = "IDEMPOTENCY#stripe_webhook"
IDEMPOTENCY_KEY_PREFIX: Final = "stripe_event"
REFUND_REASON: Final = "refund"


# --- processing ----------------------------------------------------------------------------------

Outcome = dict[str, Any]
EventHandler = Callable[["StripeWebhook", StripeEvent], Outcome]


def _outcome(outcome: str, **fields: Any) -> Outcome:
    return {"outcome": outcome, **{k: v for k, v in fields.items() if v is not None}}


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools' hook for a replayed answer: say it was a duplicate."""
    logger.info("stripe event already processed", extra={"idempotency_key": idempotent_data.idempotency_key})
    return {**response, "duplicate": True} if isinstance(response, dict) else response


@dataclass
class StripeWebhook:
    """Everything the webhook needs, injected (``shared.wiring.stripe_webhook()`` builds it from settings)."""

    secret: str
    schedule: ScheduleStore
    store: Store
    queue: JobQueue
    persistence: DynamoDBPersistenceLayer
    tolerance_s: int = SIGNATURE_TOLERANCE_S
    ttl_s: int = EVENT_TTL_S

    def __post_init__(self) -> None:
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self.ttl_s,
            response_hook=_mark_duplicate,
        )
        self._once = idempotent_function(
            self._apply,
            data_keyword_argument="event",
            persistence_store=self.persistence,
            config=self.idempotency,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )

    def bind_context(self, context: LambdaContext) -> None:
        """An in-flight record of a crashed invocation expires with this invocation's time budget."""
        self.idempotency.register_lambda_context(context)

    def handle(self, *, body: bytes, signature: str | None) -> dict[str, Any]:
        """Verify, parse and (once per event id) apply one webhook request; the 200 answer's body."""
        verify_signature(body, signature, self.secret, tolerance_s=self.tolerance_s)
        event = parse_event(body)
        try:
            result: dict[str, Any] = self._once(event=event)
        except IdempotencyAlreadyInProgressError:
            raise ApiError(
                HTTPStatus.CONFLICT, "event_in_progress", "This event is being processed; retry later."
            ) from None
        return result

    def _apply(self, event: StripeEvent) -> dict[str, Any]:
        handler = HANDLERS.get(event.type)
        try:
            outcome = handler(self, event) if handler else _outcome("ignored")
        except ValidationError as exc:
            # Signed by Stripe but not the object shape we read: a retry would not help, so 200.
            logger.error(
                "stripe event object unreadable",
                extra={"stripe_event": event.id, "errors": exc.errors(include_input=False, include_url=False)},
            )
            outcome = _outcome("invalid_object")
        logger.info("stripe event", extra={"stripe_event": event.id, "stripe_type": event.type, **outcome})
        return {"received": True, "eventId": event.id, "type": event.type, **outcome}

    # -- bookings -------------------------------------------------------------------------------
    def confirm(self, booking_id: str, event: StripeEvent, payment: Payment) -> Outcome:
        """PENDING / EXPIRED → CONFIRMED and its job, only for the booking's own amount and currency;
        a retry re-sends a job that was recorded but not sent."""
        current = self.schedule.get_booking(booking_id)
        if current is None:
            logger.warning("stripe event for an unknown booking", extra={"booking_id": booking_id})
            return _outcome("unknown_booking", bookingId=booking_id)
        if not payment.matches(current.price_amount, current.currency):
            return _mismatch(event, current, payment)
        booking = self.schedule.confirm_booking(booking_id, payment_intent=payment.payment_intent, read=current)
        if booking is not None:
            self._send(booking, JobKind.BOOKING_CONFIRMED, "create", event)
            if booking.over_capacity:
                logger.warning("late payment confirmed over capacity", extra={"booking_id": booking_id})
                return _outcome("confirmed_over_capacity", bookingId=booking_id)
            return _outcome("confirmed", bookingId=booking_id)
        current = self.schedule.get_booking(booking_id)
        if current is None:
            return _outcome("unknown_booking", bookingId=booking_id)
        if current.status is BookingStatus.CONFIRMED:
            if current.job_pending == "create":
                self._send(current, JobKind.BOOKING_CONFIRMED, "create", event)
                return _outcome("confirmed_job_resent", bookingId=booking_id)
            if payment.payment_intent and current.payment_intent not in (None, payment.payment_intent):
                logger.warning(
                    "a second payment for a confirmed booking",
                    extra={
                        "stripe_event": event.id,
                        "booking_id": booking_id,
                        "payment_intent": payment.payment_intent,
                    },
                )
            return _outcome("already_confirmed", bookingId=booking_id)
        if current.status is BookingStatus.CANCELLED:
            return _outcome("booking_cancelled", bookingId=booking_id)  # final: no resurrection
        # Still PENDING / EXPIRED: a concurrent transition won the write and then failed. Let Stripe retry.
        raise RuntimeError(f"booking {booking_id} changed concurrently; not confirmed")

    def refund(self, booking_id: str, event: StripeEvent, payment: Payment) -> Outcome:
        """A full refund of the payment that paid the booking → CANCELLED (reason ``refund``) and its job.

        The refunded PaymentIntent must be the one recorded at confirmation; a refund that arrives
        before its confirmation (none recorded yet) must be of the booking's amount and currency.
        """
        current = self.schedule.get_booking(booking_id)
        if current is None:
            logger.warning("stripe refund for an unknown booking", extra={"booking_id": booking_id})
            return _outcome("unknown_booking", bookingId=booking_id)
        if current.payment_intent is not None:
            if payment.payment_intent != current.payment_intent:
                return _mismatch(event, current, payment)
        elif not payment.matches(current.price_amount, current.currency):
            return _mismatch(event, current, payment)
        booking = self.schedule.cancel_booking(booking_id, REFUND_REASON, from_expired=True, read=current)
        if booking is not None:
            self._send(booking, JobKind.BOOKING_CANCELLED, "cancel", event)
            return _outcome("cancelled", bookingId=booking_id)
        current = self.schedule.get_booking(booking_id)
        if current is not None and current.job_pending == "cancel":
            self._send(current, JobKind.BOOKING_CANCELLED, "cancel", event)
            return _outcome("cancelled_job_resent", bookingId=booking_id)
        return _outcome("already_cancelled", bookingId=booking_id)

    def expire(self, booking_id: str, event: StripeEvent, payment: Payment) -> Outcome:
        """The booking's Checkout Session expired unpaid: its hold ends now (PENDING → EXPIRED, seat released)."""
        current = self.schedule.get_booking(booking_id)
        if current is None:
            return _outcome("unknown_booking", bookingId=booking_id)
        if payment.amount is not None and not payment.matches(current.price_amount, current.currency):
            return _mismatch(event, current, payment)
        if self.schedule.expire_booking(booking_id, force=True) is not None:
            logger.info("seat hold expired", extra={"booking_id": booking_id, "by": "checkout.session.expired"})
            return _outcome("expired", bookingId=booking_id)
        return _outcome("hold_already_ended", bookingId=booking_id)

    def _send(self, booking: Booking, kind: JobKind, pending: str, event: StripeEvent) -> None:
        job = MeetingJob(
            kind=kind,
            mentor_id=booking.mentor_id,
            class_id=booking.class_id,
            session_id=booking.session_id,
            booking_id=booking.booking_id,
            cause=f"stripe:{event.id}",
        )
        self.queue.send(job)
        self.schedule.clear_pending_job(booking.booking_id, pending)

    # -- plans ----------------------------------------------------------------------------------
    def set_plan(self, event: StripeEvent, *, deleted: bool) -> Outcome:
        sub = Subscription.model_validate(event.object)
        mentor_id = sub.metadata.get("mentor_id")
        if not mentor_id:
            return _outcome("no_mentor_id")
        plan = plan_for_subscription(sub, deleted=deleted)
        if plan is None:
            logger.warning("subscription names no known plan", extra={"subscription": sub.id, "mentor_id": mentor_id})
            return _outcome("unknown_plan", mentorId=mentor_id)
        applied = self.store.set_plan_from_event(
            mentor_id, plan, event_key=subscription_event_key(event), event_at=event.created
        )
        if applied is None:
            return _outcome("plan_stale", mentorId=mentor_id)
        return _outcome("plan_set", mentorId=mentor_id, plan=plan.value)


def _mismatch(event: StripeEvent, booking: Booking, payment: Payment) -> Outcome:
    """A payment (or refund) that is not the booking's own: logged with the event id, nothing changes."""
    logger.warning(
        "stripe payment does not match the booking: ignored",
        extra={
            "stripe_event": event.id,
            "stripe_type": event.type,
            "booking_id": booking.booking_id,
            "expected": {
                "amount": booking.price_amount,
                "currency": booking.currency,
                "payment_intent": booking.payment_intent,
            },
            "got": {"amount": payment.amount, "currency": payment.currency, "payment_intent": payment.payment_intent},
        },
    )
    return _outcome("payment_mismatch", bookingId=booking.booking_id)


def _booking_id(metadata: Mapping[str, str]) -> str | None:
    value = metadata.get("booking_id", "").strip()
    return value or None


def _checkout_paid(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    session = CheckoutSession.model_validate(event.object)
    booking_id = _booking_id(session.metadata)
    if booking_id is None:
        return _outcome("no_booking_id")
    if event.type == "checkout.session.completed" and session.payment_status != "paid":
        # e.g. "unpaid" for a delayed payment method: async_payment_succeeded follows.
        return _outcome("not_paid", bookingId=booking_id)
    return hook.confirm(booking_id, event, session.payment)


def _checkout_expired(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    session = CheckoutSession.model_validate(event.object)
    booking_id = _booking_id(session.metadata)
    return hook.expire(booking_id, event, session.payment) if booking_id else _outcome("no_booking_id")


def _payment_intent_succeeded(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    intent = PaymentIntent.model_validate(event.object)
    booking_id = _booking_id(intent.metadata)
    return hook.confirm(booking_id, event, intent.payment) if booking_id else _outcome("no_booking_id")


def _charge_refunded(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    charge = Charge.model_validate(event.object)
    booking_id = _booking_id(charge.metadata)
    if booking_id is None:
        return _outcome("no_booking_id")
    if not charge.fully_refunded:
        return _outcome("partial_refund", bookingId=booking_id)
    return hook.refund(booking_id, event, charge.payment)


def _subscription_changed(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    return hook.set_plan(event, deleted=False)


def _subscription_deleted(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    return hook.set_plan(event, deleted=True)


#: Event type → what it does. Anything else is acknowledged and ignored.
HANDLERS: Final[dict[str, EventHandler]] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "checkout.session.expired": _checkout_expired,
    "payment_intent.succeeded": _payment_intent_succeeded,
    "charge.refunded": _charge_refunded,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_deleted,
}


def persistence_layer(dynamodb: Any, table_name: str) -> DynamoDBPersistenceLayer:
    """Powertools' idempotency store on the single table (``PK`` / ``SK``, expiring via ``ttl``)."""
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr=PK,
        sort_key_attr=SK,
        static_pk_value=IDEMPOTENCY_PK,
        expiry_attr=TTL_ATTRIBUTE,
        boto3_client=dynamodb,
    )
