"""Stripe webhook events, as :mod:`shared.schedule.payments` reads them: the signature check, the
envelope and object models (only the fields used), and the plan a subscription grants.

The signature is checked with the stripe SDK (``WebhookSignature.verify_header``: HMAC-SHA256
over ``"<t>.<raw body>"`` with the endpoint secret, any ``v1`` may match, ``t`` at most 300 s
old); :func:`plan_for_subscription` and :func:`subscription_event_key` are described in
:mod:`shared.schedule.payments`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Final

import stripe
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.store import Plan

SIGNATURE_HEADER: Final = "stripe-signature"
SIGNATURE_TOLERANCE_S: Final = 300

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


def _object_id(value: Any) -> Any:
    """An expandable field: the id string, or the expanded object's ``id``."""
    return value.get("id") if isinstance(value, Mapping) else value


ObjectId = Annotated[str | None, BeforeValidator(_object_id)]


@dataclass(frozen=True)
class Payment:
    """What a payment event says was paid: amount (minor units), currency (upper case), PaymentIntent."""

    amount: int | None
    currency: str | None
    payment_intent: str | None

    def matches(self, amount: int | None, currency: str | None) -> bool:
        """Exactly ``amount`` in ``currency`` (a booking without a price matches nothing)."""
        return (
            amount is not None
            and currency is not None
            and self.amount == amount
            and (self.currency or "").upper() == currency.upper()
        )


class CheckoutSession(_Fields):
    id: str
    payment_status: str | None = None
    amount_total: int | None = None
    currency: str | None = None
    payment_intent: ObjectId = None
    metadata: Metadata = Field(default_factory=dict)

    @property
    def payment(self) -> Payment:
        return Payment(self.amount_total, self.currency, self.payment_intent)


class PaymentIntent(_Fields):
    id: str
    amount: int | None = None
    amount_received: int | None = None
    currency: str | None = None
    metadata: Metadata = Field(default_factory=dict)

    @property
    def payment(self) -> Payment:
        received = self.amount_received if self.amount_received is not None else self.amount
        return Payment(received, self.currency, self.id)


class Charge(_Fields):
    id: str
    amount: int = 0
    amount_refunded: int = 0
    refunded: bool = False
    currency: str | None = None
    payment_intent: ObjectId = None
    metadata: Metadata = Field(default_factory=dict)

    @property
    def fully_refunded(self) -> bool:
        return self.refunded or (self.amount > 0 and self.amount_refunded >= self.amount)

    @property
    def payment(self) -> Payment:
        return Payment(self.amount, self.currency, self.payment_intent)


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
