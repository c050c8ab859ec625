"""iCalendar (RFC 5545) for class sessions, with the icalendar library.

One event per session with a **stable UID** (``<sessionId>@mentor-connections``) and ``SEQUENCE``
following the session's ``sequence``, so a calendar app updates the event it already has when a
session moves or is cancelled, rather than adding a second one. Times carry ``TZID`` of the
class's zone and the calendar carries the matching ``VTIMEZONE``.

Whatever is stored, a calendar stays small and renders: each ``VTIMEZONE`` covers the events'
years only within :data:`SPAN_YEARS` years of now (sessions in year 9996 made the feed 2 MB and
3 s per request; one in 9998 asked icalendar for ``date(10000, 1, 1)``), and a time that cannot
be shown in its zone (the last hours of year 9999) is written in UTC.

Every client reads the same instants (issue 17, ``tests/unit/test_ics_interop.py`` reads our files
with ical.js and icalendar):

* each ``VTIMEZONE`` is written the way Apple, Outlook, Google and libical write theirs: one
  STANDARD/DAYLIGHT observance per rule, ``DTSTART`` (the first onset, as wall time in
  ``TZOFFSETFROM``) + ``RRULE:FREQ=YEARLY`` (with ``UNTIL`` when a later rule replaces it), and a
  bare ``DTSTART`` for a one-off transition — never ``RDATE`` lists: ical.js (Thunderbird,
  Nextcloud) drops the ``DTSTART`` onset of an observance that has ``RDATE``, so icalendar's
  ``Timezone.from_tzid`` output put a New York class an hour late for a year after each change;
* a wall time the zone repeats (the autumn change) names two instants (RFC 5545 picks the first,
  and readers differ), so a ``DTSTART`` or ``DTEND`` there is written in UTC (``…Z``; RFC 5545
  lets a UTC ``DTEND`` go with a ``TZID`` ``DTSTART``). Not ``DURATION``: ical.js adds it to the
  wall time, so ``DTSTART;TZID=…:00:30`` + ``PT1H`` again lands on the repeated 01:30 — an hour off.
"""

from __future__ import annotations

import calendar as _month_days
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard
from icalendar.prop import vRecur

PRODID = "-//mentor-connections//teaching schedule//EN"
UID_DOMAIN = "mentor-connections"
#: A VTIMEZONE describes at most the years from now - SPAN_YEARS to now + SPAN_YEARS (the API
#: takes dates up to ten years ahead; past sessions stay in the feed for a while).
SPAN_YEARS = 20


def session_uid(session_id: str) -> str:
    """The stable UID of a session's event."""
    return f"{session_id}@{UID_DOMAIN}"


def session_event(
    *,
    session_id: str,
    title: str,
    start: datetime,
    end: datetime,
    timezone: str,
    sequence: int,
    cancelled: bool = False,
    url: str | None = None,
    location: str | None = None,
    description: str | None = None,
    stamp: datetime | None = None,
) -> Event:
    """A VEVENT for one session, in the class's time zone."""
    zone = ZoneInfo(timezone)
    event = Event()
    event.add("uid", session_uid(session_id))
    event.add("sequence", sequence)
    event.add("summary", title)
    event.add("dtstart", _unambiguous(start, zone))
    event.add("dtend", _unambiguous(end, zone))
    event.add("dtstamp", stamp or start)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if url:
        event.add("url", url)
    where = location or url
    if where:
        event.add("location", where)
    if description:
        event.add("description", description)
    return event


def _in_zone(value: datetime, zone: ZoneInfo) -> datetime:
    """``value`` in ``zone``; in UTC when that overflows (a stored time in the last hours of 9999)."""
    try:
        return value.astimezone(zone)
    except OverflowError:
        return value.astimezone(UTC)


def _is_ambiguous(value: datetime, zone: ZoneInfo) -> bool:
    """Whether ``value``'s wall time in ``zone`` names more than one instant (the repeated hour)."""
    try:
        wall = value.astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        return False
    return wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset()


def _unambiguous(value: datetime, zone: ZoneInfo) -> datetime:
    """``value`` in ``zone``, or in UTC when its wall time there is repeated (or overflows) — then
    the zone's readers could take the other instant (the end of a session in the repeated hour read
    as its start: zero length)."""
    return value.astimezone(UTC) if _is_ambiguous(value, zone) else _in_zone(value, zone)


