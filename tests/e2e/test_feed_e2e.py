"""The teaching-schedule feed end to end through the local gateway (real HTTP): the mentor gets the
secret URL, a calendar app (no credentials) fetches it, ETag / 304, a cancelled session, rotation,
unknown tokens, and the token never reaching a log line.

Classes are created through ``POST /classes``; the online session's meeting is recorded the way
the meetings worker records it (``MeetingLedger``), so the feed's join URL is the session's one.
"""

from __future__ import annotations

import io
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from classes_support import JobsQueue, connect, create, future, in_person, online, private_jobs_queue, set_plan, tables
from icalendar import Calendar, Event

from devstack.stack import LocalStack
from shared.store import MeetingProvider, MeetingStatus, Provider, ScheduleStore, Store
from shared.store.meetings import MeetingLedger, Reservation

MEET_URL = "https://meet.google.com/fee-dtes-tee"
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def stores(local_stack: LocalStack) -> tuple[Store, ScheduleStore]:
    return tables(local_stack)


@pytest.fixture
def queued(local_stack: LocalStack) -> Iterator[JobsQueue]:
    """Cancellation jobs go to a private queue (no worker runs them here)."""
    with private_jobs_queue(local_stack) as queue:
        yield queue


@pytest.fixture
def pro(stores: tuple[Store, ScheduleStore], mentor: str) -> str:
    store, _ = stores
    set_plan(store, mentor, "pro")
    connect(store, mentor, Provider.GOOGLE)
    return mentor


def _uid(session_id: str) -> str:
    return f"{session_id}@mentor-connections"


