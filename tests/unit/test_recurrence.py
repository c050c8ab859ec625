"""RRULE expansion in the class's zone (shared.schedule.recurrence): DST-correct wall times, RFC 5545's rules
for nonexistent and ambiguous local times, and the limits that keep a rule bounded and cheap.

The property tests compare against dateutil's plain wall-clock expansion of the same rule (which
knows nothing of zones or of the budget the module walks a rule under).
"""

from __future__ import annotations

import itertools
import time as clock
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.schedule.recurrence import (
    MAX_HORIZON_YEARS,
    RecurrenceError,
    expand,
    localize,
    parse_rule,
    to_wall,
    zone,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _walls(starts: list[datetime], tz: ZoneInfo) -> list[str]:
    return [s.astimezone(tz).strftime("%Y-%m-%d %H:%M%z") for s in starts]


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    return localize(wall, tz).replace(tzinfo=None) == wall


# --- examples -----------------------------------------------------------------------------------


def test_weekly_18_00_berlin_keeps_18_00_across_the_october_change() -> None:
    # Given a weekly class at 18:00 Berlin from 2027-10-10 (the clocks go back on 2027-10-31)
    starts = expand("FREQ=WEEKLY;COUNT=5", datetime(2027, 10, 10, 18), BERLIN, max_sessions=99)
    # Then every session is at 18:00 local; the offset changes from +02:00 to +01:00
    assert _walls(starts, BERLIN) == [
        "2027-10-10 18:00+0200",
        "2027-10-17 18:00+0200",
        "2027-10-24 18:00+0200",
        "2027-10-31 18:00+0100",
        "2027-11-07 18:00+0100",
    ]
    assert [s.astimezone(UTC).hour for s in starts] == [16, 16, 16, 17, 17]


def test_a_start_in_the_spring_forward_gap_moves_forward_by_the_gap() -> None:
    # Given a weekly 02:30 class whose third session falls on 2027-03-28 (Berlin skips 02:00-03:00)
    starts = expand("FREQ=WEEKLY;COUNT=4", datetime(2027, 3, 14, 2, 30), BERLIN, max_sessions=99)
    # Then that session is at 03:30 summer time (RFC 5545: the offset before the gap), the others 02:30
    assert _walls(starts, BERLIN) == [
        "2027-03-14 02:30+0100",
        "2027-03-21 02:30+0100",
        "2027-03-28 03:30+0200",
        "2027-04-04 02:30+0200",
    ]
    assert starts[2].astimezone(UTC) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)


def test_an_ambiguous_start_in_the_fall_back_overlap_is_the_first_occurrence() -> None:
    # Given 02:30 on 2027-10-31, which Berlin lives twice
    starts = expand("FREQ=DAILY;COUNT=2", datetime(2027, 10, 31, 2, 30), BERLIN, max_sessions=99)
    # Then the first (summer-time) one is used
    assert _walls(starts, BERLIN) == ["2027-10-31 02:30+0200", "2027-11-01 02:30+0100"]
    assert starts[0].astimezone(UTC) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


def test_southern_hemisphere_and_new_york() -> None:
    sydney = ZoneInfo("Australia/Sydney")
    starts = expand("FREQ=WEEKLY;COUNT=3", datetime(2027, 3, 28, 18), sydney, max_sessions=99)
    assert _walls(starts, sydney) == ["2027-03-28 18:00+1100", "2027-04-04 18:00+1000", "2027-04-11 18:00+1000"]
    new_york = ZoneInfo("America/New_York")
    starts = expand("RRULE:FREQ=DAILY;COUNT=3", datetime(2027, 3, 13, 2, 30), new_york, max_sessions=99)
    assert _walls(starts, new_york) == ["2027-03-13 02:30-0500", "2027-03-14 03:30-0400", "2027-03-15 02:30-0400"]


def test_a_zone_that_skipped_a_whole_day_yields_no_duplicate_instant() -> None:
    # Given Samoa, which skipped 2011-12-30 entirely / When a daily rule crosses it
    apia = ZoneInfo("Pacific/Apia")
    starts = expand("FREQ=DAILY;COUNT=4", datetime(2011, 12, 28, 10), apia, max_sessions=99)
    # Then the missing day's session would coincide with the next one: it is dropped
    assert _walls(starts, apia) == ["2011-12-28 10:00-1000", "2011-12-29 10:00-1000", "2011-12-31 10:00+1400"]


