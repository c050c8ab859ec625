"""Shared pieces of the classes and bookings e2e tests (imported by those test modules)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from e2e_support import Providers

from devstack import flows, stripe_events
from devstack.outbox import read_outbox
from devstack.stack import LocalStack
from shared import wiring
from shared.store import (
    ClassFormat,
    ClassItem,
    Connection,
    ConnectionStatus,
    MeetingProvider,
    MeetingRef,
    Provider,
    ScheduleStore,
    Session,
    Store,
    Table,
)
from shared.store.schedule import session_id_for

BERLIN = ZoneInfo("Europe/Berlin")


def future(days: int = 30, hour: int = 18, tz: ZoneInfo = BERLIN) -> str:
    """A naive local ISO date-time ``days`` from now at ``hour``:00 (a class-zone wall time)."""
    day = (datetime.now(tz) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, 0).isoformat()


def in_person(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Morning flow",
        "format": "in_person",
        "timezone": "Europe/Berlin",
        "durationMinutes": 60,
        "capacity": 8,
        "location": "Studio 3, Kastanienallee 12, Berlin",
        "starts": [future(30), future(37)],
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def online(**over: Any) -> dict[str, Any]:
    return in_person(**{"format": "online", "location": None, "title": "Online vinyasa", **over})


def tables(local_stack: LocalStack) -> tuple[Store, ScheduleStore]:
    """A mentor/connection store and a schedule store over the stack's table (one boto3 client)."""
    table = Table(local_stack.client("dynamodb"), os.environ["TABLE_NAME"])
    return Store(table), ScheduleStore(table)


def set_plan(store: Store, mentor: str, plan: str) -> None:
    store.upsert_mentor(mentor, plan=plan)


def connect(
    store: Store,
    mentor: str,
    provider: Provider,
    *,
    status: ConnectionStatus = ConnectionStatus.CONNECTED,
    plan_type: int | None = None,
) -> None:
    """A connection as classes_api sees it (status + Zoom plan type; no credential needed)."""
    store.save_connection(
        Connection(mentor_id=mentor, provider=provider, status=status, plan_type=plan_type), expected_version=None
    )


def pro_mentor(local_stack: LocalStack, mentor_headers: Callable[..., dict[str, str]], mentor: str) -> dict[str, str]:
    """A Pro mentor with the e-mail ``<mentor>@mentor.example.com``; their JWT header."""
    store, _ = tables(local_stack)
    set_plan(store, mentor, "pro")
    store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com")
    return mentor_headers(mentor)


def session_meeting(schedule: ScheduleStore, session_id: str) -> MeetingRef:
    """The meeting recorded on the session (it must have one)."""
    session = schedule.get_session(session_id)
    assert session is not None
    assert session.meeting is not None
    return session.meeting


def oauth_mentor(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor_headers: Callable[..., dict[str, str]],
    mentor: str,
    which: str,
) -> dict[str, str]:
    """A pro mentor (e-mail ``<mentor>@mentor.example.com``) connected to ``which`` (google | zoom)
    through the real OAuth flow, as ``<mentor>@example.com`` at the emulator; their JWT header."""
    headers = pro_mentor(local_stack, mentor_headers, mentor)
    email = f"{mentor}@example.com"
    if which == "google":
        flows.seed_google_account(providers.google, email, calendars=[])
    else:
        flows.seed_zoom_account(providers.zoom, email, plan=2)
    assert flows.connect_oauth(api, headers, which)["status"] == "connected"
    return headers


def live_meetings(providers: Providers, which: str, email: str, title: str) -> list[dict[str, Any]]:
    """The meetings the provider holds for a class: Google events (not cancelled) on ``email``'s
    calendar, or Zoom meetings, whose title is ``title``."""
    if which == "google":
        return [
            e for e in providers.google.events(email) if e.get("summary") == title and e.get("status") != "cancelled"
        ]
    return [m for m in providers.zoom.meetings() if m.get("topic") == title]


