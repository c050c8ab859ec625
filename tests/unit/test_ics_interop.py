"""Every client reads the same instants from our calendar files (issue 17, build item 4).

The feed and the e-mail ``.ics`` are read with **ical.js** (Thunderbird, Nextcloud Calendar, many
web calendars; run in Node, pinned in ``tests/js/package-lock.json``) and with **icalendar** —
both through the VTIMEZONEs we write, not through zone data they may know by name — and every
session's start and end must be the API's instants: weekly classes across the DST changes of
New York, Berlin, Sydney and Lord Howe (a 30-minute change), a start in the spring-forward gap,
starts at both occurrences of a repeated autumn time, and sessions ending in the repeated hour.

ical.js dropped the onset of icalendar's DTSTART + RDATE observances: a 07:30 New York class read
an hour late for a year from the March change.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from shared.feed import service as feed
from shared.meetings import messages
from shared.notify import ics
from shared.schedule import recurrence
from shared.store import ClassFormat, ClassItem, MeetingProvider, Session

JS = Path(__file__).resolve().parents[1] / "js"
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
STAMP = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe")

#: Per zone: (spring-forward day, wall time inside its gap), (fall-back day, wall time it repeats).
EDGES = {
    "America/New_York": ((date(2026, 3, 8), (2, 30)), (date(2026, 11, 1), (1, 30))),
    "Europe/Berlin": ((date(2026, 3, 29), (2, 30)), (date(2026, 10, 25), (2, 30))),
    "Australia/Sydney": ((date(2026, 10, 4), (2, 30)), (date(2026, 4, 5), (2, 30))),
    "Australia/Lord_Howe": ((date(2026, 10, 4), (2, 15)), (date(2026, 4, 5), (1, 45))),
}

_pairs: list[tuple[ClassItem, Session]] = []


def _class(class_id: str, tz: str) -> ClassItem:
    return ClassItem.model_validate(
        {
            "class_id": class_id,
            "mentor_id": "m-1",
            "title": f"Class {class_id}",
            "format": ClassFormat.ONLINE,
            "meeting_provider": MeetingProvider.ZOOM,
            "timezone": tz,
            "duration_minutes": 60,
            "capacity": 4,
            "created_at": STAMP,
        }
    )


def _session(klass: ClassItem, n: int, start: datetime, end: datetime) -> Session:
    return Session.model_validate(
        {
            "class_id": klass.class_id,
            "session_id": f"{klass.class_id}-s{n:03d}",
            "mentor_id": "m-1",
            "start": start.astimezone(UTC),
            "end": end.astimezone(UTC),
            "capacity": 4,
            "updated_at": STAMP,
        }
    )


def schedule() -> list[tuple[ClassItem, Session]]:
    """The API's sessions: weekly 07:30 classes for 60 weeks (every change of 2026 and early 2027)
    and one-offs at the edges, their instants resolved as the API resolves them."""
    if _pairs:
        return _pairs
    for i, tz in enumerate(ZONES):
        zone = ZoneInfo(tz)
        weekly = _class(f"cls_w{i}", tz)
        starts = recurrence.expand("FREQ=WEEKLY;COUNT=60", datetime(2026, 1, 5, 7, 30), zone, max_sessions=100)
        _pairs.extend((weekly, _session(weekly, n, s, s + timedelta(hours=1))) for n, s in enumerate(starts))
        edges = _class(f"cls_e{i}", tz)
        (gap_day, gap_time), (overlap_day, overlap_time) = EDGES[tz]
        repeated = _wall(overlap_day, overlap_time)
        first = repeated.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = repeated.replace(tzinfo=zone, fold=1).astimezone(UTC)
        assert second > first, f"{tz}: {repeated} is not repeated"
        in_gap = recurrence.localize(_wall(gap_day, gap_time), zone)
        one_offs = [
            (in_gap, in_gap + timedelta(minutes=45)),  # asked for inside the gap: moved forward by the API
            (in_gap - timedelta(hours=1), in_gap + timedelta(minutes=30)),  # spans the gap
            (first, first + timedelta(minutes=20)),  # the first occurrence of the repeated time
            (second, second + timedelta(minutes=20)),  # the second one
            (first - timedelta(hours=1), first),  # ends at the first occurrence
            (first - timedelta(minutes=30), second),  # ends at the second occurrence
            (second - timedelta(hours=3), second + timedelta(minutes=5)),  # ends just after the repeat
            (first - timedelta(hours=25), first + timedelta(hours=1)),  # 26 h across the change
        ]
        _pairs.extend((edges, _session(edges, n, s, e)) for n, (s, e) in enumerate(one_offs))
    return _pairs


def _wall(day: date, hour_minute: tuple[int, int]) -> datetime:
    return datetime(day.year, day.month, day.day, *hour_minute)


def api_instants() -> dict[str, tuple[int, int]]:
    return {ics.session_uid(s.session_id): (_ms(s.start), _ms(s.end)) for _, s in schedule()}


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def feed_body() -> bytes:
    return feed.render(schedule(), now=NOW)


def email_bodies() -> bytes:
    return b"".join(messages.ics(klass, session, "https://zoom.us/j/1") for klass, session in schedule())


def read_with_icaljs(body: bytes) -> dict[str, tuple[int, int]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the ical.js interop check needs Node (CI has it)")
    if not (JS / "node_modules" / "ical.js").is_dir():  # .ci/run installs it; a fresh checkout may not have
        npm = subprocess.run(
            ["npm", "ci", "--prefix", str(JS)], capture_output=True, text=True, timeout=300, check=False
        )
        assert npm.returncode == 0, f"npm ci --prefix tests/js failed (ical.js is needed):\n{npm.stderr}"
    done = subprocess.run([node, str(JS / "instants.mjs")], input=body, capture_output=True, check=True, timeout=120)
    return {e["uid"]: (e["start"], e["end"]) for e in json.loads(done.stdout)}


def read_with_icalendar(body: bytes) -> dict[str, tuple[int, int]]:
    """Each event's instants through the file's own VTIMEZONE (icalendar evaluates its RRULEs)."""
    found: dict[str, tuple[int, int]] = {}
    for text in body.split(b"END:VCALENDAR\r\n"):
        if not text.strip():
            continue
        cal = Calendar.from_ical(text + b"END:VCALENDAR\r\n")
        zones = {str(z["TZID"]): z.to_tz() for z in cal.walk("VTIMEZONE")}
        for event in cal.walk("VEVENT"):
            start, end = (_through(event[name], zones) for name in ("DTSTART", "DTEND"))
            found[str(event["UID"])] = (_ms(start), _ms(end))
    return found


def _through(prop: Any, zones: dict[str, Any]) -> datetime:
    """A DTSTART/DTEND's instant: its wall time in the file's VTIMEZONE of its TZID (or UTC as written)."""
    tzid = prop.params.get("TZID")
    value: datetime = prop.dt
    return value.replace(tzinfo=zones[tzid]) if tzid else value


def _wrong(read: dict[str, tuple[int, int]]) -> list[str]:
    expected = api_instants()
    assert set(read) == set(expected)
    return sorted(uid for uid, times in read.items() if times != expected[uid])


@pytest.mark.parametrize("body", [feed_body, email_bodies], ids=["feed", "email"])
def test_icaljs_reads_the_apis_instants(body) -> None:  # type: ignore[no-untyped-def]
    assert _wrong(read_with_icaljs(body())) == []


@pytest.mark.parametrize("body", [feed_body, email_bodies], ids=["feed", "email"])
def test_icalendar_reads_the_apis_instants_through_our_vtimezones(body) -> None:  # type: ignore[no-untyped-def]
    assert _wrong(read_with_icalendar(body())) == []


def test_icalendar_reads_the_apis_instants_by_tzid() -> None:
    """And through the IANA zone the TZID names (how Google and Outlook map a known TZID)."""
    cal = Calendar.from_ical(feed_body())
    expected = api_instants()
    for event in cal.walk("VEVENT"):
        start = event.decoded("DTSTART")
        end = event.decoded("DTEND")
        assert (_ms(start), _ms(end)) == expected[str(event["UID"])]


def test_a_start_or_end_at_a_repeated_wall_time_is_written_in_utc_and_no_other() -> None:
    """A wall time the zone repeats names two instants: exactly those starts and ends are in UTC."""
    sessions = {ics.session_uid(s.session_id): (k, s) for k, s in schedule()}
    in_utc = 0
    for event in Calendar.from_ical(feed_body()).walk("VEVENT"):
        assert "DURATION" not in event
        klass, session = sessions[str(event["UID"])]
        zone = ZoneInfo(klass.timezone)
        for name, instant in (("DTSTART", session.start), ("DTEND", session.end)):
            wall = instant.astimezone(zone).replace(tzinfo=None)
            repeated = wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset()
            assert ("TZID" not in event[name].params) is repeated, (event["UID"], name)
            assert event[name].to_ical().endswith(b"Z") is repeated
            in_utc += repeated
    assert in_utc == 33  # 8 per zone with a one-hour change, 9 at Lord Howe (30 minutes)


def test_vtimezones_use_yearly_rules_and_no_rdate_lists() -> None:
    text = feed_body().decode().replace("\r\n ", "")
    assert "RDATE" not in text
    assert "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3" in text  # New York since 2007
    assert "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10" in text  # Berlin
    assert "RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=4" in text  # Sydney and Lord Howe
