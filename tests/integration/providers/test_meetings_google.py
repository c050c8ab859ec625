"""Google Calendar + Meet adapter (shared.providers.google.meet.GoogleMeetings) against the Google emulator.

One event per session key (client-supplied id, 409 = already made), Meet link read from
conferenceData, pending conference polled, move keeps the link, delete is idempotent, 429/5xx
retried, long waits and auth failures surfaced as typed errors, every request within the
discovery document.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from devstack.emulators import GoogleEmulator, pkce_s256
from devstack.emulators import google as g
from devstack.emulators.spec import assert_request_conforms
from shared import wiring
from shared.providers.google.meet import GoogleMeetings, google_event_id, google_request_id
from shared.providers.meetings import (
    MeetingAuthError,
    MeetingError,
    MeetingSpec,
    meetings_client,
    reset_meetings_clients,
)
from shared.store.models import MeetingProvider

MENTOR = "mentor@example.com"
TZ = "America/New_York"
SCOPES = f"{g.SCOPE_EVENTS} {g.SCOPE_READONLY}"


@pytest.fixture(scope="module")
def google_server() -> Iterator[GoogleEmulator]:
    emu = GoogleEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def google(google_server: GoogleEmulator) -> GoogleEmulator:
    google_server.reset()
    return google_server


def mint_token(emu: GoogleEmulator, email: str = MENTOR, scope: str = SCOPES) -> SecretStr:
    """Consent as ``email`` through the emulator's code + PKCE flow; the access token."""
    emu.set_next_consent(email)
    verifier = secrets.token_urlsafe(48)
    with httpx.Client(timeout=10) as http:
        resp = http.get(
            emu.authorize_url,
            params={
                "client_id": g.DEFAULT_CLIENT_ID,
                "redirect_uri": g.DEFAULT_REDIRECT_URI,
                "response_type": "code",
                "scope": scope,
                "state": "s",
                "code_challenge": pkce_s256(verifier),
                "code_challenge_method": "S256",
                "access_type": "offline",
            },
        )
        assert resp.status_code == 302, resp.text
        code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
        tok = http.post(
            emu.token_url,
            data={
                "code": code,
                "client_id": g.DEFAULT_CLIENT_ID,
                "client_secret": g.DEFAULT_CLIENT_SECRET,
                "redirect_uri": g.DEFAULT_REDIRECT_URI,
                "grant_type": "authorization_code",
                "code_verifier": verifier,
            },
        )
        assert tok.status_code == 200, tok.text
        return SecretStr(tok.json()["access_token"])


@pytest.fixture
def token(google: GoogleEmulator) -> SecretStr:
    return mint_token(google)


def adapter(emu: GoogleEmulator, **kw: Any) -> GoogleMeetings:
    kw.setdefault("pending_backoff_s", 0.01)
    return GoogleMeetings(api_base=emu.calendar_base, timeout_s=5.0, **kw)


def spec(key: str = "cls_ab12-s03", start: datetime | None = None, **kw: Any) -> MeetingSpec:
    start = start or datetime(2030, 3, 12, 18, 0, tzinfo=ZoneInfo(TZ))
    return MeetingSpec(
        key=key,
        title=kw.pop("title", "Intro to Rust"),
        start=start,
        end=start + timedelta(minutes=kw.pop("minutes", 60)),
        timezone=TZ,
        description=kw.pop("description", "Bring a laptop."),
        **kw,
    )


def live_events(emu: GoogleEmulator, calendar_id: str = MENTOR) -> list[dict[str, Any]]:
    return [e for e in emu.events(calendar_id) if e.get("status") != "cancelled"]


_METHOD_IDS = {"POST": "insert", "GET": "get", "PATCH": "patch", "DELETE": "delete"}


def assert_all_conform(emu: GoogleEmulator) -> None:
    """Every event request in the log fits the discovery document (body and query)."""
    log = emu.requests_log(path_prefix="/calendar/v3/calendars/")
    assert log
    for entry in log:
        method_id = f"calendar.events.{_METHOD_IDS[entry['method']]}"
        assert_request_conforms(entry.get("json"), google_method=method_id, query=entry["query"])
    assert emu.snapshot()["request_findings"] == []


# ---- create ---------------------------------------------------------------------------------


