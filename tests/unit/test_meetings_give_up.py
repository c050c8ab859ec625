"""A mint job that fails its last receive reaches the DLQ *with* a reason (issue 8, provider faults).

Regression: a provider down for longer than the five receives (every attempt a retryable 503) used
to send the job to the dead-letter queue with nothing on the booking: no ``meetingStatus``, no
``meetingError``, no word to the mentor, exactly like a job never processed. Now the last receive
records ``failed`` and the reason on the booking and e-mails the mentor once per session; the
earlier receives still leave the booking alone (a later one may well succeed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from classes_support import one_session_zoom_class
from pydantic import SecretStr

from shared import wiring
from shared.meetings.worker import MeetingsWorker, RetryLater, process_message
from shared.notify.emails import OutgoingEmail
from shared.platform import aws
from shared.providers.meetings import MeetingError
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import (
    Booking,
    MeetingProvider,
    MeetingStatus,
    ScheduleStore,
    Session,
    Store,
    Table,
)
from shared.store.meetings import MeetingLedger

START = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
ZOOM = MeetingProvider.ZOOM


class DownClient:
    """Zoom answering every call with 503 (or raising ``error`` instead)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or MeetingError(
            "Zoom answered HTTP 503.", code="unavailable", status=503, retryable=True, provider="zoom"
        )
        self.calls = 0

    def create(self, token: SecretStr, spec: Any) -> Any:
        self.calls += 1
        raise self.error

    def find(self, token: SecretStr, spec: Any) -> Any:
        self.calls += 1
        raise self.error


class Outbox:
    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> str:
        self.sent.append(email)
        return "msg"


@pytest.fixture
def session(schedule: ScheduleStore, store: Store) -> Session:
    store.upsert_mentor("m-1", email="mentor@example.com")
    return one_session_zoom_class(schedule, "cls_g", START)


def _confirmed(schedule: ScheduleStore, session: Session, booking_id: str) -> MeetingJob:
    schedule.create_booking(
        Booking(
            booking_id=booking_id,
            session_id=session.session_id,
            class_id="cls_g",
            mentor_id="m-1",
            student_email=f"{booking_id}@example.com",
            student_name="S",
            token_hash=hashlib.sha256(booking_id.encode()).hexdigest(),
        )
    )
    assert schedule.confirm_booking(booking_id) is not None
    return MeetingJob(
        kind=JobKind.BOOKING_CONFIRMED,
        mentorId="m-1",
        classId="cls_g",
        sessionId=session.session_id,
        bookingId=booking_id,
    )


def _worker(schedule: ScheduleStore, store: Store, client: Any, outbox: Outbox) -> MeetingsWorker:
    return MeetingsWorker(
        schedule=schedule,
        ledger=MeetingLedger(Table(aws.client("dynamodb"), schedule.table.name), schedule),
        store=store,
        tokens=lambda mentor_id, provider: SecretStr("token"),
        clients=lambda provider: client,
        mailer=outbox,  # type: ignore[arg-type]
        app_url="http://app.example.test",
        lease_s=0.0,  # every retry may take over at once
    )


def _booking(schedule: ScheduleStore, booking_id: str) -> Booking:
    found = schedule.get_booking(booking_id)
    assert found is not None
    return found


def test_a_provider_down_for_every_receive_records_the_reason_on_the_last(
    schedule: ScheduleStore, store: Store, session: Session
) -> None:
    # Given two confirmed bookings of a Zoom session, and Zoom answering every call with 503
    client, outbox = DownClient(), Outbox()
    worker = _worker(schedule, store, client, outbox)
    jobs = [_confirmed(schedule, session, "bkg_a"), _confirmed(schedule, session, "bkg_b")]
    # When the first job fails its first four receives
    for receive in range(1, 5):
        with pytest.raises(RetryLater):
            process_message(jobs[0].body(), receive_count=receive, worker=worker)
        # Then nothing is recorded yet: the next receive may still make the meeting
        assert _booking(schedule, "bkg_a").meeting_status is None
    assert outbox.sent == []
    # When it fails its fifth (the queue's last) receive
    with pytest.raises(RetryLater):
        process_message(jobs[0].body(), receive_count=5, worker=worker)
    # Then the booking says it failed, and why, in words; the mentor heard once
    booking = _booking(schedule, "bkg_a")
    assert booking.meeting_status == "failed"
    assert booking.meeting_url is None
    assert booking.meeting_error == "The meeting could not be created (unavailable: Zoom answered HTTP 503.)."
    assert [(m.to, m.subject.split(":")[0]) for m in outbox.sent] == [("mentor@example.com", "Action needed")]
    # And the other booking's job, failing its last receive too, records its own reason, no 2nd mail
    with pytest.raises(RetryLater):
        process_message(jobs[1].body(), receive_count=5, worker=worker)
    assert _booking(schedule, "bkg_b").meeting_status == "failed"
    assert len(outbox.sent) == 1
    assert client.calls == 6
    # And the session's meeting is still open for a redrive (no meeting was made; nothing marked created)
    current = schedule.get_session(session.session_id)
    assert current is not None
    assert current.meeting is not None
    assert current.meeting.status is not MeetingStatus.CREATED


