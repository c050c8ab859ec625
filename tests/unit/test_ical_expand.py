"""Recurrence expansion of iCalendar events (shared.busy.expand): properties over DST weeks, EXDATE,
overrides (RECURRENCE-ID), windows; and the RFC 5545 corner cases one by one."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.busy.expand import Occurrence, expand

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago", "UTC"]
WIDE = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
FMT = "%Y%m%dT%H%M%S"


def _events(*vevents: str) -> list[object]:
    body = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *vevents, "END:VCALENDAR", ""])
    return list(icalendar.Calendar.from_ical(body).walk("VEVENT"))


def _vevent(*lines: str, uid: str = "series@test") -> str:
    return "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"])


def _spans(found: list[Occurrence]) -> list[tuple[datetime, datetime]]:
    return [(o.start, o.end) for o in found]


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether a local wall time exists in ``zone`` (not in a spring-forward gap)."""
    there = wall.replace(tzinfo=zone)
    return there.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


@st.composite
def weekly_series(draw: st.DrawFn) -> dict[str, object]:
    zone = draw(st.sampled_from(ZONES))
    # Any day of 2026: DST weeks included (Berlin/New York in March and Oct/Nov, Sydney/Santiago in April/Sept).
    first = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    clock = (draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45])))
    return {
        "zone": zone,
        "wall": datetime(first.year, first.month, first.day, *clock),
        "count": draw(st.integers(1, 12)),
        "minutes": draw(st.integers(15, 240)),
    }


def _weekly_lines(series: dict[str, object]) -> list[str]:
    zone, wall, minutes = series["zone"], series["wall"], series["minutes"]
    assert isinstance(wall, datetime)
    assert isinstance(minutes, int)
    end = wall + timedelta(minutes=minutes)
    return [
        f"DTSTART;TZID={zone}:{wall.strftime(FMT)}",
        f"DTEND;TZID={zone}:{end.strftime(FMT)}",
        f"RRULE:FREQ=WEEKLY;COUNT={series['count']}",
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weekly_series())
def test_weekly_series_keeps_its_wall_time_across_dst(series: dict[str, object]) -> None:
    # Given a weekly event at a local wall time in a zone with DST, starting any week of the year
    zone = ZoneInfo(str(series["zone"]))
    wall = series["wall"]
    assert isinstance(wall, datetime)
    # When it is expanded over a window holding all of it
    found = expand(_events(_vevent(*_weekly_lines(series))), *WIDE, tz=ZoneInfo("UTC"))
    # Then there are COUNT instances, one local week apart, each at the series' wall time (one that
    # falls in a spring-forward gap moves forward by the gap, RFC 5545 §3.3.5), sorted
    assert len(found) == series["count"]
    for k, occurrence in enumerate(found):
        expected_wall = wall + timedelta(weeks=k)
        local = occurrence.start.astimezone(zone)
        assert local.date() == expected_wall.date() or not _exists(expected_wall, zone)
        if _exists(expected_wall, zone):
            assert local.replace(tzinfo=None) == expected_wall
        else:
            assert local.replace(tzinfo=None) > expected_wall
        assert occurrence.start.tzinfo is not None
        assert occurrence.start.utcoffset() == timedelta(0)
    # DTEND gives the exact duration, the same for every instance (RFC 5545 §3.8.5.3)
    durations = {o.end - o.start for o in found}
    assert len(durations) == 1
    assert found == sorted(found, key=lambda o: o.start)


@settings(max_examples=100, deadline=None)
@given(weekly_series(), st.data())
def test_exdate_removes_exactly_the_excluded_instances(series: dict[str, object], data: st.DataObject) -> None:
    # Given a weekly series and a subset of its instances excluded with EXDATE (as TZID wall times or UTC)
    full = expand(_events(_vevent(*_weekly_lines(series))), *WIDE, tz=ZoneInfo("UTC"))
    count = len(full)
    excluded = data.draw(st.sets(st.integers(0, count - 1), max_size=count))
    as_utc = data.draw(st.booleans())
    zone = series["zone"]
    wall = series["wall"]
    assert isinstance(wall, datetime)
    lines = list(_weekly_lines(series))
    for k in sorted(excluded):
        if as_utc:
            lines.append(f"EXDATE:{full[k].start.strftime(FMT)}Z")
        else:
            lines.append(f"EXDATE;TZID={zone}:{(wall + timedelta(weeks=k)).strftime(FMT)}")
    # When it is expanded
    found = expand(_events(_vevent(*lines)), *WIDE, tz=ZoneInfo("UTC"))
    # Then exactly the other instances remain
    assert _spans(found) == [s for k, s in enumerate(_spans(full)) if k not in excluded]


