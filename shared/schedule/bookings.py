"""Bookings (PRODUCT.md §2.4, §3): create at checkout, read, cancel.

* ``POST /bookings`` (platform) — :func:`create_booking`: takes a seat and writes the booking
  ``PENDING`` in one conditional transaction (:meth:`ScheduleStore.create_booking`), so two racing
  requests for the last seat cannot both win: the loser gets 409 ``session_full``. A cancelled
  session answers 409 ``session_cancelled``, one that has already started 409 ``session_started``,
  an unknown one 404 ``session_not_found``. Answers 201 with the booking id and the **booking
  token** — shown once, for the student's confirmation page.
* ``GET /bookings/{id}`` — :func:`booking_view`; ``POST /bookings/{id}/cancel`` — :func:`cancel`.
  Either the booking token (``?token=``) or the owning mentor's bearer JWT (verified here:
  :mod:`shared.platform.auth`) — :func:`authorize`. A wrong token, another mentor's JWT and an unknown id
  all answer the same 404 ``booking_not_found`` (nothing tells a guesser a booking exists); no
  credential, or a JWT that fails verification, is 401 ``unauthorized``.
* Cancel is 202 ``{bookingId, status: "CANCELLED"}`` and idempotent. It frees the seat, clears the
  meeting URL and records ``job_pending``; then the ``booking.cancelled`` job is queued and the
  pending mark cleared (the pattern of :mod:`shared.queues.meetings`). A repeat that finds the mark still set
  (the job may not have gone out) queues it again.

Booking tokens are 256 random bits (``secrets.token_urlsafe(32)``); only their SHA-256 is stored
(``Booking.token_hash``) and presented tokens are compared with :func:`hmac.compare_digest`.
Neither ever appears in a response other than the create answer, nor in a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.platform.auth import JwtVerifier
from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.store import (
    Booking,
    BookingStatus,
    ClassFormat,
    ConflictError,
    MeetingProvider,
    NotFoundError,
    ScheduleStore,
    SessionNotBookable,
    SessionStatus,
)
from shared.store.schedule import class_id_of

#: Attempts of a booking transaction that DynamoDB cancelled for a concurrent one (not a full seat).
CONFLICT_ATTEMPTS = 5
MAX_TOKEN_LENGTH = 128


class CreateBookingRequest(BaseModel):
    """Body of ``POST /bookings`` (the platform, at checkout)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    session_id: str = Field(min_length=1, max_length=128)
    student_email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    student_name: str = Field(min_length=1, max_length=200)


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class BookingCreated(_Camel):
    """Body of ``POST /bookings`` (201): the token is shown here and never again."""

    booking_id: str
    booking_token: str
    status: BookingStatus
    session_id: str
    class_id: str


class BookingView(_Camel):
    """Body of ``GET /bookings/{id}``: the booking, its session and its meeting (never the token).

    Every key is always present (``null`` when unset), so a confirmation page can rely on the shape.
    """

    booking_id: str
    session_id: str
    class_id: str
    status: BookingStatus
    title: str
    format: ClassFormat
    timezone: str
    start: str
    end: str
    session_status: SessionStatus
    student_name: str
    provider: MeetingProvider | None = None
    meeting_url: str | None = None
    meeting_status: str | None = Field(default=None, description="The meetings worker's outcome (a code)")
    meeting_error: str | None = Field(default=None, description="Why there is no join link, in words")
    location: str | None = None
    cancel_reason: str | None = None


class BookingCancelled(_Camel):
    """Body of ``POST /bookings/{id}/cancel`` (202)."""

    booking_id: str
    status: BookingStatus


class CallerKind(StrEnum):
    STUDENT = "student"  # holds the booking token
    MENTOR = "mentor"  # the booking's mentor, by JWT


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    mentor_id: str | None = None


def hash_token(token: str) -> str:
    """What is stored of a booking token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _not_found() -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "booking_not_found", "No such booking.")


def _unauthorized(message: str) -> ApiError:
    return ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", message)


def authorize(
    schedule: ScheduleStore,
    booking_id: str,
    *,
    token: str | None,
    authorization: str | None,
    verifier: Callable[[], JwtVerifier],
) -> tuple[Booking, Caller]:
    """The booking and who is asking: the token's holder or the booking's mentor (else 401 / 404).

    ``verifier`` gives the JWT verifier; it is called only when a bearer token is presented.
    """
    if token is not None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise _not_found()
        booking = schedule.get_booking(booking_id) if booking_id else None
        presented = hash_token(token)
        if booking is None or not hmac.compare_digest(presented, booking.token_hash):
            raise _not_found()
        return booking, Caller(CallerKind.STUDENT)

    from shared.platform.auth import AuthError, JwksUnavailable, bearer_token

    jwt = bearer_token(authorization)
    if jwt is None:
        raise _unauthorized("A booking token (?token=) or the mentor's bearer token is required.")
    try:
        claims = verifier().verify(jwt)
    except JwksUnavailable as exc:
        logger.warning("jwks unavailable", extra={"reason": str(exc)})
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE, "auth_unavailable", "Sign-in cannot be checked right now; try again."
        ) from None
    except AuthError as exc:
        logger.info("bearer token rejected", extra={"reason": str(exc)})
        raise _unauthorized("The bearer token is not valid.") from None
    mentor_id = str(claims["sub"])
    booking = schedule.get_booking(booking_id) if booking_id else None
    if booking is None or booking.mentor_id != mentor_id:
        raise _not_found()
    return booking, Caller(CallerKind.MENTOR, mentor_id)


def _transaction_conflict(exc: ClientError) -> bool:
    """DynamoDB cancelled the transaction for a concurrent one on the same item (retry it)."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    return any(r.get("Code") == "TransactionConflict" for r in exc.response.get("CancellationReasons", []))