def test_create_makes_one_event_with_a_meet_link(google: GoogleEmulator, token: SecretStr) -> None:
    """Given a mentor's token
    When the meeting of a session is created
    Then the calendar holds exactly one event, in the class's zone, with a hangoutsMeet
    conference whose Meet URI is returned, no update e-mails and default reminders."""
    meeting = adapter(google).create(token, spec())

    events = live_events(google)
    assert len(events) == 1
    event = events[0]
    assert meeting.meeting_id == event["id"] == google_event_id("cls_ab12-s03")
    assert re.fullmatch(r"[a-v0-9]{5,1024}", event["id"])
    assert event["start"] == {"dateTime": "2030-03-12T18:00:00-04:00", "timeZone": TZ}
    assert event["end"] == {"dateTime": "2030-03-12T19:00:00-04:00", "timeZone": TZ}
    assert event["summary"] == "Intro to Rust"
    assert event["description"] == "Bring a laptop."
    assert event["reminders"] == {"useDefault": True}
    conf = event["conferenceData"]
    assert conf["createRequest"]["conferenceSolutionKey"] == {"type": "hangoutsMeet"}
    assert conf["createRequest"]["requestId"] == google_request_id("cls_ab12-s03")
    video = [e for e in conf["entryPoints"] if e["entryPointType"] == "video"]
    assert meeting.join_url == video[0]["uri"] == event["hangoutLink"]
    assert meeting.join_url.startswith("https://meet.google.com/")
    assert meeting.pending is False
    insert = google.requests_log(path_prefix="/calendar/v3/calendars/", method="POST")[0]
    assert insert["query"] == {"conferenceDataVersion": ["1"], "sendUpdates": ["none"]}
    assert google.snapshot()["sent_updates"] == []
    assert_all_conform(google)


def test_create_twice_with_the_same_key_is_still_one_event(google: GoogleEmulator, token: SecretStr) -> None:
    """Given a session whose meeting was created (the reply may have been lost)
    When create runs again with the same key
    Then Google answers 409 for the id, the adapter reads the event back, and there is still one."""
    meets = adapter(google)
    first = meets.create(token, spec())

    again = meets.create(token, spec())

    assert again == first
    assert len(google.events(MENTOR)) == 1
    posts = google.requests_log(path_prefix="/calendar/v3/calendars/", method="POST")
    assert [p["status"] for p in posts] == [200, 409]
    assert_all_conform(google)


def test_a_different_key_is_a_different_event(google: GoogleEmulator, token: SecretStr) -> None:
    """Given one session's meeting
    When another session's meeting is created
    Then there are two events with two Meet links."""
    meets = adapter(google)
    a = meets.create(token, spec("cls_ab12-s03"))
    b = meets.create(token, spec("cls_ab12-s04", start=datetime(2030, 3, 19, 18, 0, tzinfo=ZoneInfo(TZ))))

    assert a.meeting_id != b.meeting_id
    assert a.join_url != b.join_url
    assert len(live_events(google)) == 2


def test_create_on_a_selected_secondary_calendar(google: GoogleEmulator) -> None:
    """Given a mentor who selected a shared calendar (its id holds '@')
    When the meeting is created
    Then the event lands on that calendar, not on the primary one."""
    cal = "team-classes@group.calendar.google.com"
    google.add_user(MENTOR, calendars=[{"id": cal, "summary": "Classes", "access_role": "owner"}])
    token = mint_token(google)

    meeting = adapter(google).create(token, spec(calendar_id=cal))

    assert [e["id"] for e in live_events(google, cal)] == [meeting.meeting_id]
    assert live_events(google, MENTOR) == []
    assert adapter(google).find(token, spec(calendar_id=cal)) == meeting


def test_create_after_delete_restores_the_same_event(google: GoogleEmulator, token: SecretStr) -> None:
    """Given a session whose meeting was deleted (Google keeps the id on a cancelled event)
    When the meeting is created again
    Then the cancelled event is restored at the spec's time, with its Meet link, still one event."""
    meets = adapter(google)
    first = meets.create(token, spec())
    assert meets.delete(token, first.meeting_id, spec()) is True
    later = datetime(2030, 3, 13, 9, 30, tzinfo=ZoneInfo(TZ))

    again = meets.create(token, spec(start=later))

    assert again.meeting_id == first.meeting_id
    assert again.join_url == first.join_url
    events = google.events(MENTOR)
    assert len(events) == 1
    assert events[0]["status"] == "confirmed"
    assert events[0]["start"]["dateTime"] == "2030-03-13T09:30:00-04:00"
    assert_all_conform(google)


