"""The rules of shared.schedule.classes without HTTP: provider resolution, plan gating, the Zoom warning,
session times, and create / move / cancel against moto (nothing half-written, jobs queued)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.platform.api import ApiError
from shared.queues.meetings import JobQueue
from shared.schedule.classes import (
    CONNECTIONS_PAGE,
    CreateClassRequest,
    MoveSessionRequest,
    cancel_session,
    class_warnings,
    create_class,
    get_class,
    move_session,
    resolve_provider,
    session_end,
)
from shared.store import (
    Booking,
    Connection,
    ConnectionStatus,
    MeetingProvider,
    Provider,
    ScheduleStore,
    Store,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
MENTOR = "m-rules"


class FakeSqs:
    """Records what JobQueue sends."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.bodies.append(json.loads(kwargs["MessageBody"]))
        return {"MessageId": str(len(self.bodies))}


@pytest.fixture
def sqs() -> FakeSqs:
    return FakeSqs()


@pytest.fixture
def queue(sqs: FakeSqs) -> JobQueue:
    return JobQueue(sqs, "https://sqs.local/meetings")


def _conn(
    provider: Provider, status: ConnectionStatus = ConnectionStatus.CONNECTED, plan_type: int | None = None
) -> Connection:
    return Connection(mentor_id=MENTOR, provider=provider, status=status, plan_type=plan_type)


def _request(**over: Any) -> CreateClassRequest:
    body: dict[str, Any] = {
        "title": "Flow",
        "format": "in_person",
        "timezone": "Europe/Berlin",
        "durationMinutes": 60,
        "capacity": 2,
        "location": "Studio 3",
        "starts": ["2027-02-02T18:00", "2027-02-01T17:00:00+00:00"],
    }
    body.update(over)
    return CreateClassRequest.model_validate({k: v for k, v in body.items() if v is not None})


def _code(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


# --- provider resolution (PRODUCT.md §2.4) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("connections", "expected"),
    [
        ([_conn(Provider.GOOGLE)], MeetingProvider.GOOGLE_MEET),
        ([_conn(Provider.ZOOM)], MeetingProvider.ZOOM),
        ([_conn(Provider.ZOOM), _conn(Provider.APPLE)], MeetingProvider.ZOOM),
        ([_conn(Provider.ZOOM), _conn(Provider.GOOGLE, ConnectionStatus.NEEDS_RECONNECT)], MeetingProvider.ZOOM),
    ],
)
def test_a_single_usable_provider_is_chosen(connections: list[Connection], expected: MeetingProvider) -> None:
    provider, conn = resolve_provider(None, connections)
    assert provider is expected
    assert conn.provider is expected.connection


def test_both_providers_need_a_choice_with_the_choices() -> None:
    with pytest.raises(ApiError) as err:
        resolve_provider(None, [_conn(Provider.ZOOM), _conn(Provider.GOOGLE)])
    assert _code(err) == (400, "meeting_provider_required")
    assert err.value.extra["choices"] == ["google_meet", "zoom"]


@pytest.mark.parametrize(
    "connections", [[], [_conn(Provider.APPLE)], [_conn(Provider.GOOGLE, ConnectionStatus.NEEDS_RECONNECT)]]
)
def test_no_usable_video_provider_points_to_connections(connections: list[Connection]) -> None:
    with pytest.raises(ApiError) as err:
        resolve_provider(None, connections)
    assert _code(err) == (409, "no_video_provider")
    assert err.value.extra["connectUrl"] == CONNECTIONS_PAGE == "/mentor/settings/connections"


def test_a_named_provider_must_be_connected() -> None:
    provider, _ = resolve_provider(MeetingProvider.ZOOM, [_conn(Provider.ZOOM), _conn(Provider.GOOGLE)])
    assert provider is MeetingProvider.ZOOM
    for connections, state in (
        ([_conn(Provider.GOOGLE)], "not_connected"),
        ([_conn(Provider.ZOOM, ConnectionStatus.NEEDS_RECONNECT)], "needs_reconnect"),
    ):
        with pytest.raises(ApiError) as err:
            resolve_provider(MeetingProvider.ZOOM, connections)
        assert _code(err) == (409, "provider_not_connected")
        assert err.value.extra["connectionStatus"] == state


