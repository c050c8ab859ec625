"""calendar_feed: the mentor's teaching schedule as an ``.ics`` feed (PRODUCT.md §2.8, §3).

Public: calendar apps subscribe without credentials, the unguessable token in the path is the
secret. API Gateway path variables are whole segments, so the route is ``/feeds/{token}`` and the
token arrives as ``<token>.ics``. Thin: ``shared.feed.service.serve`` looks the token up (one GetItem by
its hash), reads the schedule and renders it; a malformed, unknown or rotated token is 404.
"""

# No ``from __future__ import annotations``: Powertools reads the route signatures at runtime.
import logging
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.feed import service as feed
from shared.platform.api import build_resolver
from shared.platform.observability import logger, metrics, tracer

app = build_resolver()

# With POWERTOOLS_DEBUG set, Powertools logs a route's arguments ("Calling API Route Handler: {...}"),
# here the feed token: its resolver's logger never goes below INFO.
logging.getLogger("aws_lambda_powertools.event_handler.api_gateway").setLevel(logging.INFO)

_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "The calendar (RFC 5545, METHOD:PUBLISH), with `ETag` and `Cache-Control`.",
        "content": {"text/calendar": {"schema": {"type": "string"}}},
        "headers": {
            "ETag": {"description": "Strong validator of the body", "schema": {"type": "string"}},
            "Cache-Control": {"description": "`private, max-age=300`", "schema": {"type": "string"}},
        },
    },
    304: {"description": "`If-None-Match` matched the current `ETag`: no body.", "content": {}},
}


@app.get("/feeds/<token>", responses=_RESPONSES)
@tracer.capture_method(capture_response=False)
def get_feed(token: str) -> Response[str]:
    """The teaching-schedule feed, called as `/feeds/<token>.ics` (ETag / 304; 404 for any bad token)."""
    answer = feed.serve(wiring.schedule(), token, if_none_match=app.current_event.headers.get("if-none-match"))
    content_type = feed.CONTENT_TYPE if answer.body else None
    return Response(status_code=answer.status, content_type=content_type, headers=answer.headers, body=answer.body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init_done()  # the last statement: the import is over (functions/__init__.py)