# ---- conference states ----------------------------------------------------------------------


def test_a_pending_conference_is_polled_until_the_link_is_there(google: GoogleEmulator, token: SecretStr) -> None:
    """Given Google answers the insert with a pending conference, then pending once more
    When the meeting is created
    Then the adapter re-reads the event with a short backoff and returns the Meet link."""
    google.configure(conference_mode="pending", conference_pending_polls=1)
    sleeps: list[float] = []

    meeting = adapter(google, sleep=sleeps.append).create(token, spec())

    assert meeting.pending is False
    assert (meeting.join_url or "").startswith("https://meet.google.com/")
    gets = google.requests_log(path_prefix="/calendar/v3/calendars/", method="GET")
    assert len(gets) == 2
    assert len(sleeps) == 2
    assert sleeps == sorted(sleeps)


def test_a_conference_still_pending_is_reported_pending(google: GoogleEmulator, token: SecretStr) -> None:
    """Given a conference that stays pending longer than the adapter polls
    When the meeting is created
    Then it returns pending=True without a link, and a later find (or create) gets the link."""
    google.configure(conference_mode="pending", conference_pending_polls=3)
    meets = adapter(google, pending_polls=2, sleep=lambda _: None)

    meeting = meets.create(token, spec())

    assert meeting.pending is True
    assert meeting.join_url is None
    assert meeting.meeting_id == google_event_id("cls_ab12-s03")
    later = None
    for _ in range(3):
        later = meets.find(token, spec())
        if later is not None and not later.pending:
            break
    assert later is not None
    assert later.pending is False
    assert (later.join_url or "").startswith("https://meet.google.com/")
    assert len(google.events(MENTOR)) == 1


def test_a_failed_conference_is_asked_for_again(google: GoogleEmulator, token: SecretStr) -> None:
    """Given Google fails to create the Meet conference
    When the meeting is created
    Then the adapter asks once more with a new request id, then reports a retryable
    conference_failed; once Google recovers, the next create attaches a link to the same event."""
    google.configure(conference_mode="failure")
    meets = adapter(google)

    with pytest.raises(MeetingError) as caught:
        meets.create(token, spec())

    assert caught.value.code == "conference_failed"
    assert caught.value.retryable is True
    patches = google.requests_log(path_prefix="/calendar/v3/calendars/", method="PATCH")
    assert len(patches) == 1
    assert patches[0]["json"]["conferenceData"]["createRequest"]["requestId"] != google_request_id("cls_ab12-s03")

    google.configure(conference_mode="success")
    meeting = meets.create(token, spec())

    assert (meeting.join_url or "").startswith("https://meet.google.com/")
    assert len(google.events(MENTOR)) == 1
    assert_all_conform(google)


# ---- find / move / delete -------------------------------------------------------------------


def test_find_is_none_before_and_the_meeting_after_create(google: GoogleEmulator, token: SecretStr) -> None:
    """Given no meeting yet
    When find runs / Then None; after a create, find returns the same meeting; after delete, None."""
    meets = adapter(google)
    assert meets.find(token, spec()) is None

    made = meets.create(token, spec())

    assert meets.find(token, spec()) == made
    meets.delete(token, made.meeting_id, spec())
    assert meets.find(token, spec()) is None


def test_move_changes_the_time_and_keeps_the_meet_link(google: GoogleEmulator, token: SecretStr) -> None:
    """Given a created meeting
    When the session is rescheduled
    Then the event has the new time, the same id and Meet link, and the PATCH sent no conferenceData."""
    meets = adapter(google)
    made = meets.create(token, spec())
    later = datetime(2030, 3, 14, 20, 15, tzinfo=ZoneInfo(TZ))

    moved = meets.move(token, made.meeting_id, spec(start=later, minutes=90, title="Intro to Rust (moved)"))

    assert moved == made
    event = live_events(google)[0]
    assert event["start"] == {"dateTime": "2030-03-14T20:15:00-04:00", "timeZone": TZ}
    assert event["end"] == {"dateTime": "2030-03-14T21:45:00-04:00", "timeZone": TZ}
    assert event["summary"] == "Intro to Rust (moved)"
    assert event["hangoutLink"] == made.join_url
    patch = google.requests_log(path_prefix="/calendar/v3/calendars/", method="PATCH")[0]
    assert set(patch["json"]) == {"summary", "start", "end"}
    assert patch["query"] == {"conferenceDataVersion": ["1"], "sendUpdates": ["none"]}
    assert_all_conform(google)