@pytest.mark.parametrize(
    ("provider", "plan_type", "minutes", "warned"),
    [
        (MeetingProvider.ZOOM, 1, 41, True),
        (MeetingProvider.ZOOM, 1, 40, False),
        (MeetingProvider.ZOOM, 2, 120, False),
        (MeetingProvider.ZOOM, None, 120, False),
        (MeetingProvider.GOOGLE_MEET, 1, 120, False),
    ],
)
def test_zoom_basic_warning(provider: MeetingProvider, plan_type: int | None, minutes: int, warned: bool) -> None:
    conn = _conn(provider.connection, plan_type=plan_type)
    assert class_warnings(provider, conn, minutes) == (["zoom_free_40_min_cap"] if warned else [])


# --- times ---------------------------------------------------------------------------------------------


def test_session_end_is_elapsed_time_across_the_change() -> None:
    # A 60-minute session from 02:30 (first occurrence) on the night Berlin falls back ends at 02:30 again
    start = datetime(2027, 10, 31, 2, 30, tzinfo=BERLIN)
    end = session_end(start, 60, BERLIN)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=1)
    assert (start.isoformat(), end.isoformat()) == ("2027-10-31T02:30:00+02:00", "2027-10-31T02:30:00+01:00")


# --- create / read ---------------------------------------------------------------------------------


def test_create_sorts_starts_and_reads_back(store: Store, schedule: ScheduleStore) -> None:
    # Given two starts out of order, one naive (Berlin) and one in UTC
    view = create_class(store, schedule, MENTOR, _request(), now=NOW)
    # Then sessions are numbered in start order, times shown in Berlin with their offset
    assert [(s.session_id[-3:], s.start) for s in view.sessions] == [
        ("s01", "2027-02-01T18:00:00+01:00"),
        ("s02", "2027-02-02T18:00:00+01:00"),
    ]
    assert get_class(schedule, MENTOR, view.class_id) == view
    with pytest.raises(ApiError) as err:
        get_class(schedule, "someone-else", view.class_id)
    assert _code(err) == (404, "class_not_found")


def test_plan_gating_comes_before_provider_resolution_and_writes_nothing(store: Store, schedule: ScheduleStore) -> None:
    # Given a Free mentor with no provider at all
    request = _request(format="online", location=None)
    # When an online class is created / Then 403 plan_required (not no_video_provider); nothing stored
    with pytest.raises(ApiError) as err:
        create_class(store, schedule, MENTOR, request, now=NOW)
    assert _code(err) == (403, "plan_required")
    store.upsert_mentor(MENTOR, plan="pro")
    with pytest.raises(ApiError) as err:
        create_class(store, schedule, MENTOR, request, now=NOW)
    assert _code(err) == (409, "no_video_provider")
    assert schedule.list_classes(MENTOR) == []


def test_online_zoom_basic_long_class_is_stored_with_its_warning(store: Store, schedule: ScheduleStore) -> None:
    store.upsert_mentor(MENTOR, plan="premium")
    store.save_connection(_conn(Provider.ZOOM, plan_type=1), expected_version=None)
    view = create_class(store, schedule, MENTOR, _request(format="online", location=None, durationMinutes=45), now=NOW)
    assert view.meeting_provider is MeetingProvider.ZOOM
    assert [w.code for w in view.warnings] == ["zoom_free_40_min_cap"]
    stored = schedule.get_class(view.class_id)
    assert stored is not None
    assert stored.warnings == ("zoom_free_40_min_cap",)


def test_a_failed_write_leaves_nothing(store: Store, schedule: ScheduleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the 2nd session's write will fail inside the transaction (an item already sits at its key)
    monkeypatch.setattr("shared.schedule.classes.new_class_id", lambda: "cls_fixed")
    schedule.table.put({"PK": "CLASS#cls_fixed", "SK": "SESSION#cls_fixed-s02", "type": "junk"})
    # When the class is created / Then the transaction fails and neither the class nor s01 exists
    with pytest.raises(Exception, match="condition"):
        create_class(store, schedule, MENTOR, _request(), now=NOW)
    assert schedule.get_class("cls_fixed") is None
    assert schedule.get_session("cls_fixed-s01") is None


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"starts": ["2027-01-01T10:00"]}, "starts"),  # before NOW
        ({"starts": None, "rrule": "FREQ=WEEKLY;COUNT=2", "dtstart": "2026-12-01T10:00"}, "dtstart"),
        ({"starts": None, "rrule": "FREQ=WEEKLY;COUNT=2"}, "dtstart"),
        ({"dtstart": "2027-03-01T10:00"}, "dtstart"),
        ({"starts": None}, "starts"),
        ({"rrule": "FREQ=WEEKLY;COUNT=2", "dtstart": "2027-03-01T10:00"}, "starts"),
        ({"starts": ["2027-03-01T18:00", "2027-03-01T17:00:00Z"]}, "starts"),  # the same instant twice
        ({"location": None}, "location"),
        ({"meetingProvider": "zoom"}, "meetingProvider"),
        ({"format": "online"}, "location"),
    ],
)
def test_cross_field_mistakes_name_their_field(over: dict[str, Any], field: str) -> None:
    # Checked before any read: the stores are never touched
    untouched: Any = object()
    with pytest.raises(ApiError) as err:
        create_class(untouched, untouched, MENTOR, _request(**over), now=NOW)
    assert _code(err) == (400, "invalid_request")
    assert err.value.extra["fields"][0]["field"] == field


