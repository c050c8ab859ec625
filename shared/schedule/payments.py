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
  ``checkout.session.async_payment_succeeded`` and ``payment_intent.succeeded`` → PENDING →
  CONFIRMED and a ``booking.confirmed`` job on the meetings queue;
* ``charge.refunded`` when the charge is fully refunded (``refunded`` or ``amount_refunded >=
  amount``) → CANCELLED (reason ``refund``) and a ``booking.cancelled`` job. A partial refund
  changes nothing.

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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Final

import stripe
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.store import Booking, BookingStatus, Plan, ScheduleStore, Store
from shared.store.schema import PK, SK, TTL_ATTRIBUTE

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

SIGNATURE_HEADER: Final = "stripe-signature"
SIGNATURE_TOLERANCE_S: Final = 300
#: Processed event ids are remembered this long (Stripe retries for up to 3 days).
EVENT_TTL_S: Final = 7 * 24 * 3600
#: The partition holding the webhook's idempotency records (Powertools writes SK = <prefix>#<hash>).
IDEMPOTENCY_PK: Final = "IDEMPOTENCY#stripe_webhook"
IDEMPOTENCY_KEY_PREFIX: Final = "stripe_event"
REFUND_REASON: Final = "refund"

#: Subscription statuses that grant the paid plan (past_due: Stripe is still retrying the payment).
ACTIVE_SUBSCRIPTION: Final = frozenset({"active", "trialing", "past_due"})
#: Tie-break for subscription events created in the same second.
_SUBSCRIPTION_RANK: Final = {
    "customer.subscription.created": 0,
    "customer.subscription.updated": 1,
    "customer.subscription.deleted": 2,
}
_WORD: Final = re.compile(r"[a-z0-9]+")


# --- signature -----------------------------------------------------------------------------------


def invalid_signature(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_signature", message)


def verify_signature(
    payload: bytes, header: str | None, secret: str, *, tolerance_s: int = SIGNATURE_TOLERANCE_S
) -> None:
    """Raise a 400 ``invalid_signature`` :class:`ApiError` unless Stripe signed ``payload`` recently.

    An unset ``secret`` fails closed: nothing can be verified, so nothing is accepted.
    """
    if not secret:
        logger.error("STRIPE_WEBHOOK_SECRET is not configured: refusing Stripe webhooks")
        raise invalid_signature("The webhook signature could not be verified.")
    if not header:
        raise invalid_signature("Missing Stripe-Signature header.")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), header, secret, tolerance_s)
    except UnicodeDecodeError:
        raise invalid_signature("The body is not UTF-8, so it cannot be Stripe's.") from None
    except stripe.SignatureVerificationError as exc:
        # The SDK's messages name the failure (no v1, mismatch, outside the tolerance), never the secret.
        raise invalid_signature(f"Stripe-Signature rejected: {exc.user_message or exc}") from None


# --- the fields we use ---------------------------------------------------------------------------


