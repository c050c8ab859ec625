"""``POST /private-sessions`` (platform, PRODUCT.md §2.10): book a one-to-one session at a free time.

The platform offers the times of ``GET /mentors/{mentorId}/slots``; this write re-checks the chosen
time **at write time** and reserves it atomically:

1. The body is checked (400 ``invalid_request`` with ``fields``): a start with an offset, within
   the bounds of §2.4 and in the future; 5-480 minutes; an in-person session names its ``location``,
   an online one does not. Online sessions pass the online-class rules of :mod:`shared.schedule.classes`
   — the plan gate (403 ``plan_required``), the provider resolution (``provider_not_connected``,
   ``meeting_provider_required``, ``no_video_provider``) and the Zoom Basic 40-minute warning.
2. The time must be one the slot engine offers (:func:`shared.availability.slots.bookable_slots`, through
   the ``mentor_time`` the composition root injects): inside the mentor's availability, on the step
   grid, after the minimum notice and before the horizon, clear of the calendar busy blocks, of every
   scheduled class session and of every held or booked private session, with the buffers. Else 409
   ``slot_unavailable`` — also when the mentor has set no availability.
3. The write (:meth:`ScheduleStore.create_private`) is one transaction: the private class, its
   one-seat session (seat taken), the PENDING booking, its hold marker, and the claim of the time in
   the mentor's timeline (:mod:`shared.store.timeline`: the hour buckets of the span updated and those
   of its buffers checked at the versions read in step 2, and the timeline head — which every class
   creation and session move bumps — unchanged). If anything changed since the read, the transaction
   fails, and the request reads and decides again (up to :data:`ATTEMPTS` times, with jitter): of two
   overlapping requests exactly one wins, the other gets 409; a class created at the same moment
   either is seen by the re-check or its creation comes after, over a held time (the class gets its
   warning; the mentor decides).

The booking then lives as any booking (§2.9): held until ``holdExpiresAt``; Stripe's payment confirms
it and the meetings worker mints the link of an online session; an expired hold or a cancellation
takes the span out of the timeline in the same write, which frees the time.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Final, Protocol
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.platform.bounds import control_characters, in_range, plausible_year, range_message
from shared.platform.observability import logger
from shared.schedule.bookings import MAX_PRICE_AMOUNT, hash_token
from shared.schedule.class_models import WARNINGS, WarningView, invalid
from shared.schedule.classes import new_class_id, online_rules
from shared.store import (
    Booking,
    BookingStatus,
    ClassFormat,
    ClassItem,
    MeetingProvider,
    ScheduleStore,
    Session,
    Store,
)
from shared.store.schedule import session_id_for
from shared.store.table import TransactionConflict
from shared.store.timeline import Span

#: Reads-and-writes of one request that lost to a concurrent change before it answers 503.
ATTEMPTS: Final = 8
MIN_MINUTES: Final = 5
MAX_MINUTES: Final = 480


class MentorTime(Protocol):
    """What the availability capability knows of a mentor's time (``shared.availability.bookable``)."""

    @property
    def timezone(self) -> str: ...

    @property
    def buffer_before(self) -> timedelta: ...

    @property
    def buffer_after(self) -> timedelta: ...

    def bookable(
        self, start: datetime, duration: timedelta, *, now: datetime, blocks: list[tuple[datetime, datetime]]
    ) -> bool: ...


#: ``(mentor_id, now)`` → the mentor's time, or ``None`` when no availability is set.
TimeSource = Callable[[str, datetime], MentorTime | None]


def _one_line(value: str | None) -> str | None:
    if value is not None and control_characters(value):
        raise ValueError("must not contain control characters (line breaks, tabs, NUL…)")
    return value


