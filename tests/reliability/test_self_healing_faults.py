"""Self-healing under provider faults (issue 16's last "Done when" line; PRODUCT.md §2.6, §2.2).

The paths the other fault tests leave out, on the real stack (gateway, pumps, emulators, moto SES),
with 5 % 429 + 5 % 500 on every path of the provider — its API *and* its token endpoint — plus one
sure fault on each call the path makes, so every run proves the path met one:

* **reconnect resumes** (Google; access tokens short-lived, so every use refreshes first): the
  mentor's grant is revoked, paid bookings record ``needs_reconnect``, the mentor reconnects through
  the OAuth dance (clicking "Connect" again if a hop fails, as a browser user would) → every future
  booking gets its session's one link, each student exactly one confirmation e-mail, the mentor
  exactly one summary;
* **drift repair** (Google; short-lived tokens too): the mentor deletes the session's event in
  Google Calendar → push → one live event again, each confirmed student exactly one "new join link"
  e-mail, the mentor one e-mail (the Zoom repair under faults is in ``tests/e2e/test_drift_repair_e2e.py``);
* **forced refresh** (Google, Zoom): the provider invalidates the access token early → the stack
  receives exactly one new token, every booking its link, no ``needs_reconnect``, no mentor e-mail.

Counted at the emulators (meetings per session, token calls, faults injected) and in the outbox.
Google pushes are not coalesced here (``GOOGLE_PUSH_COALESCE_S=0``): every push checks at once.
``SELF_HEALING_FAULTS_SEED`` picks another fault sequence.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from classes_support import (
    book_and_pay,
    create,
    future,
    meetings_dlq_depth,
    online,
    pro_mentor,
    session_meeting,
    settle,
    student_email,
    subjects_to,
    tables,
    until,
)
from e2e_support import Providers, short_lived_tokens

from devstack import flows
from devstack.emulators import GoogleEmulator, ZoomEmulator
from devstack.outbox import read_outbox
from devstack.stack import LocalStack
from shared import wiring
from shared.store import ConnectionStatus, MeetingStatus, Provider, ScheduleStore

Headers = Callable[..., dict[str, str]]

DEADLINE_S = 30.0
#: Within the accessor's 300 s refresh-ahead window: every provider call refreshes its token first.
SHORT_TOKEN_TTL_S = 240
#: ``Retry-After: 0`` lets the adapters' own jittered backoff pace the retries.
FAULTS: dict[str, Any] = {"rate_429": 0.05, "rate_500": 0.05, "retry_after": 0}
SEED = int(os.environ.get("SELF_HEALING_FAULTS_SEED", "16"))
TOKEN = "/token"
EVENTS = "/calendar/v3/calendars/primary/events"
ZOOM_TOKEN = "/oauth/token"
ZOOM_CREATE = "/v2/users/me/meetings"


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _push_checks_at_once(provider_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Each Google push queues its sync and meetings check at once (no 2 s coalescing window): checks
    run as often as they can, racing the repairs and mints that caused them, and the test is quicker."""
    provider_env.setenv("GOOGLE_PUSH_COALESCE_S", "0")
    wiring.reset()
    return provider_env


@pytest.fixture
def pro_mentor_headers(local_stack: LocalStack, mentor: str, mentor_headers: Headers) -> dict[str, str]:
    """A Pro mentor (e-mail ``<mentor>@mentor.example.com``); their JWT header."""
    return pro_mentor(local_stack, mentor_headers, mentor)


@pytest.fixture
def schedule(local_stack: LocalStack) -> ScheduleStore:
    return tables(local_stack)[1]


@pytest.fixture
def short_tokens(providers: Providers) -> Iterator[Providers]:
    """Short-lived access tokens for the test; faults cleared before and after."""
    with short_lived_tokens(providers, SHORT_TOKEN_TTL_S):
        yield providers


def _new(before: list[str], after: list[str]) -> list[str]:
    """The subjects in ``after`` beyond those in ``before`` (the outbox lists raw before simple e-mails)."""
    return list((Counter(after) - Counter(before)).elements())


def _booking(schedule: ScheduleStore, booking_id: str) -> tuple[str | None, str | None]:
    """``(meeting_url, meeting_status)`` of the booking."""
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    return booking.meeting_url, booking.meeting_status


def _events(providers: Providers, email: str, title: str, *, live: bool = True) -> list[dict[str, Any]]:
    return [
        e
        for e in providers.google.events(email)
        if e.get("summary") == title and not (live and e.get("status") == "cancelled")
    ]


