"""DynamoDB single-table store: schema, item models and repositories."""

from __future__ import annotations

from shared.store.errors import ConflictError, NotFoundError, StoreError
from shared.store.models import (
    Booking,
    BookingStatus,
    ClassFormat,
    ClassItem,
    Connection,
    ConnectionStatus,
    MeetingProvider,
    MeetingRef,
    MeetingStatus,
    Mentor,
    Plan,
    Provider,
    Session,
    SessionStatus,
)
from shared.store.repository import Store
from shared.store.schedule import MAX_SESSIONS, ScheduleStore, SessionNotBookable
from shared.store.table import Table

__all__ = [
    "MAX_SESSIONS",
    "Booking",
    "BookingStatus",
    "ClassFormat",
    "ClassItem",
    "ConflictError",
    "Connection",
    "ConnectionStatus",
    "MeetingProvider",
    "MeetingRef",
    "MeetingStatus",
    "Mentor",
    "NotFoundError",
    "Plan",
    "Provider",
    "ScheduleStore",
    "Session",
    "SessionNotBookable",
    "SessionStatus",
    "Store",
    "StoreError",
    "Table",
]
