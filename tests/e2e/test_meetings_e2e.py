"""Meetings end to end: gateway → Stripe webhook → SQS pump → mint_meeting → emulators → e-mails.

Every step is the real thing on loopback: classes and bookings through the local API gateway, a
Stripe event signed with the stack's secret, the pump delivering the meetings queue to the
worker, the Google / Zoom emulators holding the meetings, and moto's SES holding the e-mails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from classes_support import create, future, online, pro_mentor, tables
from e2e_support import Providers
from icalendar import Calendar

from devstack import flows, stripe_events
from devstack.outbox import SentEmail, read_outbox
from devstack.stack import LocalStack
from shared.store import ConnectionStatus, MeetingStatus, Provider

Headers = Callable[..., dict[str, str]]


def _connect(api: httpx.Client, providers: Providers, headers: dict[str, str], mentor: str, provider: str) -> str:
    email = f"{mentor}@example.com"
    if provider == "google":
        flows.seed_google_account(providers.google, email)
    else:
        flows.seed_zoom_account(providers.zoom, email, plan=2)
    assert flows.connect_oauth(api, headers, provider)["status"] == "connected"
    return email


def _book(api: httpx.Client, platform: dict[str, str], session_id: str, n: int) -> dict[str, Any]:
    resp = api.post(
        "/bookings",
        json={
            "sessionId": session_id,
            "studentEmail": _student(session_id, n),
            "studentName": f"Student {n}",
            "priceAmount": 4900,
            "currency": "USD",
        },
        headers=platform,
    )
    assert resp.status_code == 201, resp.text
    booked: dict[str, Any] = resp.json()
    return booked


def _student(session_id: str, n: int) -> str:
    """A student address unique to this session (the outbox is shared by the whole test session)."""
    return f"student{n}.{session_id}@example.com"


def _pay(local_stack: LocalStack, api: httpx.Client, booking_id: str) -> None:
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    resp = stripe_events.send(local_stack.api_url, event, os.environ["STRIPE_WEBHOOK_SECRET"], client=api)
    assert resp.status_code == 200, resp.text


def _booking(api: httpx.Client, booked: dict[str, Any]) -> dict[str, Any]:
    resp = api.get(f"/bookings/{booked['bookingId']}", params={"token": booked["bookingToken"]})
    assert resp.status_code == 200, resp.text
    found: dict[str, Any] = resp.json()
    return found


def _cancel(api: httpx.Client, booked: dict[str, Any]) -> int:
    resp = api.post(f"/bookings/{booked['bookingId']}/cancel", params={"token": booked["bookingToken"]})
    return resp.status_code


def _mails(local_stack: LocalStack, to: str) -> list[SentEmail]:
    return [m for m in read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"]) if to in m.to]


def _our_events(providers: Providers, calendar: str, title: str) -> list[dict[str, Any]]:
    return [
        e for e in providers.google.events(calendar) if e.get("summary") == title and e.get("status") != "cancelled"
    ]


@pytest.fixture
def mentor_setup(
    api: httpx.Client, local_stack: LocalStack, mentor: str, mentor_headers: Headers
) -> tuple[str, dict[str, str]]:
    return mentor, pro_mentor(local_stack, mentor_headers, mentor)


def test_google_meet_link_minted_once_shared_moved_and_deleted(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor_setup: tuple[str, dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    """Given a Pro mentor with Google connected and an online class,
    when two students book and pay, the session is moved and both cancel,
    then one Meet event serves both, keeps its link when moved, and is deleted with the last booking."""
    mentor, headers = mentor_setup
    email = _connect(api, providers, headers, mentor, "google")
    title = f"Meet class {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider="google_meet", starts=[future(20, 18)]))
    session = klass["sessions"][0]

    first, second = (
        _book(api, platform_headers, session["sessionId"], 1),
        _book(api, platform_headers, session["sessionId"], 2),
    )
    _pay(local_stack, api, first["bookingId"])
    local_stack.drain()
    one = _booking(api, first)
    assert one["status"] == "CONFIRMED"
    assert one["meetingUrl"].startswith("https://meet.google.com/")
    events = _our_events(providers, email, title)
    assert len(events) == 1
    assert events[0]["start"]["timeZone"] == "Europe/Berlin"
    assert events[0]["start"]["dateTime"].startswith(session["start"][:16])

    # The confirmation e-mail carries the link and a parseable .ics with the session's UID.
    (mail,) = _mails(local_stack, _student(session["sessionId"], 1))
    assert one["meetingUrl"] in mail.text
    assert one["meetingUrl"] in mail.html
    cal = Calendar.from_ical(mail.attachments["class.ics"])
    (vevent,) = cal.walk("VEVENT")
    assert str(vevent["UID"]) == f"{session['sessionId']}@mentor-connections"
    assert cal.walk("VTIMEZONE")

    # A second booking reuses the meeting; a duplicate Stripe delivery changes nothing.
    _pay(local_stack, api, second["bookingId"])
    _pay(local_stack, api, second["bookingId"])
    local_stack.drain()
    assert _booking(api, second)["meetingUrl"] == one["meetingUrl"]
    assert len(_our_events(providers, email, title)) == 1
    assert len(_mails(local_stack, _student(session["sessionId"], 2))) == 1

    # Move: the event is patched, the link stays, both students get a "moved" e-mail.
    new_start = future(21, 19)
    resp = api.patch(
        f"/classes/{klass['classId']}/sessions/{session['sessionId']}", json={"start": new_start}, headers=headers
    )
    assert resp.status_code in (200, 202), resp.text
    local_stack.drain()
    (moved_event,) = _our_events(providers, email, title)
    assert moved_event["start"]["dateTime"].startswith(new_start[:16])
    assert moved_event["hangoutLink"] == one["meetingUrl"] or one["meetingUrl"] in str(moved_event["conferenceData"])
    for n in (1, 2):
        subjects = [m.subject for m in _mails(local_stack, _student(session["sessionId"], n))]
        assert any(s.startswith("Moved:") for s in subjects), subjects

    # Cancel one of two: the meeting stays. Cancel the last: it is deleted.
    assert _cancel(api, first) == 202
    local_stack.drain()
    assert len(_our_events(providers, email, title)) == 1
    assert _booking(api, first)["meetingUrl"] is None
    assert _cancel(api, second) == 202
    local_stack.drain()
    assert _our_events(providers, email, title) == []
    _, schedule = tables(local_stack)
    stored = schedule.get_session(session["sessionId"])
    assert stored is not None
    assert stored.meeting is not None
    assert stored.meeting.status is MeetingStatus.DELETED
    assert any(m.subject.startswith("Cancelled:") for m in _mails(local_stack, _student(session["sessionId"], 2)))


def test_zoom_meeting_settings_and_reconnect_outcome(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor_setup: tuple[str, dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    """Given a Zoom class, when a booking is paid, then one scheduled meeting with the contract's settings
    exists; after the mentor disconnects Zoom a new session's booking records why it has no link."""
    mentor, headers = mentor_setup
    _connect(api, providers, headers, mentor, "zoom")
    title = f"Zoom class {mentor}"
    klass = create(
        api, headers, online(title=title, meetingProvider="zoom", durationMinutes=45, starts=[future(22), future(29)])
    )
    first_session, second_session = klass["sessions"]
    booked = _book(api, platform_headers, first_session["sessionId"], 3)
    _pay(local_stack, api, booked["bookingId"])
    local_stack.drain()
    view = _booking(api, booked)
    assert view["meetingUrl"]
    ours = [m for m in providers.zoom.meetings() if m.get("topic") == title]
    assert len(ours) == 1
    meeting = ours[0]
    assert meeting["type"] == 2
    assert meeting["duration"] == 45
    assert meeting["timezone"] == "Europe/Berlin"
    assert meeting["settings"]["join_before_host"] is True
    assert meeting["settings"]["waiting_room"] is False
    start = datetime.fromisoformat(first_session["start"]).astimezone(ZoneInfo("UTC"))
    assert meeting["start_time"].startswith(start.strftime("%Y-%m-%dT%H:%M"))

    assert api.delete("/connections/zoom", headers=headers).status_code == 204
    later = _book(api, platform_headers, second_session["sessionId"], 4)
    _pay(local_stack, api, later["bookingId"])
    local_stack.drain()
    view = _booking(api, later)
    assert view["status"] == "CONFIRMED"
    assert view["meetingUrl"] is None
    assert view["meetingStatus"] == "not_connected"
    assert "not connected" in view["meetingError"]
    mentor_mail = _mails(local_stack, f"{mentor}@mentor.example.com")
    assert len(mentor_mail) == 1
    assert mentor_mail[0].subject.startswith("Action needed")


