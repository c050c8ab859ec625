"""Microsoft 365 end to end through the local gateway (issue 18 items 2 and 3).

Connect → callback → complete with the Microsoft emulator, calendars list/choose, disconnect with
its Graph subscription deleted, no Microsoft token in any response or stored attribute; then an
online class on ``teams``: one Teams link per session shared by its bookings (made once even when
Graph's answer to the create is lost), in the confirmation e-mail and on the booking, kept by a
move, and the event deleted with the last booking; an event deleted in Outlook is restored by the
scheduled pre-flight, through one forced refresh of a token Microsoft invalidated early.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from classes_support import create, future, meetings_dlq_depth, online, set_plan, tables
from e2e_support import Recorder

from devstack import flows, stripe_events
from devstack.emulators import microsoft as ms
from devstack.emulators.microsoft import MicrosoftEmulator
from devstack.outbox import SentEmail, read_outbox
from devstack.stack import LocalStack
from shared import wiring
from shared.store import MeetingStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel
from shared.store.repository import mentor_pk
from tests.integration.emulators.microsoft.support import iso_in, serve_receiver, tokens

Headers = Callable[..., dict[str, str]]


@pytest.fixture(scope="module")
def microsoft(local_stack: LocalStack) -> Iterator[MicrosoftEmulator]:
    """The Microsoft emulator, its app registration accepting our callback."""
    emu = MicrosoftEmulator(allow_http_loopback_notifications=True).start()  # our receivers are http on loopback
    emu.add_client(ms.DEFAULT_CLIENT_ID, ms.DEFAULT_CLIENT_SECRET, [f"{local_stack.api_url}/oauth/microsoft/callback"])
    yield emu
    emu.stop()


@pytest.fixture
def ms_env(microsoft: MicrosoftEmulator, provider_env: pytest.MonkeyPatch) -> MicrosoftEmulator:
    """The functions pointed at the Microsoft emulator too (MICROSOFT_* settings)."""
    for name, value in microsoft.environment().items():
        provider_env.setenv(name, value)
    wiring.reset()
    microsoft.clear_faults()
    return microsoft


def _issued(emu: MicrosoftEmulator) -> list[str]:
    """Every access and refresh token and code the emulator issued (the canary's needles)."""
    with emu.state.lock:
        return [*emu.state.access_tokens, *emu.state.refresh_tokens, *emu.state.codes]


def _assert_no_token_in(emu: MicrosoftEmulator, *texts: str) -> None:
    needles = _issued(emu)
    assert needles
    for needle in needles:
        assert all(needle not in text for text in texts)


def _every_item(store: Store) -> str:
    """Every attribute of every item of the table, as text (a full scan)."""
    pages = store.table.client.get_paginator("scan").paginate(TableName=store.table.name)
    return str([item for page in pages for item in page["Items"]])


def _connect(api: httpx.Client, emu: MicrosoftEmulator, headers: dict[str, str], email: str) -> dict[str, Any]:
    emu.add_user(
        email, "Ada Lovelace", calendars=[{"name": "Teaching", "can_edit": True}, {"name": "Team", "can_edit": False}]
    )
    emu.set_next_consent(email)
    return flows.connect_oauth(api, headers, "microsoft")


def test_connect_choose_calendar_and_disconnect_without_leaking_a_token(
    api: httpx.Client,
    ms_env: MicrosoftEmulator,
    mentor: str,
    headers: dict[str, str],
    stack_store: Store,
    recorder: Recorder,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    email = f"{mentor}@contoso.example"
    # When the mentor connects Microsoft 365 (authorize → consent → callback → complete)
    view = _connect(api, ms_env, headers, email)
    # Then it is connected as the account's mail, on the default calendar
    assert (view["status"], view["accountLabel"], view["selectedCalendar"]) == (
        "connected",
        f"Connected as {email}",
        "primary",
    )
    listed = api.get("/connections", headers=headers).json()["connections"]
    assert [(c["provider"], c["status"]) for c in listed] == [
        ("google", "not_connected"),
        ("zoom", "not_connected"),
        ("apple", "not_connected"),
        ("microsoft", "connected"),
    ]
    # And only writable calendars are offered, the default one selected
    cals = api.get("/connections/microsoft/calendars", headers=headers)
    assert cals.status_code == 200, cals.text
    offered = {c["summary"]: c for c in cals.json()["calendars"]}
    assert sorted(offered) == ["Calendar", "Teaching"]
    assert (offered["Calendar"]["selected"], offered["Calendar"]["primary"]) == (True, True)
    assert (offered["Teaching"]["selected"], offered["Teaching"]["accessRole"]) == (False, "writer")
    # When a read-only or unknown calendar is chosen / Then 400, nothing changes
    team_id = next(c.id for c in ms_env.state.calendars.values() if c.name == "Team" and c.owner_email == email)
    for bad in (team_id, "x" * 1024):
        resp = api.put("/connections/microsoft/calendar", json={"calendarId": bad}, headers=headers)
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "unknown_calendar"), resp.text
    # When the Teaching calendar is chosen / Then it is the selected one
    resp = api.put("/connections/microsoft/calendar", json={"calendarId": offered["Teaching"]["id"]}, headers=headers)
    assert (resp.status_code, resp.json()["selectedCalendar"]) == (200, offered["Teaching"]["id"])

    # And while connected, no issued token is in any stored attribute (the credential is sealed)
    _assert_no_token_in(ms_env, _every_item(stack_store))

    # Given a change-notification subscription stored for the mentor (what busy push will make)
    receiver_gen = serve_receiver()
    receiver = next(receiver_gen)
    try:
        ms_env.set_next_consent(email)
        with httpx.Client() as http:
            own = tokens(http, ms_env)["access_token"]
            sub = http.post(
                f"{ms_env.api_base}/subscriptions",
                headers={"Authorization": f"Bearer {own}"},
                json={
                    "changeType": "created,updated,deleted",
                    "notificationUrl": receiver.url,
                    "resource": "me/events",
                    "expirationDateTime": iso_in(ms_env, 600),
                    "clientState": "e2e",
                },
            ).json()
    finally:
        receiver_gen.close()
    channels = ChannelStore(stack_store.table)
    channels.put(
        PushChannel(
            channel_id=sub["id"],
            mentor_id=mentor,
            calendar_id="primary",
            resource_id="me/events",
            expiration_ms=int((time.time() + 600) * 1000),
            token_hash="",
            provider="microsoft",
        )
    )
    # When the mentor disconnects
    assert api.delete("/connections/microsoft", headers=headers).status_code == 204
    # Then the subscription is deleted at Graph and forgotten here, and the connection is gone
    assert sub["id"] not in {s["id"] for s in ms_env.subscriptions()}
    assert channels.for_mentor(mentor, "microsoft") == []
    assert stack_store.get_connection(mentor, Provider.MICROSOFT) is None
    # And no token the emulator issued appears in a response, a stored attribute or a log line
    out, err = capsys.readouterr()
    assert "oauth connection saved" in out + caplog.text
    assert list(stack_store.table.query(mentor_pk(mentor))) == []
    _assert_no_token_in(ms_env, *recorder.seen, _every_item(stack_store), out, err, caplog.text)


def _book(api: httpx.Client, platform: dict[str, str], session_id: str, n: int) -> dict[str, Any]:
    resp = api.post(
        "/bookings",
        json={
            "sessionId": session_id,
            "studentEmail": f"student{n}.{session_id}@example.com",
            "studentName": f"Student {n}",
            "priceAmount": 4900,
            "currency": "USD",
        },
        headers=platform,
    )
    assert resp.status_code == 201, resp.text
    booked: dict[str, Any] = resp.json()
    return booked


def _pay(local_stack: LocalStack, api: httpx.Client, booking_id: str) -> None:
    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id)
    resp = stripe_events.send(local_stack.api_url, event, os.environ["STRIPE_WEBHOOK_SECRET"], client=api)
    assert resp.status_code == 200, resp.text