def test_moving_a_deleted_event_is_not_found(google: GoogleEmulator, token: SecretStr) -> None:
    """Given an event the mentor deleted
    When it is moved / Then a not_found MeetingError (not a silent success)."""
    meets = adapter(google)
    made = meets.create(token, spec())
    meets.delete(token, made.meeting_id, spec())

    with pytest.raises(MeetingError) as caught:
        meets.move(token, made.meeting_id, spec())
    assert caught.value.code == "not_found"
    assert caught.value.retryable is False


def test_delete_then_delete_again(google: GoogleEmulator, token: SecretStr) -> None:
    """Given a created meeting
    When it is deleted twice
    Then the first answers True (event cancelled, no e-mails), the second False (410 = done);
    an id that never existed is False too."""
    meets = adapter(google)
    made = meets.create(token, spec())

    assert meets.delete(token, made.meeting_id, spec()) is True
    assert meets.delete(token, made.meeting_id, spec()) is False
    assert meets.delete(token, google_event_id("never-made"), spec()) is False

    assert live_events(google) == []
    deletes = google.requests_log(path_prefix="/calendar/v3/calendars/", method="DELETE")
    assert [d["status"] for d in deletes] == [204, 410, 404]
    assert all(d["query"] == {"sendUpdates": ["none"]} for d in deletes)
    assert_all_conform(google)


# ---- retries and errors ---------------------------------------------------------------------


def test_injected_500s_are_retried_and_the_create_succeeds(google: GoogleEmulator, token: SecretStr) -> None:
    """Given the next two event requests fail with 500
    When the meeting is created
    Then the adapter retries and one event exists."""
    google.set_faults(forced=[{"status": 500, "count": 2, "path_prefix": "/calendar/v3/calendars/", "retry_after": 0}])

    meeting = adapter(google).create(token, spec())

    assert meeting.join_url
    posts = google.requests_log(path_prefix="/calendar/v3/calendars/", method="POST")
    assert [p["status"] for p in posts] == [500, 500, 200]
    assert len(google.events(MENTOR)) == 1


def test_a_lost_insert_answer_is_retried_into_the_same_event(google: GoogleEmulator, token: SecretStr) -> None:
    """Given Google makes the event but its answer is lost (a 500 after the insert)
    When the meeting is created
    Then the retried insert meets its own event id (409), reads it back, and one event exists."""
    google.set_faults(
        forced=[{"status": 500, "count": 1, "path_prefix": "/calendar/v3/calendars/", "retry_after": 0, "after": True}]
    )

    meeting = adapter(google).create(token, spec())

    assert meeting.join_url
    posts = google.requests_log(path_prefix="/calendar/v3/calendars/", method="POST")
    assert [p["status"] for p in posts] == [500, 409]
    (event,) = google.events(MENTOR)
    assert (event["id"], event["hangoutLink"]) == (meeting.meeting_id, meeting.join_url)


def test_a_429_is_retried_after_its_retry_after(google: GoogleEmulator, token: SecretStr) -> None:
    """Given one 429 asking for 1 s
    When the meeting is created
    Then the adapter waits at least that long and succeeds."""
    google.set_faults(forced=[{"status": 429, "count": 1, "path_prefix": "/calendar/v3/calendars/", "retry_after": 1}])
    started = time.monotonic()

    meeting = adapter(google).create(token, spec())

    assert meeting.join_url
    assert time.monotonic() - started >= 1.0
    assert len(google.events(MENTOR)) == 1


def test_a_403_rate_limit_is_retried(google: GoogleEmulator, token: SecretStr) -> None:
    """Given Google's 403 rateLimitExceeded once
    When the meeting is created / Then it is retried like a 429."""
    google.set_faults(forced=[{"status": 403, "count": 1, "path_prefix": "/calendar/v3/calendars/", "retry_after": 0}])

    assert adapter(google).create(token, spec()).join_url
    posts = google.requests_log(path_prefix="/calendar/v3/calendars/", method="POST")
    assert [p["status"] for p in posts] == [403, 200]


