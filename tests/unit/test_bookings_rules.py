"""The rules of shared.schedule.bookings without HTTP or AWS: who may see a booking, token handling, and
retrying a transaction DynamoDB cancelled for a concurrent one."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from shared.platform import auth
from shared.platform.api import ApiError
from shared.schedule.bookings import (
    CallerKind,
    CreateBookingRequest,
    create_booking,
    hash_token,
)
from shared.schedule.bookings import authorize as _authorize
from shared.store import Booking, Session, SessionNotBookable

NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
TOKEN = "t" * 43


def _booking(**over: Any) -> Booking:
    values: dict[str, Any] = {
        "booking_id": "bkg_1",
        "session_id": "cls_a-s01",
        "class_id": "cls_a",
        "mentor_id": "m-1",
        "student_email": "s@example.com",
        "student_name": "S",
        "token_hash": hash_token(TOKEN),
    }
    values.update(over)
    return Booking(**values)


PRICE = {"priceAmount": 2500, "currency": "eur"}


class FakeSchedule:
    def __init__(self, booking: Booking | None = None, failures: list[Exception] | None = None) -> None:
        self.booking = booking
        self.failures = list(failures or [])
        self.attempts = 0
        self.session = Session(
            class_id="cls_a",
            session_id="cls_a-s01",
            mentor_id="m-1",
            start=NOW + timedelta(days=3),
            end=NOW + timedelta(days=3, hours=1),
            capacity=1,
        )

    def get_booking(self, booking_id: str) -> Booking | None:
        return self.booking if self.booking and self.booking.booking_id == booking_id else None

    def booking_token_hash(self, booking_id: str) -> str | None:
        booking = self.get_booking(booking_id)
        return booking.token_hash if booking else None

    def get_session(self, session_id: str) -> Session | None:
        return self.session if session_id == self.session.session_id else None

    def due_holds(self, session_id: str, now: datetime) -> list[str]:
        return []

    def create_booking(self, booking: Booking) -> Booking:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.booking = booking
        return booking


class FakeVerifier:
    def verify(self, token: str) -> dict[str, Any]:
        if token.startswith("good-"):
            return {"sub": token.removeprefix("good-")}
        if token == "jwks-down":
            raise auth.JwksUnavailable("down")
        raise auth.AuthError("bad")


authorize = functools.partial(_authorize, verifier=FakeVerifier)


def _status(fn: Any) -> tuple[int, str]:
    with pytest.raises(ApiError) as err:
        fn()
    return err.value.status, err.value.code


def test_the_token_holder_and_the_owning_mentor_get_in() -> None:
    schedule: Any = FakeSchedule(_booking())
    booking, caller = authorize(schedule, "bkg_1", token=TOKEN, authorization=None)
    assert (booking.booking_id, caller.kind) == ("bkg_1", CallerKind.STUDENT)
    booking, caller = authorize(schedule, "bkg_1", token=None, authorization="Bearer good-m-1")
    assert (caller.kind, caller.mentor_id) == (CallerKind.MENTOR, "m-1")


def test_everyone_else_gets_the_same_404_or_a_401() -> None:
    schedule: Any = FakeSchedule(_booking())
    not_found = (404, "booking_not_found")
    assert _status(lambda: authorize(schedule, "bkg_1", token="wrong", authorization=None)) == not_found
    assert _status(lambda: authorize(schedule, "bkg_1", token="", authorization=None)) == not_found
    assert _status(lambda: authorize(schedule, "bkg_1", token="x" * 500, authorization=None)) == not_found
    assert _status(lambda: authorize(schedule, "bkg_2", token=TOKEN, authorization=None)) == not_found
    assert _status(lambda: authorize(schedule, "bkg_1", token=None, authorization="Bearer good-m-2")) == not_found
    assert _status(lambda: authorize(schedule, "bkg_1", token=None, authorization=None)) == (401, "unauthorized")
    assert _status(lambda: authorize(schedule, "bkg_1", token=None, authorization="Bearer bad")) == (
        401,
        "unauthorized",
    )
    assert _status(lambda: authorize(schedule, "bkg_1", token=None, authorization="Bearer jwks-down")) == (
        503,
        "auth_unavailable",
    )


def test_only_the_tokens_hash_is_kept() -> None:
    schedule: Any = FakeSchedule()
    body = CreateBookingRequest.model_validate(
        {"sessionId": "cls_a-s01", "studentEmail": "s@example.com", "studentName": "S", **PRICE}
    )
    created = create_booking(schedule, body, now=NOW)
    assert len(created.booking_token) >= 43
    assert schedule.booking.token_hash == hashlib.sha256(created.booking_token.encode()).hexdigest()
    assert created.booking_token not in repr(schedule.booking)


def _cancelled(reason: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException"},
            "CancellationReasons": [{"Code": reason}, {"Code": "None"}],
        },
        "TransactWriteItems",
    )


def test_a_transaction_conflict_is_retried_but_a_full_session_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.schedule.bookings.time.sleep", lambda s: None)
    body = CreateBookingRequest.model_validate(
        {"sessionId": "cls_a-s01", "studentEmail": "s@example.com", "studentName": "S", **PRICE}
    )
    # DynamoDB cancelled twice for a concurrent transaction, then it goes through
    schedule: Any = FakeSchedule(failures=[_cancelled("TransactionConflict"), _cancelled("TransactionConflict")])
    assert create_booking(schedule, body, now=NOW).status.value == "PENDING"
    assert schedule.attempts == 3
    # Always conflicting: 503 try_again, not a 500
    schedule = FakeSchedule(failures=[_cancelled("TransactionConflict")] * 10)
    assert _status(lambda: create_booking(schedule, body, now=NOW)) == (503, "try_again")
    # Full: one attempt, 409 session_full
    schedule = FakeSchedule(failures=[SessionNotBookable("session_full", "full")])
    assert _status(lambda: create_booking(schedule, body, now=NOW)) == (409, "session_full")
    assert schedule.attempts == 1
    # Any other AWS error is not swallowed
    schedule = FakeSchedule(failures=[ClientError({"Error": {"Code": "InternalServerError"}}, "TransactWriteItems")])
    with pytest.raises(ClientError):
        create_booking(schedule, body, now=NOW)


def test_a_started_or_unknown_session_cannot_be_booked() -> None:
    schedule: Any = FakeSchedule()
    late = CreateBookingRequest.model_validate(
        {"sessionId": "cls_a-s01", "studentEmail": "s@example.com", "studentName": "S", **PRICE}
    )
    assert _status(lambda: create_booking(schedule, late, now=NOW + timedelta(days=4))) == (409, "session_started")
    unknown = late.model_copy(update={"session_id": "cls_b-s01"})
    assert _status(lambda: create_booking(schedule, unknown, now=NOW)) == (404, "session_not_found")