@pytest.mark.parametrize(
    ("until", "last"),
    [
        ("20271107T170000Z", "2027-11-07 18:00+0100"),  # UTC, inclusive
        ("20271107T165959Z", "2027-10-31 18:00+0100"),
        ("20271107T180000", "2027-11-07 18:00+0100"),  # floating = Berlin wall time
        ("20271107", "2027-11-07 18:00+0100"),  # a date: through the end of that local day
        ("20271106", "2027-10-31 18:00+0100"),
    ],
)
def test_until_forms(until: str, last: str) -> None:
    starts = expand(f"FREQ=WEEKLY;UNTIL={until}", datetime(2027, 10, 24, 18), BERLIN, max_sessions=99)
    assert _walls(starts, BERLIN)[-1] == last


def test_monthly_last_friday_and_weekly_two_days() -> None:
    starts = expand("FREQ=MONTHLY;BYDAY=-1FR;COUNT=3", datetime(2027, 1, 1, 9), BERLIN, max_sessions=99)
    assert [s.date() for s in starts] == [date(2027, 1, 29), date(2027, 2, 26), date(2027, 3, 26)]
    starts = expand("FREQ=WEEKLY;BYDAY=TU,TH;COUNT=4", datetime(2027, 6, 1, 7, 15), BERLIN, max_sessions=99)
    assert [s.strftime("%a %H:%M") for s in starts] == ["Tue 07:15", "Thu 07:15", "Tue 07:15", "Thu 07:15"]


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("FREQ=WEEKLY;BYDAY=TU", "COUNT or UNTIL"),
        ("FREQ=WEEKLY;COUNT=3;UNTIL=20280101T000000Z", "not both"),
        ("FREQ=HOURLY;COUNT=3", "FREQ must be"),
        ("FREQ=MINUTELY;COUNT=3", "FREQ must be"),
        ("FREQ=WEEKLY;BYHOUR=9;COUNT=3", "time of day"),
        ("FREQ=WEEKLY;BYEASTER=0;COUNT=3", "unsupported"),
        ("FREQ=WEEKLY;X-NAME=1;COUNT=3", "unsupported"),
        ("COUNT=3", "needs FREQ"),
        ("FREQ=WEEKLY;COUNT=0", "positive integer"),
        ("FREQ=WEEKLY;COUNT=-1", "positive integer"),
        ("FREQ=WEEKLY;INTERVAL=0;COUNT=3", "positive integer"),
        ("FREQ=WEEKLY;COUNT=3;COUNT=4", "twice"),
        ("FREQ=WEEKLY;;COUNT=3", "malformed"),
        ("FREQ=WEEKLY;COUNT", "malformed"),
        ("every tuesday", "malformed"),
        ("DTSTART:20270101T090000\nRRULE:FREQ=WEEKLY;COUNT=3", "single RRULE"),
        ("FREQ=WEEKLY;BYDAY=XX;COUNT=3", "not a valid RRULE"),
        ("FREQ=MONTHLY;BYMONTHDAY=40;COUNT=3", "no session"),
        ("FREQ=WEEKLY;UNTIL=2028-01-01", "UNTIL must be"),
        ("FREQ=WEEKLY;UNTIL=20281341", "not a valid date"),
        ("FREQ=DAILY;COUNT=100", "more than 99"),
        ("FREQ=DAILY;UNTIL=20300101T000000Z", "more than 99"),
        ("FREQ=WEEKLY;UNTIL=20200101T000000Z", "no session"),
        ("FREQ=YEARLY;COUNT=12", f"within {MAX_HORIZON_YEARS} years"),
        ("FREQ=WEEKLY;UNTIL=20400101", f"within {MAX_HORIZON_YEARS} years"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30;COUNT=2", "no session"),
    ],
)
def test_rules_that_are_refused(rule: str, fragment: str) -> None:
    with pytest.raises(RecurrenceError, match=fragment) as err:
        expand(rule, datetime(2027, 6, 1, 18), BERLIN, max_sessions=99)
    assert err.value.field == "rrule"


def test_a_rule_that_never_matches_is_refused_quickly() -> None:
    # Given a DAILY rule no day satisfies (dateutil alone would walk every day up to year 9999)
    started = clock.monotonic()
    with pytest.raises(RecurrenceError, match="no session"):
        expand("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=3", datetime(2027, 1, 1, 18), BERLIN, max_sessions=99)
    # Then the walk stops at the ten-year horizon (a budget of periods)
    assert clock.monotonic() - started < 1.5