@settings(max_examples=100, deadline=None)
@given(weekly_series(), st.data())
def test_override_moves_one_instance_and_only_that_one(series: dict[str, object], data: st.DataObject) -> None:
    # Given a weekly series and an override of instance k moved by some hours (possibly out of its day)
    full = expand(_events(_vevent(*_weekly_lines(series))), *WIDE, tz=ZoneInfo("UTC"))
    k = data.draw(st.integers(0, len(full) - 1))
    shift = timedelta(hours=data.draw(st.integers(-72, 72).filter(lambda h: h != 0)))
    minutes = data.draw(st.integers(10, 300))
    original = full[k].start
    moved = original + shift
    override = _vevent(
        f"RECURRENCE-ID:{original.strftime(FMT)}Z",
        f"DTSTART:{moved.strftime(FMT)}Z",
        f"DTEND:{(moved + timedelta(minutes=minutes)).strftime(FMT)}Z",
    )
    # When master and override are expanded together (in any order)
    components = _events(override, _vevent(*_weekly_lines(series)))
    found = expand(components, *WIDE, tz=ZoneInfo("UTC"))
    # Then instance k is gone from its original time and present at its new one; the rest unchanged
    expected = sorted([s for i, s in enumerate(_spans(full)) if i != k] + [(moved, moved + timedelta(minutes=minutes))])
    assert sorted(_spans(found)) == expected
    moved_one = next(o for o in found if o.start == moved)
    assert moved_one.component.get("RECURRENCE-ID") is not None  # the override's own properties apply


@settings(max_examples=100, deadline=None)
@given(weekly_series(), st.integers(0, 120), st.integers(1, 60 * 24 * 21))
def test_a_window_sees_exactly_the_instances_overlapping_it(
    series: dict[str, object], offset_days: int, length_minutes: int
) -> None:
    # Given a series and an arbitrary window within its year
    full = expand(_events(_vevent(*_weekly_lines(series))), *WIDE, tz=ZoneInfo("UTC"))
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=offset_days, minutes=offset_days * 37 % 1440)
    end = start + timedelta(minutes=length_minutes)
    # When only that window is expanded
    found = expand(_events(_vevent(*_weekly_lines(series))), start, end, tz=ZoneInfo("UTC"))
    # Then it holds exactly the instances of the full expansion that overlap it
    assert _spans(found) == [(s, e) for s, e in _spans(full) if s < end and e > start]


# --- cases -------------------------------------------------------------------------------------------


def test_rfc4791_example_overrides_replace_instances_in_a_window() -> None:
    # Given RFC 4791 §7.8.1's answer: a daily series (US/Eastern) with two moved instances, and a one-off
    import re
    from pathlib import Path

    body = (
        Path(__file__).parents[3] / "shared/specs/caldav/rfc4791-7.8.1-calendar-query-time-range.response.xml"
    ).read_text()
    components = []
    for text in re.findall(r"<C:calendar-data>(.*?)</C:calendar-data>", body, re.S):
        components.extend(icalendar.Calendar.from_ical(text).walk("VEVENT"))
    # When the RFC's window (2006-01-04, UTC) is expanded
    found = expand(components, datetime(2006, 1, 4, tzinfo=UTC), datetime(2006, 1, 5, tzinfo=UTC), tz=ZoneInfo("UTC"))
    # Then the one-off at 10:00 EST and the moved 14:00 EST instance are there, not the original 12:00
    assert _spans(found) == [
        (datetime(2006, 1, 4, 15, tzinfo=UTC), datetime(2006, 1, 4, 16, tzinfo=UTC)),
        (datetime(2006, 1, 4, 19, tzinfo=UTC), datetime(2006, 1, 4, 20, tzinfo=UTC)),
    ]


