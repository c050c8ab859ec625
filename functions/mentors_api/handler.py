"""mentors_api: a mentor's busy times, availability, feed URL and bookable slots (PRODUCT.md §2.7, §2.8, §2.10, §3).

Who calls: the mentor's JWT on ``GET /mentors/me/busy``, ``GET`` / ``PUT /mentors/me/availability``,
``GET /mentors/me/feed`` and ``POST /mentors/me/feed/rotate`` (a platform token names no mentor: 403
``insufficient_scope``); the platform's JWT on ``GET /mentors/{mentorId}/slots`` (the authorizer checks
the platform scope, the resolver again: a mentor token is 403 ``insufficient_scope``).

Thin: parse → call ``shared.busy.view`` / ``shared.availability`` / ``shared.feed.tokens`` → map. It reads
the store and seals the feed token with the vault, and talks to no provider: it does not import authlib,
caldav, the httpx-based provider clients or icalendar (the feed is rendered by ``calendar_feed``), which is
why these routes left ``connections_api`` (its cold import; ``tests/unit/functions/test_import_graph.py``).
"""

# No ``from __future__ import annotations``: Powertools reads the route signatures (bodies, query
# parameters, return types) at runtime through the tracer's wrapper, so they must be real objects.
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.availability import bookable
from shared.availability import service as availability
from shared.availability.rules import AvailabilityView, PutAvailabilityRequest
from shared.busy import view as busy
from shared.feed.tokens import FeedUrls, mentor_feed
from shared.platform.api import build_resolver, mentor_id
from shared.platform.observability import logger, metrics, tracer

#: GET /mentors/{mentorId}/slots is the platform's (PRODUCT.md §2.9, §2.10); the /mentors/me routes are the mentor's.
app = build_resolver(platform_routes=("GET /mentors/{mentorId}/slots",))


@app.get("/mentors/me/busy")
@tracer.capture_method
def get_busy(
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with offset; default now")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 with offset; default from + 7 days")] = None,
) -> busy.BusyResponse:
    """Busy times from every connected calendar, merged and labelled by source, plus each source's sync state."""
    window = busy.parse_window(start, end)
    return busy.busy_view(wiring.store(), wiring.busy_store(), mentor_id(app), *window)


@app.get("/mentors/me/availability")
@tracer.capture_method
def get_availability() -> AvailabilityView:
    """The mentor's availability rules and their `version` (before the first PUT: the defaults, `version` 0)."""
    return availability.get_availability(wiring.availability_store(), mentor_id(app))


@app.put("/mentors/me/availability")
@tracer.capture_method
def put_availability(body: PutAvailabilityRequest) -> AvailabilityView:
    """Replace the mentor's availability rules (PRODUCT.md §2.10); 400 with `fields`, 409 `availability_changed`."""
    mentor = mentor_id(app)
    return availability.put_availability(wiring.availability_store(), mentor, body, now=datetime.now(UTC))


@app.get("/mentors/<mentorId>/slots")
@tracer.capture_method
def get_slots(
    mentorId: str,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with offset")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 with offset; ≤ 62 days after from")] = None,
    duration: Annotated[str | None, Query(description="Minutes, 5 to 480")] = None,
) -> bookable.SlotsResponse:
    """Bookable slots of a mentor (platform only, PRODUCT.md §2.10) and how fresh each calendar source is."""
    now = datetime.now(UTC)
    start_at, end_at, length = bookable.parse_query(mentorId, start, end, duration, now=now)
    return bookable.mentor_slots(
        store=wiring.store(),
        busy=wiring.busy_store(),
        schedule=wiring.schedule(),
        rules_store=wiring.availability_store(),
        mentor_id=mentorId,
        start=start_at,
        end=end_at,
        duration=length,
        now=now,
    )


_FEED_URLS: dict[int, OpenAPIResponse] = {
    200: {
        "description": "The feed's URLs (secret: the token is in them)",
        "content": {"application/json": {"model": FeedUrls}},
    }
}


@app.get("/mentors/me/feed", responses=_FEED_URLS)
@tracer.capture_method(capture_response=False)
def get_feed_url() -> Response[dict[str, Any]]:
    """The teaching-schedule feed's secret URL `{url, webcalUrl}` (created on the first call)."""
    urls = mentor_feed(wiring.store().table, wiring.vault(), mentor_id(app))
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        headers={"Cache-Control": "no-store"},
        body=urls.model_dump(by_alias=True, mode="json"),
    )


@app.post("/mentors/me/feed/rotate", responses=_FEED_URLS)
@tracer.capture_method(capture_response=False)
def rotate_feed_url() -> Response[dict[str, Any]]:
    """A new feed URL `{url, webcalUrl}`; the old one answers 404 from now on."""
    urls = mentor_feed(wiring.store().table, wiring.vault(), mentor_id(app), rotate=True)
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        headers={"Cache-Control": "no-store"},
        body=urls.model_dump(by_alias=True, mode="json"),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init_done()  # the last statement: the import is over (functions/__init__.py)
