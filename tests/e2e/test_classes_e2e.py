"""Classes end to end through the local gateway (real HTTP): create (in-person and online, with
every code of PRODUCT.md §2.4), read, recurrence across a DST change, malformed bodies, moving and
cancelling a session (with the jobs they queue).

The mentor's plan and connections are seeded straight into the stack's table; classes_api only
reads their status (no credential is needed to create a class).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from classes_support import (
    BERLIN,
    JobsQueue,
    connect,
    create,
    future,
    in_person,
    online,
    private_jobs_queue,
    set_plan,
    tables,
    utc,
)

from devstack.stack import LocalStack
from shared.store import ConnectionStatus, Provider, ScheduleStore, Store

CONNECT_URL = "/mentor/settings/connections"


@pytest.fixture(scope="module")
def stores(local_stack: LocalStack) -> tuple[Store, ScheduleStore]:
    return tables(local_stack)


@pytest.fixture
def stack_store(stores: tuple[Store, ScheduleStore]) -> Store:
    return stores[0]


@pytest.fixture
def schedule(stores: tuple[Store, ScheduleStore]) -> ScheduleStore:
    return stores[1]


@pytest.fixture
def queued(local_stack: LocalStack) -> Iterator[JobsQueue]:
    with private_jobs_queue(local_stack) as queue:
        yield queue


@pytest.fixture
def pro(stack_store: Store, mentor: str) -> str:
    set_plan(stack_store, mentor, "pro")
    return mentor


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


# --- in-person and reading back -------------------------------------------------------------------


def test_in_person_class_is_created_and_read_back_by_its_mentor_only(
    api: httpx.Client, headers: dict[str, str], mentor_headers: Callable[..., dict[str, str]], mentor: str
) -> None:
    # Given a free-plan mentor (no profile at all) and two one-off starts, one given with an offset
    body = in_person(starts=[future(30), future(37, hour=16) + "+00:00"])
    # When the class is created
    created = create(api, headers, body)
    # Then both sessions are there in start order, in Berlin time, one hour long, empty
    assert created["classId"].startswith("cls_")
    assert (created["format"], created["location"], created["warnings"]) == ("in_person", body["location"], [])
    assert "meetingProvider" not in created
    first, second = created["sessions"]
    assert first["start"].startswith(body["starts"][0])
    assert utc(second["start"]) == datetime.fromisoformat(body["starts"][1])
    assert utc(first["end"]) - utc(first["start"]) == timedelta(hours=1)
    assert {s["sessionId"] for s in created["sessions"]} == {f"{created['classId']}-s01", f"{created['classId']}-s02"}
    assert all((s["status"], s["seatsTaken"], s["capacity"]) == ("scheduled", 0, 8) for s in created["sessions"])
    # When the mentor reads it back / Then it is the same
    got = api.get(f"/classes/{created['classId']}", headers=headers)
    assert got.status_code == 200
    assert got.json() == created
    # And another mentor, or an unknown id, gets the same 404
    stranger = api.get(f"/classes/{created['classId']}", headers=mentor_headers("someone-else"))
    _error(stranger, 404, "class_not_found")
    _error(api.get("/classes/cls_nope", headers=headers), 404, "class_not_found")


def test_weekly_class_keeps_18_00_berlin_across_the_october_dst_change(
    api: httpx.Client, headers: dict[str, str]
) -> None:
    # Given a weekly rule at 18:00 Europe/Berlin starting four weeks before October's last Sunday
    year = datetime.now(UTC).year + 1
    last_sunday = max(datetime(year, 10, d) for d in range(25, 32) if datetime(year, 10, d).weekday() == 6)
    start = (last_sunday - timedelta(weeks=4)).replace(hour=18)
    # When the class is created
    created = create(
        api, headers, in_person(starts=None, rrule="FREQ=WEEKLY;COUNT=6", dtstart=start.isoformat(timespec="minutes"))
    )
    # Then every session is at 18:00 local: UTC+2 before the change, UTC+1 after it
    starts = [datetime.fromisoformat(s["start"]) for s in created["sessions"]]
    assert [s.strftime("%H:%M") for s in starts] == ["18:00"] * 6
    assert [s.utcoffset() for s in starts] == [timedelta(hours=2)] * 4 + [timedelta(hours=1)] * 2
    assert [s.astimezone(UTC).hour for s in starts] == [16] * 4 + [17] * 2
    assert created["rrule"] == "FREQ=WEEKLY;COUNT=6"


# --- online: plan gating and provider resolution (PRODUCT.md §2.4) ---------------------------------


def test_online_needs_pro_or_premium(
    api: httpx.Client, headers: dict[str, str], stack_store: Store, mentor: str
) -> None:
    # Given a mentor without a profile (Free), then one explicitly on Free, both with Google connected
    connect(stack_store, mentor, Provider.GOOGLE)
    # When they create an online class / Then 403 plan_required
    error = _error(api.post("/classes", json=online(), headers=headers), 403, "plan_required")
    assert error["plans"] == ["pro", "premium"]
    set_plan(stack_store, mentor, "free")
    _error(api.post("/classes", json=online(), headers=headers), 403, "plan_required")
    # And on Premium it works
    set_plan(stack_store, mentor, "premium")
    assert create(api, headers, online())["meetingProvider"] == "google_meet"


@pytest.mark.parametrize(
    ("connected", "expected"), [([Provider.GOOGLE], "google_meet"), ([Provider.ZOOM, Provider.APPLE], "zoom")]
)
def test_only_one_video_provider_is_chosen_automatically(
    api: httpx.Client, headers: dict[str, str], stack_store: Store, pro: str, connected: list[Provider], expected: str
) -> None:
    # Given a Pro mentor with exactly one video provider (Apple does not count)
    for provider in connected:
        connect(stack_store, pro, provider, plan_type=2 if provider is Provider.ZOOM else None)
    # When they create an online class without naming one / Then that one hosts it
    created = create(api, headers, online())
    assert created["meetingProvider"] == expected
    assert created["warnings"] == []
    assert "location" not in created


def test_both_providers_connected_requires_a_choice(
    api: httpx.Client, headers: dict[str, str], stack_store: Store, pro: str
) -> None:
    # Given Google and Zoom both connected
    connect(stack_store, pro, Provider.GOOGLE)
    connect(stack_store, pro, Provider.ZOOM, plan_type=2)
    # When no provider is named / Then 400 meeting_provider_required with the choices
    error = _error(api.post("/classes", json=online(), headers=headers), 400, "meeting_provider_required")
    assert error["choices"] == ["google_meet", "zoom"]
    # When one is named / Then it is used
    assert create(api, headers, online(meetingProvider="zoom"))["meetingProvider"] == "zoom"


def test_no_video_provider_points_to_the_connections_page(
    api: httpx.Client, headers: dict[str, str], stack_store: Store, pro: str, schedule: ScheduleStore
) -> None:
    # Given only Apple connected, and Google needing a reconnect
    connect(stack_store, pro, Provider.APPLE)
    connect(stack_store, pro, Provider.GOOGLE, status=ConnectionStatus.NEEDS_RECONNECT)
    # When an online class is created / Then 409 no_video_provider with the connect URL, nothing written
    error = _error(api.post("/classes", json=online(), headers=headers), 409, "no_video_provider")
    assert error["connectUrl"] == CONNECT_URL
    assert schedule.list_classes(pro) == []


def test_named_provider_must_be_connected(
    api: httpx.Client, headers: dict[str, str], stack_store: Store, pro: str
) -> None:
    # Given Google connected and Zoom not; then Zoom present but needing a reconnect
    connect(stack_store, pro, Provider.GOOGLE)
    # When Zoom is named / Then 409 provider_not_connected
    error = _error(
        api.post("/classes", json=online(meetingProvider="zoom"), headers=headers), 409, "provider_not_connected"
    )
    assert (error["provider"], error["connectionStatus"], error["connectUrl"]) == ("zoom", "not_connected", CONNECT_URL)
    connect(stack_store, pro, Provider.ZOOM, status=ConnectionStatus.NEEDS_RECONNECT, plan_type=1)
    error = _error(
        api.post("/classes", json=online(meetingProvider="zoom"), headers=headers), 409, "provider_not_connected"
    )
    assert error["connectionStatus"] == "needs_reconnect"


@pytest.mark.parametrize(("plan_type", "minutes", "warned"), [(1, 60, True), (1, 40, False), (2, 90, False)])
def test_zoom_basic_over_40_minutes_is_created_with_a_warning(
    api: httpx.Client, headers: dict[str, str], stack_store: Store, pro: str, plan_type: int, minutes: int, warned: bool
) -> None:
    # Given Zoom connected on a Basic (1) or Licensed (2) account
    connect(stack_store, pro, Provider.ZOOM, plan_type=plan_type)
    # When an online class of `minutes` is created
    created = create(api, headers, online(durationMinutes=minutes))
    # Then it exists; Basic + more than 40 minutes carries the zoom_free_40_min_cap warning
    codes = [w["code"] for w in created["warnings"]]
    assert codes == (["zoom_free_40_min_cap"] if warned else [])
    if warned:
        assert "40 minutes" in created["warnings"][0]["message"]
        again = api.get(f"/classes/{created['classId']}", headers=headers).json()
        assert again["warnings"] == created["warnings"]


# --- malformed bodies: 400 invalid_request naming the field, never a 500, nothing written -----------

MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("bad timezone", in_person(timezone="Mars/Olympus_Mons"), "timezone"),
    ("not an IANA zone", in_person(timezone="localtime"), "timezone"),
    ("bad rrule", in_person(starts=None, rrule="FREQ=WEEKLY;BYDAY=XX;COUNT=3", dtstart=future()), "rrule"),
    ("garbage rrule", in_person(starts=None, rrule="every tuesday", dtstart=future()), "rrule"),
    ("unbounded rrule", in_person(starts=None, rrule="FREQ=WEEKLY;BYDAY=TU", dtstart=future()), "rrule"),
    ("sub-daily rrule", in_person(starts=None, rrule="FREQ=HOURLY;COUNT=3", dtstart=future()), "rrule"),
    ("rrule without dtstart", in_person(starts=None, rrule="FREQ=WEEKLY;COUNT=3"), "dtstart"),
    ("both starts and rrule", in_person(rrule="FREQ=WEEKLY;COUNT=3", dtstart=future()), "starts"),
    ("neither starts nor rrule", in_person(starts=None), "starts"),
    ("empty starts", in_person(starts=[]), "starts"),
    ("bad start", in_person(starts=["next tuesday"]), "starts.0"),
    ("date without time", in_person(starts=["2031-05-01"]), "starts.0"),
    ("past start", in_person(starts=["2020-05-01T18:00"]), "starts"),
    ("duplicate starts", in_person(starts=[future(30), future(30)]), "starts"),
    ("in-person without location", in_person(location=None), "location"),
    ("online with a location", online(location="Studio 3"), "location"),
    ("in-person with a meeting provider", in_person(meetingProvider="zoom"), "meetingProvider"),
    ("unknown meeting provider", online(meetingProvider="webex"), "meetingProvider"),
    ("unknown format", in_person(format="hybrid"), "format"),
    ("negative capacity", in_person(capacity=-1), "capacity"),
    ("zero duration", in_person(durationMinutes=0), "durationMinutes"),
    ("too many starts", in_person(starts=[future(1 + n) for n in range(100)]), "starts"),
    ("too many rrule sessions", in_person(starts=None, rrule="FREQ=DAILY;COUNT=100", dtstart=future()), "rrule"),
    (
        "rrule yielding over 99",
        in_person(starts=None, rrule="FREQ=DAILY;UNTIL=20990101T000000Z", dtstart=future()),
        "rrule",
    ),
    ("unknown field", in_person(colour="blue"), "colour"),
    ("missing title", in_person(title=None), "title"),
]


@pytest.mark.parametrize(("case", "body", "field"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_class_is_400_with_the_field(
    api: httpx.Client,
    headers: dict[str, str],
    stack_store: Store,
    pro: str,
    schedule: ScheduleStore,
    case: str,
    body: dict[str, Any],
    field: str,
) -> None:
    # Given a Pro mentor with Google connected (so only the body can be wrong)
    connect(stack_store, pro, Provider.GOOGLE)
    # When the malformed class is posted
    resp = api.post("/classes", json=body, headers=headers)
    # Then 400 invalid_request names the field; nothing was written
    error = _error(resp, 400, "invalid_request")
    assert field in [f["field"] for f in error["fields"]], (case, error)
    assert schedule.list_classes(pro) == []


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[]", b"null", b'"a string"'], ids=["invalid", "empty", "array", "null", "string"]
)
def test_a_body_that_is_not_a_json_object_is_400(api: httpx.Client, headers: dict[str, str], raw: bytes) -> None:
    # When the body is not a JSON object / Then 400 invalid_request, not a 500
    resp = api.post("/classes", content=raw, headers={**headers, "content-type": "application/json"})
    _error(resp, 400, "invalid_request")


def test_class_routes_need_the_mentor_jwt(api: httpx.Client) -> None:
    # When no bearer token is sent / Then the gateway's authorizer answers 401
    assert api.post("/classes", json=in_person()).status_code == 401
    assert api.get("/classes/cls_x").status_code == 401


# --- moving and cancelling sessions ---------------------------------------------------------------


def test_moving_a_session_bumps_its_sequence_and_queues_a_move_job(
    api: httpx.Client,
    headers: dict[str, str],
    mentor_headers: Callable[..., dict[str, str]],
    mentor: str,
    queued: JobsQueue,
) -> None:
    # Given a class with two sessions
    created = create(api, headers, in_person())
    cid, sid = created["classId"], created["sessions"][0]["sessionId"]
    url = f"/classes/{cid}/sessions/{sid}"
    # When the first moves to 19:30 the next day (naive = Berlin time)
    new_start = (datetime.fromisoformat(future(31, hour=19)) + timedelta(minutes=30)).isoformat()
    moved = api.patch(url, json={"start": new_start}, headers=headers)
    # Then it is there, still an hour long, at sequence 1, and a session.moved job is queued at 1
    assert moved.status_code == 200, moved.text
    view = moved.json()
    assert view["start"] == datetime.fromisoformat(new_start).replace(tzinfo=BERLIN).isoformat()
    assert utc(view["end"]) - utc(view["start"]) == timedelta(hours=1)
    assert view["sequence"] == 1
    assert queued.drain() == [
        {
            "kind": "session.moved",
            "mentorId": mentor,
            "classId": cid,
            "sessionId": sid,
            "sequence": 1,
            "cause": "mentor",
        }
    ]
    # And GET shows the new time
    got = api.get(f"/classes/{cid}", headers=headers).json()
    assert got["sessions"][0]["start"] == view["start"]
    # When the same move is sent again (a retry) / Then nothing changes but the job is re-queued
    again = api.patch(url, json={"start": new_start}, headers=headers)
    assert again.json()["sequence"] == 1
    assert [j["sequence"] for j in queued.drain()] == [1]
    # And another mentor, a session of another class, a past time and a bad body are refused
    _error(api.patch(url, json={"start": new_start}, headers=mentor_headers("other")), 404, "class_not_found")
    _error(
        api.patch(f"/classes/{cid}/sessions/cls_other-s01", json={"start": new_start}, headers=headers),
        404,
        "session_not_found",
    )
    _error(api.patch(url, json={"start": "2020-01-01T10:00"}, headers=headers), 400, "invalid_request")
    _error(api.patch(url, json={"start": "soon"}, headers=headers), 400, "invalid_request")
    _error(api.patch(url, json={}, headers=headers), 400, "invalid_request")
    assert queued.drain() == []


def test_cancelling_a_session_cancels_its_bookings_and_queues_one_job(
    api: httpx.Client,
    headers: dict[str, str],
    mentor: str,
    queued: JobsQueue,
    schedule: ScheduleStore,
    platform_headers: dict[str, str],
) -> None:
    # Given a session with two bookings, one of them confirmed
    created = create(api, headers, in_person())
    cid, sid = created["classId"], created["sessions"][0]["sessionId"]
    booked = [
        api.post(
            "/bookings",
            json={
                "sessionId": sid,
                "studentEmail": f"s{n}@example.com",
                "studentName": f"S{n}",
                "priceAmount": 4900,
                "currency": "USD",
            },
            headers=platform_headers,
        )
        for n in range(2)
    ]
    assert [b.status_code for b in booked] == [201, 201]
    ids = [b.json()["bookingId"] for b in booked]
    assert schedule.confirm_booking(ids[0]) is not None
    schedule.clear_pending_job(ids[0], "create")
    # When the mentor cancels the session
    resp = api.delete(f"/classes/{cid}/sessions/{sid}", headers=headers)
    # Then 202: the session and both bookings are cancelled, seats freed, one session.cancelled job queued
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"sessionId": sid, "status": "cancelled", "cancelledBookings": 2}
    for booking_id in ids:
        booking = schedule.get_booking(booking_id)
        assert booking is not None
        assert (booking.status.value, booking.cancel_reason, booking.job_pending) == (
            "CANCELLED",
            "session_cancelled",
            None,
        )
    session = schedule.get_session(sid)
    assert session is not None
    assert (session.status.value, session.seats_taken, session.confirmed, session.sequence) == ("cancelled", 0, 0, 1)
    assert queued.drain() == [
        {
            "kind": "session.cancelled",
            "mentorId": mentor,
            "classId": cid,
            "sessionId": sid,
            "sequence": 1,
            "cause": "mentor",
        }
    ]
    # When it is cancelled again / Then 202 again, nothing more cancelled, the job re-queued (idempotent)
    again = api.delete(f"/classes/{cid}/sessions/{sid}", headers=headers)
    assert (again.status_code, again.json()["cancelledBookings"]) == (202, 0)
    assert [j["sequence"] for j in queued.drain()] == [1]
    # And a cancelled session can be neither moved nor booked
    _error(
        api.patch(f"/classes/{cid}/sessions/{sid}", json={"start": future(40)}, headers=headers),
        409,
        "session_cancelled",
    )
    late = api.post(
        "/bookings",
        json={
            "sessionId": sid,
            "studentEmail": "l@example.com",
            "studentName": "L",
            "priceAmount": 4900,
            "currency": "USD",
        },
        headers=platform_headers,
    )
    _error(late, 409, "session_cancelled")
    # And the other session is untouched
    other = schedule.get_session(created["sessions"][1]["sessionId"])
    assert other is not None
    assert other.status.value == "scheduled"