def test_floating_times_are_read_in_the_given_zone() -> None:
    # Given an event with no zone at all
    events = _events(_vevent("DTSTART:20260310T090000", "DTEND:20260310T100000"))
    # When expanded for a mentor in Tokyo / Then it is 09:00 Tokyo time
    (found,) = expand(events, *WIDE, tz=ZoneInfo("Asia/Tokyo"))
    assert found.start == datetime(2026, 3, 10, 0, tzinfo=UTC)
    assert not found.all_day


def test_all_day_events_cover_whole_local_days_including_a_dst_day() -> None:
    # Given a two-day all-day event over Berlin's spring-forward (Sunday 2026-03-29 is 23 hours long)
    events = _events(_vevent("DTSTART;VALUE=DATE:20260328", "DTEND;VALUE=DATE:20260330"))
    # When expanded for a Berlin mentor
    (found,) = expand(events, *WIDE, tz=ZoneInfo("Europe/Berlin"))
    # Then it runs from local midnight to local midnight: 47 hours
    assert found.all_day
    assert found.start == datetime(2026, 3, 27, 23, tzinfo=UTC)
    assert found.end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    # And an all-day event without DTEND lasts one day
    (one,) = expand(_events(_vevent("DTSTART;VALUE=DATE:20261025")), *WIDE, tz=ZoneInfo("Europe/Berlin"))
    assert one.end - one.start == timedelta(hours=25)  # the fall-back day


def test_all_day_weekly_series_with_exdate_and_moved_instance() -> None:
    # Given a weekly all-day series, one week excluded and one moved to the next day
    master = _vevent(
        "DTSTART;VALUE=DATE:20260105",
        "DTEND;VALUE=DATE:20260106",
        "RRULE:FREQ=WEEKLY;COUNT=4",
        "EXDATE;VALUE=DATE:20260112",
    )
    moved = _vevent("RECURRENCE-ID;VALUE=DATE:20260119", "DTSTART;VALUE=DATE:20260120", "DTEND;VALUE=DATE:20260121")
    # When expanded in UTC
    found = expand(_events(master, moved), *WIDE, tz=ZoneInfo("UTC"))
    # Then: the 5th, the moved 20th, the 26th
    assert [o.start.date() for o in found] == [date(2026, 1, 5), date(2026, 1, 20), date(2026, 1, 26)]


def test_until_in_utc_with_a_zoned_start_is_inclusive() -> None:
    # Given a daily 18:00 Berlin series until 17:00Z on the 3rd (18:00 Berlin = 17:00Z in winter)
    events = _events(
        _vevent(
            "DTSTART;TZID=Europe/Berlin:20260101T180000",
            "DURATION:PT1H",
            "RRULE:FREQ=DAILY;UNTIL=20260103T170000Z",
        )
    )
    # Then the 1st, 2nd and 3rd
    assert [o.start.day for o in expand(events, *WIDE, tz=ZoneInfo("UTC"))] == [1, 2, 3]


def test_rdate_adds_and_dtstart_is_always_an_instance() -> None:
    # Given a Monday-only rule whose DTSTART is a Sunday, plus an RDATE
    events = _events(
        _vevent(
            "DTSTART:20260104T100000Z",
            "DTEND:20260104T110000Z",
            "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=2",
            "RDATE:20260110T100000Z",
        )
    )
    # Then the Sunday start, the RDATE Saturday and the rule's Mondays
    days = [o.start.date() for o in expand(events, *WIDE, tz=ZoneInfo("UTC"))]
    assert days == [date(2026, 1, 4), date(2026, 1, 5), date(2026, 1, 10), date(2026, 1, 12)]


