"""oauth_callback: the browser comes back from Google / Zoom (PRODUCT.md §2.2, §3).

No JWT: the single-use ``state`` binds the request to the mentor who asked for the consent URL.
Always answers ``302`` to the mentor app (``?connected=<p>`` or ``?error=<code>``); tokens never
appear in the response or the logs.
"""

# No ``from __future__ import annotations``: Powertools reads the route signatures (bodies, query
# parameters, return types) at runtime through the tracer's wrapper, so they must be real objects.
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.api import build_resolver
from shared.connections import complete_authorization
from shared.observability import logger, metrics, tracer
from shared.store import default_store
from shared.vault import default_vault

app = build_resolver()


@app.get("/oauth/<provider>/callback")
@tracer.capture_method
def callback(provider: str) -> Response[str]:
    """Consume the state, exchange the code, save the connection, redirect to the app."""
    event = app.current_event
    location = complete_authorization(
        default_store(),
        default_vault(),
        provider,
        code=event.get_query_string_value("code"),
        state=event.get_query_string_value("state"),
        error=event.get_query_string_value("error"),
    )
    return Response(
        status_code=HTTPStatus.FOUND,
        headers={"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        body="",
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
