"""Bookings (PRODUCT.md §2.4, §3): create at checkout, read, cancel.

* ``POST /bookings`` (platform) — :func:`create_booking`: takes a seat and writes the booking
  ``PENDING`` in one conditional transaction (:meth:`ScheduleStore.create_booking`), so two racing
  requests for the last seat cannot both win: the loser gets 409 ``session_full``. A cancelled
  session answers 409 ``session_cancelled``, one that has already started 409 ``session_started``,
  an unknown one 404 ``session_not_found``. Answers 201 with the booking id and the **booking
  token** — shown once, for the student's confirmation page. The body names the price
  (``priceAmount`` in minor units, ``currency``): a Stripe payment confirms the booking only for
  exactly that (:mod:`shared.schedule.payments`). The seat is **held** until ``holdExpiresAt``
  (``BOOKING_HOLD_MINUTES``, default 30): a full session first gives back the seats of its holds
  that ended (:mod:`shared.schedule.holds`).
* ``GET /bookings/{id}`` — :func:`booking_view`; ``POST /bookings/{id}/cancel`` — :func:`cancel`.
  The booking token (header ``X-Booking-Token`` or ``?token=``), the platform's bearer JWT (the
  platform scope) or the owning mentor's (verified here: :mod:`shared.platform.auth`) —
  :func:`authorize`. A wrong token, another mentor's JWT and an unknown id all answer the same 404
  ``booking_not_found`` (nothing tells a guesser a booking exists); no credential, or a JWT that
  fails verification, is 401 ``unauthorized``. A wrong token and an unknown id also cost the same
  (PRODUCT.md §2.9): both are one GetItem projecting only ``token_hash``, one SHA-256 and one
  :func:`hmac.compare_digest` (against a random stand-in hash when there is no booking); only a
  matching token reads the booking itself.
* Cancel is 202 ``{bookingId, status: "CANCELLED"}`` (``"EXPIRED"`` for a hold that already ended:
  nothing left to cancel) and idempotent. It frees the seat, clears the
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
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http import HTTPStatus
from typing import Annotated
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.platform.auth import PLATFORM_SCOPE, JwtVerifier
from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.schedule.holds import release_due_holds
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
#: Stripe's largest amount (eight digits of minor units).
MAX_PRICE_AMOUNT = 99_999_999
#: How long a checkout holds its seat unless the caller says otherwise (``BOOKING_HOLD_MINUTES``).
DEFAULT_HOLD = timedelta(minutes=30)
MAX_TOKEN_LENGTH = 128


class CreateBookingRequest(BaseModel):
    """Body of ``POST /bookings`` (the platform, at checkout)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    session_id: str = Field(min_length=1, max_length=128)
    student_email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    student_name: str = Field(min_length=1, max_length=200)
    price_amount: int = Field(
        strict=True,
        gt=0,
        le=MAX_PRICE_AMOUNT,
        description="What the student pays, in the currency's minor units (2500 = 25.00 EUR); a Stripe "
        "payment confirms the booking only for exactly this amount.",
    )
    currency: Annotated[str, AfterValidator(str.upper)] = Field(
        pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code (any case; stored upper case)."
    )


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class BookingCreated(_Camel):
    """Body of ``POST /bookings`` (201): the token is shown here and never again."""

    booking_id: str
    booking_token: str
    status: BookingStatus
    session_id: str
    class_id: str
    hold_expires_at: datetime = Field(description="The seat is held until then; pay before it (Checkout expires_at).")


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
    price_amount: int | None = Field(default=None, description="Minor units")
    currency: str | None = None
    hold_expires_at: datetime | None = Field(default=None, description="While PENDING: the seat is held until then")
    over_capacity: bool = Field(default=False, description="Paid after its hold ended, into a full session")


class BookingCancelled(_Camel):
    """Body of ``POST /bookings/{id}/cancel`` (202)."""

    booking_id: str
    status: BookingStatus


class CallerKind(StrEnum):
    STUDENT = "student"  # holds the booking token
    MENTOR = "mentor"  # the booking's mentor, by JWT
    PLATFORM = "platform"  # the platform's backend, by a JWT with the platform scope


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


#: What a presented token is compared with when the booking does not exist: a random hash of the
#: stored kind, so an unknown id does exactly the work of a wrong token (and never matches).
_ABSENT_HASH = hash_token(secrets.token_urlsafe(32))
MAX_BOOKING_ID_LENGTH = 128