def test_a_long_retry_after_is_left_to_the_caller(google: GoogleEmulator, token: SecretStr) -> None:
    """Given a 429 asking for an hour
    When the meeting is created
    Then there is no in-process wait: a retryable rate_limited error carries retry_after_s."""
    google.set_faults(
        forced=[{"status": 429, "count": 1, "path_prefix": "/calendar/v3/calendars/", "retry_after": 3600}]
    )
    started = time.monotonic()

    with pytest.raises(MeetingError) as caught:
        adapter(google).create(token, spec())

    assert time.monotonic() - started < 2.0
    err = caught.value
    assert (err.code, err.status, err.retryable) == ("rate_limited", 429, True)
    assert err.retry_after_s == pytest.approx(3600, abs=5)
    assert len(google.requests_log(path_prefix="/calendar/v3/calendars/")) == 1


def test_persistent_503_becomes_a_retryable_error(google: GoogleEmulator, token: SecretStr) -> None:
    """Given Google answers 503 to everything
    When the meeting is created
    Then after the in-process attempts a retryable 'unavailable' error, and no event."""
    google.set_faults(forced=[{"status": 503, "count": 20, "path_prefix": "/calendar/v3/calendars/", "retry_after": 0}])

    with pytest.raises(MeetingError) as caught:
        adapter(google, attempts=3).create(token, spec())

    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("unavailable", 503, True)
    assert len(google.requests_log(path_prefix="/calendar/v3/calendars/")) == 3
    assert google.events(MENTOR) == []


def test_a_missing_scope_is_forbidden_and_not_retried(google: GoogleEmulator) -> None:
    """Given a token granted only calendar.readonly
    When the meeting is created
    Then a non-retryable 'forbidden' error after a single request."""
    token = mint_token(google, scope=g.SCOPE_READONLY)

    with pytest.raises(MeetingError) as caught:
        adapter(google).create(token, spec())

    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("forbidden", 403, False)
    assert "insufficientPermissions" in str(caught.value)
    assert len(google.requests_log(path_prefix="/calendar/v3/calendars/")) == 1


def test_a_revoked_token_is_an_auth_error_without_the_token(google: GoogleEmulator, token: SecretStr) -> None:
    """Given the mentor revoked access
    When any call runs
    Then MeetingAuthError (401), whose text does not contain the token."""
    google.revoke_token(token.get_secret_value())
    meets = adapter(google)

    for call in (
        lambda: meets.create(token, spec()),
        lambda: meets.find(token, spec()),
        lambda: meets.move(token, google_event_id("x"), spec()),
        lambda: meets.delete(token, google_event_id("x"), spec()),
    ):
        with pytest.raises(MeetingAuthError) as caught:
            call()
        assert caught.value.status == 401
        assert caught.value.code == "unauthorized"
        assert caught.value.retryable is False
        assert token.get_secret_value() not in f"{caught.value} {caught.value!r}"


def test_an_unreachable_google_is_a_retryable_error() -> None:
    """Given nothing listens on the API address
    When the meeting is created / Then a retryable 'unreachable' error without the token."""
    meets = GoogleMeetings(api_base="http://127.0.0.1:9/calendar/v3", timeout_s=1.0, attempts=2)
    token = SecretStr("ya29.not-a-real-token-000")

    with pytest.raises(MeetingError) as caught:
        meets.create(token, spec())

    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("unreachable", None, True)
    assert "ya29" not in str(caught.value)


def test_spec_rejects_naive_times_and_unknown_zones() -> None:
    """Given a spec with a naive start or an unknown zone / Then it cannot be built."""
    naive = datetime(2030, 1, 1, 10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        MeetingSpec(key="k1", title="t", start=naive, end=naive + timedelta(hours=1), timezone=TZ)
    aware = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="IANA"):
        MeetingSpec(key="k1", title="t", start=aware, end=aware + timedelta(hours=1), timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="after"):
        MeetingSpec(key="k1", title="t", start=aware, end=aware, timezone=TZ)


def test_meetings_client_is_built_from_settings_once(
    google: GoogleEmulator, token: SecretStr, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the settings point at the emulator
    When meetings_client(google_meet) is asked twice
    Then it is the same GoogleMeetings, and it works."""
    for name, value in google.environment().items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    reset_meetings_clients()
    try:
        client = meetings_client(MeetingProvider.GOOGLE_MEET)
        assert isinstance(client, GoogleMeetings)
        assert meetings_client(MeetingProvider.GOOGLE_MEET) is client
        assert client.create(token, spec()).join_url
    finally:
        wiring.reset()
        reset_meetings_clients()
