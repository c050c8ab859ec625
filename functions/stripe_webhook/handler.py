"""stripe_webhook: Stripe's signed events (PRODUCT.md §2.5).

Thin: the raw body byte-exact from the API Gateway v2 event + ``Stripe-Signature`` →
``shared.schedule.payments`` → map. A bad, missing or stale signature is 400 ``invalid_signature`` and
changes nothing; each event id is applied once; bookings are confirmed / cancelled and mentor
plans set, and the meetings worker gets its jobs. No provider call and no outbound HTTP here.

Cold start: this module imports neither ``shared.providers`` nor caldav / authlib / icalendar
(``make bench`` measures the import; a test guards the graph).
"""

# No ``from __future__ import annotations``: Powertools reads route signatures at runtime.
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.platform.api import build_resolver, raw_body
from shared.platform.observability import logger, metrics, tracer
from shared.schedule.payments import SIGNATURE_HEADER

app = build_resolver(validation=False)  # a webhook: its body is read byte-exact and checked by its signature


@app.post("/webhooks/stripe")
@tracer.capture_method
def stripe_webhook() -> dict[str, Any]:
    """Stripe's signed events: bookings confirmed or cancelled, mentor plans; duplicates ignored."""
    event = app.current_event
    result = wiring.stripe_webhook().handle(body=raw_body(event), signature=event.headers.get(SIGNATURE_HEADER))
    metrics.add_metric(
        name="StripeEventsDuplicate" if result.get("duplicate") else "StripeEventsProcessed",
        unit=MetricUnit.Count,
        value=1,
    )
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    wiring.stripe_webhook().bind_context(context)
    return app.resolve(event, context)


init_done()  # the last statement: the import is over (functions/__init__.py)