def test_duration_days_are_nominal_across_dst() -> None:
    # Given an event lasting P1D from 12:00 the day before Berlin's spring-forward
    events = _events(_vevent("DTSTART;TZID=Europe/Berlin:20260328T120000", "DURATION:P1D"))
    # Then it ends at 12:00 local the next day: 23 hours later
    (found,) = expand(events, *WIDE, tz=ZoneInfo("UTC"))
    assert found.end - found.start == timedelta(hours=23)


def test_override_without_master_is_an_event_of_its_own() -> None:
    # Given only an invitation to one instance of someone else's series
    events = _events(_vevent("RECURRENCE-ID:20260301T100000Z", "DTSTART:20260301T110000Z", "DTEND:20260301T120000Z"))
    # Then that instance counts
    assert _spans(expand(events, *WIDE, tz=ZoneInfo("UTC"))) == [
        (datetime(2026, 3, 1, 11, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC))
    ]


def test_a_rule_that_never_matches_does_not_spin() -> None:
    # Given an unbounded daily rule that never matches (30 February)
    events = _events(_vevent("DTSTART:20260101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"))
    # When expanded / Then only DTSTART, and quickly
    started = time.perf_counter()
    found = expand(events, *WIDE, tz=ZoneInfo("UTC"))
    assert len(found) == 1
    assert time.perf_counter() - started < 5


def test_unreadable_rule_keeps_the_first_instance() -> None:
    # Given a rule dateutil refuses / Then the event still blocks its own time
    events = _events(_vevent("DTSTART:20260101T100000Z", "DURATION:PT1H", "RRULE:FREQ=SOMETIMES"))
    found = expand(events, *WIDE, tz=ZoneInfo("UTC"))
    assert _spans(found) == [(datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 11, tzinfo=UTC))]


def test_window_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        expand([], datetime(2026, 1, 1), datetime(2026, 1, 2), tz=ZoneInfo("UTC"))


# --- bounds: a hostile event costs little and never spins (issue 14) -------------------------------

#: CPU one expand() call may spend on a hostile event (issue 14's bound).
EXPAND_CPU = 0.2
WINDOW_60 = (datetime(2026, 12, 6, tzinfo=UTC), datetime(2027, 2, 4, tzinfo=UTC))