def _metadata(value: Any) -> dict[str, str]:
    """Stripe metadata: a string map; ``null`` and the empty list some serialisers emit become ``{}``."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("metadata must be an object")
    return {str(k): str(v) for k, v in value.items() if v is not None}


Metadata = Annotated[dict[str, str], BeforeValidator(_metadata)]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EventData(_Fields):
    object: dict[str, Any]


class StripeEvent(_Fields):
    """The event envelope (fixtures3 ``event``)."""

    id: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=255)
    created: int = Field(ge=0)
    data: EventData

    @property
    def object(self) -> dict[str, Any]:
        return self.data.object


class CheckoutSession(_Fields):
    id: str
    payment_status: str | None = None
    metadata: Metadata = Field(default_factory=dict)


class PaymentIntent(_Fields):
    id: str
    metadata: Metadata = Field(default_factory=dict)


class Charge(_Fields):
    id: str
    amount: int = 0
    amount_refunded: int = 0
    refunded: bool = False
    metadata: Metadata = Field(default_factory=dict)

    @property
    def fully_refunded(self) -> bool:
        return self.refunded or (self.amount > 0 and self.amount_refunded >= self.amount)


class Price(_Fields):
    id: str | None = None
    lookup_key: str | None = None
    metadata: Metadata = Field(default_factory=dict)


class SubscriptionItem(_Fields):
    price: Price | None = None


class SubscriptionItems(_Fields):
    data: list[SubscriptionItem] = Field(default_factory=list)


class Subscription(_Fields):
    id: str
    status: str = ""
    metadata: Metadata = Field(default_factory=dict)
    items: SubscriptionItems = Field(default_factory=SubscriptionItems)


def parse_event(body: bytes) -> StripeEvent:
    """The verified body as a :class:`StripeEvent` (400 ``invalid_request`` if it is not one)."""
    try:
        return StripeEvent.model_validate_json(body)
    except ValidationError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "The body is not a Stripe event.") from None


def _plan_word(text: str | None) -> Plan | None:
    """``premium`` / ``pro`` named as a whole word in ``text`` (``mentor_pro_monthly`` → pro)."""
    words = set(_WORD.findall((text or "").lower()))
    if Plan.PREMIUM.value in words:
        return Plan.PREMIUM
    if Plan.PRO.value in words:
        return Plan.PRO
    return None


def plan_for_subscription(sub: Subscription, *, deleted: bool = False) -> Plan | None:
    """The plan a subscription grants; ``None`` if an active one names no plan we know."""
    if deleted or sub.status not in ACTIVE_SUBSCRIPTION:
        return Plan.FREE
    explicit = sub.metadata.get("plan", "").strip().lower()
    if explicit in (Plan.PRO.value, Plan.PREMIUM.value):
        return Plan(explicit)
    prices = [item.price for item in sub.items.data if item.price is not None]
    found = {_plan_word(p.metadata.get("plan")) for p in prices} | {_plan_word(p.lookup_key) for p in prices}
    if Plan.PREMIUM in found:
        return Plan.PREMIUM
    if Plan.PRO in found:
        return Plan.PRO
    return None


def subscription_event_key(event: StripeEvent) -> str:
    """String order = event order: ``created`` (zero-padded), then the type's rank, then the id."""
    return f"{event.created:012d}#{_SUBSCRIPTION_RANK.get(event.type, 1)}#{event.id}"


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
    def confirm(self, booking_id: str, event: StripeEvent) -> Outcome:
        """PENDING → CONFIRMED and its job; a retry re-sends a job that was recorded but not sent."""
        booking = self.schedule.confirm_booking(booking_id)
        if booking is not None:
            self._send(booking, JobKind.BOOKING_CONFIRMED, "create", event)
            return _outcome("confirmed", bookingId=booking_id)
        current = self.schedule.get_booking(booking_id)
        if current is None:
            logger.warning("stripe event for an unknown booking", extra={"booking_id": booking_id})
            return _outcome("unknown_booking", bookingId=booking_id)
        if current.status is BookingStatus.CONFIRMED:
            if current.job_pending == "create":
                self._send(current, JobKind.BOOKING_CONFIRMED, "create", event)
                return _outcome("confirmed_job_resent", bookingId=booking_id)
            return _outcome("already_confirmed", bookingId=booking_id)
        if current.status is BookingStatus.CANCELLED:
            return _outcome("booking_cancelled", bookingId=booking_id)  # final: no resurrection
        # Still PENDING: a concurrent transition won the write and then failed. Let Stripe retry.
        raise RuntimeError(f"booking {booking_id} changed concurrently; not confirmed")

    def refund(self, booking_id: str, event: StripeEvent) -> Outcome:
        """PENDING / CONFIRMED → CANCELLED (reason ``refund``) and its job."""
        booking = self.schedule.cancel_booking(booking_id, REFUND_REASON)
        if booking is not None:
            self._send(booking, JobKind.BOOKING_CANCELLED, "cancel", event)
            return _outcome("cancelled", bookingId=booking_id)
        current = self.schedule.get_booking(booking_id)
        if current is None:
            logger.warning("stripe refund for an unknown booking", extra={"booking_id": booking_id})
            return _outcome("unknown_booking", bookingId=booking_id)
        if current.job_pending == "cancel":
            self._send(current, JobKind.BOOKING_CANCELLED, "cancel", event)
            return _outcome("cancelled_job_resent", bookingId=booking_id)
        return _outcome("already_cancelled", bookingId=booking_id)

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
    return hook.confirm(booking_id, event)


def _payment_intent_succeeded(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    booking_id = _booking_id(PaymentIntent.model_validate(event.object).metadata)
    return hook.confirm(booking_id, event) if booking_id else _outcome("no_booking_id")


def _charge_refunded(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    charge = Charge.model_validate(event.object)
    booking_id = _booking_id(charge.metadata)
    if booking_id is None:
        return _outcome("no_booking_id")
    if not charge.fully_refunded:
        return _outcome("partial_refund", bookingId=booking_id)
    return hook.refund(booking_id, event)


def _subscription_changed(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    return hook.set_plan(event, deleted=False)


def _subscription_deleted(hook: StripeWebhook, event: StripeEvent) -> Outcome:
    return hook.set_plan(event, deleted=True)


#: Event type → what it does. Anything else is acknowledged and ignored.
HANDLERS: Final[dict[str, EventHandler]] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
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