@pytest.fixture
def two_receives(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MEETINGS_MAX_RECEIVES", "2")
    wiring.reset()
    yield
    monkeypatch.delenv("MEETINGS_MAX_RECEIVES")
    wiring.reset()


def test_an_unexpected_error_on_the_last_receive_is_recorded_too(
    schedule: ScheduleStore, store: Store, session: Session, two_receives: None
) -> None:
    # Given a queue redriving after 2 receives (MEETINGS_MAX_RECEIVES), and a bug in the provider client
    outbox = Outbox()
    worker = _worker(schedule, store, DownClient(KeyError("id")), outbox)
    job = _confirmed(schedule, session, "bkg_c")
    with pytest.raises(KeyError):
        process_message(job.body(), receive_count=1, worker=worker)
    assert _booking(schedule, "bkg_c").meeting_status is None
    # When the last receive fails the same way
    with pytest.raises(KeyError):
        process_message(job.body(), receive_count=2, worker=worker)
    # Then the original error still propagates (DLQ next) and the booking says why, without details
    booking = _booking(schedule, "bkg_c")
    assert booking.meeting_status == "failed"
    assert booking.meeting_error == "The meeting could not be created (internal error: KeyError)."
    assert len(outbox.sent) == 1


def test_nothing_is_overwritten_when_the_booking_has_its_link_or_was_cancelled(
    schedule: ScheduleStore, store: Store, session: Session
) -> None:
    outbox = Outbox()
    worker = _worker(schedule, store, DownClient(), outbox)
    # A booking that has its link (its confirmation e-mail was what kept failing)
    linked = _confirmed(schedule, session, "bkg_d")
    assert worker.ledger.set_booking_meeting(
        "bkg_d", status="ready", url="https://zoom.example/j/1", provider=ZOOM, meeting_id="1"
    )
    assert worker.give_up(linked, "SES unavailable") == "gave_up:nothing_to_record"
    assert _booking(schedule, "bkg_d").meeting_status == "ready"
    # A booking cancelled meanwhile
    cancelled = _confirmed(schedule, session, "bkg_e")
    schedule.cancel_booking("bkg_e", "student")
    assert worker.give_up(cancelled, "whatever") == "gave_up:nothing_to_record"
    # A job of another kind is only logged
    moved = MeetingJob(kind=JobKind.SESSION_MOVED, mentorId="m-1", classId="cls_g", sessionId=session.session_id)
    assert worker.give_up(moved, "unavailable: Zoom answered HTTP 503.") == "gave_up:logged"
    assert outbox.sent == []


def test_the_handler_passes_the_receive_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import functions.mint_meeting.handler as handler
    from devstack.pumps import sqs_event
    from devstack.routes import LambdaContext

    seen: list[int] = []

    def fake(body: str, receipt_handle: str | None = None, *, receive_count: int = 1, **_: Any) -> str:
        seen.append(receive_count)
        return "ready"

    monkeypatch.setattr(handler, "process_message", fake)
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "5", "SentTimestamp": "1"},
    }
    event = sqs_event([message], queue_arn="arn:aws:sqs:us-east-1:123456789012:meetings", region="us-east-1")
    assert handler.lambda_handler(event, LambdaContext("mint_meeting")) == {"batchItemFailures": []}
    assert seen == [5]