def calendar(
    events: list[Event], *, method: str | None = "PUBLISH", name: str | None = None, now: datetime | None = None
) -> Calendar:
    """A VCALENDAR holding ``events`` plus a VTIMEZONE for every zone they use.

    The VTIMEZONEs come first, in TZID order, so the same events always serialise to the same
    bytes (the feed's ETag is a hash of them; icalendar's ``add_missing_timezones`` follows set
    order, which changes from one process to the next).
    """
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
    for event in events:
        cal.add_component(event)
    first, last = _span(events, (now or datetime.now(UTC)).year)
    zones = (_vtimezone(tzid, first, last) for tzid in sorted(cal.get_missing_tzids()))
    cal.subcomponents[0:0] = [zone for zone in zones if zone is not None]
    return cal


def _span(events: list[Event], this_year: int) -> tuple[date, date]:
    """Whole years around the events' times: the range their VTIMEZONEs must describe.

    Year-aligned, so the VTIMEZONE only changes when the events reach into another year, and not
    capped at icalendar's default of 2038 (a recurrence may run ten years ahead) — but kept within
    :data:`SPAN_YEARS` of ``this_year``, so no stored date makes it long (or reach year 10000).
    """
    days = [day for e in events for name in ("DTSTART", "DTEND") if isinstance(day := e.decoded(name, None), date)]
    if not days:
        return Timezone.DEFAULT_FIRST_DATE, Timezone.DEFAULT_LAST_DATE
    lowest, highest = this_year - SPAN_YEARS, this_year + SPAN_YEARS
    first = min(max(min(days).year, lowest), highest - 1)
    last = max(min(max(days).year + 2, highest), first + 1)
    return date(first, 1, 1), date(last, 1, 1)


def _vtimezone(tzid: str, first: date, last: date) -> Timezone | None:
    """The VTIMEZONE of an IANA zone from ``first`` to ``last``, or ``None`` if it is unknown.

    Written here, not with ``Timezone.from_tzid``: icalendar (6 and 7) only writes observances as
    ``DTSTART`` + ``RDATE`` lists, which ical.js misreads (see the module doc), and its ``DTSTART``
    is the wall time *after* the change where RFC 5545 wants the wall time in ``TZOFFSETFROM``.
    The transitions come from the same zoneinfo data the API uses.
    """
    try:
        ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return cast("Timezone", Timezone.from_ical(_vtimezone_text(tzid, first, last)))


@lru_cache(maxsize=256)
def _vtimezone_text(tzid: str, first: date, last: date) -> bytes:
    """The serialised VTIMEZONE (cached: a warm container renders the same zones again and again)."""
    zone = ZoneInfo(tzid)
    opening_wall = datetime(first.year, first.month, first.day)
    start = opening_wall.replace(tzinfo=zone).astimezone(UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=zone).astimezone(UTC)
    initial = _state(start, zone)
    tz = Timezone()
    tz.add("TZID", tzid)
    # What holds at the start of the span (as from_tzid writes it): readers take it for anything earlier.
    opening = _Transition(opening_wall, initial, initial)
    tz.add_component(_observance(opening, None))
    for run in _runs(_transitions(zone, start, end)):
        # A rule still in force in the span's last year runs on; one a later rule replaced stops.
        until = None if run.changes[-1].onset.year >= last.year - 1 else run.changes[-1].instant
        tz.add_component(_observance(run.changes[0], _rule(run, until) if len(run.changes) > 1 else None))
    return bytes(tz.to_ical())


@dataclass(frozen=True)
class _State:
    """A zone's offset, whether it is daylight time, and its abbreviation, at one instant."""

    offset: timedelta
    daylight: bool
    name: str


@dataclass(frozen=True)
class _Transition:
    """A change from ``before`` to ``after``; ``onset`` is its wall time in the ``before`` offset."""

    onset: datetime
    before: _State
    after: _State

    @property
    def instant(self) -> datetime:
        return (self.onset - self.before.offset).replace(tzinfo=UTC)

    @property
    def kind(self) -> tuple[_State, _State]:
        return self.before, self.after