def _reconnect(
    api: httpx.Client, headers: dict[str, str], providers: Providers, email: str, before_complete: Callable[[], object]
) -> int:
    """The OAuth dance; the mentor clicks "Connect" again when a hop fails (at most 5 times).

    ``before_complete`` runs once the callback parked the tokens, just before the app completes
    (so sure faults set there meet what the completion sets off, not the dance). Attempts made.
    """
    for attempt in range(1, 6):
        providers.google.set_next_consent(email)
        try:
            landed = flows.callback(api, flows.consent(flows.authorize(api, headers, "google")))
            flows.pending_of(landed)
        except flows.FlowError:
            continue
        before_complete()
        assert flows.complete(api, headers, landed)["status"] == "connected"
        return attempt
    raise AssertionError("the mentor could not reconnect in 5 attempts")


def _injected(emulator: GoogleEmulator | ZoomEmulator) -> set[tuple[str, str, int, bool]]:
    """``(method, path, status, after)`` of every fault the emulator injected."""
    return {
        (str(i["method"]), str(i["path"]), int(i["status"]), bool(i.get("after")))
        for i in emulator.state.faults.injected
    }


# -- reconnect resumes --------------------------------------------------------------------------


def test_a_google_reconnect_under_faults_gives_every_waiting_student_one_link_and_the_mentor_one_summary(
    api: httpx.Client,
    local_stack: LocalStack,
    short_tokens: Providers,
    mentor: str,
    pro_mentor_headers: dict[str, str],
    platform_headers: dict[str, str],
    schedule: ScheduleStore,
) -> None:
    providers = short_tokens
    headers = pro_mentor_headers
    email = flows.seed_google_account(providers.google, f"{mentor}@example.com")
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
    title = f"Faulty resume {mentor}"
    klass = create(
        api, headers, online(title=title, meetingProvider="google_meet", starts=[future(22, 18), future(23, 18)])
    )
    sessions = [s["sessionId"] for s in klass["sessions"]]
    # Given the grant revoked at Google and two paid students per session: no link, the reason recorded
    assert providers.google.revoke_user_tokens(email) >= 1
    bookings = {(sid, n): book_and_pay(local_stack, api, platform_headers, sid, n) for sid in sessions for n in (1, 2)}
    local_stack.drain(timeout=DEADLINE_S)
    for booking_id in bookings.values():
        url, status = _booking(schedule, booking_id)
        assert url is None
        assert status in ("needs_reconnect", "not_connected")
    assert _events(providers, email, title) == []
    mentor_mail = f"{mentor}@mentor.example.com"
    told_before = subjects_to(local_stack, mentor_mail)  # e.g. that the connection needs reconnecting

    # When Google answers 10 % of requests with 429 / 500 and the mentor reconnects; once the dance
    # is through, one sure fault on each call the resume makes: a token refresh (500), the
    # create (429), and the create's answer lost after Google made the event (500)
    forced = [
        {"status": 500, "count": 1, "path_prefix": TOKEN, "method": "POST"},
        {"status": 429, "count": 1, "path": EVENTS, "method": "POST"},
        {"status": 500, "count": 1, "path": EVENTS, "method": "POST", "after": True},
    ]
    providers.google.set_faults(seed=SEED, **FAULTS)
    try:
        attempts = _reconnect(api, headers, providers, email, lambda: providers.google.set_faults(forced=forced))

        def converged() -> bool:
            for (sid, _), booking_id in bookings.items():
                url, status = _booking(schedule, booking_id)
                if status != "ready" or url is None or url != session_meeting(schedule, sid).url:
                    return False
            return True

        seconds = until(converged, local_stack, providers, zoom_webhooks=False)
        settle(local_stack, providers, zoom_webhooks=False)
        injected = _injected(providers.google)
    finally:
        providers.google.clear_faults()
    print(f"\nreconnect under faults: {attempts} dance(s), links {seconds:.2f} s after")
    assert {("POST", TOKEN, 500, False), ("POST", EVENTS, 429, False), ("POST", EVENTS, 500, True)} <= injected, (
        injected
    )

    # Then each session has one live event (none deleted, none duplicated), its students share its link
    events = _events(providers, email, title, live=False)
    assert sorted(e.get("status", "") for e in events) == ["confirmed"] * len(sessions), events
    recorded = {}
    for sid in sessions:
        meeting = session_meeting(schedule, sid)
        assert meeting.status is MeetingStatus.CREATED
        recorded[meeting.meeting_id] = meeting.url
        assert {_booking(schedule, bookings[sid, n])[0] for n in (1, 2)} == {meeting.url}
    assert {e["id"]: e.get("hangoutLink") for e in events} == recorded
    # And each student got exactly one e-mail (the confirmation with the link), the mentor one summary
    outbox = read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"])
    for (sid, n), booking_id in bookings.items():
        (mail,) = [m for m in outbox if student_email(sid, n) in m.to]
        assert mail.subject.startswith("Booked:"), mail.subject
        assert str(_booking(schedule, booking_id)[0]) in mail.text
    told = subjects_to(local_stack, mentor_mail)
    (summary,) = _new(told_before, told)
    assert summary.startswith("Google Meet reconnected: 2 join links were created"), summary
    assert meetings_dlq_depth(local_stack) == 0