def _events(resp: httpx.Response) -> dict[str, Event]:
    cal = Calendar.from_ical(resp.content)
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def _feed_url(api: httpx.Client, headers: dict[str, str], *, rotate: bool = False) -> dict[str, str]:
    resp = (
        api.post("/mentors/me/feed/rotate", headers=headers) if rotate else api.get("/mentors/me/feed", headers=headers)
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    urls: dict[str, str] = resp.json()
    assert set(urls) == {"url", "webcalUrl"}
    return urls


def _record_meeting(stores: tuple[Store, ScheduleStore], session_id: str, url: str) -> None:
    """What mint_meeting writes once the provider answered: the session's one meeting."""
    store, schedule = stores
    session = schedule.get_session(session_id)
    assert session is not None
    ledger = MeetingLedger(store.table, schedule)
    held = ledger.reserve(session, MeetingProvider.GOOGLE_MEET, lease_s=60)
    assert isinstance(held, Reservation)
    ledger.record(held, status=MeetingStatus.CREATED, meeting_id="evt-feed", url=url)


@pytest.fixture
def schedule_of(
    api: httpx.Client, headers: dict[str, str], pro: str, stores: tuple[Store, ScheduleStore]
) -> dict[str, Any]:
    """An in-person Berlin class (2 sessions) and an online New York class on Meet (1 session, with its meeting)."""
    studio = create(api, headers, in_person())
    ny_start = datetime.fromisoformat(future(40, hour=19, tz=NEW_YORK))
    remote = create(
        api,
        headers,
        online(timezone="America/New_York", meetingProvider="google_meet", starts=[ny_start.isoformat()]),
    )
    _record_meeting(stores, remote["sessions"][0]["sessionId"], MEET_URL)
    return {"studio": studio, "remote": remote}


def test_the_feed_serves_every_session_with_stable_uids_and_etag(
    api: httpx.Client, headers: dict[str, str], schedule_of: dict[str, Any], local_stack: LocalStack
) -> None:
    # Given a mentor with an in-person and an online class
    studio, remote = schedule_of["studio"], schedule_of["remote"]
    # When the mentor asks for the feed URL (twice: created once, then shown again)
    urls = _feed_url(api, headers)
    assert _feed_url(api, headers) == urls
    token = urls["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert urls["url"] == f"{local_stack.api_url}/feeds/{token}.ics"
    assert urls["webcalUrl"] == "webcal://" + urls["url"].split("://", 1)[1]
    assert len(token) >= 22  # ≥ 128 bits of base64url
    # And a calendar app fetches it, without any credential
    first = api.get(urls["url"])
    # Then it is a calendar with every session, in the class's zone
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "text/calendar; charset=utf-8"
    assert first.headers["cache-control"] == "private, max-age=300"
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    cal = Calendar.from_ical(first.content)
    assert cal["METHOD"] == "PUBLISH"
    assert cal["X-WR-CALNAME"]
    assert {str(z["TZID"]) for z in cal.walk("VTIMEZONE")} == {"Europe/Berlin", "America/New_York"}
    events = _events(first)
    expected = {_uid(s["sessionId"]): s for c in (studio, remote) for s in c["sessions"]}
    assert set(events) == set(expected)
    for uid, session in expected.items():
        event = events[uid]
        start = event["DTSTART"].dt
        assert start == datetime.fromisoformat(session["start"])
        assert event["DTEND"].dt == datetime.fromisoformat(session["end"])
        assert event["STATUS"] == "CONFIRMED"
        assert event["SEQUENCE"] == 0
    for s in studio["sessions"]:
        event = events[_uid(s["sessionId"])]
        assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
        assert event["DTSTART"].dt.hour == 18  # the wall time it was created at
        assert event["LOCATION"] == studio["location"]
    online_event = events[_uid(remote["sessions"][0]["sessionId"])]
    assert online_event["DTSTART"].params["TZID"] == "America/New_York"
    assert online_event["DTSTART"].dt.hour == 19
    assert online_event["URL"] == online_event["LOCATION"] == MEET_URL
    # And a second fetch is the same calendar: same UIDs, same bytes, same ETag
    second = api.get(urls["url"])
    assert second.content == first.content
    assert second.headers["etag"] == etag
    # And the ETag revalidates: 304, no body
    for validator in (etag, f"W/{etag}", f'"nope", {etag}'):
        cached = api.get(urls["url"], headers={"if-none-match": validator})
        assert cached.status_code == 304, cached.text
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert cached.headers["cache-control"] == "private, max-age=300"
    assert api.get(urls["url"], headers={"if-none-match": '"stale"'}).status_code == 200


def test_a_cancelled_session_is_marked_and_changes_the_etag(
    api: httpx.Client, headers: dict[str, str], schedule_of: dict[str, Any], queued: JobsQueue
) -> None:
    # Given the feed as a calendar app last saw it
    studio = schedule_of["studio"]
    url = _feed_url(api, headers)["url"]
    before = api.get(url)
    etag = before.headers["etag"]
    gone = studio["sessions"][0]["sessionId"]
    # When the mentor cancels a session
    resp = api.delete(f"/classes/{studio['classId']}/sessions/{gone}", headers=headers)
    assert resp.status_code == 202, resp.text
    # Then the app's conditional fetch gets the new calendar, not a 304
    after = api.get(url, headers={"if-none-match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    # And the session is still there, under the same UID, cancelled with a higher SEQUENCE
    events = _events(after)
    assert set(events) == set(_events(before))
    cancelled = events[_uid(gone)]
    assert cancelled["STATUS"] == "CANCELLED"
    assert cancelled["SEQUENCE"] == _events(before)[_uid(gone)]["SEQUENCE"] + 1
    assert events[_uid(studio["sessions"][1]["sessionId"])]["STATUS"] == "CONFIRMED"
    # And the new ETag revalidates
    assert api.get(url, headers={"if-none-match": after.headers["etag"]}).status_code == 304


def test_rotation_makes_the_old_url_404(
    api: httpx.Client, headers: dict[str, str], schedule_of: dict[str, Any]
) -> None:
    # Given a feed a calendar app subscribed to
    old = _feed_url(api, headers)
    assert api.get(old["url"]).status_code == 200
    # When the mentor rotates it
    new = _feed_url(api, headers, rotate=True)
    # Then the old URL is dead at once and the new one serves the same calendar
    assert new["url"] != old["url"]
    assert new["webcalUrl"] != old["webcalUrl"]
    dead = api.get(old["url"])
    assert dead.status_code == 404
    assert dead.json() == {"error": {"code": "not_found", "message": "No such feed."}}
    live = api.get(new["url"])
    assert live.status_code == 200
    assert set(_events(live)) == {_uid(s["sessionId"]) for c in schedule_of.values() for s in c["sessions"]}
    # And GET /mentors/me/feed shows the new URL from now on
    assert _feed_url(api, headers) == new


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/{random}.ics",  # well-formed, never issued
        "/feeds/{random}",  # no .ics
        "/feeds/{random}.ICS",
        "/feeds/{random}x.ics",
        "/feeds/abc.ics",
        "/feeds/.ics",
        "/feeds/%2E%2E.ics",
        "/feeds/{random}.ics.ics",
    ],
)
def test_unknown_and_malformed_tokens_are_all_the_same_404(api: httpx.Client, path: str) -> None:
    resp = api.get(path.format(random=secrets.token_urlsafe(32)))
    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": "not_found", "message": "No such feed."}}


def test_the_feed_url_routes_need_a_mentor(api: httpx.Client) -> None:
    assert api.get("/mentors/me/feed").status_code == 401
    assert api.post("/mentors/me/feed/rotate").status_code == 401


def test_each_mentor_sees_only_their_own_sessions(
    api: httpx.Client,
    headers: dict[str, str],
    mentor_headers: Callable[..., dict[str, str]],
    schedule_of: dict[str, Any],
) -> None:
    # Given another mentor with one in-person class
    other = mentor_headers(f"e2e-{uuid.uuid4().hex[:10]}")
    theirs = create(api, other, in_person(title="Evening clay", starts=[future(50)]))
    # When each fetches their feed
    mine_url, their_url = _feed_url(api, headers)["url"], _feed_url(api, other)["url"]
    # Then the URLs differ and each calendar holds only its mentor's sessions
    assert mine_url != their_url
    assert set(_events(api.get(their_url))) == {_uid(theirs["sessions"][0]["sessionId"])}
    assert _uid(theirs["sessions"][0]["sessionId"]) not in _events(api.get(mine_url))


def test_an_empty_feed_is_a_valid_calendar(api: httpx.Client, headers: dict[str, str]) -> None:
    resp = api.get(_feed_url(api, headers)["url"])
    assert resp.status_code == 200
    assert Calendar.from_ical(resp.content).walk("VEVENT") == []


def test_the_feed_token_never_reaches_a_log_line(
    api: httpx.Client,
    headers: dict[str, str],
    schedule_of: dict[str, Any],
    captured_logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test's own HTTP client logs every URL it requests (httpx at INFO): it is the calendar
    # app here, not the system, so it is quiet; everything the gateway and functions log is kept.
    for name in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    # Given a feed that is created, fetched, revalidated, rotated and fetched again
    first = _feed_url(api, headers)
    resp = api.get(first["url"])
    assert api.get(first["url"], headers={"if-none-match": resp.headers["etag"]}).status_code == 304
    second = _feed_url(api, headers, rotate=True)
    assert api.get(first["url"]).status_code == 404
    assert api.get(second["url"]).status_code == 200
    # Then the logs talk about it (at DEBUG, botocore included) but hold neither token
    text = captured_logs.getvalue()
    assert "feed served" in text
    assert "feed rotated" in text
    assert "GET /feeds/{token}" in text
    for urls in (first, second):
        token = urls["url"].rsplit("/", 1)[1].removesuffix(".ics")
        assert token not in text