# --- move / cancel ---------------------------------------------------------------------------------


def test_move_bumps_sequence_and_queues_and_a_repeat_only_requeues(
    store: Store, schedule: ScheduleStore, queue: JobQueue, sqs: FakeSqs
) -> None:
    view = create_class(store, schedule, MENTOR, _request(), now=NOW)
    sid = view.sessions[0].session_id
    body = MoveSessionRequest.model_validate({"start": "2027-02-01T19:30"})
    moved = move_session(schedule, queue, MENTOR, view.class_id, sid, body, now=NOW)
    assert (moved.start, moved.end, moved.sequence) == ("2027-02-01T19:30:00+01:00", "2027-02-01T20:30:00+01:00", 1)
    again = move_session(schedule, queue, MENTOR, view.class_id, sid, body, now=NOW)
    assert again.sequence == 1
    assert [(j["kind"], j["sequence"]) for j in sqs.bodies] == [("session.moved", 1), ("session.moved", 1)]
    # A session id of another class, and another mentor, are 404
    with pytest.raises(ApiError) as err:
        move_session(schedule, queue, MENTOR, view.class_id, "cls_other-s01", body, now=NOW)
    assert _code(err) == (404, "session_not_found")
    with pytest.raises(ApiError) as err:
        move_session(schedule, queue, "intruder", view.class_id, sid, body, now=NOW)
    assert _code(err) == (404, "class_not_found")


def test_cancel_session_sweeps_bookings_once_and_finishes_an_interrupted_run(
    store: Store, schedule: ScheduleStore, queue: JobQueue, sqs: FakeSqs
) -> None:
    # Given a session with two bookings
    view = create_class(store, schedule, MENTOR, _request(), now=NOW)
    cid, sid = view.class_id, view.sessions[0].session_id
    for n in range(2):
        schedule.create_booking(
            Booking(
                booking_id=f"bkg_{n}",
                session_id=sid,
                class_id=cid,
                mentor_id=MENTOR,
                student_email=f"s{n}@example.com",
                student_name="S",
                token_hash="0" * 64,
            )
        )
    # And an earlier run that cancelled the session and one booking but crashed before queueing
    schedule.cancel_session(sid)
    assert schedule.cancel_booking("bkg_0", "session_cancelled") is not None
    # When the mentor retries
    result = cancel_session(schedule, queue, MENTOR, cid, sid)
    # Then the other booking is cancelled now, one job is queued and no booking keeps a pending job
    assert (result.cancelled_bookings, result.status.value) == (1, "cancelled")
    assert [(j["kind"], j["sequence"]) for j in sqs.bodies] == [("session.cancelled", 1)]
    for n in range(2):
        booking = schedule.get_booking(f"bkg_{n}")
        assert booking is not None
        assert (booking.status.value, booking.job_pending) == ("CANCELLED", None)
    with pytest.raises(ApiError) as err:
        move_session(
            schedule, queue, MENTOR, cid, sid, MoveSessionRequest.model_validate({"start": "2027-03-01T10:00"}), now=NOW
        )
    assert _code(err) == (409, "session_cancelled")


def test_an_explicit_offset_is_that_instant_even_on_a_fall_back_night(store: Store, schedule: ScheduleStore) -> None:
    # Given the second 02:30 of 2027-10-31 in Berlin (+01:00) and the ambiguous naive 02:30 the week after
    request = _request(starts=["2027-10-31T02:30:00+01:00", "2027-10-31T02:30"])
    # When the class is created
    view = create_class(store, schedule, MENTOR, request, now=NOW)
    # Then the offset is kept; the naive one is the first occurrence (RFC 5545); they are an hour apart
    assert [s.start for s in view.sessions] == ["2027-10-31T02:30:00+02:00", "2027-10-31T02:30:00+01:00"]