def _state(instant: datetime, zone: ZoneInfo) -> _State:
    local = instant.astimezone(zone)
    offset = local.utcoffset() or timedelta()
    return _State(offset, bool(local.dst()), local.tzname() or _offset_text(offset))


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _transitions(zone: ZoneInfo, start: datetime, end: datetime) -> list[_Transition]:
    """Every change of offset, DST flag or abbreviation in ``[start, end)``, found day by day, then
    to the second by bisection (zoneinfo has no public list of transitions)."""
    found: list[_Transition] = []
    day = timedelta(days=1)
    at, state = start, _state(start, zone)
    while at < end:
        step = min(at + day, end)
        following = _state(step, zone)
        if following != state:
            low, high = at, step  # state at low, something else at high
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if _state(middle, zone) == state:
                    low = middle
                else:
                    high = middle
            after = _state(high, zone)
            found.append(_Transition((high + state.offset).replace(tzinfo=None), state, after))
            at, state = high, after
            continue
        at = step
    return found


# A yearly rule is one of: the nth weekday of the month, the last weekday, a fixed day, or the
# weekday within a 7-day window (``BYMONTHDAY=23,24,…,29;BYDAY=FR``, as Apple writes "Friday before
# the last Sunday"). Each transition lists the rules it fits; a run keeps those all of its years fit.
_Rule = tuple[str, int]
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _fits(onset: datetime) -> set[_Rule]:
    length = _month_days.monthrange(onset.year, onset.month)[1]
    fits = {("nth", (onset.day - 1) // 7 + 1), ("monthday", onset.day)}
    if onset.day + 7 > length:
        fits.add(("nth", -1))
    fits |= {("window", d) for d in range(max(1, onset.day - 6), onset.day + 1) if d + 6 <= length}
    return fits


@dataclass
class _Run:
    """Transitions of one kind in consecutive years that every rule in ``rules`` describes."""

    changes: list[_Transition]
    rules: set[_Rule]


def _runs(transitions: list[_Transition]) -> list[_Run]:
    """The transitions grouped into runs that one yearly rule describes (in order of first onset)."""
    latest: dict[tuple[_State, _State], _Run] = {}
    runs: list[_Run] = []
    for change in transitions:
        fits = _fits(change.onset)
        run = latest.get(change.kind)
        if run is not None:
            previous = run.changes[-1].onset
            same_shape = (
                change.onset.year == previous.year + 1
                and change.onset.month == previous.month
                and change.onset.time() == previous.time()
            )
            weekday_kept = change.onset.weekday() == previous.weekday()
            common = {r for r in run.rules & fits if r[0] == "monthday" or weekday_kept}
            if same_shape and common:
                run.changes.append(change)
                run.rules = common
                continue
        latest[change.kind] = run = _Run([change], fits)
        runs.append(run)
    return runs


def _rule(run: _Run, until: datetime | None) -> vRecur:
    """The ``RRULE`` of a run: the simplest of its rules (nth weekday, last, fixed day, window)."""
    onset = run.changes[0].onset
    weekday = _DAYS[onset.weekday()]
    kind, value = min(run.rules, key=lambda r: (("nth", "monthday", "window").index(r[0]), -r[1] if r[1] < 0 else r[1]))
    parts: dict[str, object] = {"FREQ": "YEARLY", "BYMONTH": onset.month}
    if kind == "nth":
        parts["BYDAY"] = f"{value}{weekday}"
    elif kind == "monthday":
        parts["BYMONTHDAY"] = value
    else:
        parts["BYMONTHDAY"] = list(range(value, value + 7))
        parts["BYDAY"] = weekday
    if until is not None:
        parts["UNTIL"] = until
    return vRecur(parts)


def _observance(first: _Transition, rule: vRecur | None) -> TimezoneStandard | TimezoneDaylight:
    """A STANDARD or DAYLIGHT observance starting with ``first`` (and repeating by ``rule``)."""
    observance = TimezoneDaylight() if first.after.daylight else TimezoneStandard()
    observance.add("DTSTART", first.onset)
    if rule is not None:
        observance.add("RRULE", rule)
    observance.add("TZOFFSETFROM", first.before.offset)
    observance.add("TZOFFSETTO", first.after.offset)
    observance.add("TZNAME", first.after.name)
    return observance
