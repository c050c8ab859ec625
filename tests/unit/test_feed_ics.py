"""The teaching-schedule feed's calendar: parses with icalendar, VTIMEZONE per TZID, stable UIDs,
SEQUENCE, STATUS:CANCELLED, a deterministic body (so the ETag only changes with the schedule), the
window and the caps; plus the token and ETag helpers."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event

from shared.feed import service as feed
from shared.feed import tokens as feed_tokens
from shared.store import (
    ClassFormat,
    ClassItem,
    MeetingProvider,
    MeetingRef,
    MeetingStatus,
    ScheduleStore,
    Session,
    SessionStatus,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAMP = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def _class(
    class_id: str, *, fmt: ClassFormat = ClassFormat.IN_PERSON, tz: str = "Europe/Berlin", **over: object
) -> ClassItem:
    fields: dict[str, object] = {
        "class_id": class_id,
        "mentor_id": "m-1",
        "title": f"Class {class_id}",
        "format": fmt,
        "timezone": tz,
        "duration_minutes": 60,
        "capacity": 4,
        "created_at": STAMP,
    }
    if fmt is ClassFormat.IN_PERSON:
        fields["location"] = "Studio 3, Kastanienallee 12, Berlin"
    else:
        fields["meeting_provider"] = MeetingProvider.GOOGLE_MEET
    fields.update(over)
    return ClassItem.model_validate(fields)


def _session(class_id: str, n: int, start: datetime, **over: object) -> Session:
    fields: dict[str, object] = {
        "class_id": class_id,
        "session_id": f"{class_id}-s{n:02d}",
        "mentor_id": "m-1",
        "start": start,
        "end": start + timedelta(hours=1),
        "capacity": 4,
        "updated_at": STAMP,
    }
    fields.update(over)
    return Session.model_validate(fields)


class FakeSchedule:
    """What build_feed reads: a mentor's classes and each class's sessions (and counts the reads)."""

    def __init__(self, classes: Iterable[ClassItem], sessions: Iterable[Session]) -> None:
        self.classes = list(classes)
        self.sessions = list(sessions)
        self.session_reads = 0

    def list_classes(self, mentor_id: str) -> list[ClassItem]:
        return [c for c in self.classes if c.mentor_id == mentor_id]

    def list_sessions(self, class_id: str) -> list[Session]:
        self.session_reads += 1
        return sorted((s for s in self.sessions if s.class_id == class_id), key=lambda s: s.start)


def _build(schedule: FakeSchedule, now: datetime = NOW) -> feed.FeedDocument:
    return feed.build_feed(schedule, "m-1", now=now)  # type: ignore[arg-type]


def _events(body: bytes) -> dict[str, Event]:
    cal = Calendar.from_ical(body)
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def _mixed() -> FakeSchedule:
    """An in-person Berlin class, an online New York class (one session with its Meet), one cancelled."""
    berlin = _class("cls_a")
    online = _class("cls_b", fmt=ClassFormat.ONLINE, tz="America/New_York")
    meeting = MeetingRef(
        provider=MeetingProvider.GOOGLE_MEET,
        status=MeetingStatus.CREATED,
        url="https://meet.google.com/abc-defg-hij",
        updated_at=STAMP + timedelta(days=1),
    )
    sessions = [
        _session("cls_a", 1, datetime(2026, 3, 10, 17, 0, tzinfo=UTC)),  # 18:00 Berlin (CET)
        _session("cls_a", 2, datetime(2026, 4, 7, 16, 0, tzinfo=UTC)),  # 18:00 Berlin (CEST)
        _session("cls_b", 1, datetime(2026, 3, 12, 23, 0, tzinfo=UTC), meeting=meeting),  # 19:00 New York
        _session("cls_b", 2, datetime(2026, 3, 19, 23, 0, tzinfo=UTC), status=SessionStatus.CANCELLED, sequence=1),
    ]
    return FakeSchedule([berlin, online], sessions)


def test_the_feed_parses_and_has_the_calendar_properties() -> None:
    document = _build(_mixed())
    cal = Calendar.from_ical(document.body)
    assert cal["VERSION"] == "2.0"
    assert cal["METHOD"] == "PUBLISH"
    assert cal["X-WR-CALNAME"] == feed.CALENDAR_NAME
    assert cal["PRODID"]
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in document.body.decode()
    assert "X-PUBLISHED-TTL:PT1H" in document.body.decode()
    assert document.events == 4
    assert not document.truncated


def test_every_tzid_used_has_its_vtimezone_listed_before_the_events() -> None:
    body = _build(_mixed()).body
    cal = Calendar.from_ical(body)
    zones = [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")]
    used = {str(e["DTSTART"].params["TZID"]) for e in cal.walk("VEVENT")}
    used |= {str(e["DTEND"].params["TZID"]) for e in cal.walk("VEVENT")}
    assert used == {"Europe/Berlin", "America/New_York"}
    assert zones == sorted(used)  # one each, in TZID order (deterministic)
    text = body.decode()
    assert text.index("BEGIN:VTIMEZONE") < text.index("BEGIN:VEVENT")
    assert "DTSTART;TZID=Europe/Berlin:20260310T180000" in text


def test_times_are_wall_times_of_the_class_zone_across_dst() -> None:
    events = _events(_build(_mixed()).body)
    first, after_dst = events["cls_a-s01@mentor-connections"], events["cls_a-s02@mentor-connections"]
    assert first["DTSTART"].dt == datetime(2026, 3, 10, 18, 0, tzinfo=BERLIN)
    assert after_dst["DTSTART"].dt == datetime(2026, 4, 7, 18, 0, tzinfo=BERLIN)
    assert after_dst["DTEND"].dt - after_dst["DTSTART"].dt == timedelta(hours=1)
    ny = events["cls_b-s01@mentor-connections"]
    assert ny["DTSTART"].dt.replace(tzinfo=None) == datetime(2026, 3, 12, 19, 0)
    assert ny["DTSTART"].dt.utcoffset() == timedelta(hours=-4)  # EDT (US DST began 8 March)


def test_uids_are_stable_and_the_body_is_deterministic() -> None:
    first, second = _build(_mixed()), _build(_mixed())
    assert set(_events(first.body)) == {
        "cls_a-s01@mentor-connections",
        "cls_a-s02@mentor-connections",
        "cls_b-s01@mentor-connections",
        "cls_b-s02@mentor-connections",
    }
    assert first.body == second.body
    assert first.etag == second.etag == feed.etag_of(first.body)


def test_the_body_does_not_depend_on_the_process_hash_seed() -> None:
    """VTIMEZONE order came from a set: another container (another PYTHONHASHSEED) must render the same bytes."""
    script = (
        "import sys; sys.path[:0] = ['tests/unit', '.'];"
        "from test_feed_ics import _build, _three_zones; sys.stdout.write(_build(_three_zones()).etag)"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env={"PYTHONHASHSEED": seed}, stdout=subprocess.PIPE, text=True
        )
        for seed in ("1", "2", "3", "4")
    ]
    etags = {run.communicate(timeout=60)[0] for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert etags == {_build(_three_zones()).etag}


def _three_zones() -> FakeSchedule:
    schedule = _mixed()
    schedule.classes.append(_class("cls_c", tz="Asia/Tokyo"))
    schedule.sessions.append(_session("cls_c", 1, datetime(2026, 3, 11, 1, 0, tzinfo=UTC)))
    return schedule


def test_sequence_and_cancelled_status() -> None:
    events = _events(_build(_mixed()).body)
    live, cancelled = events["cls_b-s01@mentor-connections"], events["cls_b-s02@mentor-connections"]
    assert live["STATUS"] == "CONFIRMED"
    assert live["SEQUENCE"] == 0
    assert cancelled["STATUS"] == "CANCELLED"
    assert cancelled["SEQUENCE"] == 1


def test_a_change_changes_the_sequence_and_the_etag() -> None:
    before = _mixed()
    after = _mixed()
    moved = after.sessions[0].model_copy(
        update={"start": datetime(2026, 3, 10, 18, 0, tzinfo=UTC), "sequence": 1, "updated_at": NOW}
    )
    after.sessions[0] = moved.model_copy(update={"end": moved.start + timedelta(hours=1)})
    old, new = _build(before), _build(after)
    assert old.etag != new.etag
    event = _events(new.body)["cls_a-s01@mentor-connections"]
    assert event["SEQUENCE"] == 1
    assert event["DTSTART"].dt == datetime(2026, 3, 10, 19, 0, tzinfo=BERLIN)
    assert event["DTSTAMP"].dt == NOW


def test_location_for_in_person_join_url_for_online_once_the_meeting_exists() -> None:
    events = _events(_build(_mixed()).body)
    studio = events["cls_a-s01@mentor-connections"]
    assert studio["LOCATION"] == "Studio 3, Kastanienallee 12, Berlin"
    assert "URL" not in studio
    online = events["cls_b-s01@mentor-connections"]
    assert online["LOCATION"] == online["URL"] == "https://meet.google.com/abc-defg-hij"
    assert "Join: https://meet.google.com/abc-defg-hij" in online["DESCRIPTION"]
    assert online["DTSTAMP"].dt == STAMP + timedelta(days=1)  # the meeting's record is the last change
    no_meeting = events["cls_b-s02@mentor-connections"]
    assert "LOCATION" not in no_meeting
    assert "URL" not in no_meeting
    assert no_meeting["DESCRIPTION"] == "This session was cancelled."


@pytest.mark.parametrize("status", [MeetingStatus.RESERVED, MeetingStatus.DELETED, MeetingStatus.FAILED])
def test_no_join_url_unless_the_meeting_is_created(status: MeetingStatus) -> None:
    meeting = MeetingRef(provider=MeetingProvider.ZOOM, status=status, url="https://zoom.us/j/1")
    klass = _class("cls_z", fmt=ClassFormat.ONLINE, meeting_provider=MeetingProvider.ZOOM)
    schedule = FakeSchedule([klass], [_session("cls_z", 1, NOW + timedelta(days=2), meeting=meeting)])
    (event,) = _events(_build(schedule).body).values()
    assert "URL" not in event
    assert "zoom.us" not in _build(schedule).body.decode()
    assert "once the first booking is confirmed" in event["DESCRIPTION"]


def test_the_window_keeps_90_days_of_history_and_every_future_session() -> None:
    klass = _class("cls_w")
    sessions = [
        _session("cls_w", 1, NOW - timedelta(days=91)),  # ended 91 days ago minus an hour: out
        _session("cls_w", 2, NOW - timedelta(days=89)),
        _session("cls_w", 3, NOW + timedelta(days=3000)),
    ]
    uids = set(_events(_build(FakeSchedule([klass], sessions)).body))
    assert uids == {"cls_w-s02@mentor-connections", "cls_w-s03@mentor-connections"}


def test_other_mentors_sessions_never_appear() -> None:
    mine, theirs = _class("cls_m"), _class("cls_t", mentor_id="m-2")
    sessions = [_session("cls_m", 1, NOW + timedelta(days=1)), _session("cls_t", 1, NOW + timedelta(days=1))]
    assert set(_events(_build(FakeSchedule([mine, theirs], sessions)).body)) == {"cls_m-s01@mentor-connections"}


def test_an_empty_schedule_is_a_valid_calendar() -> None:
    document = _build(FakeSchedule([], []))
    cal = Calendar.from_ical(document.body)
    assert cal["METHOD"] == "PUBLISH"
    assert cal.walk("VEVENT") == []
    assert document.events == 0


def test_the_caps_bound_the_reads_and_the_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "MAX_CLASSES", 3)
    monkeypatch.setattr(feed, "MAX_EVENTS", 4)
    classes = [_class(f"cls_{n}", created_at=STAMP + timedelta(days=n)) for n in range(5)]
    sessions = [_session(f"cls_{n}", i, NOW + timedelta(days=10 * i + n)) for n in range(5) for i in range(1, 3)]
    schedule = FakeSchedule(classes, sessions)
    document = _build(schedule)
    assert schedule.session_reads == 3  # the three newest classes only
    assert document.truncated
    assert document.events == 4
    uids = list(_events(document.body))
    assert uids == [  # the earliest four of the newest three classes
        "cls_2-s01@mentor-connections",
        "cls_3-s01@mentor-connections",
        "cls_4-s01@mentor-connections",
        "cls_2-s02@mentor-connections",
    ]


def test_a_realistic_feed_stays_small() -> None:
    """A mentor teaching twice a week for two years: well under a megabyte."""
    klass = _class("cls_big", fmt=ClassFormat.ONLINE)
    sessions = [_session("cls_big", n, NOW + timedelta(days=3.5 * n)) for n in range(1, 209)]
    document = _build(FakeSchedule([klass], sessions))
    assert document.events == 208
    assert len(document.body) < 200_000


# -- token and HTTP helpers --------------------------------------------------------------------


def test_tokens_have_256_bits_and_only_their_hash_is_the_lookup_key() -> None:
    tokens = {feed_tokens.new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert len(token) == 43
        assert feed_tokens.token_from_path(token + ".ics") == token
        assert token not in feed_tokens.lookup_pk(feed_tokens.token_hash(token))
        assert len(feed_tokens.token_hash(token)) == 64


@pytest.mark.parametrize(
    "segment",
    [
        "",
        ".ics",
        "abc.ics",
        "A" * 43,  # no suffix
        "A" * 43 + ".ICS",
        "A" * 42 + ".ics",
        "A" * 44 + ".ics",
        "A" * 42 + "=.ics",
        "A" * 42 + "/.ics",
        "A" * 43 + ".ics.ics",
    ],
)
def test_malformed_path_tokens_are_refused(segment: str) -> None:
    assert feed_tokens.token_from_path(segment) is None


def test_feed_urls() -> None:
    urls = feed_tokens.feed_urls("T" * 43, "https://api.mentors.example/")
    assert urls.url == f"https://api.mentors.example/feeds/{'T' * 43}.ics"
    assert urls.webcal_url == f"webcal://api.mentors.example/feeds/{'T' * 43}.ics"
    assert urls.model_dump(by_alias=True) == {"url": urls.url, "webcalUrl": urls.webcal_url}
    local = feed_tokens.feed_urls("T" * 43, "http://127.0.0.1:8080")
    assert local.webcal_url == f"webcal://127.0.0.1:8080/feeds/{'T' * 43}.ics"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ('"x",W/"abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
    ],
)
def test_if_none_match(header: str | None, expected: bool) -> None:
    assert feed.not_modified(header, '"abc"') is expected


def test_vtimezones_cover_sessions_beyond_2038() -> None:
    """A recurrence may run ten years ahead: the VTIMEZONE must not stop at icalendar's default (2038)."""
    klass = _class("cls_far")
    far = _session("cls_far", 1, datetime(2040, 7, 3, 16, 0, tzinfo=UTC))
    body = _build(FakeSchedule([klass], [far])).body.decode()
    assert "2038" not in body
    (zone,) = Calendar.from_ical(body).walk("VTIMEZONE")
    assert zone.to_tz().utcoffset(datetime(2040, 7, 3, 18, 0)) == timedelta(hours=2)  # CEST
    # the 2040 spring-forward is listed: its onset is the wall time before it, 02:00 CET (RFC 5545;
    # icalendar's from_tzid wrote 03:00, the time after it), and 03:30 that day is summer time
    assert "20400325T020000" in body.replace("\r\n ", "")
    assert zone.to_tz().utcoffset(datetime(2040, 3, 25, 3, 30)) == timedelta(hours=2)
    assert "19700101" not in body  # and 70 years of history are not