# --- bounds (PRODUCT.md §2.4, issue 14) ----------------------------------------------------------


def _field(err: pytest.ExceptionInfo[ApiError]) -> tuple[str, str | None]:
    assert _code(err) == (400, "invalid_request")
    found = err.value.extra["fields"][0]
    return found["field"], found.get("code")


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"starts": ["0001-01-01T00:00"]}, ("starts", "out_of_range")),
        ({"starts": ["0001-01-01T00:00:00+14:00"]}, ("starts", "out_of_range")),
        ({"starts": ["9999-12-31T23:59:59"]}, ("starts", "out_of_range")),
        ({"starts": ["9999-12-31T23:00:00-12:00"]}, ("starts", "out_of_range")),
        ({"starts": ["2037-01-11T12:00"]}, ("starts", "out_of_range")),  # ten years and a day after NOW
        ({"starts": None, "rrule": "FREQ=WEEKLY;COUNT=2", "dtstart": "0001-01-01T10:00"}, ("dtstart", "out_of_range")),
        ({"starts": None, "rrule": "FREQ=WEEKLY;COUNT=2", "dtstart": "9999-12-31T23:00"}, ("dtstart", "out_of_range")),
        (
            {"starts": None, "rrule": "FREQ=WEEKLY;UNTIL=99991231T235959", "dtstart": "2027-03-01T10:00"},
            ("rrule", "out_of_range"),
        ),
        (
            {"starts": None, "rrule": "FREQ=WEEKLY;UNTIL=20370301T000000Z", "dtstart": "2027-03-01T10:00"},
            ("rrule", "out_of_range"),  # within ten years of dtstart, not of now
        ),
        (  # the sessions themselves run past now + 10 years
            {"starts": None, "rrule": "FREQ=MONTHLY;COUNT=20", "dtstart": "2036-03-01T10:00"},
            ("rrule", "out_of_range"),
        ),
        (
            {"starts": None, "rrule": "FREQ=DAILY;COUNT=2;BYSETPOS=" + ",".join(map(str, range(1, 10)))},
            ("rrule", "too_many_values"),
        ),
        ({"starts": None, "rrule": "FREQ=WEEKLY;COUNT=2;BYDAY=MO,+1MO,1MO"}, ("rrule", "duplicate_value")),
    ],
)
def test_dates_and_rules_out_of_bounds_are_400_with_a_code(over: dict[str, Any], expected: tuple[str, str]) -> None:
    over = {"dtstart": "2027-03-01T10:00", **over} if over.get("rrule") else over
    untouched: Any = object()
    with pytest.raises(ApiError) as err:
        create_class(untouched, untouched, MENTOR, _request(**over), now=NOW)
    assert _field(err) == expected


def test_the_last_day_of_the_range_is_accepted() -> None:
    # Given starts a day before NOW would be refused as past; ten years after NOW is in range
    from shared.schedule.classes import session_starts

    starts = session_starts(_request(starts=["2037-01-10T12:00"]), BERLIN, NOW)
    assert [s.isoformat() for s in starts] == ["2037-01-10T12:00:00+01:00"]


@pytest.mark.parametrize(
    "over",
    [
        {"title": "Yoga\r\nBcc: all@example.com"},
        {"title": "Yoga\tflow"},
        {"title": "Yoga\u2028flow"},
        {"title": "Yoga\x85flow"},
        {"location": "Studio\n3"},
        {"location": "Studio\x003"},
    ],
)
def test_control_characters_in_titles_and_locations_are_refused(over: dict[str, Any]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        _request(**over)
    assert err.value.errors()[0]["loc"] == (next(iter(over)),)


@pytest.mark.parametrize(
    "start", ["9999-12-31T23:59:59", "9999-12-31T20:00:00-05:00", "0001-01-01T00:00", "2037-01-12T10:00"]
)
def test_a_move_out_of_range_is_400_and_changes_nothing(
    store: Store, schedule: ScheduleStore, queue: JobQueue, sqs: FakeSqs, start: str
) -> None:
    view = create_class(store, schedule, MENTOR, _request(), now=NOW)
    sid = view.sessions[0].session_id
    with pytest.raises(ApiError) as err:
        move_session(
            schedule, queue, MENTOR, view.class_id, sid, MoveSessionRequest.model_validate({"start": start}), now=NOW
        )
    assert _field(err) == ("start", "out_of_range")
    assert get_class(schedule, MENTOR, view.class_id).sessions[0] == view.sessions[0]
    assert sqs.bodies == []