def _view(api: httpx.Client, booked: dict[str, Any]) -> dict[str, Any]:
    resp = api.get(f"/bookings/{booked['bookingId']}", params={"token": booked["bookingToken"]})
    assert resp.status_code == 200, resp.text
    found: dict[str, Any] = resp.json()
    return found


def _mails(local_stack: LocalStack, to: str) -> list[SentEmail]:
    return [m for m in read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"]) if to in m.to]


def test_teams_link_once_per_session_shared_moved_and_deleted(
    api: httpx.Client,
    local_stack: LocalStack,
    ms_env: MicrosoftEmulator,
    mentor: str,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a Pro mentor with only Microsoft 365 connected
    store, schedule = tables(local_stack)
    set_plan(store, mentor, "pro")
    store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com")
    email = f"{mentor}@contoso.example"
    _connect(api, ms_env, headers, email)
    # When an online class names no provider / Then it resolves to Teams (the only one connected)
    title = f"Teams class {mentor}"
    klass = create(api, headers, online(title=title, starts=[future(20, 18)]))
    assert klass["meetingProvider"] == "teams"
    session = klass["sessions"][0]
    sid = session["sessionId"]
    first, second = _book(api, platform_headers, sid, 1), _book(api, platform_headers, sid, 2)

    # When the first booking is paid while Graph loses its answer to the create
    ms_env.set_faults(forced=[{"status": 500, "path_prefix": "/v1.0/me/events", "method": "POST", "after": True}])
    _pay(local_stack, api, first["bookingId"])
    local_stack.drain()
    # Then one Outlook event with a Teams link, in the class's zone, and the booking shows the link
    one = _view(api, first)
    assert one["status"] == "CONFIRMED"
    assert one["meetingUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    (event,) = ms_env.events(email)
    assert event["onlineMeeting"]["joinUrl"] == one["meetingUrl"]
    assert event["originalStartTimeZone"] == "Europe/Berlin"
    assert [i for i in ms_env.state.faults.injected if i.get("after")]  # the lost answer did happen
    # And the confirmation e-mail carries it
    (mail,) = _mails(local_stack, f"student1.{sid}@example.com")
    assert one["meetingUrl"] in mail.text
    assert one["meetingUrl"] in mail.html

    # When the second booking is paid / Then it shares the link; still one event
    _pay(local_stack, api, second["bookingId"])
    local_stack.drain()
    assert _view(api, second)["meetingUrl"] == one["meetingUrl"]
    assert len(ms_env.events(email)) == 1

    # When the session moves / Then the event moves, the link stays, both students are told
    resp = api.patch(f"/classes/{klass['classId']}/sessions/{sid}", json={"start": future(21, 19)}, headers=headers)
    assert resp.status_code in (200, 202), resp.text
    local_stack.drain()
    (moved,) = ms_env.events(email)
    assert moved["id"] == event["id"]
    assert moved["onlineMeeting"]["joinUrl"] == one["meetingUrl"]
    assert moved["start"] != event["start"]
    for n in (1, 2):
        subjects = [m.subject for m in _mails(local_stack, f"student{n}.{sid}@example.com")]
        assert any(s.startswith("Moved:") for s in subjects), subjects

    # When one of two bookings is cancelled / Then the event stays; the last one / Then it is deleted
    assert (
        api.post(f"/bookings/{first['bookingId']}/cancel", params={"token": first["bookingToken"]}).status_code == 202
    )
    local_stack.drain()
    assert len(ms_env.events(email)) == 1
    token = second["bookingToken"]
    assert api.post(f"/bookings/{second['bookingId']}/cancel", params={"token": token}).status_code == 202
    local_stack.drain()
    assert ms_env.events(email) == []
    stored = schedule.get_session(sid)
    assert stored is not None
    assert stored.meeting is not None
    assert stored.meeting.status is MeetingStatus.DELETED
    # And no Microsoft token reached an e-mail, a log line or the session's stored attributes
    mails = [f"{m.text} {m.html}" for n in (1, 2) for m in _mails(local_stack, f"student{n}.{sid}@example.com")]
    out, err = capsys.readouterr()
    _assert_no_token_in(ms_env, *mails, out, err, caplog.text, str(stored.model_dump()))


def test_preflight_restores_a_deleted_teams_event_after_a_forced_refresh(
    api: httpx.Client,
    local_stack: LocalStack,
    ms_env: MicrosoftEmulator,
    mentor: str,
    headers: dict[str, str],
    platform_headers: dict[str, str],
) -> None:
    # Given a Teams class starting in six hours with one paid booking
    store, schedule = tables(local_stack)
    set_plan(store, mentor, "pro")
    store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com")
    email = f"{mentor}@contoso.example"
    _connect(api, ms_env, headers, email)
    berlin = ZoneInfo("Europe/Berlin")
    soon = (datetime.now(berlin) + timedelta(hours=6)).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    klass = create(api, headers, online(title=f"Soon {mentor}", meetingProvider="teams", starts=[soon.isoformat()]))
    sid = klass["sessions"][0]["sessionId"]
    booked = _book(api, platform_headers, sid, 1)
    _pay(local_stack, api, booked["bookingId"])
    local_stack.drain()
    first = _view(api, booked)["meetingUrl"]
    (event,) = ms_env.events(email)
    # And the mentor deletes the event in Outlook, while Microsoft invalidates the access token early
    ms_env.delete_event_external(event["id"])
    assert ms_env.expire_access_tokens(email=email) >= 1
    refreshes = ms_env.token_calls("refresh_token")
    # When the scheduled poll's pre-flight checks the session's meeting
    local_stack.tick("calendar-poll")
    local_stack.drain()
    # Then one forced refresh, a new Teams event for the session, and the booking carries its link
    assert ms_env.token_calls("refresh_token") == refreshes + 1
    (again,) = ms_env.events(email)
    assert again["id"] != event["id"]
    stored = schedule.get_session(sid)
    assert stored is not None
    assert stored.meeting is not None
    assert (stored.meeting.status, stored.meeting.generation) == (MeetingStatus.CREATED, 2)
    assert _view(api, booked)["meetingUrl"] == again["onlineMeeting"]["joinUrl"] != first


def test_teams_under_graph_faults_and_latency_spikes_one_event_per_session(
    api: httpx.Client,
    local_stack: LocalStack,
    ms_env: MicrosoftEmulator,
    mentor: str,
    headers: dict[str, str],
    platform_headers: dict[str, str],
) -> None:
    """Given a Teams class of 8 sessions with 2 bookings each and access tokens short enough that
    every mint refreshes first, when all 16 are paid while Graph and the token endpoint answer 10 %
    of requests 429 / 500, spike 10 % of them and lose the answer of two creates, then every booking
    is confirmed with its session's one link, Graph holds exactly one event per session, and the
    meetings DLQ stays empty."""
    store, schedule = tables(local_stack)
    set_plan(store, mentor, "pro")
    store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com")
    email = f"{mentor}@contoso.example"
    saved_ttl = ms_env.state.settings.access_token_ttl_seconds
    assert meetings_dlq_depth(local_stack) == 0
    ms_env.configure(access_token_ttl_seconds=240)  # < the accessor's 300 s refresh-ahead
    try:
        _connect(api, ms_env, headers, email)
        title = f"Faulty Teams {mentor}"
        starts = [future(40 + n, 18) for n in range(8)]
        klass = create(api, headers, online(title=title, meetingProvider="teams", durationMinutes=30, starts=starts))
        booked = [_book(api, platform_headers, s["sessionId"], n) for s in klass["sessions"] for n in (1, 2)]
        refreshes = ms_env.token_calls("refresh_token")
        ms_env.set_faults(
            seed=11,
            rate_429=0.05,
            rate_500=0.05,
            retry_after=0,
            spike_rate=0.1,
            spike_min_ms=50,
            spike_ms=150,
            forced=[{"status": 500, "count": 2, "path_prefix": "/v1.0/me/events", "method": "POST", "after": True}],
        )
        for one in booked:
            _pay(local_stack, api, one["bookingId"])
        local_stack.drain(timeout=90)
        injected = Counter((e["status"], bool(e.get("after"))) for e in ms_env.snapshot()["faults_injected"])
        spikes = len(ms_env.state.faults.spikes)
    finally:
        ms_env.clear_faults()
        ms_env.configure(access_token_ttl_seconds=saved_ttl)
    # The faults happened: random answers, latency spikes, the two lost creates, and token refreshes
    assert injected[(429, False)] + injected[(500, False)] >= 1, injected
    assert injected[(500, True)] == 2, injected
    assert spikes >= 1
    assert ms_env.token_calls("refresh_token") > refreshes
    # Every booking confirmed with its session's link; one distinct link per session
    by_session: dict[str, set[str]] = {}
    for one in booked:
        view = _view(api, one)
        assert (view["status"], bool(view["meetingUrl"])) == ("CONFIRMED", True), view
        by_session.setdefault(view["sessionId"], set()).add(view["meetingUrl"])
    assert len(by_session) == 8
    assert all(len(urls) == 1 for urls in by_session.values()), by_session
    # Exactly one Outlook event per session, the ones the sessions recorded
    recorded = set()
    for session in klass["sessions"]:
        stored = schedule.get_session(session["sessionId"])
        assert stored is not None
        assert stored.meeting is not None
        assert stored.meeting.status is MeetingStatus.CREATED
        recorded.add(stored.meeting.meeting_id)
    held = [e for e in ms_env.events(email) if e["subject"] == title]
    assert len(held) == 8
    assert {e["id"] for e in held} == recorded
    assert meetings_dlq_depth(local_stack) == 0