@pytest.fixture
def gc_paused() -> Iterator[None]:
    """The cyclic GC paused while CPU is measured: a pass over this test process's garbage is not the code's cost."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_series_begun_decades_before_the_window_is_expanded() -> None:
    # Given a daily event since 1990 (shifted by its own year, the window fell past year 9999: nothing)
    events = _events(_vevent("DTSTART:19900101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY"))
    found = expand(events, *WINDOW_60, tz=ZoneInfo("UTC"))
    # Then every day of the window is busy at 10:00
    assert len(found) == 60
    assert found[0].start == datetime(2026, 12, 6, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYSETPOS=" + ",".join(str(n) for n in range(2, 102)),  # iCloud's 6 s event
        "FREQ=DAILY;BYMONTHDAY=1,2,1",
        "FREQ=MINUTELY;BYHOUR="
        + ",".join(map(str, range(24)))
        + ";BYMINUTE="
        + ",".join(map(str, range(60)))
        + ";BYSECOND=1,2",
    ],
)
def test_a_rule_too_costly_to_walk_is_skipped_and_logged(
    rule: str, caplog: pytest.LogCaptureFixture, gc_paused: None
) -> None:
    events = _events(_vevent("DTSTART:20261210T100000Z", "DURATION:PT1H", f"RRULE:{rule}"))
    started = time.process_time()
    found = expand(events, *WINDOW_60, tz=ZoneInfo("UTC"))
    assert time.process_time() - started < EXPAND_CPU
    assert _spans(found) == [(datetime(2026, 12, 10, 10, tzinfo=UTC), datetime(2026, 12, 10, 11, tzinfo=UTC))]
    assert "recurrence rule skipped" in caplog.text


def test_a_walk_over_budget_stops_keeps_its_own_start_and_is_logged(
    caplog: pytest.LogCaptureFixture, gc_paused: None
) -> None:
    # Given a secondly rule whose BYSETPOS never matches (each period is one second)
    events = _events(_vevent("DTSTART:20261210T100000Z", "DURATION:PT1H", "RRULE:FREQ=SECONDLY;BYSETPOS=2"))
    started = time.process_time()
    found = expand(events, *WINDOW_60, tz=ZoneInfo("UTC"))
    # Then the walk stops within budget, the event still blocks its own hour, and the stop is logged
    assert time.process_time() - started < EXPAND_CPU
    assert _spans(found) == [(datetime(2026, 12, 10, 10, tzinfo=UTC), datetime(2026, 12, 10, 11, tzinfo=UTC))]
    assert "over its time budget" in caplog.text


def test_the_whole_call_has_a_budget_too(gc_paused: None) -> None:
    # Given ten hostile series / When expanded with a 0.2 s budget / Then the call keeps to it
    events = _events(
        *(_vevent("DTSTART:20261210T100000Z", "RRULE:FREQ=SECONDLY;BYSETPOS=2", uid=f"bomb-{n}") for n in range(10))
    )
    started = time.process_time()
    found = expand(events, *WINDOW_60, tz=ZoneInfo("UTC"), budget_seconds=0.2)
    assert time.process_time() - started < 0.2 + 0.1
    assert len(found) == 10


_FREQS = ["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
_LISTS = {
    "BYSECOND": st.integers(-1, 61),
    "BYMINUTE": st.integers(-1, 60),
    "BYHOUR": st.integers(-1, 24),
    "BYDAY": st.tuples(
        st.sampled_from(["", "1", "-1", "2", "5", "53"]), st.sampled_from(["MO", "TU", "WE", "FR", "SU"])
    ),
    "BYMONTHDAY": st.integers(-32, 32),
    "BYYEARDAY": st.integers(-367, 367),
    "BYWEEKNO": st.integers(-54, 54),
    "BYMONTH": st.integers(0, 13),
    "BYSETPOS": st.integers(-400, 400),
}


@st.composite
def hostile_events(draw: st.DrawFn) -> str:
    parts = [f"FREQ={draw(st.sampled_from(_FREQS))}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 1000))}")
    end = draw(st.sampled_from(["COUNT", "UNTIL", "none"]))
    if end == "COUNT":
        parts.append(f"COUNT={draw(st.integers(1, 10**6))}")
    elif end == "UNTIL":
        parts.append(f"UNTIL={draw(st.integers(1900, 9999))}1231T235959Z")
    for key in draw(st.lists(st.sampled_from(sorted(_LISTS)), unique=True, max_size=5)):
        values = draw(st.lists(_LISTS[key], min_size=1, max_size=120))
        parts.append(f"{key}={','.join(''.join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values)}")
    start = draw(st.datetimes(datetime(1900, 1, 1), datetime(2030, 12, 31))).strftime(FMT)
    return _vevent(f"DTSTART:{start[:4].zfill(4)}{start[4:]}Z", "DURATION:PT1H", "RRULE:" + ";".join(parts))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(event=hostile_events())
def test_fuzzed_hostile_events_cost_little_and_never_raise(event: str, gc_paused: None) -> None:
    events = _events(event)
    started = time.process_time()
    found = expand(events, *WINDOW_60, tz=ZoneInfo("Europe/Berlin"))
    assert time.process_time() - started < EXPAND_CPU
    assert all(WINDOW_60[0] - timedelta(hours=1) <= o.start < WINDOW_60[1] for o in found)


def test_a_rule_dateutil_trips_over_keeps_the_first_instance() -> None:
    # Given a rule on which dateutil raises IndexError while walking (53rd Monday of a month)
    events = _events(_vevent("DTSTART:20261210T100000Z", "DURATION:PT1H", "RRULE:FREQ=MONTHLY;BYDAY=53MO"))
    # Then the event still blocks its own time, and nothing raises
    found = expand(events, *WINDOW_60, tz=ZoneInfo("UTC"))
    assert _spans(found) == [(datetime(2026, 12, 10, 10, tzinfo=UTC), datetime(2026, 12, 10, 11, tzinfo=UTC))]


def test_a_utc_exdate_removes_an_instance_a_dst_gap_moved() -> None:
    # Given a weekly series at 00:00 Santiago whose first instance falls in the 2026-09-06 gap (moved to 01:00)
    series = {"zone": "America/Santiago", "wall": datetime(2026, 9, 6, 0, 0), "count": 5, "minutes": 15}
    full = expand(_events(_vevent(*_weekly_lines(series))), *WIDE, tz=ZoneInfo("UTC"))
    # When every instance is excluded by its UTC start / Then none is left (the moved one included)
    exdates = [f"EXDATE:{o.start.strftime(FMT)}Z" for o in full]
    assert expand(_events(_vevent(*_weekly_lines(series), *exdates)), *WIDE, tz=ZoneInfo("UTC")) == []


# --- RANGE=THISANDFUTURE (issue 17: the expander used to treat it as a one-instance override) --------


def _shifted(wall: datetime, hours: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall time moved by whole hours of wall clock (a gap moves forward)."""
    return (wall + timedelta(hours=hours)).replace(tzinfo=zone, fold=0).astimezone(UTC)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weekly_series(), st.data())
