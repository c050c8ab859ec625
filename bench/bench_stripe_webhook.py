"""Stripe webhook benchmark: in-process latency and AWS calls per event.

(Its cold import, with and without the stripe SDK, is measured with every other function's in
``bench/bench_imports.py``.)

* **Latency**: ~200 signed events through the real ``lambda_handler`` in this process against a
  fresh local stack (:class:`devstack.stack.LocalStack`, moto over HTTP on loopback; no queue
  pumps, so the meetings worker does not run meanwhile), p50 / p95 /
  max — confirmations, refunds, subscription changes and re-deliveries; the first invocation
  (clients built) is reported on its own.
* **AWS calls per event**, by kind, counted on the function's own boto3 clients
  (:func:`devstack.metering.count_calls`).

``python -m bench.bench_stripe_webhook`` prints JSON. Figures from moto are the local stack's, not
DynamoDB's; they show what the handler does per event, and that it answers well under a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import Row

BOOKINGS = 120
REFUNDS = 30
SUBSCRIPTIONS = 20
REDELIVERIES = 30


def _percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def _bookings(schedule: Any, count: int) -> list[str]:
    from shared.store import Booking, ClassFormat, ClassItem, MeetingProvider, Session
    from shared.store.schedule import session_id_for

    start = datetime(2027, 1, 4, 17, 0, tzinfo=UTC)
    class_id = "cls_bench"
    schedule.create_class(
        ClassItem(
            class_id=class_id,
            mentor_id="m-bench",
            title="Bench",
            format=ClassFormat.ONLINE,
            timezone="UTC",
            duration_minutes=60,
            capacity=count,
            meeting_provider=MeetingProvider.ZOOM,
        ),
        [
            Session(
                class_id=class_id,
                session_id=session_id_for(class_id, 1),
                mentor_id="m-bench",
                start=start,
                end=start + timedelta(hours=1),
                capacity=count,
            )
        ],
    )
    ids = []
    for n in range(count):
        booking = Booking(
            booking_id=f"bkg_bench_{n:04d}",
            session_id=session_id_for(class_id, 1),
            class_id=class_id,
            mentor_id="m-bench",
            student_email=f"s{n}@example.com",
            student_name=f"Student {n}",
            token_hash=hashlib.sha256(str(n).encode()).hexdigest(),
            price_amount=4900,  # devstack.stripe_events.DEFAULT_AMOUNT / DEFAULT_CURRENCY: what events pay
            currency="USD",
            hold_expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        ids.append(schedule.create_booking(booking).booking_id)
    return ids


def against_local_stack() -> dict[str, Any]:
    from devstack import stripe_events
    from devstack.gateway import HttpRequest, build_event
    from devstack.metering import count_calls
    from devstack.routes import ROUTES, LambdaContext
    from devstack.stack import LocalStack
    from shared.store import ScheduleStore, Table

    route = next(r for r in ROUTES if r.function == "stripe_webhook")
    # No SQS pumps: the meetings worker would otherwise consume the jobs, on the same clients.
    with LocalStack(providers=False, queue_workers=()) as stack:
        from functions.stripe_webhook.handler import lambda_handler
        from shared.platform import aws
        from shared.platform.observability import logger

        logger.setLevel("WARNING")  # keep stdout for the report
        secret = stack.stripe_webhook_secret
        ids = _bookings(ScheduleStore(Table(stack.client("dynamodb"), stack.aws.table_name)), BOOKINGS)
        events: list[tuple[str, dict[str, Any]]] = [
            ("confirm", stripe_events.build_event("checkout.session.completed", booking_id=b, payment_intent=f"pi_{b}"))
            for b in ids
        ]
        events += [
            ("refund", stripe_events.build_event("charge.refunded", booking_id=b, payment_intent=f"pi_{b}"))
            for b in ids[:REFUNDS]
        ]
        events += [
            (
                "subscription",
                stripe_events.build_event(
                    "customer.subscription.updated", mentor_id=f"m-{n % 5}", plan="premium", created=1_800_000_000 + n
                ),
            )
            for n in range(SUBSCRIPTIONS)
        ]
        events += [("duplicate", event) for _, event in events[: REDELIVERIES * 3 : 3]]

        def invoke(event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            body, headers = stripe_events.signed_request(event, secret)
            request = HttpRequest("POST", "/webhooks/stripe", list(headers.items()), body)
            api_event = build_event(route, {}, request, claims=None, api_id="bench")
            start = time.perf_counter()
            result: dict[str, Any] = lambda_handler(api_event, LambdaContext("stripe_webhook", timeout_s=10))
            return time.perf_counter() - start, result

        latencies: dict[str, list[float]] = {kind: [] for kind, _ in events}
        calls: dict[str, Counter[str]] = {kind: Counter() for kind, _ in events}
        with contextlib.redirect_stdout(io.StringIO()):  # Powertools' metric lines
            first_s, _ = invoke(stripe_events.build_event("invoice.paid"))  # builds the clients
            ddb, sqs = aws.client("dynamodb"), aws.client("sqs")
            for kind, event in events:
                with count_calls(ddb) as ddb_calls, count_calls(sqs) as sqs_calls:
                    elapsed, result = invoke(event)
                if result["statusCode"] != 200:
                    raise RuntimeError(f"{kind}: {result}")
                latencies[kind].append(elapsed)
                calls[kind].update(ddb_calls.calls)
                calls[kind].update(sqs_calls.calls)
        every = [s for samples in latencies.values() for s in samples]
        return {
            "events": len(every),
            "first_invocation_ms": round(first_s * 1000, 1),
            "latency_all": _percentiles_ms(every),
            "latency_by_kind": {kind: _percentiles_ms(samples) for kind, samples in latencies.items()},
            "aws_calls_per_event": {
                kind: round(sum(calls[kind].values()) / len(latencies[kind]), 2) for kind in latencies
            },
            "aws_calls_by_operation": {
                kind: {op: round(n / len(latencies[kind]), 2) for op, n in sorted(calls[kind].items())}
                for kind in latencies
            },
        }


def main() -> dict[str, Any]:
    """Run the benchmark and return its measurements."""
    return {"local_stack": against_local_stack()}


def summary(result: dict[str, Any]) -> list[Row]:
    """``(figure, value, target, met)`` rows for the ``make bench`` table."""
    run = result["local_stack"]
    every = run["latency_all"]
    calls = ", ".join(f"{kind} {n}" for kind, n in run["aws_calls_per_event"].items())
    return [
        (
            f"Stripe webhook latency, in-process vs local stack ({every['n']} events)",
            f"p50 {every['p50_ms']} ms, p95 {every['p95_ms']} ms, max {every['max_ms']} ms",
            "",
            None,
        ),
        ("Stripe webhook AWS calls per event", calls, "", None),
    ]


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
