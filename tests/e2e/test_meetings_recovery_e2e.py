"""Exactly one meeting per session, even when a worker dies between the provider call and the store write.

The worker runs in-process here (not through the pump) so the test decides when it "crashes" and
when its reservation's lease runs out; everything else is real: the stack's table, the emulators,
KMS-sealed tokens from a real OAuth connect, moto's SES.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from classes_support import create, future, online, set_plan, tables
from e2e_support import Providers

from devstack import flows
from devstack.stack import LocalStack
from shared import wiring
from shared.meetings.worker import MeetingsWorker, RetryLater
from shared.notify.emails import Mailer
from shared.providers.meetings import meetings_client
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import BookingStatus, MeetingStatus, Table
from shared.store.meetings import MeetingLedger

Headers = Callable[..., dict[str, str]]


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _worker(local_stack: LocalStack, clock: Clock) -> MeetingsWorker:
    store, schedule = tables(local_stack)
    table = Table(local_stack.client("dynamodb"), os.environ["TABLE_NAME"])
    return MeetingsWorker(
        schedule=schedule,
        ledger=MeetingLedger(table, schedule, clock=clock),
        store=store,
        tokens=wiring.credentials().access_token,
        clients=meetings_client,
        mailer=Mailer(local_stack.client("sesv2")),
        app_url="http://app.example.test",
        lease_s=60.0,
    )


def _count(providers: Providers, provider: str, title: str, email: str) -> int:
    if provider == "zoom":
        return len([m for m in providers.zoom.meetings() if m.get("topic") == title])
    return len(
        [e for e in providers.google.events(email) if e.get("summary") == title and e.get("status") != "cancelled"]
    )


@pytest.mark.parametrize("provider", ["google", "zoom"])
def test_crash_after_provider_call_never_mints_twice(
    provider: str,
    api: httpx.Client,
    platform_headers: dict[str, str],
    local_stack: LocalStack,
    providers: Providers,
    mentor: str,
    mentor_headers: Headers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a confirmed booking, when the worker dies right after the provider made the meeting,
    then the retry (after the reservation's lease) finds that meeting instead of making another,
    and duplicate jobs afterwards change nothing."""
    store, schedule = tables(local_stack)
    set_plan(store, mentor, "pro")
    headers = mentor_headers(mentor)
    email = f"{mentor}@example.com"
    if provider == "google":
        flows.seed_google_account(providers.google, email)
    else:
        flows.seed_zoom_account(providers.zoom, email, plan=2)
    flows.connect_oauth(api, headers, provider)
    title = f"Recovery {provider} {mentor}"
    meeting_provider = "google_meet" if provider == "google" else "zoom"
    klass = create(api, headers, online(title=title, meetingProvider=meeting_provider, starts=[future(40)]))
    session_id = klass["sessions"][0]["sessionId"]
    resp = api.post(
        "/bookings",
        json={
            "sessionId": session_id,
            "studentEmail": "crash@example.com",
            "studentName": "Crash Test",
            "priceAmount": 4900,
            "currency": "USD",
        },
        headers=platform_headers,
    )
    assert resp.status_code == 201, resp.text
    booking_id = resp.json()["bookingId"]
    # Confirmed directly (no job on the pumped queue): this test delivers the job itself.
    assert schedule.confirm_booking(booking_id) is not None
    job = MeetingJob(
        kind=JobKind.BOOKING_CONFIRMED,
        mentorId=mentor,
        classId=klass["classId"],
        sessionId=session_id,
        bookingId=booking_id,
    )
    clock = Clock()
    worker = _worker(local_stack, clock)

    # When: the provider call succeeds, then the process "dies" before recording it.
    real_record = worker.ledger.record

    def dying_record(held: Any, **kwargs: Any) -> Any:
        if kwargs.get("status") is MeetingStatus.CREATED:
            raise SystemExit("worker killed after the provider call")
        return real_record(held, **kwargs)

    monkeypatch.setattr(worker.ledger, "record", dying_record)
    with pytest.raises(SystemExit):
        worker.handle(job)
    monkeypatch.setattr(worker.ledger, "record", real_record)
    assert _count(providers, provider, title, email) == 1

    # A redelivery while the dead worker's lease is live waits; after the lease it takes over.
    with pytest.raises(RetryLater):
        worker.handle(job)
    clock.offset += 61
    assert worker.handle(job) == "ready"
    for _ in range(3):  # duplicates
        assert worker.handle(job) == "ready"

    # Then: one meeting, the booking has its link, the student got one confirmation.
    assert _count(providers, provider, title, email) == 1
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.meeting_url
    session = schedule.get_session(session_id)
    assert session is not None
    assert session.meeting is not None
    assert session.meeting.status is MeetingStatus.CREATED
    assert session.meeting.url == booking.meeting_url
    from devstack.outbox import read_outbox

    sent = [
        m for m in read_outbox(os.environ["AWS_ENDPOINT_URL"]) if "crash@example.com" in m.to and title in m.subject
    ]
    assert len(sent) == 1
