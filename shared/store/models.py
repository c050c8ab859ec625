"""Domain items kept in the single table: mentors and their provider connections."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

# ``defer_build`` (marked "deferred" below): Connection, ClassItem, MeetingRef and Session are built on
# first use, not at import. The Stripe webhook imports this module for Booking and Mentor and never
# touches them, so its cold start does not pay for their validators (bench/README.md).


class Provider(StrEnum):
    """A provider a mentor can connect."""

    GOOGLE = "google"
    ZOOM = "zoom"
    APPLE = "apple"
    MICROSOFT = "microsoft"


class ConnectionStatus(StrEnum):
    """Status of one provider for one mentor (PRODUCT.md §2.2)."""

    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"
    NOT_CONNECTED = "not_connected"


class Plan(StrEnum):
    """The mentor's subscription plan (set by Stripe subscription events)."""

    FREE = "free"
    PRO = "pro"
    PREMIUM = "premium"


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


class Mentor(BaseModel):
    """A mentor's profile: what the rules need (plan, where to e-mail, which timezone)."""

    model_config = ConfigDict(frozen=True)

    mentor_id: str = Field(min_length=1, max_length=128)
    plan: Plan = Plan.FREE
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    timezone: str = "UTC"
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class Connection(BaseModel):
    """One provider connection of a mentor.

    ``credential`` is the vault's sealed blob (never plaintext); ``version`` increases by one on
    every write and guards against lost updates (optimistic locking).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)  # deferred

    mentor_id: str = Field(min_length=1, max_length=128)
    provider: Provider
    status: ConnectionStatus = ConnectionStatus.CONNECTED
    account_label: str | None = Field(default=None, description='e.g. "Connected as Ada Lovelace"')
    account_id: str | None = None
    selected_calendar: str | None = None
    plan_type: int | None = Field(default=None, description="Zoom user type (1 = Basic, free)")
    credential: bytes | None = Field(default=None, repr=False)
    status_reason: str | None = None
    version: int = 0
    connected_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


# -- classes, sessions and bookings (PRODUCT.md §2.4) ------------------------------------------


class ClassFormat(StrEnum):
    """Where a class happens."""

    ONLINE = "online"
    IN_PERSON = "in_person"


class MeetingProvider(StrEnum):
    """The video provider of an online class (the API's ``meetingProvider``)."""

    GOOGLE_MEET = "google_meet"
    ZOOM = "zoom"
    TEAMS = "teams"

    @property
    def connection(self) -> Provider:
        """The connection that mints this provider's meetings."""
        if self is MeetingProvider.GOOGLE_MEET:
            return Provider.GOOGLE
        return Provider.MICROSOFT if self is MeetingProvider.TEAMS else Provider.ZOOM


class SessionStatus(StrEnum):
    """A session is scheduled until the mentor cancels it."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class BookingStatus(StrEnum):
    """PENDING (seat held at checkout) → CONFIRMED (Stripe) → CANCELLED; PENDING → EXPIRED when the
    hold ends unpaid (a late payment still confirms it); CANCELLED is final (PRODUCT.md §2.4, §2.9)."""

    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class ClassItem(BaseModel):
    """A class: what it is, where, for how long and for how many; its sessions are separate items."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # deferred

    class_id: str
    mentor_id: str
    title: str
    format: ClassFormat
    timezone: str
    duration_minutes: int = Field(gt=0)
    capacity: int = Field(gt=0)
    location: str | None = None
    meeting_provider: MeetingProvider | None = None
    recurrence: str | None = Field(default=None, description="The RRULE the sessions were expanded from.")
    private: bool = Field(
        default=False, description="A private session (POST /private-sessions): one session, one seat."
    )
    warnings: tuple[str, ...] = ()
    created_at: datetime = Field(default_factory=utcnow)


class MeetingStatus(StrEnum):
    """Life of a session's meeting: reserved before the provider call, recorded after it."""

    RESERVED = "reserved"
    PENDING = "pending"  # Google: conference create still pending
    CREATED = "created"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


class MeetingRef(BaseModel):
    """The one provider meeting of a session (written only by the meetings worker).

    ``reservation`` / ``reserved_until`` make the provider call single-flight across workers;
    ``generation`` changes the provider-side idempotency key after a deletion, so a session that
    gets a new booking after its meeting was deleted mints a fresh one.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)  # deferred

    provider: MeetingProvider
    status: MeetingStatus
    generation: int = 1
    reservation: str | None = None
    reserved_until: float | None = None
    url: str | None = None
    meeting_id: str | None = None
    calendar_id: str | None = Field(default=None, description="Google: the calendar holding the event.")
    reason: str | None = None
    notified: bool = False
    updated_at: datetime = Field(default_factory=utcnow)


class Session(BaseModel):
    """One occurrence of a class. ``seats_taken`` counts PENDING + CONFIRMED bookings, ``confirmed``
    the CONFIRMED ones; both move in the same transaction as the booking's status."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # deferred

    class_id: str
    session_id: str
    mentor_id: str
    start: datetime
    end: datetime
    status: SessionStatus = SessionStatus.SCHEDULED
    capacity: int = Field(gt=0)
    seats_taken: int = 0
    confirmed: int = 0
    sequence: int = Field(default=0, description="Bumped on every change (the feed's SEQUENCE).")
    meeting: MeetingRef | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class Booking(BaseModel):
    """A student's seat in a session. Only ``token_hash`` of the booking token is stored."""

    model_config = ConfigDict(frozen=True)

    booking_id: str
    session_id: str
    class_id: str
    mentor_id: str
    student_email: str
    student_name: str
    status: BookingStatus = BookingStatus.PENDING
    token_hash: str = Field(repr=False)
    meeting_url: str | None = None
    meeting_provider: MeetingProvider | None = None
    meeting_id: str | None = None
    meeting_status: str | None = Field(
        default=None, description="ready | retrying | needs_reconnect | not_connected | failed (meetings worker)."
    )
    meeting_error: str | None = Field(default=None, description="Why there is no join link, in words.")
    cancel_reason: str | None = None
    job_pending: str | None = Field(
        default=None, description="A job recorded with the transition but not yet queued (create / cancel)."
    )
    price_amount: int | None = Field(default=None, description="What the booking costs, in minor units.")
    currency: str | None = Field(default=None, description="ISO 4217, upper case.")
    hold_expires_at: datetime | None = Field(default=None, description="The seat is held unpaid until then.")
    payment_intent: str | None = Field(default=None, description="The Stripe PaymentIntent that paid it.")
    over_capacity: bool = Field(default=False, description="Paid after its hold ended, into a full session.")
    claim: tuple[int, int, int, int] | None = Field(
        default=None,
        description="A private session's time in the mentor's timeline: start, end and the range its buffers "
        "keep free (epoch seconds); see shared.store.timeline.",
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
