"""Reconnecting resumes, end to end (issue 16 item 2; PRODUCT.md §2.2, §2.6).

The mentor's grant is revoked at the emulator, a paid booking records why it has no link, the mentor
reconnects through the real OAuth dance (authorize → consent → callback → complete) and — with no
manual step, the pumps delivering the queues in the background — the student has the link, the
mentor has one summary, the calendar was re-synced at once, and a second reconnect changes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from classes_support import create, future, online, set_plan, tables
from e2e_support import Providers

from devstack import flows, stripe_events
from devstack.outbox import SentEmail, read_outbox
from devstack.stack import LocalStack
from shared.store import Provider
from shared.store.busy import BusyStore

#: The Done-when budget: the student has the link within 30 s of the reconnect.
DEADLINE_S = 30.0


def _mails(local_stack: LocalStack, to: str) -> list[SentEmail]:
    return [m for m in read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"]) if to in m.to]


def _booking(api: httpx.Client, booked: dict[str, Any]) -> dict[str, Any]:
    resp = api.get(f"/bookings/{booked['bookingId']}", params={"token": booked["bookingToken"]})
    assert resp.status_code == 200, resp.text
    found: dict[str, Any] = resp.json()
    return found


def _until(check: Callable[[], bool], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _meetings(providers: Providers, provider: str, email: str, title: str) -> int:
    if provider == "google":
        return len(
            [e for e in providers.google.events(email) if e.get("summary") == title and e.get("status") != "cancelled"]
        )
    return len([m for m in providers.zoom.meetings() if m.get("topic") == title])


@pytest.mark.parametrize(("provider", "meeting_provider"), [("google", "google_meet"), ("zoom", "zoom")])
def test_reconnect_gives_the_waiting_student_the_link_and_the_mentor_one_summary(
    provider: str,
    meeting_provider: str,
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor: str,
    mentor_headers: Callable[..., dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    # Given a Pro mentor with the provider connected and an online class with one future session
    store, _ = tables(local_stack)
    set_plan(store, mentor, "pro")
    mentor_email = f"{mentor}@mentor.example.com"
    store.upsert_mentor(mentor, email=mentor_email)
    headers = mentor_headers(mentor)
    email = f"{mentor}@example.com"
    emu = providers.google if provider == "google" else providers.zoom
    if provider == "google":
        flows.seed_google_account(providers.google, email)
    else:
        flows.seed_zoom_account(providers.zoom, email, plan=2)
    assert flows.connect_oauth(api, headers, provider)["status"] == "connected"
    title = f"Resume {provider} {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider=meeting_provider, starts=[future(21, 18)]))
    session_id = klass["sessions"][0]["sessionId"]

    # When the mentor's grant is revoked at the provider and a student pays
    assert emu.revoke_user_tokens(email) >= 1
    student = f"student.{session_id}@example.com"
    resp = api.post(
        "/bookings",
        json={
            "sessionId": session_id,
            "studentEmail": student,
            "studentName": "Sam",
            "priceAmount": 4900,
            "currency": "USD",
        },
        headers=platform_headers,
    )
    assert resp.status_code == 201, resp.text
    booked = resp.json()
    event = stripe_events.build_event("checkout.session.completed", booking_id=booked["bookingId"])
    paid = stripe_events.send(local_stack.api_url, event, os.environ["STRIPE_WEBHOOK_SECRET"], client=api)
    assert paid.status_code == 200, paid.text
    local_stack.drain()

    # Then the booking records why it has no link
    view = _booking(api, booked)
    assert view["status"] == "CONFIRMED"
    assert view["meetingUrl"] is None
    assert view["meetingStatus"] in ("needs_reconnect", "not_connected")
    assert _mails(local_stack, student) == []

    # When the mentor reconnects (authorize → consent → callback → complete), and nothing else happens
    emu.set_next_consent(email)
    reconnected_at = datetime.now(UTC)
    started = time.monotonic()
    assert flows.connect_oauth(api, headers, provider)["status"] == "connected"

    # Then the student has the link within 30 s, with the confirmation e-mail, and the mentor one summary
    deadline = started + DEADLINE_S
    assert _until(lambda: bool(_booking(api, booked)["meetingUrl"]), deadline), _booking(api, booked)
    seconds = time.monotonic() - started
    print(f"\n{provider}: link on the booking {seconds:.2f} s after the reconnect")

    def summaries() -> list[SentEmail]:
        return [m for m in _mails(local_stack, mentor_email) if "reconnected" in m.subject]

    assert _until(lambda: len(summaries()) >= 1, deadline)
    view = _booking(api, booked)
    assert view["meetingStatus"] == "ready"
    assert _meetings(providers, provider, email, title) == 1
    (confirmation,) = _mails(local_stack, student)
    assert view["meetingUrl"] in confirmation.text
    (summary,) = summaries()
    assert "1 join link was created after you reconnected" in summary.text
    if provider == "google":
        # And the calendar was re-synced at once (not by the 5-minute poll)
        def synced() -> bool:
            head = BusyStore(store.table).head(mentor, Provider.GOOGLE)
            return head is not None and head.synced_at is not None and head.synced_at >= reconnected_at

        assert _until(synced, deadline)

    # When the mentor reconnects a second time
    emu.set_next_consent(email)
    assert flows.connect_oauth(api, headers, provider)["status"] == "connected"
    local_stack.drain()
    # Then nothing new was queued: one meeting, one student e-mail, one summary
    assert _meetings(providers, provider, email, title) == 1
    assert len(_mails(local_stack, student)) == 1
    assert len(summaries()) == 1