def test_thisandfuture_moves_and_reshapes_that_instance_and_every_later_one(
    series: dict[str, object], data: st.DataObject
) -> None:
    # Given a weekly series and a RANGE=THISANDFUTURE override of instance k, moved by some hours of wall
    # clock and given another length (as Google and Apple write it: in the series' zone)
    zone, wall, count = ZoneInfo(str(series["zone"])), series["wall"], series["count"]
    assert isinstance(wall, datetime)
    assert isinstance(count, int)
    full = expand(_events(_vevent(*_weekly_lines(series))), *WIDE, tz=ZoneInfo("UTC"))
    k = data.draw(st.integers(0, count - 1))
    hours = data.draw(st.integers(-30, 30).filter(lambda h: h != 0))
    minutes = data.draw(st.integers(10, 300))
    named, moved = wall + timedelta(weeks=k), wall + timedelta(weeks=k, hours=hours)
    override = _vevent(
        f"RECURRENCE-ID;RANGE=THISANDFUTURE;TZID={zone.key}:{named.strftime(FMT)}",
        f"DTSTART;TZID={zone.key}:{moved.strftime(FMT)}",
        f"DTEND;TZID={zone.key}:{(moved + timedelta(minutes=minutes)).strftime(FMT)}",
        "SUMMARY:from here on",
    )
    # When master and override are expanded together
    found = expand(_events(_vevent(*_weekly_lines(series)), override), *WIDE, tz=ZoneInfo("UTC"))
    # Then the instances before k are untouched, and k and every later one moved by the same wall-clock
    # hours, with the override's (exact) length and its properties
    assert len(found) == count
    length = _shifted(moved + timedelta(minutes=minutes), 0, zone) - _shifted(moved, 0, zone)
    for i, occurrence in enumerate(sorted(found, key=lambda o: o.start)):
        if i < k:
            assert (occurrence.start, occurrence.end) == (full[i].start, full[i].end)
            assert occurrence.component.get("RECURRENCE-ID") is None
        else:
            assert occurrence.start == _shifted(wall + timedelta(weeks=i), hours, zone)
            assert occurrence.end - occurrence.start == length
            assert str(occurrence.component.get("SUMMARY")) == "from here on"


