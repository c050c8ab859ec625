"""Signed Stripe webhook events for the local stack, the tests, the CLI and the demo.

Events are built from the shapes in ``specs/stripe-fixtures3.json`` (stripe/openapi's fixtures:
the ``event`` envelope and the ``checkout.session`` / ``payment_intent`` / ``charge`` /
``subscription`` objects) and moved to the state the event implies — the fixtures themselves are
an open, unpaid session and a payment intent that still ``requires_payment_method``
(specs/NOTES.md). They are signed the way Stripe signs them, with the SDK's
``stripe.WebhookSignature``: ``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>``::

    event = build_event("checkout.session.completed", booking_id="bkg_1")
    body, headers = signed_request(event, stack.stripe_webhook_secret)
    httpx.post(f"{stack.api_url}/webhooks/stripe", content=body, headers=headers)

or ``send(api_url, event, secret)``. ``python -m devstack stripe --type TYPE --booking ID`` does it
against the running ``devstack up`` (the secret is in its state file).
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import time
from typing import Any, Final

import httpx
import stripe

from devstack.emulators.spec import load_spec

FIXTURES: Final = "stripe-fixtures3.json"
WEBHOOK_PATH: Final = "/webhooks/stripe"
API_VERSION: Final = "2025-06-30.basil"

#: The event types the webhook acts on (PRODUCT.md §2.5) → the fixture resource of ``data.object``.
EVENT_OBJECTS: Final[dict[str, str]] = {
    "checkout.session.completed": "checkout.session",
    "checkout.session.async_payment_succeeded": "checkout.session",
    "checkout.session.expired": "checkout.session",
    "payment_intent.succeeded": "payment_intent",
    "charge.refunded": "charge",
    "customer.subscription.created": "subscription",
    "customer.subscription.updated": "subscription",
    "customer.subscription.deleted": "subscription",
}
EVENT_TYPES: Final = tuple(EVENT_OBJECTS)
#: What events pay unless told otherwise; bookings made by the tests and the demo cost this much.
DEFAULT_AMOUNT: Final = 4900
DEFAULT_CURRENCY: Final = "usd"

_ALPHABET: Final = string.ascii_letters + string.digits


def stripe_id(prefix: str) -> str:
    """An id shaped like Stripe's (``evt_1Pgc76B7WZ01zgkWwyRHS12y``)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def fixture(resource: str) -> dict[str, Any]:
    """A fresh copy of one fixtures3 resource (``event``, ``charge``, ``subscription`` …)."""
    resources: dict[str, Any] = load_spec(FIXTURES)["resources"]
    return copy.deepcopy(resources[resource])


def _resource_for(event_type: str) -> str | None:
    if event_type in EVENT_OBJECTS:
        return EVENT_OBJECTS[event_type]
    resources: dict[str, Any] = load_spec(FIXTURES)["resources"]
    head = event_type.rpartition(".")[0]  # invoice.paid → invoice, customer.created → customer
    return head if head in resources else None