def presented_token(query: str | None, header: str | None) -> str | None:
    """The booking token from ``X-Booking-Token`` or ``?token=`` (the header keeps it out of URLs,
    proxy logs and browser history). Both present and different → 404, like a wrong token."""
    if header is not None and query is not None and not hmac.compare_digest(header.encode(), query.encode()):
        raise _not_found()
    return header if header is not None else query


def _by_booking_token(schedule: ScheduleStore, booking_id: str, token: str) -> Booking:
    """The booking whose token this is, else 404 — the same work whether or not the booking exists."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise _not_found()  # refused on its own length: says nothing about any booking
    stored = schedule.booking_token_hash(booking_id)
    matches = hmac.compare_digest(hash_token(token), stored if stored is not None else _ABSENT_HASH)
    if not matches or stored is None:
        raise _not_found()
    booking = schedule.get_booking(booking_id)
    if booking is None or booking.token_hash != stored:  # deleted or replaced between the two reads
        raise _not_found()
    return booking


def authorize(
    schedule: ScheduleStore,
    booking_id: str,
    *,
    token: str | None,
    authorization: str | None,
    verifier: Callable[[], JwtVerifier],
    platform_scope: str = PLATFORM_SCOPE,
) -> tuple[Booking, Caller]:
    """The booking and who is asking: the token's holder, the platform or the booking's mentor
    (else 401 / 404).

    ``verifier`` gives the JWT verifier; it is called only when a bearer token is presented. A JWT
    carrying ``platform_scope`` is the platform's (any booking); any other is a mentor's (own only).
    """
    if len(booking_id) > MAX_BOOKING_ID_LENGTH:
        raise _not_found()  # no id is this long; the key would be refused by DynamoDB
    if token is not None:
        return _by_booking_token(schedule, booking_id, token), Caller(CallerKind.STUDENT)

    from shared.platform.auth import AuthError, JwksUnavailable, bearer_token, is_platform

    jwt = bearer_token(authorization)
    if jwt is None:
        raise _unauthorized("A booking token (X-Booking-Token or ?token=) or a bearer token is required.")
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
    booking = schedule.get_booking(booking_id) if booking_id else None
    if is_platform(claims, platform_scope):
        if booking is None:
            raise _not_found()
        return booking, Caller(CallerKind.PLATFORM)
    mentor_id = str(claims["sub"])
    if booking is None or booking.mentor_id != mentor_id:
        raise _not_found()
    return booking, Caller(CallerKind.MENTOR, mentor_id)


def _transaction_conflict(exc: ClientError) -> bool:
    """DynamoDB cancelled the transaction for a concurrent one on the same item (retry it)."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    return any(r.get("Code") == "TransactionConflict" for r in exc.response.get("CancellationReasons", []))


def create_booking(
    schedule: ScheduleStore,
    body: CreateBookingRequest,
    *,
    now: datetime | None = None,
    hold: timedelta = DEFAULT_HOLD,
) -> BookingCreated:
    """Take a seat in the session and write the PENDING booking with its hold (atomically).

    A full session first gives back the seats of its holds that have ended
    (:func:`shared.schedule.holds.release_due_holds`), then the seat is tried once more.
    """
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
        price_amount=body.price_amount,
        currency=body.currency,
        hold_expires_at=now + hold,
    )
    released = False
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            schedule.create_booking(booking)
            break
        except SessionNotBookable as exc:
            if exc.reason == "session_full" and not released:
                released = True
                if release_due_holds(schedule, booking.session_id, now=now):
                    continue
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
        hold_expires_at=now + hold,
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
        price_amount=booking.price_amount,
        currency=booking.currency,
        hold_expires_at=booking.hold_expires_at if booking.status is BookingStatus.PENDING else None,
        over_capacity=booking.over_capacity,
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
    status = BookingStatus.CANCELLED
    if done is not None:
        _send_cancel(queue, schedule, done, reason)
        logger.info("booking cancelled", extra={"booking_id": done.booking_id, "by": reason})
    else:
        current = schedule.get_booking(booking.booking_id)
        if current is None:
            raise _not_found()
        if current.job_pending == "cancel":  # cancelled earlier, job maybe never queued
            _send_cancel(queue, schedule, current, current.cancel_reason or reason)
        status = current.status  # CANCELLED, or EXPIRED: a hold that ended has nothing left to cancel
    return BookingCancelled(booking_id=booking.booking_id, status=status)