def test_a_rule_reaching_past_the_horizon_is_refused() -> None:
    # 29 February 2028, 2032, 2036 fit in ten years; 2040 does not
    assert (
        len(expand("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=3", datetime(2027, 1, 1, 18), BERLIN, max_sessions=99))
        == 3
    )
    with pytest.raises(RecurrenceError, match=f"within {MAX_HORIZON_YEARS} years"):
        expand("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=4", datetime(2027, 1, 1, 18), BERLIN, max_sessions=99)


def test_zones_and_datetimes() -> None:
    assert zone("Europe/Berlin") == BERLIN
    for bad in ("Mars/Base", "", "localtime", "Factory", "../etc/passwd", "/etc/localtime", "Europe", "x" * 80):
        with pytest.raises(RecurrenceError) as err:
            zone(bad)
        assert err.value.field == "timezone"
    assert to_wall(datetime(2027, 7, 1, 16, tzinfo=UTC), BERLIN) == datetime(2027, 7, 1, 18)
    assert to_wall(datetime(2027, 7, 1, 18), BERLIN) == datetime(2027, 7, 1, 18)
    assert parse_rule("rrule:freq=weekly;count=2") == {"FREQ": "WEEKLY", "COUNT": "2"}


# --- properties ----------------------------------------------------------------------------------

_ZONES = sorted(k for k in zoneinfo.available_timezones() if k not in {"localtime", "Factory", "posixrules"})
_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@st.composite
def rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    interval = draw(st.integers(1, 2))
    count = draw(st.integers(1, 4 if freq == "YEARLY" else 30))
    parts = [f"FREQ={freq}", f"INTERVAL={interval}", f"COUNT={count}"]
    if freq == "WEEKLY" and draw(st.booleans()):
        parts.append("BYDAY=" + ",".join(draw(st.lists(st.sampled_from(_DAYS), min_size=1, max_size=3, unique=True))))
    if freq == "MONTHLY" and draw(st.booleans()):
        parts.append(f"BYMONTHDAY={draw(st.integers(1, 28))}")
    return ";".join(parts)


#: Local wall times, biased to the small hours where DST gaps and overlaps live.
walls = st.builds(
    datetime.combine,
    st.dates(date(1995, 1, 1), date(2080, 12, 31)),
    st.one_of(
        st.builds(time, st.integers(0, 3), st.sampled_from([0, 15, 30, 45])),
        st.times().map(lambda t: t.replace(microsecond=0)),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(_ZONES), rule=rules(), dtstart=walls)
def test_every_session_keeps_the_dtstart_wall_time_rfc5545(key: str, rule: str, dtstart: datetime) -> None:
    tz = ZoneInfo(key)
    starts = expand(rule, dtstart, tz, max_sessions=99)
    reference = list(rrulestr("RRULE:" + rule, dtstart=dtstart))  # wall-clock times, no zone
    # Sessions are strictly increasing instants, in the class's zone
    assert all(a.astimezone(UTC) < b.astimezone(UTC) for a, b in itertools.pairwise(starts))
    assert all(s.tzinfo is tz for s in starts)
    kept = iter(starts)
    previous: datetime | None = None
    for wall in reference:
        assert wall.time() == dtstart.time()
        instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if previous is not None and instant == previous:
            continue  # a skipped calendar day: dropped as a duplicate
        session = next(kept)
        local = session.astimezone(tz).replace(tzinfo=None)
        if _exists(wall, tz):
            # The DTSTART wall time, on its day; when it happens twice, the first time (RFC 5545)
            assert local == wall
            assert session.astimezone(UTC) <= wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        else:
            # In a gap: moved forward by the gap's length (the UTC offset before the gap)
            assert local > wall
            assert session.astimezone(UTC) == instant
        previous = session.astimezone(UTC)
    assert next(kept, None) is None


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago", "Europe/London"]),
    day=st.dates(date(2026, 1, 1), date(2040, 12, 31)),
    minutes=st.integers(0, 24 * 60 - 1),
)
def test_weekly_rules_never_drift_over_a_year(key: str, day: date, minutes: int) -> None:
    # Given a weekly rule for a year at any minute of the day, in zones with DST
    tz = ZoneInfo(key)
    dtstart = datetime.combine(day, time(minutes // 60, minutes % 60))
    starts = expand("FREQ=WEEKLY;COUNT=53", dtstart, tz, max_sessions=99)
    # Then each session is on the right day and at the DTSTART wall time unless that time did not exist
    for n, session in enumerate(starts):
        nominal = dtstart + timedelta(weeks=n)
        local = session.astimezone(tz).replace(tzinfo=None)
        assert local == nominal or (not _exists(nominal, tz) and timedelta(0) < local - nominal <= timedelta(hours=2))