# --- bounds: whatever is stored, the feed is small and fast (issue 14) ----------------------------


@pytest.fixture
def gc_paused() -> Iterator[None]:
    """The cyclic GC paused while CPU is measured: a pass over this test process's garbage is not the code's cost."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _far_sessions(schedule: ScheduleStore, years: list[int], tz: str) -> None:
    """A class of mentor m-1 with sessions in ``years``, written straight to the table (as old data could be)."""
    klass = _class("cls_far", tz=tz)
    schedule.create_class(
        klass, [_session("cls_far", n, datetime(y, 6, 1, 10, tzinfo=UTC)) for n, y in enumerate(years, 1)]
    )


@pytest.mark.parametrize("tz", ["Europe/Berlin", "Pacific/Kiritimati", "America/Adak"])
def test_sessions_stored_in_9996_and_9998_keep_the_feed_small_and_fast(
    schedule: ScheduleStore, tz: str, gc_paused: None
) -> None:
    # Given sessions in 2026 and, stored directly, in 9996 and 9998 (the feed was 2 MB, then a 500)
    _far_sessions(schedule, [2026, 9996, 9998], tz)
    # When the feed is built, twice (what a GET and its conditional repeat cost)
    started = time.process_time()
    first, again = _build(schedule), _build(schedule)  # type: ignore[arg-type]
    spent = time.process_time() - started
    # Then both render the same small calendar, quickly, every session in it
    assert first.body == again.body
    assert len(first.body) < 32_000
    assert spent < 1.0
    assert len(_events(first.body)) == 3
    (zone,) = Calendar.from_ical(first.body).walk("VTIMEZONE")
    assert str(zone["TZID"]) == tz


def test_a_time_that_overflows_in_its_zone_is_written_in_utc() -> None:
    # Given a session in the last hour of 9999 in a zone 14 hours ahead of UTC
    klass = _class("cls_end", tz="Pacific/Kiritimati")
    last = _session("cls_end", 1, datetime(9999, 12, 31, 22, 0, tzinfo=UTC), end=datetime(9999, 12, 31, 23, tzinfo=UTC))
    # Then the feed still renders, that session in UTC
    body = _build(FakeSchedule([klass], [last])).body
    assert b"DTSTART:99991231T220000Z" in body


def test_the_vtimezone_span_stays_within_twenty_years_of_now() -> None:
    from shared.notify import ics

    def span(*years: int) -> tuple[int, int]:
        events = [
            ics.session_event(
                session_id=f"s{y}",
                title="t",
                start=datetime(y, 6, 1, tzinfo=UTC),
                end=datetime(y, 6, 1, 1, tzinfo=UTC),
                timezone="UTC",
                sequence=0,
            )
            for y in years
        ]
        first, last = ics._span(events, 2026)
        return first.year, last.year

    assert span(2026, 2030) == (2026, 2032)  # the events' years, as before
    assert span(2040) == (2040, 2042)
    assert span(2026, 9998) == (2026, 2046)
    assert span(9996) == (2045, 2046)
    assert span(1, 2026) == (2006, 2028)
