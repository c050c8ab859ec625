"""Domain items kept in the single table: mentors and their provider connections."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Provider(StrEnum):
    """A provider a mentor can connect."""

    GOOGLE = "google"
    ZOOM = "zoom"
    APPLE = "apple"


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

    model_config = ConfigDict(frozen=True)

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