def create_booking(
    schedule: ScheduleStore, body: CreateBookingRequest, *, now: datetime | None = None
) -> BookingCreated:
    """Take a seat in the session and write the PENDING booking (atomically)."""
    now = now or datetime.now(UTC)
    session = schedule.get_session(body.session_id) if class_id_of(body.session_id) else None
    if session is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "session_not_found", "No such session.")
    if session.status is SessionStatus.SCHEDULED and session.start <= now:
        raise ApiError(HTTPStatus.CONFLICT, "session_started", "This session has already started.")
    token = secrets.token_urlsafe(32)
    booking = Booking(
        booking_id="bkg_" + secrets.token_hex(12),
        session_id=session.session_id,
        class_id=session.class_id,
        mentor_id=session.mentor_id,
        student_email=body.student_email,
        student_name=body.student_name,
        token_hash=hash_token(token),
    )
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            schedule.create_booking(booking)
            break
        except SessionNotBookable as exc:
            message = "This session is full." if exc.reason == "session_full" else "This session was cancelled."
            raise ApiError(HTTPStatus.CONFLICT, exc.reason, message) from None
        except NotFoundError:
            raise ApiError(HTTPStatus.NOT_FOUND, "session_not_found", "No such session.") from None
        except ClientError as exc:
            if not _transaction_conflict(exc) or attempt == CONFLICT_ATTEMPTS:
                if _transaction_conflict(exc):
                    raise ApiError(
                        HTTPStatus.SERVICE_UNAVAILABLE, "try_again", "Many bookings at once; try again."
                    ) from None
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter, not a secret
    logger.info("booking created", extra={"booking_id": booking.booking_id, "session_id": booking.session_id})
    return BookingCreated(
        booking_id=booking.booking_id,
        booking_token=token,
        status=booking.status,
        session_id=booking.session_id,
        class_id=booking.class_id,
    )


def booking_view(schedule: ScheduleStore, booking: Booking) -> BookingView:
    """The booking with its class and session (times in the class's zone)."""
    item = schedule.get_class(booking.class_id)
    session = schedule.get_session(booking.session_id)
    if item is None or session is None:  # a booking always has both; guard against a torn read
        raise _not_found()
    tz = ZoneInfo(item.timezone)
    return BookingView(
        booking_id=booking.booking_id,
        session_id=booking.session_id,
        class_id=booking.class_id,
        status=booking.status,
        title=item.title,
        format=item.format,
        timezone=item.timezone,
        start=session.start.astimezone(tz).isoformat(),
        end=session.end.astimezone(tz).isoformat(),
        session_status=session.status,
        student_name=booking.student_name,
        provider=booking.meeting_provider or item.meeting_provider,
        meeting_url=booking.meeting_url if booking.status is BookingStatus.CONFIRMED else None,
        meeting_status=booking.meeting_status,
        meeting_error=booking.meeting_error,
        location=item.location,
        cancel_reason=booking.cancel_reason,
    )


def _send_cancel(queue: JobQueue, schedule: ScheduleStore, booking: Booking, cause: str) -> None:
    queue.send(
        MeetingJob(
            kind=JobKind.BOOKING_CANCELLED,
            mentor_id=booking.mentor_id,
            class_id=booking.class_id,
            session_id=booking.session_id,
            booking_id=booking.booking_id,
            cause=cause,
        )
    )
    schedule.clear_pending_job(booking.booking_id, "cancel")


def cancel(schedule: ScheduleStore, queue: JobQueue, booking: Booking, caller: Caller) -> BookingCancelled:
    """Cancel the booking (seat freed, meeting URL cleared) and queue ``booking.cancelled``; idempotent."""
    reason = caller.kind.value
    try:
        done = schedule.cancel_booking(booking.booking_id, reason)
    except ConflictError:
        raise ApiError(HTTPStatus.CONFLICT, "conflict", "The booking changed meanwhile; try again.") from None
    if done is not None:
        _send_cancel(queue, schedule, done, reason)
        logger.info("booking cancelled", extra={"booking_id": done.booking_id, "by": reason})
    else:
        current = schedule.get_booking(booking.booking_id)
        if current is None:
            raise _not_found()
        if current.job_pending == "cancel":  # cancelled earlier, job maybe never queued
            _send_cancel(queue, schedule, current, current.cancel_reason or reason)
    return BookingCancelled(booking_id=booking.booking_id, status=BookingStatus.CANCELLED)