def one_session_zoom_class(schedule: ScheduleStore, class_id: str, start: datetime) -> Session:
    """A Zoom class of mentor ``m-1`` with one 60-minute session of 3 seats at ``start``, written
    straight to the table (unit tests of the meetings ledger and worker); the session."""
    klass = ClassItem(
        class_id=class_id,
        mentor_id="m-1",
        title="Zoom class",
        format=ClassFormat.ONLINE,
        timezone="Europe/Berlin",
        duration_minutes=60,
        capacity=3,
        meeting_provider=MeetingProvider.ZOOM,
    )
    session = Session(
        class_id=class_id,
        session_id=session_id_for(class_id, 1),
        mentor_id="m-1",
        start=start,
        end=start + timedelta(hours=1),
        capacity=3,
    )
    schedule.create_class(klass, [session])
    return session


def meetings_dlq_depth(local_stack: LocalStack) -> int:
    """Messages in the meetings dead-letter queue (visible or in flight)."""
    attrs = local_stack.client("sqs").get_queue_attributes(
        QueueUrl=local_stack.aws.meetings.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def create(api: httpx.Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = api.post("/classes", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


@dataclass
class JobsQueue:
    """A private SQS queue in the stack's moto standing in for the meetings queue during one test.

    No pump reads it, so every job the functions queued can be read back exactly.
    """

    sqs: Any
    url: str

    def drain(self) -> list[dict[str, Any]]:
        """Every job queued so far (removed from the queue), oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            resp = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = resp.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


@contextmanager
def private_jobs_queue(local_stack: LocalStack) -> Iterator[JobsQueue]:
    """Point ``MEETINGS_QUEUE_URL`` at a fresh queue for the duration (caches reset both ways)."""
    sqs = local_stack.client("sqs")
    url = sqs.create_queue(QueueName=f"meetings-test-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MEETINGS_QUEUE_URL", url)
            wiring.reset()
            yield JobsQueue(sqs, url)
    finally:
        wiring.reset()
        sqs.delete_queue(QueueUrl=url)


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def student_email(session_id: str, n: int) -> str:
    """Student ``n``'s address for a session, unique to it (the outbox is shared by the test session)."""
    return f"student{n}.{hashlib.sha256(session_id.encode()).hexdigest()[:10]}@example.com"


def subjects_to(local_stack: LocalStack, to: str) -> list[str]:
    """The subjects of the e-mails sent to ``to``."""
    return [m.subject for m in read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"]) if to in m.to]


def book_and_pay(local_stack: LocalStack, api: httpx.Client, platform: dict[str, str], session_id: str, n: int) -> str:
    """The platform books a seat for student ``n`` (4900 USD) and Stripe confirms it; the booking id."""
    resp = api.post(
        "/bookings",
        json={
            "sessionId": session_id,
            "studentEmail": student_email(session_id, n),
            "studentName": f"Student {n}",
            "priceAmount": 4900,
            "currency": "USD",
        },
        headers=platform,
    )
    assert resp.status_code == 201, resp.text
    booking_id = str(resp.json()["bookingId"])
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    paid = stripe_events.send(local_stack.api_url, event, os.environ["STRIPE_WEBHOOK_SECRET"], client=api)
    assert paid.status_code == 200, paid.text
    return booking_id


def settle(
    local_stack: LocalStack, providers: Providers, *, zoom_webhooks: bool = True, deadline_s: float = 30.0
) -> None:
    """Until no provider delivery is in flight and the queues are empty (a delivery may queue more work).

    Waits for Google's pushes and, with ``zoom_webhooks``, Zoom's webhooks too.
    """
    for _ in range(5):
        if zoom_webhooks:
            providers.zoom.wait_webhooks()
        providers.google.flush_pushes()
        local_stack.drain(timeout=deadline_s)
        quiet_zoom = providers.zoom.wait_webhooks(timeout=0.2) if zoom_webhooks else True
        if quiet_zoom and providers.google.flush_pushes(timeout=0.2):
            return


def until(
    condition: Callable[[], bool],
    local_stack: LocalStack,
    providers: Providers,
    *,
    zoom_webhooks: bool = True,
    deadline_s: float = 30.0,
    what: str = "did not converge",
) -> float:
    """Seconds until ``condition`` holds, settling the stack in between (fails with ``what`` after ``deadline_s``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline_s, f"{what} within {deadline_s:.0f} s"
        settle(local_stack, providers, zoom_webhooks=zoom_webhooks, deadline_s=deadline_s)
        time.sleep(0.05)
    return time.monotonic() - started