# -- drift repair -------------------------------------------------------------------------------


def test_a_google_event_deleted_under_faults_is_live_again_with_one_email_each(
    api: httpx.Client,
    local_stack: LocalStack,
    short_tokens: Providers,
    mentor: str,
    pro_mentor_headers: dict[str, str],
    platform_headers: dict[str, str],
    schedule: ScheduleStore,
) -> None:
    providers = short_tokens
    headers = pro_mentor_headers
    email = flows.seed_google_account(providers.google, f"{mentor}@example.com")
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"  # opens the watch channel
    title = f"Faulty drift {mentor}"
    klass = create(api, headers, online(title=title, meetingProvider="google_meet", starts=[future(24, 18)]))
    session_id = klass["sessions"][0]["sessionId"]
    bookings = [book_and_pay(local_stack, api, platform_headers, session_id, n) for n in (1, 2)]
    settle(local_stack, providers, zoom_webhooks=False)
    first = session_meeting(schedule, session_id)
    assert first.meeting_id is not None
    assert {_booking(schedule, b) for b in bookings} == {(first.url, "ready")}
    mentor_mail = f"{mentor}@mentor.example.com"
    told_before = subjects_to(local_stack, mentor_mail)

    # Given 10 % 429 / 500 on every Google path, and one sure fault on each call the repair makes:
    # a token refresh (429), the check's events.list (500), the re-create (429), and the re-create's
    # answer lost after Google made the event (500)
    forced = [
        {"status": 429, "count": 1, "path_prefix": TOKEN, "method": "POST"},
        {"status": 500, "count": 1, "path": EVENTS, "method": "GET"},
        {"status": 429, "count": 1, "path": EVENTS, "method": "POST"},
        {"status": 500, "count": 1, "path": EVENTS, "method": "POST", "after": True},
    ]
    providers.google.set_faults(seed=SEED, forced=forced, **FAULTS)
    try:
        # When the mentor deletes the event in Google Calendar (Google pushes the change)
        providers.google.delete_event_external(email, first.meeting_id)

        def repaired() -> bool:
            live = _events(providers, email, title)
            return len(live) == 1 and all(
                _booking(schedule, b) == (live[0].get("hangoutLink"), "ready") for b in bookings
            )

        seconds = until(repaired, local_stack, providers, zoom_webhooks=False)
        settle(local_stack, providers, zoom_webhooks=False)
        injected = _injected(providers.google)
    finally:
        providers.google.clear_faults()
    print(f"\ndrift repair under faults: live again {seconds:.2f} s after the delete")
    assert {
        ("POST", TOKEN, 429, False),
        ("GET", EVENTS, 500, False),
        ("POST", EVENTS, 429, False),
        ("POST", EVENTS, 500, True),
    } <= injected

    # Then the session has one live event under a new id (the deleted one and one replacement, no more)
    second = session_meeting(schedule, session_id)
    (event,) = _events(providers, email, title)
    assert second.status is MeetingStatus.CREATED
    assert (second.generation, second.meeting_id, second.url) == (2, event["id"], event["hangoutLink"])
    assert len(_events(providers, email, title, live=False)) == 2
    # And each student got exactly one e-mail with the new link, the mentor exactly one e-mail
    outbox = read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"])
    for n in (1, 2):
        new_link = [m for m in outbox if student_email(session_id, n) in m.to and m.subject.startswith("New join link")]
        assert len(new_link) == 1, [m.subject for m in outbox if student_email(session_id, n) in m.to]
        assert event["hangoutLink"] in new_link[0].text
    told = _new(told_before, subjects_to(local_stack, mentor_mail))
    assert [s.split(":")[0] for s in told] == ["Meeting re-created"]
    assert meetings_dlq_depth(local_stack) == 0


# -- forced refresh -----------------------------------------------------------------------------


