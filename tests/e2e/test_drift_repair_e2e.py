"""Drift repair end to end (issue 16 item 3, PRODUCT.md §2.6): the platform is the truth for sessions.

Zoom: the emulator, subscribed to ``meeting.deleted`` / ``meeting.updated`` like a real app, signs
and sends them to ``POST /webhooks/zoom`` for every change — the host's in Zoom and our own through
the API. Our own move triggers no repair; the host moving the meeting gets it moved back; the host
deleting it gets a new meeting, each confirmed student one e-mail with the new link and the mentor
one e-mail. Google: the mentor deletes the event in Google Calendar → push → the session has a live
event again (a new id: generation 2) and the booking carries its link. Webhooks → actions are
counted at the emulators (meetings created, PATCHes) and in the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from classes_support import (
    book_and_pay,
    create,
    future,
    online,
    pro_mentor,
    session_meeting,
    settle,
    student_email,
    subjects_to,
    tables,
    until,
)
from e2e_support import Providers

from devstack import flows
from devstack.emulators import zoom as z
from devstack.stack import LocalStack
from shared import wiring
from shared.store import MeetingRef, MeetingStatus

Headers = Callable[..., dict[str, str]]
DEADLINE_S = 30.0


@pytest.fixture
def mentor_headers_pro(local_stack: LocalStack, mentor: str, mentor_headers: Headers) -> dict[str, str]:
    return pro_mentor(local_stack, mentor_headers, mentor)


@pytest.fixture
def zoom_events(providers: Providers, local_stack: LocalStack, provider_env: pytest.MonkeyPatch) -> Iterator[None]:
    """The Zoom emulator sends meeting events to the stack, signed with the secret the stack trusts."""
    client = providers.zoom.state.clients[z.DEFAULT_CLIENT_ID]
    provider_env.setenv("ZOOM_WEBHOOK_SECRET_TOKEN", client.webhook_secret_token)
    wiring.reset()
    providers.zoom.subscribe_meeting_events(f"{local_stack.api_url}/webhooks/zoom")
    try:
        yield
    finally:
        providers.zoom.subscribe_meeting_events("")
        providers.zoom.wait_webhooks()


def _meeting(local_stack: LocalStack, session_id: str) -> MeetingRef:
    return session_meeting(tables(local_stack)[1], session_id)


def _link(local_stack: LocalStack, booking_id: str) -> str | None:
    _, schedule = tables(local_stack)
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    return booking.meeting_url


def _zoom_start(providers: Providers, meeting_id: str) -> datetime:
    (meeting,) = [m for m in providers.zoom.meetings() if str(m["id"]) == meeting_id]
    return datetime.fromisoformat(str(meeting["start_time"]).replace("Z", "+00:00"))


def test_zoom_meetings_changed_by_the_host_are_restored_and_our_own_changes_are_not(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor: str,
    mentor_headers_pro: dict[str, str],
    platform_headers: dict[str, str],
    zoom_events: None,
) -> None:
    headers = mentor_headers_pro
    flows.seed_zoom_account(providers.zoom, f"{mentor}@example.com", plan=2)
    assert flows.connect_oauth(api, headers, "zoom")["status"] == "connected"
    title = f"Drift class {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider="zoom", starts=[future(12, 18)]))
    session_id = klass["sessions"][0]["sessionId"]
    # Given two confirmed students sharing the session's Zoom meeting
    bookings = [book_and_pay(local_stack, api, platform_headers, session_id, n) for n in (1, 2)]
    settle(local_stack, providers)
    first = _meeting(local_stack, session_id)
    assert first.meeting_id is not None
    assert first.url is not None
    assert {_link(local_stack, b) for b in bookings} == {first.url}

    def ours(include_deleted: bool = False) -> list[dict[str, Any]]:
        return [m for m in providers.zoom.meetings(include_deleted) if m.get("topic") == title]

    def patches(meeting_id: str) -> int:
        return len(providers.zoom.state.requests.entries(f"/v2/meetings/{meeting_id}", "PATCH"))

    def deliveries(event: str) -> list[dict[str, Any]]:
        return [d for d in providers.zoom.state.webhook_deliveries if d.get("event") == event]

    mentor_mail = f"{mentor}@mentor.example.com"
    updated_before = len(deliveries("meeting.updated"))

    # When the mentor moves the session in MoveMentors: our PATCH makes Zoom send meeting.updated
    new_start = future(13, 17)
    resp = api.patch(f"/classes/{klass['classId']}/sessions/{session_id}", json={"start": new_start}, headers=headers)
    assert resp.status_code in (200, 202), resp.text
    settle(local_stack, providers)
    # Then the webhook was received and checked, and caused nothing: one PATCH (ours), no e-mail
    ours_updated = deliveries("meeting.updated")[updated_before:]
    assert [(d["status"], d["response_json"]["checkQueued"]) for d in ours_updated] == [(200, True)]
    assert patches(first.meeting_id) == 1
    assert len(ours(include_deleted=True)) == 1
    assert subjects_to(local_stack, mentor_mail) == []
    _, schedule = tables(local_stack)
    session = schedule.get_session(session_id)
    assert session is not None
    assert _zoom_start(providers, first.meeting_id) == session.start

    # When the host moves the meeting in Zoom an hour later
    providers.zoom.host_update_meeting(
        first.meeting_id, start_time=(session.start + timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    # Then it is moved back (one more PATCH; its own meeting.updated is checked and changes nothing)
    until(lambda: _zoom_start(providers, first.meeting_id) == session.start, local_stack, providers)
    settle(local_stack, providers)
    assert patches(first.meeting_id) == 2
    assert [s.split(":")[0] for s in subjects_to(local_stack, mentor_mail)] == ["Meeting moved back"]
    for n in (1, 2):
        assert not any(s.startswith("New join link") for s in subjects_to(local_stack, student_email(session_id, n)))

    # When the host deletes the meeting in Zoom
    providers.zoom.host_delete_meeting(first.meeting_id)
    seconds = until(
        lambda: all(_link(local_stack, b) not in (None, first.url) for b in bookings), local_stack, providers
    )
    settle(local_stack, providers)
    # Then within 30 s a new meeting serves the session and both bookings carry its link
    second = _meeting(local_stack, session_id)
    assert seconds < DEADLINE_S
    assert second.status is MeetingStatus.CREATED
    assert second.generation == 2
    assert second.meeting_id != first.meeting_id
    live = ours()
    assert [str(m["id"]) for m in live] == [second.meeting_id]
    assert _zoom_start(providers, str(second.meeting_id)) == session.start
    assert {_link(local_stack, b) for b in bookings} == {second.url}
    # And each student got exactly one e-mail with the new link; the mentor one more e-mail
    for n in (1, 2):
        new_link = [s for s in subjects_to(local_stack, student_email(session_id, n)) if s.startswith("New join link")]
        assert len(new_link) == 1
    assert [s.split(":")[0] for s in subjects_to(local_stack, mentor_mail)] == [
        "Meeting moved back",
        "Meeting re-created",
    ]
    assert len(ours(include_deleted=True)) == 2  # the deleted one and its one replacement, no more


def test_a_google_event_deleted_in_google_calendar_is_live_again_after_the_push(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor: str,
    mentor_headers_pro: dict[str, str],
    platform_headers: dict[str, str],
    no_scheduled_poll: None,
) -> None:
    headers = mentor_headers_pro
    email = flows.seed_google_account(providers.google, f"{mentor}@example.com")
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"  # opens the watch channel
    title = f"Drift meet {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider="google_meet", starts=[future(12, 18)]))
    session_id = klass["sessions"][0]["sessionId"]
    booking_id = book_and_pay(local_stack, api, platform_headers, session_id, 1)
    settle(local_stack, providers)
    first = _meeting(local_stack, session_id)
    assert first.meeting_id is not None
    assert _link(local_stack, booking_id) == first.url

    def live() -> list[dict[str, Any]]:
        return [e for e in providers.google.events(email) if e.get("summary") == title and e["status"] != "cancelled"]

    # When the mentor deletes the event in Google Calendar (Google pushes the change)
    providers.google.delete_event_external(email, first.meeting_id)  # "primary" is the account's calendar
    seconds = until(
        lambda: len(live()) == 1 and _link(local_stack, booking_id) == live()[0].get("hangoutLink"),
        local_stack,
        providers,
    )
    settle(local_stack, providers)
    # Then within 30 s the session has a live event again, under a new id, and the booking its link
    assert seconds < DEADLINE_S
    second = _meeting(local_stack, session_id)
    (event,) = live()
    assert second.status is MeetingStatus.CREATED
    assert (second.generation, second.meeting_id) == (2, event["id"])
    assert event["id"] != first.meeting_id
    assert _link(local_stack, booking_id) == second.url == event["hangoutLink"]
    # And the student got one e-mail with it, the mentor one; our own insert's push repaired nothing
    assert (
        len([s for s in subjects_to(local_stack, student_email(session_id, 1)) if s.startswith("New join link")]) == 1
    )
    subjects = subjects_to(local_stack, f"{mentor}@mentor.example.com")
    assert [s.split(":")[0] for s in subjects] == ["Meeting re-created"]


def test_the_preflight_restores_a_gone_meeting_of_a_session_starting_within_24_hours(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor: str,
    mentor_headers_pro: dict[str, str],
    platform_headers: dict[str, str],
) -> None:
    headers = mentor_headers_pro
    flows.seed_zoom_account(providers.zoom, f"{mentor}@example.com", plan=2)
    assert flows.connect_oauth(api, headers, "zoom")["status"] == "connected"
    berlin = ZoneInfo("Europe/Berlin")
    soon = (datetime.now(berlin) + timedelta(hours=6)).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    title = f"Soon class {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider="zoom", starts=[soon.isoformat()]))
    session_id = klass["sessions"][0]["sessionId"]
    booking_id = book_and_pay(local_stack, api, platform_headers, session_id, 1)
    settle(local_stack, providers)
    first = _meeting(local_stack, session_id)
    assert first.meeting_id is not None

    def gets(meeting_id: str | None) -> int:
        return len(providers.zoom.state.requests.entries(f"/v2/meetings/{meeting_id}", "GET"))

    # Given the meeting deleted in Zoom with no webhook subscribed (nothing tells us)
    providers.zoom.host_delete_meeting(first.meeting_id)
    # When the scheduled poll runs: its pre-flight checks the meeting (one GET) and re-creates it
    local_stack.tick("calendar-poll")
    settle(local_stack, providers)
    second = _meeting(local_stack, session_id)
    assert gets(first.meeting_id) == 1
    assert second.generation == 2
    assert second.status is MeetingStatus.CREATED
    assert _link(local_stack, booking_id) == second.url
    assert (
        len([s for s in subjects_to(local_stack, student_email(session_id, 1)) if s.startswith("New join link")]) == 1
    )
    # And later runs verify the new meeting once (one GET), then leave both alone
    for _ in range(2):
        local_stack.tick("calendar-poll")
        settle(local_stack, providers)
    assert (gets(first.meeting_id), gets(second.meeting_id)) == (1, 1)
    assert _meeting(local_stack, session_id) == second


def test_a_zoom_repair_under_provider_faults_converges_with_one_email_each(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor: str,
    mentor_headers_pro: dict[str, str],
    platform_headers: dict[str, str],
    zoom_events: None,
) -> None:
    headers = mentor_headers_pro
    flows.seed_zoom_account(providers.zoom, f"{mentor}@example.com", plan=2)
    assert flows.connect_oauth(api, headers, "zoom")["status"] == "connected"
    title = f"Faulty drift {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider="zoom", starts=[future(14, 18)]))
    session_id = klass["sessions"][0]["sessionId"]
    bookings = [book_and_pay(local_stack, api, platform_headers, session_id, n) for n in (1, 2)]
    settle(local_stack, providers)
    first = _meeting(local_stack, session_id)
    # Given 10 % 429 / 500 on every Zoom path, and one sure fault on each call the repair makes:
    # the check's GET (500), the create (429), and the create's answer lost after Zoom made it (502)
    forced = [
        {"status": 500, "count": 1, "path_prefix": f"/v2/meetings/{first.meeting_id}", "method": "GET"},
        {"status": 429, "count": 1, "path_prefix": "/v2/users/me/meetings", "method": "POST"},
        {"status": 502, "count": 1, "path_prefix": "/v2/users/me/meetings", "method": "POST", "after": True},
    ]
    providers.zoom.set_faults(seed=16, forced=forced, rate_429=0.05, rate_500=0.05, retry_after=0)
    try:
        # When the host deletes the meeting
        providers.zoom.host_delete_meeting(first.meeting_id)
        until(lambda: all(_link(local_stack, b) not in (None, first.url) for b in bookings), local_stack, providers)
        settle(local_stack, providers)
        injected = list(providers.zoom.state.faults.injected)
    finally:
        providers.zoom.clear_faults()
    # (every sure fault was met on the way)
    met = {(i["method"], i["status"], bool(i.get("after"))) for i in injected}
    assert {("GET", 500, False), ("POST", 429, False), ("POST", 502, True)} <= met
    # Then exactly one replacement exists, both bookings carry it, and nobody got a second e-mail
    second = _meeting(local_stack, session_id)
    live = [m for m in providers.zoom.meetings() if m.get("topic") == title]
    assert [str(m["id"]) for m in live] == [second.meeting_id]
    assert {_link(local_stack, b) for b in bookings} == {second.url}
    for n in (1, 2):
        assert (
            len([s for s in subjects_to(local_stack, student_email(session_id, n)) if s.startswith("New join link")])
            == 1
        )
    assert [s.split(":")[0] for s in subjects_to(local_stack, f"{mentor}@mentor.example.com")] == ["Meeting re-created"]