def test_thisandfuture_overrides_each_hold_until_the_next_and_single_ones_keep_their_own() -> None:
    # Given a weekly 10:00 Berlin series over the March DST change, moved to 12:00 from its 3rd instance
    # (and marked free), to 08:00 from its 6th, with the 4th moved on its own to 16:00
    b = "Europe/Berlin"
    master = _vevent(
        f"DTSTART;TZID={b}:20260302T100000", f"DTEND;TZID={b}:20260302T110000", "RRULE:FREQ=WEEKLY;COUNT=8"
    )
    noon = _vevent(
        f"RECURRENCE-ID;RANGE=THISANDFUTURE;TZID={b}:20260316T100000",
        f"DTSTART;TZID={b}:20260316T120000",
        f"DTEND;TZID={b}:20260316T123000",
        "TRANSP:TRANSPARENT",
    )
    single = _vevent(f"RECURRENCE-ID;TZID={b}:20260323T100000", f"DTSTART;TZID={b}:20260323T160000", "DURATION:PT2H")
    morning = _vevent(
        "RECURRENCE-ID;RANGE=THISANDFUTURE:20260406T080000Z",  # 10:00 CEST, named in UTC
        f"DTSTART;TZID={b}:20260406T080000",
        f"DTEND;TZID={b}:20260406T090000",
    )
    # When expanded (in any order)
    found = expand(_events(morning, single, master, noon), *WIDE, tz=ZoneInfo("UTC"))
    # Then each instance has the wall time and length of the override in force, across the DST change
    local = [(o.start.astimezone(ZoneInfo(b)).strftime("%m-%d %H:%M"), o.end - o.start) for o in found]
    assert local == [
        ("03-02 10:00", timedelta(hours=1)),
        ("03-09 10:00", timedelta(hours=1)),
        ("03-16 12:00", timedelta(minutes=30)),
        ("03-23 16:00", timedelta(hours=2)),
        ("03-30 12:00", timedelta(minutes=30)),
        ("04-06 08:00", timedelta(hours=1)),
        ("04-13 08:00", timedelta(hours=1)),
        ("04-20 08:00", timedelta(hours=1)),
    ]
    # And the properties of the override in force apply (free from the 3rd up to the 6th, the 4th aside)
    assert [str(o.component.get("TRANSP", "OPAQUE")) for o in found] == ["OPAQUE"] * 2 + ["TRANSPARENT"] + [
        "OPAQUE"
    ] + ["TRANSPARENT"] + ["OPAQUE"] * 3


def test_thisandfuture_reaches_into_a_window_that_starts_after_it() -> None:
    # Given a daily series moved an hour later from an instance long before the window
    master = _vevent("DTSTART:20260101T090000Z", "DTEND:20260101T100000Z", "RRULE:FREQ=DAILY")
    later = _vevent("RECURRENCE-ID;RANGE=THISANDFUTURE:20260110T090000Z", "DTSTART:20260110T100000Z", "DURATION:PT1H")
    # When only a day in June is expanded / Then that day's instance is the moved one
    window = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
    assert _spans(expand(_events(master, later), *window, tz=ZoneInfo("UTC"))) == [
        (datetime(2026, 6, 1, 10, tzinfo=UTC), datetime(2026, 6, 1, 11, tzinfo=UTC))
    ]


# --- what the library does that the old expander did not, and what stays ours ----------------------


def test_an_rdate_period_keeps_its_own_end() -> None:
    events = _events(
        _vevent("DTSTART:20260104T100000Z", "DURATION:PT1H", "RDATE;VALUE=PERIOD:20260110T100000Z/20260110T150000Z")
    )
    assert _spans(expand(events, *WIDE, tz=ZoneInfo("UTC"))) == [
        (datetime(2026, 1, 4, 10, tzinfo=UTC), datetime(2026, 1, 4, 11, tzinfo=UTC)),
        (datetime(2026, 1, 10, 10, tzinfo=UTC), datetime(2026, 1, 10, 15, tzinfo=UTC)),
    ]


def test_a_date_until_on_a_zoned_series_includes_its_day() -> None:
    # Given UNTIL as a date on a date-time series (RFC 5545 wants a date-time; producers mean the whole day)
    events = _events(
        _vevent("DTSTART;TZID=Europe/Berlin:20260101T180000", "DURATION:PT1H", "RRULE:FREQ=DAILY;UNTIL=20260103")
    )
    # Then the 3rd is in (the library alone reads midnight UTC, and drops it)
    assert [o.start.day for o in expand(events, *WIDE, tz=ZoneInfo("UTC"))] == [1, 2, 3]


