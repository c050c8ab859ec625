"""oauth_callback: the browser comes back from Google / Zoom (PRODUCT.md §2.2, §3).

No JWT: the single-use ``state`` binds the request to the mentor who asked for the consent URL.
Always answers ``302`` to the mentor app (``?provider=<p>&pending=<handle>`` or ``?error=<code>``);
no connection is stored here — the mentor app completes it with the mentor's JWT
(``POST /connections/{p}/complete``, ``functions/connections_api``). Tokens never appear in the
response or the logs.
"""

# No ``from __future__ import annotations``: Powertools reads the route signatures (bodies, query
# parameters, return types) at runtime through the tracer's wrapper, so they must be real objects.
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.connections.oauth_flow import receive_callback
from shared.platform.api import build_resolver
from shared.platform.observability import logger, metrics, tracer

app = build_resolver()
_REDIRECT: dict[int, OpenAPIResponse] = {
    302: {
        "description": (
            "To the mentor app: `?provider=<provider>&pending=<handle>` (complete it with "
            "`POST /connections/{provider}/complete`) or `?error=<code>` (no body)."
        ),
        "headers": {"Location": {"description": "The mentor app's connections page", "schema": {"type": "string"}}},
        "content": {},
    }
}


@app.get("/oauth/<provider>/callback", responses=_REDIRECT)
@tracer.capture_method
def callback(
    provider: str,
    code: Annotated[str | None, Query(description="The authorization code (on consent)")] = None,
    state: Annotated[str | None, Query(description="The single-use state from the consent URL")] = None,
    error: Annotated[str | None, Query(description="The provider's error (consent refused, …)")] = None,
) -> Response[str]:
    """Consume the state, exchange the code, park the sealed tokens under a pending handle, redirect to the app."""
    location = receive_callback(wiring.store(), wiring.vault(), provider, code=code, state=state, error=error)
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


init_done()  # the last statement: the import is over (functions/__init__.py)