class CreatePrivateSessionRequest(BaseModel):
    """Body of ``POST /private-sessions``."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    mentor_id: str = Field(min_length=1, max_length=128, pattern=r"^[^#\s]+$")
    start: datetime = Field(description="ISO 8601 with an offset: a start offered by GET /mentors/{id}/slots")
    duration_minutes: int = Field(strict=True, ge=MIN_MINUTES, le=MAX_MINUTES)
    format: ClassFormat = Field(description="online | in_person")
    meeting_provider: MeetingProvider | None = Field(default=None, description="Online only; resolved when omitted")
    location: str | None = Field(default=None, min_length=1, max_length=500, description="In-person only (required)")
    title: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: Private session with <studentName>"
    )
    student_email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    student_name: str = Field(min_length=1, max_length=200)
    price_amount: int = Field(strict=True, gt=0, le=MAX_PRICE_AMOUNT, description="Minor units (2500 = 25.00)")
    currency: Annotated[str, AfterValidator(str.upper)] = Field(pattern=r"^[A-Za-z]{3}$", description="ISO 4217")

    _lines = field_validator("title", "location", "student_name")(_one_line)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give the start with its offset, e.g. 2027-05-03T10:00:00+02:00")
        return value


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class PrivateSessionCreated(_Camel):
    """Body of ``POST /private-sessions`` (201): the booking token is shown here and never again."""

    session_id: str
    class_id: str
    booking_id: str
    booking_token: str
    status: BookingStatus
    start: str = Field(description="In the mentor's zone, with its offset")
    end: str
    hold_expires_at: datetime
    warnings: list[WarningView]


def _unavailable(message: str) -> ApiError:
    return ApiError(HTTPStatus.CONFLICT, "slot_unavailable", message)


def _check_place(body: CreatePrivateSessionRequest) -> None:
    online = body.format is ClassFormat.ONLINE
    if online and body.location is not None:
        raise invalid("location", "an online session has no location (its meeting link is minted for it)")
    if not online and body.location is None:
        raise invalid("location", "an in-person session needs a location")
    if not online and body.meeting_provider is not None:
        raise invalid("meetingProvider", "only online sessions have a meeting provider")


def _conflict(exc: BaseException) -> bool:
    """A transaction that lost to a concurrent write (a failed condition, or DynamoDB's TransactionConflict)."""
    if isinstance(exc, TransactionConflict):
        return True
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") in ("TransactionConflict", "ConditionalCheckFailed") for r in reasons)
    return False


@dataclass
class PrivateSessions:
    """The write of ``POST /private-sessions`` (see the module doc)."""

    store: Store
    schedule: ScheduleStore
    mentor_time: TimeSource
    hold: timedelta
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def create(self, body: CreatePrivateSessionRequest) -> PrivateSessionCreated:
        now = self.clock()
        start = body.start.astimezone(UTC)
        if not plausible_year(body.start, now) or not in_range(start, now):
            raise invalid("start", range_message(now), code="out_of_range")
        if start <= now:
            raise invalid("start", f"a session must start in the future ({body.start.isoformat()} has passed)")
        _check_place(body)
        provider: MeetingProvider | None = None
        warnings: list[str] = []
        if body.format is ClassFormat.ONLINE:
            provider, warnings = online_rules(
                self.store, body.mentor_id, body.meeting_provider, body.duration_minutes, what="sessions"
            )
        mentor = self.mentor_time(body.mentor_id, now)
        if mentor is None:
            raise _unavailable("The mentor has not set their availability; no time can be booked.")
        duration = timedelta(minutes=body.duration_minutes)
        end = start + duration
        lo, hi = start - mentor.buffer_before, end + mentor.buffer_after
        class_id = new_class_id()
        item = ClassItem(
            class_id=class_id,
            mentor_id=body.mentor_id,
            title=body.title or f"Private session with {body.student_name}"[:200],
            format=body.format,
            timezone=mentor.timezone,
            duration_minutes=body.duration_minutes,
            capacity=1,
            location=body.location,
            meeting_provider=provider,
            private=True,
            warnings=tuple(warnings),
        )
        session = Session(
            class_id=class_id,
            session_id=session_id_for(class_id, 1),
            mentor_id=body.mentor_id,
            start=start,
            end=end,
            capacity=1,
        )
        token = secrets.token_urlsafe(32)
        booking = Booking(
            booking_id="bkg_" + secrets.token_hex(12),
            session_id=session.session_id,
            class_id=class_id,
            mentor_id=body.mentor_id,
            student_email=body.student_email,
            student_name=body.student_name,
            token_hash=hash_token(token),
            price_amount=body.price_amount,
            currency=body.currency,
            hold_expires_at=now + self.hold,
            claim=(int(start.timestamp()), int(end.timestamp()), int(lo.timestamp()), int(hi.timestamp())),
        )
        span = Span(booking.booking_id, session.session_id, int(start.timestamp()), int(end.timestamp()))
        self._write(mentor, item, session, booking, span, now=now)
        logger.info(
            "private session created",
            extra={"session_id": session.session_id, "booking_id": booking.booking_id, "format": body.format.value},
        )
        zone = ZoneInfo(mentor.timezone)
        return PrivateSessionCreated(
            session_id=session.session_id,
            class_id=class_id,
            booking_id=booking.booking_id,
            booking_token=token,
            status=BookingStatus.PENDING,
            start=start.astimezone(zone).isoformat(),
            end=end.astimezone(zone).isoformat(),
            hold_expires_at=now + self.hold,
            warnings=[WarningView(code=w, message=WARNINGS[w]) for w in warnings],
        )

    def _write(
        self, mentor: MentorTime, item: ClassItem, session: Session, booking: Booking, span: Span, *, now: datetime
    ) -> None:
        """Re-check the time against a consistent read and claim it with that read (retried on a race)."""
        assert booking.claim is not None
        lo, hi = booking.claim[2], booking.claim[3]
        duration = session.end - session.start
        timeline = self.schedule.timeline
        for attempt in range(1, ATTEMPTS + 1):
            snap = timeline.snapshot(item.mentor_id, min(lo, span.start), max(hi, span.end))
            window_lo = datetime.fromtimestamp(lo, UTC) - duration
            window_hi = datetime.fromtimestamp(hi, UTC) + duration
            class_ids = snap.classes_over(int(window_lo.timestamp()), int(window_hi.timestamp()))
            blocks = [(s.start, s.end) for s in self.schedule.sessions_over(class_ids, window_lo, window_hi)]
            blocks += [
                (datetime.fromtimestamp(s.start, UTC), datetime.fromtimestamp(s.end, UTC)) for s in snap.spans.values()
            ]
            if not mentor.bookable(session.start, duration, now=now, blocks=blocks):
                raise _unavailable("This time is no longer free; choose another slot.")
            claim = timeline.claim_ops(snap, item.mentor_id, span, lo, hi)
            try:
                self.schedule.create_private(item, session, booking, claim)
                return
            except (TransactionConflict, ClientError) as exc:
                if not _conflict(exc):
                    raise
                logger.info("private session write raced", extra={"attempt": attempt, "mentor_id": item.mentor_id})
                time.sleep(random.uniform(0.005, 0.03) * attempt)  # noqa: S311 - jitter, not a secret
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "try_again", "Many bookings for this mentor at once; try again.")