def test_an_instance_across_a_dst_change_keeps_the_exact_length_of_dtend() -> None:
    # Given a daily 01:30-03:30 Berlin event (two hours), across the night the clocks go forward
    events = _events(
        _vevent(
            "DTSTART;TZID=Europe/Berlin:20260328T013000",
            "DTEND;TZID=Europe/Berlin:20260328T033000",
            "RRULE:FREQ=DAILY;COUNT=2",
        )
    )
    # Then the second one lasts two hours too (wall-clock arithmetic would make it one)
    assert [o.end - o.start for o in expand(events, *WIDE, tz=ZoneInfo("UTC"))] == [timedelta(hours=2)] * 2


def test_windows_at_the_ends_of_the_calendar_do_not_overflow() -> None:
    # Given a series at the very end of year 9999 and one in year 1
    events = _events(
        _vevent("DTSTART:99991227T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=2", uid="last"),
        _vevent("DTSTART:00010105T100000", "DURATION:PT1H", "RRULE:FREQ=YEARLY;COUNT=3", uid="first"),
    )
    far = ZoneInfo("Pacific/Kiritimati")
    # When the windows reach datetime's limits, in a zone far from UTC / Then nothing overflows
    end_of_time = expand(events, datetime(9999, 12, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC), tz=far)
    assert [o.start for o in end_of_time] == [
        datetime(9999, 12, 27, 10, tzinfo=UTC),
        datetime(9999, 12, 28, 10, tzinfo=UTC),
    ]
    start_of_time = expand(events, datetime.min.replace(tzinfo=UTC), datetime(1, 2, 1, tzinfo=UTC), tz=far)
    assert [o.start for o in start_of_time] == [datetime(1, 1, 5, 10, tzinfo=far).astimezone(UTC)]  # floating


# --- bounds with the library (issue 17) ----------------------------------------------------------------


def test_rules_that_never_match_stop_at_the_window_and_leave_the_budget_to_the_others(
    caplog: pytest.LogCaptureFixture, gc_paused: None
) -> None:
    # Given forty rules that never match, begun in the months before the window, and one ordinary event
    rules = [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=WEEKLY;BYMONTH=2;BYMONTHDAY=31",
        "FREQ=MONTHLY;BYDAY=2TU;BYSETPOS=2",
        "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31",
    ]
    never = [
        _vevent(f"DTSTART:2026{1 + n % 11:02}01T100000Z", "DURATION:PT1H", f"RRULE:{rules[n % 4]}", uid=f"never-{n}")
        for n in range(40)
    ]
    events = _events(*never, _vevent("DTSTART:20261201T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY", uid="real"))
    # When expanded with a small budget
    started = time.process_time()
    found = expand(events, *WINDOW_60, tz=ZoneInfo("UTC"), budget_seconds=EXPAND_CPU)
    # Then it is cheap, the ordinary event is there every day, and no walk ran out of budget: each rule
    # that never matches stopped once it had walked past the window (not at year 9999)
    assert time.process_time() - started < EXPAND_CPU
    assert sum(o.uid == "real" for o in found) == 60
    assert "budget" not in caplog.text


def test_a_series_stops_after_max_steps_instances_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    # Given a daily rule begun years before the window
    events = _events(_vevent("DTSTART:20200101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY"))
    # When expanded with at most 1,000 instances per series / Then the walk stops there (logged)
    found = expand(events, *WINDOW_60, tz=ZoneInfo("UTC"), max_steps=1000)
    assert found == []
    assert "stopped after 1000 instances" in caplog.text


@pytest.mark.xfail(
    strict=True,
    reason="recurring-ical-events 3.8.2 matches EXDATE on UTC or wall time (module docstring, Known limit)",
)
def test_an_exdate_removes_only_its_instance_in_a_series_with_several_a_day() -> None:
    # Given 10:00 and 11:00 Berlin every day (11:00 CET is 10:00 UTC), the first 10:00 excluded
    events = _events(
        _vevent(
            "DTSTART;TZID=Europe/Berlin:20260105T100000",
            "DURATION:PT30M",
            "RRULE:FREQ=DAILY;BYHOUR=10,11;COUNT=4",
            "EXDATE;TZID=Europe/Berlin:20260105T100000",
        )
    )
    # Then the 11:00 of that day stays
    assert [o.start.hour for o in expand(events, *WIDE, tz=ZoneInfo("UTC"))] == [10, 9, 10]
