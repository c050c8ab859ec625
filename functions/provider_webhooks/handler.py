"""provider_webhooks: Zoom's signed webhooks and Google push notifications (PRODUCT.md §2.2, §2.7).

Thin: take the raw body / headers from the API Gateway v2 event → ``shared.connections.zoom_webhook`` /
``shared.busy.push`` → map.

* ``POST /webhooks/zoom`` answers the ``endpoint.url_validation`` challenge and acts on
  ``app_deauthorized``; ``meeting.deleted`` / ``meeting.updated`` of our meetings queue a drift check;
  a bad or stale signature is 401 ``invalid_signature``, a malformed body 400.
* ``POST /webhooks/google`` verifies the watch channel (``X-Goog-Channel-ID`` + token + resource id)
  and queues an immediate busy sync for a change: 200 (``sync`` handshakes and changes alike), 404
  ``channel_not_found``, 401 ``invalid_channel_token``, 400 without the headers.
* ``POST /webhooks/microsoft`` answers Graph's ``validationToken`` handshake (200 ``text/plain``), and
  for notifications checks each ``clientState`` and queues a busy sync / handles lifecycle events:
  202 (unknown subscriptions and wrong clientStates are ignored and logged), 400 for a body that is
  not Graph's JSON (``shared.busy.microsoft_webhook``).
"""

# No ``from __future__ import annotations``: Powertools reads the route signatures at runtime.
import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.busy.microsoft_webhook import validation_answer
from shared.busy.push import PUSH_HEADERS, process_google_push
from shared.connections.zoom_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, process_zoom_webhook
from shared.platform.api import build_resolver, raw_body
from shared.platform.config import ProviderSettings, settings
from shared.platform.observability import logger, metrics, tracer

app = build_resolver(validation=False)  # a webhook: its body is read byte-exact and checked by its signature


@app.post("/webhooks/zoom")
@tracer.capture_method
def zoom_webhook() -> dict[str, Any]:
    """Zoom's URL-validation challenge and app events, signed with the webhook secret token."""
    sent = app.current_event.headers  # case-insensitive
    headers = {name: sent.get(name) for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER)}
    secret = settings(ProviderSettings).zoom_webhook_secret_token.get_secret_value()
    return process_zoom_webhook(
        wiring.store(),
        secret,
        headers=headers,
        body=raw_body(app.current_event),
        replays=wiring.guards(),
        on_meeting_event=wiring.zoom_meeting_changed,
    )


@app.post("/webhooks/google")
@tracer.capture_method
def google_push() -> dict[str, Any]:
    """Google Calendar push notification (``events.watch`` channel): verify, then queue a busy sync."""
    sent = app.current_event.headers  # case-insensitive
    result = process_google_push(wiring.google_push(), {name: sent.get(name) for name in PUSH_HEADERS})
    if result.get("queued"):
        metrics.add_metric(name="GooglePushSyncQueued", unit=MetricUnit.Count, value=1)
    return result


@app.post("/webhooks/microsoft")
@tracer.capture_method
def microsoft_notifications() -> Response[str]:
    """Microsoft Graph change and lifecycle notifications (and the subscription's validation handshake)."""
    token = app.current_event.get_query_string_value("validationToken")
    if token is not None:
        return Response(HTTPStatus.OK, content_types.TEXT_PLAIN, validation_answer(token))
    result = wiring.microsoft_webhook().handle(raw_body(app.current_event))
    if result.get("queued"):
        metrics.add_metric(name="MicrosoftPushSyncQueued", unit=MetricUnit.Count, value=result["queued"])
    return Response(HTTPStatus.ACCEPTED, content_types.APPLICATION_JSON, json.dumps(result))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init_done()  # the last statement: the import is over (functions/__init__.py)
