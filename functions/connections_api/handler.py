"""connections_api: the mentor's provider connections (PRODUCT.md §2.2, §3).

Who calls: the mentor's JWT on every route (``/connections…``); a platform token names no mentor (403
``insufficient_scope``). Thin: parse → call ``shared.connections`` → map. The mentor's busy times,
availability, feed URL and the platform's slots are ``mentors_api``'s: they need none of the provider
clients (authlib, CalDAV, httpx) this function loads.
"""

# No ``from __future__ import annotations``: Powertools reads the route signatures (bodies, query
# parameters, return types) at runtime through the tracer's wrapper, so they must be real objects.
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.connections import apple, calendars, microsoft, oauth_flow
from shared.connections.views import (
    OAUTH_PROVIDERS,
    AppleConnectRequest,
    AuthorizeResponse,
    ChooseCalendarRequest,
    CompleteConnectionRequest,
    ConnectionView,
    list_connections,
    parse_provider,
)
from shared.platform.api import build_resolver, mentor_id
from shared.platform.observability import logger, metrics, tracer
from shared.store import Provider

app = build_resolver()
_NO_CONTENT: dict[int, OpenAPIResponse] = {204: {"description": "Disconnected (no body).", "content": {}}}


@app.get("/connections")
@tracer.capture_method
def get_connections() -> dict[str, Any]:
    """Status of google, zoom, apple and microsoft for the calling mentor."""
    return list_connections(wiring.store(), mentor_id(app)).model_dump(by_alias=True, mode="json")


@app.post("/connections/<provider>/authorize")
@tracer.capture_method
def authorize(provider: str) -> dict[str, Any]:
    """The Google / Zoom / Microsoft consent URL (PKCE S256, single-use state bound to the mentor)."""
    mentor = mentor_id(app)
    chosen = parse_provider(provider, OAUTH_PROVIDERS)
    url = oauth_flow.start_authorization(wiring.store(), mentor, chosen)
    return AuthorizeResponse(authorize_url=url).model_dump(by_alias=True, mode="json")


@app.post("/connections/<provider>/complete")
@tracer.capture_method
def complete(provider: str, body: CompleteConnectionRequest) -> ConnectionView:
    """Store the connection the OAuth callback left pending (`?pending=<handle>`), for the mentor who started it.

    Another mentor gets 403 `oauth_mentor_mismatch` and the pending connection is discarded; an
    unknown, used or expired handle is 400 `invalid_pending` / `expired_pending`.
    """
    mentor = mentor_id(app)
    chosen = parse_provider(provider, OAUTH_PROVIDERS)
    return oauth_flow.complete_connection(
        wiring.store(),
        mentor,
        chosen,
        body.pending,
        on_google_connected=wiring.on_google_connected,
        on_connected=wiring.on_connected,
    )


@app.post("/connections/apple", status_code=HTTPStatus.CREATED)
@tracer.capture_method
def connect_apple(body: AppleConnectRequest) -> Response[dict[str, Any]]:
    """Connect iCloud Calendar with an Apple ID + app-specific password (verified by CalDAV)."""
    view = apple.connect_apple(
        wiring.store(),
        wiring.vault(),
        mentor_id(app),
        body,
        limiter=wiring.apple_limiter(),
        on_connected=wiring.on_connected,
    )
    return Response(
        status_code=HTTPStatus.CREATED,
        content_type=content_types.APPLICATION_JSON,
        body=view.model_dump(by_alias=True, mode="json"),
    )


@app.get("/connections/google/calendars")
@tracer.capture_method
def google_calendars() -> dict[str, Any]:
    """The mentor's Google calendars, the selected one marked."""
    result = calendars.google_calendars(wiring.store(), wiring.credentials(), mentor_id(app))
    return result.model_dump(by_alias=True, mode="json")


@app.put("/connections/google/calendar")
@tracer.capture_method
def choose_google_calendar(body: ChooseCalendarRequest) -> dict[str, Any]:
    """Choose the calendar events and busy times use."""
    mentor, tokens = mentor_id(app), wiring.credentials()
    view = calendars.select_google_calendar(
        wiring.store(), tokens, mentor, body.calendar_id, hooks=wiring.google_hooks()
    )
    return view.model_dump(by_alias=True, mode="json")


@app.get("/connections/microsoft/calendars")
@tracer.capture_method
def microsoft_calendars() -> dict[str, Any]:
    """The mentor's Outlook calendars they can add events to, the selected one marked."""
    result = microsoft.microsoft_calendars(wiring.store(), wiring.credentials(), mentor_id(app))
    return result.model_dump(by_alias=True, mode="json")


@app.put("/connections/microsoft/calendar")
@tracer.capture_method
def choose_microsoft_calendar(body: ChooseCalendarRequest) -> dict[str, Any]:
    """Choose the Outlook calendar Teams events are written to (writable calendars only)."""
    view = microsoft.select_microsoft_calendar(
        wiring.store(),
        wiring.credentials(),
        mentor_id(app),
        body.calendar_id,
        on_selected=wiring.on_microsoft_calendar,
    )
    return view.model_dump(by_alias=True, mode="json")


@app.delete("/connections/<provider>", responses=_NO_CONTENT)
@tracer.capture_method
def disconnect(provider: str, revoke: Annotated[bool, Query()] = False) -> Response[str]:
    """Delete the connection and its sealed credential; ``?revoke=true`` also revokes at Google / Zoom."""
    mentor = mentor_id(app)
    chosen: Provider = parse_provider(provider)
    calendars.disconnect(
        wiring.store(),
        wiring.vault(),
        mentor,
        chosen,
        revoke=revoke,
        hooks=wiring.google_hooks(),
        stop_microsoft=lambda m: microsoft.stop_subscriptions(wiring.store(), wiring.credentials(), m),
    )
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init_done()  # the last statement: the import is over (functions/__init__.py)