@pytest.mark.parametrize(("provider", "meeting_provider"), [("google", "google_meet"), ("zoom", "zoom")])
def test_access_token_invalidated_before_expiry_is_refreshed_once_and_the_meeting_created(
    provider: str,
    meeting_provider: str,
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor_setup: tuple[str, dict[str, str]],
    platform_headers: dict[str, str],
) -> None:
    """Given a connected mentor whose access token the provider invalidated before its expiry,
    when a booking is paid, then the worker's 401 forces exactly one refresh, the meeting is created
    and the connection stays connected (no needs_reconnect)."""
    mentor, headers = mentor_setup
    email = _connect(api, providers, headers, mentor, provider)
    emu = providers.google if provider == "google" else providers.zoom
    title = f"Early expiry {provider} {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider=meeting_provider, starts=[future(23, 17)]))
    session = klass["sessions"][0]
    booked = _book(api, platform_headers, session["sessionId"], 5)
    # The provider invalidates the mentor's access token while we still believe it valid for an hour.
    assert emu.expire_access_tokens(email=email) >= 1
    refreshes_before = emu.token_calls("refresh_token")

    _pay(local_stack, api, booked["bookingId"])
    local_stack.drain()

    refreshes = emu.token_calls("refresh_token") - refreshes_before
    print(f"\n{provider}: refresh grants after the 401: {refreshes}")
    assert refreshes == 1
    view = _booking(api, booked)
    assert view["status"] == "CONFIRMED"
    assert view["meetingUrl"], view
    if provider == "google":
        assert len(_our_events(providers, email, title)) == 1
    else:
        assert len([m for m in providers.zoom.meetings() if m.get("topic") == title]) == 1
    store, _ = tables(local_stack)
    conn = store.get_connection(mentor, Provider(provider))
    assert conn is not None
    assert conn.status is ConnectionStatus.CONNECTED
    assert not _mails(local_stack, f"{mentor}@mentor.example.com")
