"""classes_api: classes, sessions and bookings (PRODUCT.md §2.4, §3).

Thin: parse → call ``shared.schedule.classes`` / ``shared.schedule.bookings`` → map. ``GET /bookings/{id}`` and
``POST /bookings/{id}/cancel`` have no API Gateway authorizer: ``shared.schedule.bookings.authorize``
checks the booking token (``X-Booking-Token`` or ``?token=``) or the platform's / mentor's JWT itself.
``POST /bookings`` and ``POST /private-sessions`` are the platform's (the authorizer checks the scope;
:func:`platform_client` again).
"""

# No ``from __future__ import annotations``: Powertools reads the route signatures at runtime.
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import init_done
from shared import wiring
from shared.platform.api import build_resolver, mentor_id, platform_client
from shared.platform.observability import logger, metrics, tracer
from shared.schedule import bookings, classes
from shared.schedule.bookings import CreateBookingRequest
from shared.schedule.classes import CreateClassRequest, MoveSessionRequest
from shared.schedule.private import CreatePrivateSessionRequest

#: POST /bookings and POST /private-sessions are the platform's (PRODUCT.md §2.9, §2.10); the class
#: routes are the mentor's.
app = build_resolver(platform_routes=("POST /bookings", "POST /private-sessions"))
Token = Annotated[str | None, Query(description="The booking token (or send it as X-Booking-Token)")]
TokenHeader = Annotated[
    str | None,
    Header(alias="X-Booking-Token", description="The booking token (instead of a platform or mentor JWT)"),
]


def _json(status: int, model: Any, *, exclude_none: bool = True) -> Response[dict[str, Any]]:
    body = model.model_dump(by_alias=True, mode="json", exclude_none=exclude_none)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/classes", status_code=HTTPStatus.CREATED)
@tracer.capture_method
def create_class(body: CreateClassRequest) -> Response[dict[str, Any]]:
    """Create an online or in-person class with its sessions (one-off starts or an RRULE); warns of
    sessions that overlap the mentor's calendar or a private session (``calendar_conflict``)."""
    view = classes.create_class(wiring.store(), wiring.schedule(), mentor_id(app), body, busy=wiring.busy_store())
    return _json(HTTPStatus.CREATED, view)


@app.get("/classes/<class_id>")
@tracer.capture_method
def get_class(class_id: str) -> Response[dict[str, Any]]:
    """A class of the calling mentor, with its sessions."""
    return _json(HTTPStatus.OK, classes.get_class(wiring.schedule(), mentor_id(app), class_id))


@app.patch("/classes/<class_id>/sessions/<session_id>")
@tracer.capture_method
def move_session(class_id: str, session_id: str, body: MoveSessionRequest) -> Response[dict[str, Any]]:
    """Move a session to a new start; its meeting follows (a move job is queued). Warns of overlaps."""
    view = classes.move_session(
        wiring.schedule(), wiring.meetings_queue(), mentor_id(app), class_id, session_id, body, busy=wiring.busy_store()
    )
    return _json(HTTPStatus.OK, view)


@app.delete("/classes/<class_id>/sessions/<session_id>", status_code=HTTPStatus.ACCEPTED)
@tracer.capture_method
def cancel_session(class_id: str, session_id: str) -> Response[dict[str, Any]]:
    """Cancel a session and its bookings (202: meeting deletion and e-mails follow)."""
    result = classes.cancel_session(wiring.schedule(), wiring.meetings_queue(), mentor_id(app), class_id, session_id)
    return _json(HTTPStatus.ACCEPTED, result)


@app.post("/bookings", status_code=HTTPStatus.CREATED)
@tracer.capture_method
def create_booking(body: CreateBookingRequest) -> Response[dict[str, Any]]:
    """Book a seat (PENDING until Stripe confirms); returns the booking token once. Platform only."""
    platform_client(app)
    created = bookings.create_booking(wiring.schedule(), body, hold=wiring.hold_settings().hold)
    return _json(HTTPStatus.CREATED, created)


@app.post("/private-sessions", status_code=HTTPStatus.CREATED)
@tracer.capture_method
def create_private_session(body: CreatePrivateSessionRequest) -> Response[dict[str, Any]]:
    """Book a one-to-one session at a free time of the mentor (PENDING until Stripe confirms); 409
    ``slot_unavailable`` when the time is no longer free. Returns the booking token once. Platform only."""
    platform_client(app)
    return _json(HTTPStatus.CREATED, wiring.private_sessions().create(body), exclude_none=False)


@app.get("/bookings/<booking_id>")
@tracer.capture_method
def get_booking(booking_id: str, token: Token = None, x_booking_token: TokenHeader = None) -> Response[dict[str, Any]]:
    """A booking's status, time and meeting link (booking token, the platform's or the mentor's JWT)."""
    booking, _ = _authorize(booking_id, token, x_booking_token)
    return _json(HTTPStatus.OK, bookings.booking_view(wiring.schedule(), booking), exclude_none=False)


@app.post("/bookings/<booking_id>/cancel", status_code=HTTPStatus.ACCEPTED)
@tracer.capture_method
def cancel_booking(
    booking_id: str, token: Token = None, x_booking_token: TokenHeader = None
) -> Response[dict[str, Any]]:
    """Cancel a booking (202: the meeting and e-mail follow); cancelling twice is fine."""
    booking, caller = _authorize(booking_id, token, x_booking_token)
    return _json(HTTPStatus.ACCEPTED, bookings.cancel(wiring.schedule(), wiring.meetings_queue(), booking, caller))


def _authorize(booking_id: str, query: str | None, header: str | None) -> tuple[Any, bookings.Caller]:
    return bookings.authorize(
        wiring.schedule(),
        booking_id,
        token=bookings.presented_token(query, header),
        authorization=app.current_event.headers.get("authorization"),
        verifier=wiring.jwt_verifier,
        platform_scope=wiring.platform_scope(),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init_done()  # the last statement: the import is over (functions/__init__.py)