def build_event(
    event_type: str,
    *,
    booking_id: str | None = None,
    mentor_id: str | None = None,
    plan: str = "pro",
    event_id: str | None = None,
    created: int | None = None,
    amount: int = DEFAULT_AMOUNT,
    currency: str = DEFAULT_CURRENCY,
    payment_intent: str | None = None,
    payment_status: str = "paid",
    partial_refund: bool = False,
    amount_refunded: int | None = None,
    subscription_status: str | None = None,
    subscription_id: str | None = None,
) -> dict[str, Any]:
    """A Stripe event of ``event_type`` as Stripe would send it, about ``booking_id`` / ``mentor_id``.

    * checkout sessions: ``status: complete``, ``payment_status`` (default ``paid``),
      ``metadata.booking_id``, and a payment intent id (``checkout.session.expired``: ``status:
      expired``, unpaid, no payment intent);
    * every payment object carries ``amount`` in ``currency`` (Stripe's lower case) and the
      PaymentIntent ``payment_intent`` (a fresh id unless given: a refund must name the one that
      paid);
    * payment intents: ``status: succeeded``, ``amount_received``, ``metadata.booking_id``;
    * charges (``charge.refunded``): captured, fully refunded (``refunded: true``,
      ``amount_refunded == amount``) unless ``partial_refund`` (half) or ``amount_refunded`` says how
      much, ``metadata.booking_id``;
    * subscriptions: ``metadata.mentor_id``, one item whose price has ``lookup_key =
      "mentor_<plan>_monthly"``, status ``active`` (``canceled`` for ``deleted``);
    * any other type: the fixture of its resource if there is one (``invoice.paid`` → invoice),
      else a bare object; the webhook ignores them.
    """
    now = int(time.time())
    created = now if created is None else created
    metadata: dict[str, str] = {}
    if booking_id:
        metadata["booking_id"] = booking_id
    resource = _resource_for(event_type)
    obj: dict[str, Any] = fixture(resource) if resource else {"id": stripe_id("obj"), "object": "unknown"}
    kind = EVENT_OBJECTS.get(event_type)  # only the handled types are moved to the state they imply
    payment_intent = payment_intent or stripe_id("pi")
    currency = currency.lower()
    if kind is None:
        obj["id"] = stripe_id(str(obj.get("id", "obj_")).split("_", 1)[0] or "obj")
        if "metadata" in obj:
            obj["metadata"] = dict(metadata)
    elif kind == "checkout.session":
        expired = event_type == "checkout.session.expired"
        obj.update(
            id=stripe_id("cs_test"),
            status="expired" if expired else "complete",
            payment_status="unpaid" if expired else payment_status,
            payment_intent=None if expired else payment_intent,
            amount_subtotal=amount,
            amount_total=amount,
            currency=currency,
            created=created,
            metadata=dict(metadata),
            client_reference_id=booking_id,
            url=None,
        )
    elif kind == "payment_intent":
        obj.update(
            id=payment_intent,
            status="succeeded",
            amount=amount,
            amount_received=amount,
            currency=currency,
            amount_capturable=0,
            canceled_at=None,
            last_payment_error=None,
            next_action=None,
            created=created,
            metadata=dict(metadata),
        )
        obj["client_secret"] = f"{payment_intent}_secret_{stripe_id('x')[2:]}"
    elif kind == "charge":
        refunded = amount_refunded if amount_refunded is not None else amount // 2 if partial_refund else amount
        obj.update(
            id=stripe_id("ch"),
            amount=amount,
            amount_captured=amount,
            amount_refunded=refunded,
            currency=currency,
            refunded=refunded >= amount,
            captured=True,
            paid=True,
            payment_intent=payment_intent,
            created=created,
            metadata=dict(metadata),
        )
    elif kind == "subscription":
        deleted = event_type.endswith(".deleted")
        status = subscription_status or ("canceled" if deleted else "active")
        sub_id = subscription_id or stripe_id("sub")
        obj.update(
            id=sub_id,
            status=status,
            created=created,
            metadata={"mentor_id": mentor_id} if mentor_id else {},
            cancel_at_period_end=False,
            canceled_at=created if deleted else None,
            ended_at=created if deleted else None,
        )
        for item in obj.get("items", {}).get("data", []):
            item["subscription"] = sub_id
            item["price"]["lookup_key"] = f"mentor_{plan}_monthly"
        obj.get("items", {})["url"] = f"/v1/subscription_items?subscription={sub_id}"
    event = fixture("event")
    event.update(
        id=event_id or stripe_id("evt"),
        api_version=API_VERSION,
        created=created,
        type=event_type,
        data={"object": obj},
        livemode=False,
        pending_webhooks=1,
        request={"id": stripe_id("req"), "idempotency_key": None},
    )
    return event


def encode(event: dict[str, Any]) -> bytes:
    """The body as Stripe sends it (pretty-printed JSON, UTF-8)."""
    return json.dumps(event, indent=2, ensure_ascii=False).encode("utf-8")


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload`` (``t=…,v1=…``), by the stripe SDK."""
    header: str = stripe.WebhookSignature.generate_signature_header(payload.decode("utf-8"), secret, timestamp)
    return header


def signed_request(event: dict[str, Any], secret: str, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of Stripe's POST for ``event``."""
    body = encode(event)
    headers = {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "stripe-signature": sign(body, secret, timestamp),
    }
    return body, headers


def send(
    api_url: str,
    event: dict[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST ``event``, signed with ``secret``, to ``<api_url>/webhooks/stripe``."""
    body, headers = signed_request(event, secret, timestamp=timestamp)
    url = api_url.rstrip("/") + WEBHOOK_PATH
    if client is not None:
        return client.post(url, content=body, headers=headers)
    return httpx.post(url, content=body, headers=headers, timeout=10)