#: Per provider: the video choice, the token endpoint, the create call, and the sure faults on the
#: forced refresh. Google's refresh also loses one answer after issuing the token (Google keeps the
#: refresh token, so the retry just gets another); Zoom's does not, because Zoom rotates the refresh
#: token and a lost answer ends in needs_reconnect by design (issue 16 item 5, tested elsewhere).
REFRESH_PATHS: dict[str, tuple[str, str, str, list[dict[str, Any]]]] = {
    "google": (
        "google_meet",
        TOKEN,
        EVENTS,
        [
            {"status": 500, "count": 1, "path_prefix": TOKEN, "method": "POST"},
            {"status": 500, "count": 1, "path_prefix": TOKEN, "method": "POST", "after": True},
        ],
    ),
    "zoom": (
        "zoom",
        ZOOM_TOKEN,
        ZOOM_CREATE,
        [{"status": 500, "count": 1, "path_prefix": ZOOM_TOKEN, "method": "POST"}],
    ),
}


@pytest.mark.parametrize("provider", ["google", "zoom"])
def test_an_access_token_invalidated_early_is_refreshed_once_under_faults(
    provider: str,
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor: str,
    pro_mentor_headers: dict[str, str],
    platform_headers: dict[str, str],
    schedule: ScheduleStore,
) -> None:
    headers = pro_mentor_headers
    meeting_provider, token_path, create_path, token_faults = REFRESH_PATHS[provider]
    emu = providers.google if provider == "google" else providers.zoom
    email = f"{mentor}@example.com"
    if provider == "google":
        flows.seed_google_account(providers.google, email)
    else:
        flows.seed_zoom_account(providers.zoom, email, plan=2)
    assert flows.connect_oauth(api, headers, provider)["status"] == "connected"  # a token valid for an hour
    title = f"Faulty refresh {provider} {mentor}"
    starts = [future(25, 18), future(26, 18), future(27, 18)]
    klass = create(api, headers, online(title=title, meetingProvider=meeting_provider, starts=starts))
    sessions = [s["sessionId"] for s in klass["sessions"]]
    # Given the provider invalidated the mentor's access token early, and answers 10 % of requests
    # with 429 / 500; one sure fault on the create (429) and on the forced refresh
    assert emu.expire_access_tokens(email=email) >= 1
    since = max((int(r["seq"]) for r in emu.requests_log()), default=0)
    forced = [{"status": 429, "count": 1, "path": create_path, "method": "POST"}, *token_faults]
    emu.set_faults(seed=SEED, forced=forced, **FAULTS)
    try:
        # When a student pays for each session (three jobs meet the 401)
        bookings = {sid: book_and_pay(local_stack, api, platform_headers, sid, 1) for sid in sessions}

        def converged() -> bool:
            return all(_booking(schedule, b) == (_meeting_url(schedule, sid), "ready") for sid, b in bookings.items())

        seconds = until(converged, local_stack, providers, zoom_webhooks=False)
        settle(local_stack, providers, zoom_webhooks=False)
        injected = _injected(emu)
        refreshed = [
            r
            for r in emu.requests_log(path_prefix=token_path, method="POST")
            if int(r["seq"]) > since and (r.get("form") or {}).get("grant_type") == "refresh_token"
        ]
    finally:
        emu.clear_faults()
    print(
        f"\n{provider} forced refresh under faults: links {seconds:.2f} s after paying; refresh calls {len(refreshed)}"
    )
    sure = {("POST", f.get("path") or f["path_prefix"], f["status"], bool(f.get("after"))) for f in forced}
    assert sure <= injected, injected

    # Then the stack received exactly one new token (every other refresh call was a fault's retry),
    # each session has one meeting, each student one e-mail, and the connection is still connected
    assert [r["status"] for r in refreshed].count(200) == 1, [(r["status"], r["injected"]) for r in refreshed]
    assert all(r["injected"] for r in refreshed if r["status"] != 200)
    if provider == "google":
        held = {e["id"]: e.get("hangoutLink") for e in _events(providers, email, title, live=False)}
    else:
        held = {str(m["id"]): m.get("join_url") for m in providers.zoom.meetings(True) if m.get("topic") == title}
    assert held == {session_meeting(schedule, sid).meeting_id: _meeting_url(schedule, sid) for sid in sessions}
    outbox = read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"])
    for sid, booking_id in bookings.items():
        (mail,) = [m for m in outbox if student_email(sid, 1) in m.to]
        assert mail.subject.startswith("Booked:"), mail.subject
        assert str(_booking(schedule, booking_id)[0]) in mail.text
    store, _ = tables(local_stack)
    connection = store.get_connection(mentor, Provider(provider))
    assert connection is not None
    assert connection.status is ConnectionStatus.CONNECTED
    assert subjects_to(local_stack, f"{mentor}@mentor.example.com") == []
    assert meetings_dlq_depth(local_stack) == 0


def _meeting_url(schedule: ScheduleStore, session_id: str) -> str | None:
    session = schedule.get_session(session_id)
    assert session is not None
    return session.meeting.url if session.meeting is not None else None
