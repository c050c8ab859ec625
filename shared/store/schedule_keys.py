"""Key shapes of classes, sessions, bookings and hold markers, and the booking items' mapping
(see :mod:`shared.store.schedule`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.store.errors import ConflictError
from shared.store.models import Booking


class SessionNotBookable(ConflictError):
    """The session cannot take this booking; ``reason`` is ``session_full`` or ``session_cancelled``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def class_pk(class_id: str) -> str:
    """Partition of a class and its sessions."""
    return f"CLASS#{class_id}"


def session_sk(session_id: str) -> str:
    """Sort key of a session under its class."""
    return f"SESSION#{session_id}"


def booking_pk(booking_id: str) -> str:
    """Partition of a booking."""
    return f"BOOKING#{booking_id}"


def session_id_for(class_id: str, index: int) -> str:
    """The id of the ``index``-th (1-based) session of ``class_id``."""
    return f"{class_id}-s{index:02d}"


def class_id_of(session_id: str) -> str | None:
    """The class id inside a session id, or ``None`` if it is not one of ours."""
    head, sep, tail = session_id.rpartition("-s")
    return head if sep and head and tail.isdigit() else None


def iso_text(value: datetime) -> str:
    return value.isoformat()


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def hold_sk(session_id: str, expires: datetime, booking_id: str) -> str:
    """Sort key of a booking's hold marker under its class: ordered by session, then expiry."""
    return f"HOLD#{session_id}#{epoch_ms(expires):013d}#{booking_id}"


def hold_bucket(expires: datetime) -> str:
    """The GSI1 partition of holds ending in ``expires``'s UTC hour (``HOLDS#2027-03-01T18``)."""
    return "HOLDS#" + expires.astimezone(UTC).strftime("%Y-%m-%dT%H")


def booking_to_item(b: Booking) -> dict[str, Any]:
    return {
        "PK": booking_pk(b.booking_id),
        "SK": "BOOKING",
        "type": "booking",
        "GSI1PK": f"BOOKINGS#{b.session_id}",
        "GSI1SK": b.booking_id,
        **b.model_dump(mode="json", exclude_none=True),
    }


def hold_to_item(b: Booking) -> dict[str, Any]:
    assert b.hold_expires_at is not None
    return {
        "PK": class_pk(b.class_id),
        "SK": hold_sk(b.session_id, b.hold_expires_at, b.booking_id),
        "type": "hold",
        "GSI1PK": hold_bucket(b.hold_expires_at),
        "GSI1SK": f"{epoch_ms(b.hold_expires_at):013d}#{b.booking_id}",
        "booking_id": b.booking_id,
        "session_id": b.session_id,
        "hold_expires_at": iso_text(b.hold_expires_at),
    }


def booking_from_item(item: dict[str, Any]) -> Booking:
    return Booking.model_validate({k: v for k, v in item.items() if k in Booking.model_fields})
