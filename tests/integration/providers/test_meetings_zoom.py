"""Zoom adapter (shared.providers.zoom.meetings.ZoomMeetings) against the Zoom emulator.

Scheduled meetings (type 2, join before host, no waiting room) in the class's zone, one per
session key through the agenda marker and the list endpoint, move keeps the join link, delete is
idempotent, 429/5xx retried, the daily create cap surfaced (not slept on), 401 typed, every
request within Zoom's OpenAPI document.
"""

from __future__ import annotations

import copy
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

from devstack.emulators import ZoomEmulator, pkce_s256
from devstack.emulators import zoom as z
from devstack.emulators.spec import assert_request_conforms
from shared import wiring
from shared.providers.meetings import (
    MeetingAuthError,
    MeetingError,
    MeetingSpec,
    meetings_client,
    reset_meetings_clients,
)
from shared.providers.oauth import ZOOM_SCOPES
from shared.providers.zoom.meetings import ZoomMeetings, zoom_marker
from shared.store.models import MeetingProvider

MENTOR = "mentor@example.com"
TZ = "Europe/Berlin"
CREATE = ("POST", "/users/{userId}/meetings")
LIST = ("GET", "/users/{userId}/meetings")


@pytest.fixture(scope="module")
def zoom_server() -> Iterator[ZoomEmulator]:
    emu = ZoomEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def zoom(zoom_server: ZoomEmulator) -> ZoomEmulator:
    zoom_server.reset()
    return zoom_server


