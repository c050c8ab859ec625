"""iCalendar (RFC 5545) for class sessions, with the icalendar library.

One event per session with a **stable UID** (``<sessionId>@mentor-connections``) and ``SEQUENCE``
following the session's ``sequence``, so a calendar app updates the event it already has when a
session moves or is cancelled, rather than adding a second one. Times carry ``TZID`` of the
class's zone and the calendar carries the matching ``VTIMEZONE``.

Whatever is stored, a calendar stays small and renders: each ``VTIMEZONE`` covers the events'
years only within :data:`SPAN_YEARS` years of now (sessions in year 9996 made the feed 2 MB and
3 s per request; one in 9998 asked icalendar for ``date(10000, 1, 1)``), and a time that cannot
be shown in its zone (the last hours of year 9999) is written in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone

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
    event.add("dtstart", _in_zone(start, zone))
    event.add("dtend", _in_zone(end, zone))
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
    """The VTIMEZONE of an IANA zone from ``first`` to ``last``, or ``None`` if it is unknown."""
    try:
        return Timezone.from_tzid(tzid, first_date=first, last_date=last)
    except ValueError:
        return None