def mint_token(emu: ZoomEmulator, scopes: tuple[str, ...] = ZOOM_SCOPES) -> SecretStr:
    """Consent through the emulator's code + PKCE flow for an app whose scopes are ``scopes`` (Zoom
    takes no ``scope`` on the authorize URL: the app's scopes are set in the Marketplace)."""
    emu.add_client(z.DEFAULT_CLIENT_ID, z.DEFAULT_CLIENT_SECRET, [z.DEFAULT_REDIRECT_URI], scopes=list(scopes))
    verifier = secrets.token_urlsafe(48)
    with httpx.Client(timeout=10) as http:
        resp = http.get(
            emu.authorize_url,
            params={
                "client_id": z.DEFAULT_CLIENT_ID,
                "redirect_uri": z.DEFAULT_REDIRECT_URI,
                "response_type": "code",
                "state": "s",
                "code_challenge": pkce_s256(verifier),
                "code_challenge_method": "S256",
            },
        )
        assert resp.status_code == 302, resp.text
        code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
        tok = http.post(
            emu.token_url,
            auth=(z.DEFAULT_CLIENT_ID, z.DEFAULT_CLIENT_SECRET),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": z.DEFAULT_REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        assert tok.status_code == 200, tok.text
        return SecretStr(tok.json()["access_token"])


@pytest.fixture
def token(zoom: ZoomEmulator) -> SecretStr:
    return mint_token(zoom)


def adapter(emu: ZoomEmulator, **kw: Any) -> ZoomMeetings:
    return ZoomMeetings(api_base=emu.api_base, timeout_s=5.0, **kw)


def spec(key: str = "cls_ab12-s03", start: datetime | None = None, **kw: Any) -> MeetingSpec:
    start = start or datetime(2030, 3, 4, 10, 0, tzinfo=ZoneInfo(TZ))
    return MeetingSpec(
        key=key,
        title=kw.pop("title", "Morning yoga"),
        start=start,
        end=start + timedelta(minutes=kw.pop("minutes", 60)),
        timezone=TZ,
        description=kw.pop("description", "Bring a mat."),
    )


def operation(entry: dict[str, Any]) -> tuple[str, str]:
    path = entry["path"].removeprefix("/v2")
    if path.startswith("/users/"):
        return entry["method"], "/users/{userId}/meetings"
    return entry["method"], "/meetings/{meetingId}"


def assert_all_conform(emu: ZoomEmulator) -> None:
    """Every meetings request in the log fits Zoom's OpenAPI document (body and query)."""
    log = [e for e in emu.requests_log() if "/meetings" in e["path"]]
    assert log
    for entry in log:
        query = {k: v[0] for k, v in entry["query"].items()}
        assert_request_conforms(entry.get("json"), zoom_operation=operation(entry), query=query)
    assert emu.snapshot()["request_findings"] == []


# ---- create ---------------------------------------------------------------------------------


def test_create_makes_one_scheduled_meeting(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given a mentor's Zoom token
    When the meeting of a session is created
    Then Zoom holds one type-2 meeting at the session's time in the class's zone, joinable
    before the host, without a waiting room, with the session marker as the agenda's last line."""
    meeting = adapter(zoom).create(token, spec())

    held = zoom.meetings()
    assert len(held) == 1
    m = held[0]
    assert meeting.meeting_id == str(m["id"])
    assert meeting.join_url == m["join_url"]
    assert meeting.pending is False
    assert m["type"] == 2
    assert m["topic"] == "Morning yoga"
    assert m["start_time"] == "2030-03-04T09:00:00Z"  # 10:00 in Berlin (CET)
    assert m["timezone"] == TZ
    assert m["duration"] == 60
    assert m["settings"]["join_before_host"] is True
    assert m["settings"]["waiting_room"] is False
    assert m["agenda"].splitlines()[0] == "Bring a mat."
    assert m["agenda"].splitlines()[-1] == zoom_marker("cls_ab12-s03")
    post = zoom.requests_log(path_prefix="/v2/users/me/meetings", method="POST")[0]
    assert post["json"]["start_time"] == "2030-03-04T10:00:00"  # local wall time, no offset
    assert_all_conform(zoom)


def test_create_twice_with_the_same_key_is_still_one(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given a session whose meeting was created
    When create runs again with the same key
    Then the adapter finds it by its marker instead of making a second one."""
    meets = adapter(zoom)
    first = meets.create(token, spec())

    again = meets.create(token, spec())

    assert again == first
    assert len(zoom.meetings()) == 1
    assert len(zoom.requests_log(path_prefix="/v2/users/me/meetings", method="POST")) == 1
    assert_all_conform(zoom)


def test_create_again_after_a_move_elsewhere_puts_the_meeting_at_the_spec_time(
    zoom: ZoomEmulator, token: SecretStr
) -> None:
    """Given a session's meeting that sits at another time than the spec now says
    When create runs again / Then the same meeting is moved to the spec's time."""
    meets = adapter(zoom)
    first = meets.create(token, spec())
    later = datetime(2030, 3, 5, 18, 30, tzinfo=ZoneInfo(TZ))

    again = meets.create(token, spec(start=later, minutes=45))

    assert again == first
    m = zoom.meetings()[0]
    assert (m["start_time"], m["duration"]) == ("2030-03-05T17:30:00Z", 45)


def test_find_is_none_before_and_the_meeting_after_create(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given no meeting for the key (but another session's meeting)
    When find runs / Then None; after create it returns the meeting; after delete None again."""
    meets = adapter(zoom, find_before_create=False)
    meets.create(token, spec("cls_other-s01"))
    assert meets.find(token, spec()) is None

    made = meets.create(token, spec())

    assert meets.find(token, spec()) == made
    assert meets.delete(token, made.meeting_id, spec()) is True
    assert meets.find(token, spec()) is None
    lists = zoom.requests_log(path_prefix="/v2/users/me/meetings", method="GET")
    assert all(e["query"] == {"type": ["scheduled"], "page_size": ["300"]} for e in lists)
    assert_all_conform(zoom)


def test_find_pages_through_many_meetings(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given a mentor with 650 scheduled meetings, the session's one listed last
    When find runs
    Then it follows next_page_token to the third page and returns it."""
    meets = adapter(zoom, find_before_create=False)
    made = meets.create(token, spec(start=datetime(2031, 1, 1, 10, 0, tzinfo=ZoneInfo(TZ))))
    with zoom.state.lock:
        original = zoom.state.meetings[int(made.meeting_id)]
        for i in range(649):
            clone = copy.deepcopy(original)
            clone["id"] = 70_000_000_000 + i
            clone["agenda"] = zoom_marker(f"cls_filler-s{i:03d}")
            clone["start_time"] = (datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            zoom.state.meetings[clone["id"]] = clone

    found = meets.find(token, spec(start=datetime(2031, 1, 1, 10, 0, tzinfo=ZoneInfo(TZ))))

    assert found == made
    lists = zoom.requests_log(path_prefix="/v2/users/me/meetings", method="GET")
    assert len(lists) == 3
    assert "next_page_token" in lists[1]["query"]


def test_find_without_the_list_scope_is_forbidden_but_create_still_works(zoom: ZoomEmulator) -> None:
    """Given a token granted before meeting:read:list_meetings was among the app's scopes
    When find runs / Then a non-retryable 'forbidden' error naming the scope;
    create still makes the meeting (without the duplicate check)."""
    token = mint_token(zoom, tuple(s for s in ZOOM_SCOPES if s != "meeting:read:list_meetings"))
    meets = adapter(zoom)

    with pytest.raises(MeetingError) as caught:
        meets.find(token, spec())
    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("forbidden", 400, False)
    assert "meeting:read:list_meetings" in str(caught.value)

    assert meets.create(token, spec()).join_url
    assert len(zoom.meetings()) == 1


# ---- move / delete --------------------------------------------------------------------------


def test_move_changes_the_time_and_keeps_the_join_link(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given a created meeting
    When the session is rescheduled (across the DST change)
    Then Zoom has the new start and duration, and the join URL is unchanged."""
    meets = adapter(zoom)
    made = meets.create(token, spec())
    later = datetime(2030, 4, 2, 19, 15, tzinfo=ZoneInfo(TZ))  # CEST

    moved = meets.move(token, made.meeting_id, spec(start=later, minutes=90))

    assert moved == made
    m = zoom.meetings()[0]
    assert m["start_time"] == "2030-04-02T17:15:00Z"
    assert m["duration"] == 90
    assert m["join_url"] == made.join_url
    patch = zoom.requests_log(path_prefix="/v2/meetings/", method="PATCH")[0]
    assert patch["status"] == 204
    assert patch["json"]["start_time"] == "2030-04-02T19:15:00"
    assert set(patch["json"]) == {"topic", "start_time", "timezone", "duration"}
    assert_all_conform(zoom)


def test_moving_a_deleted_meeting_is_not_found(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given a deleted meeting / When it is moved / Then a not_found error (Zoom 3001)."""
    meets = adapter(zoom)
    made = meets.create(token, spec())
    meets.delete(token, made.meeting_id, spec())

    with pytest.raises(MeetingError) as caught:
        meets.move(token, made.meeting_id, spec())
    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("not_found", 404, False)
    assert "3001" in str(caught.value)


def test_delete_then_delete_again(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given a created meeting
    When it is deleted twice / Then True, then False (404 'Meeting does not exist' is done)."""
    meets = adapter(zoom)
    made = meets.create(token, spec())

    assert meets.delete(token, made.meeting_id, spec()) is True
    assert meets.delete(token, made.meeting_id, spec()) is False

    assert zoom.meetings() == []
    deletes = zoom.requests_log(path_prefix="/v2/meetings/", method="DELETE")
    assert [d["status"] for d in deletes] == [204, 404]


# ---- retries, caps, errors ------------------------------------------------------------------


def test_injected_500s_and_429s_are_retried(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given the next create answers 500 twice, then 429 (per-second limit) once
    When the meeting is created
    Then the adapter retries and exactly one meeting exists."""
    zoom.set_faults(
        forced=[
            {"status": 500, "count": 2, "path_prefix": "/v2/users/me/meetings", "method": "POST", "retry_after": 0},
            {"status": 429, "count": 1, "path_prefix": "/v2/users/me/meetings", "method": "POST", "retry_after": 1},
        ]
    )
    started = time.monotonic()

    meeting = adapter(zoom).create(token, spec())

    assert meeting.join_url
    assert time.monotonic() - started >= 1.0  # the 429's Retry-After was honoured
    posts = zoom.requests_log(path_prefix="/v2/users/me/meetings", method="POST")
    assert [p["status"] for p in posts] == [500, 500, 429, 201]
    assert len(zoom.meetings()) == 1


def test_a_lost_create_answer_is_looked_for_not_posted_again(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given Zoom makes the meeting but its answer is lost (a 500 after the create)
    When the meeting is created
    Then the adapter looks for the key's marker before posting again: one POST, one meeting."""
    zoom.set_faults(
        forced=[
            {
                "status": 500,
                "count": 1,
                "path_prefix": "/v2/users/me/meetings",
                "method": "POST",
                "retry_after": 0,
                "after": True,
            }
        ]
    )

    meeting = adapter(zoom).create(token, spec())

    posts = zoom.requests_log(path_prefix="/v2/users/me/meetings", method="POST")
    assert [p["status"] for p in posts] == [500]
    (held,) = zoom.meetings()
    assert (str(held["id"]), held["join_url"]) == (meeting.meeting_id, meeting.join_url)


def test_a_create_answered_500_before_anything_was_made_is_posted_again(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given Zoom answers the create with a 500 and made nothing
    When the meeting is created / Then it looks, finds nothing, posts again: one meeting."""
    zoom.set_faults(
        forced=[{"status": 500, "count": 1, "path_prefix": "/v2/users/me/meetings", "method": "POST", "retry_after": 0}]
    )

    meeting = adapter(zoom).create(token, spec())

    assert meeting.join_url
    calls = [(r["method"], r["status"]) for r in zoom.requests_log(path_prefix="/v2/users/me/meetings")]
    assert calls == [("GET", 200), ("POST", 500), ("GET", 200), ("POST", 201)]
    assert len(zoom.meetings()) == 1


@pytest.mark.parametrize(
    ("retry_after_style", "type_header"),
    [("none", False), ("iso", True), ("seconds", True), ("none", True), ("iso", False)],
)
def test_the_daily_create_cap_is_a_retryable_error_for_the_caller(
    zoom: ZoomEmulator, token: SecretStr, retry_after_style: str, type_header: bool
) -> None:
    """Given the mentor's Zoom user reached the daily create cap (the real answer: only the message,
    no X-RateLimit-Type nor Retry-After; or with the rate-limit docs' headers)
    When another meeting is created
    Then no in-process retry: a retryable 'daily_cap' error with the wait until 00:00 UTC."""
    zoom.configure(meeting_daily_cap=1, daily_cap_retry_after=retry_after_style, daily_cap_type_header=type_header)
    meets = adapter(zoom)
    meets.create(token, spec("cls_ab12-s01"))
    started = time.monotonic()

    with pytest.raises(MeetingError) as caught:
        meets.create(token, spec("cls_ab12-s02"))

    assert time.monotonic() - started < 2.0
    err = caught.value
    assert (err.code, err.status, err.retryable) == ("daily_cap", 429, True)
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert err.retry_after_s is not None
    assert err.retry_after_s == pytest.approx((midnight - now).total_seconds(), abs=5)
    assert "daily rate limit" in str(err)
    posts = zoom.requests_log(path_prefix="/v2/users/me/meetings", method="POST")
    assert [p["status"] for p in posts] == [201, 429]
    assert len(zoom.meetings()) == 1


def test_persistent_5xx_becomes_a_retryable_error(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given Zoom answers 502 to every create
    When the meeting is created / Then a retryable 'unavailable' error after the attempts."""
    zoom.set_faults(
        forced=[
            {"status": 502, "count": 20, "path_prefix": "/v2/users/me/meetings", "method": "POST", "retry_after": 0}
        ]
    )

    with pytest.raises(MeetingError) as caught:
        adapter(zoom, attempts=3).create(token, spec())

    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("unavailable", 502, True)
    assert len(zoom.requests_log(path_prefix="/v2/users/me/meetings", method="POST")) == 3
    assert zoom.meetings() == []


def test_a_401_is_an_auth_error_without_the_token(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given the mentor's token was revoked
    When any call runs
    Then MeetingAuthError (401, code 124) whose text does not contain the token."""
    meets = adapter(zoom)
    made = meets.create(token, spec())
    zoom.revoke_token(token.get_secret_value())

    for call in (
        lambda: meets.create(token, spec()),
        lambda: meets.find(token, spec()),
        lambda: meets.move(token, made.meeting_id, spec()),
        lambda: meets.delete(token, made.meeting_id, spec()),
    ):
        with pytest.raises(MeetingAuthError) as caught:
            call()
        assert (caught.value.code, caught.value.status, caught.value.retryable) == ("unauthorized", 401, False)
        assert token.get_secret_value() not in f"{caught.value} {caught.value!r}"


def test_a_long_description_keeps_the_marker_visible_in_the_list(zoom: ZoomEmulator, token: SecretStr) -> None:
    """Given a class description far longer than the 250 characters the list shows
    When the meeting is created and then looked up
    Then the agenda is shortened so the marker survives the list's truncation, and find works."""
    meets = adapter(zoom, find_before_create=False)
    made = meets.create(token, spec(description="Stretch. " * 200))

    agenda = zoom.meetings()[0]["agenda"]
    assert len(agenda) <= 250
    assert agenda.endswith(zoom_marker("cls_ab12-s03"))
    assert meets.find(token, spec()) == made


def test_meetings_client_is_built_from_settings_once(
    zoom: ZoomEmulator, token: SecretStr, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the settings point at the emulator
    When meetings_client(zoom) is asked twice / Then the same ZoomMeetings, and it works."""
    for name, value in zoom.environment().items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    reset_meetings_clients()
    try:
        client = meetings_client(MeetingProvider.ZOOM)
        assert isinstance(client, ZoomMeetings)
        assert meetings_client(MeetingProvider.ZOOM) is client
        assert client.create(token, spec()).join_url
    finally:
        wiring.reset()
        reset_meetings_clients()
