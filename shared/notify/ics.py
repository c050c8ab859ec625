"""iCalendar (RFC 5545) for class sessions, with the icalendar library.

One event per session with a **stable UID** (``<sessionId>@mentor-connections``) and ``SEQUENCE``
following the session's ``sequence``, so a calendar app updates the event it already has when a
session moves or is cancelled, rather than adding a second one. Times carry ``TZID`` of the
class's zone and the calendar carries the matching ``VTIMEZONE``.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone

PRODID = "-//mentor-connections//teaching schedule//EN"
UID_DOMAIN = "mentor-connections"


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
    event.add("dtstart", start.astimezone(zone))
    event.add("dtend", end.astimezone(zone))
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


def calendar(events: list[Event], *, method: str | None = "PUBLISH", name: str | None = None) -> Calendar:
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
    first, last = _span(events)
    zones = (_vtimezone(tzid, first, last) for tzid in sorted(cal.get_missing_tzids()))
    cal.subcomponents[0:0] = [zone for zone in zones if zone is not None]
    return cal


def _span(events: list[Event]) -> tuple[date, date]:
    """Whole years around the events' times: the range their VTIMEZONEs must describe.

    Year-aligned, so the VTIMEZONE only changes when the events reach into another year, and not
    capped at icalendar's default of 2038 (a recurrence may run ten years ahead).
    """
    days = [day for e in events for name in ("DTSTART", "DTEND") if isinstance(day := e.decoded(name, None), date)]
    if not days:
        return Timezone.DEFAULT_FIRST_DATE, Timezone.DEFAULT_LAST_DATE
    return date(min(days).year, 1, 1), date(max(days).year + 2, 1, 1)


def _vtimezone(tzid: str, first: date, last: date) -> Timezone | None:
    """The VTIMEZONE of an IANA zone from ``first`` to ``last``, or ``None`` if it is unknown."""
    try:
        return Timezone.from_tzid(tzid, first_date=first, last_date=last)
    except ValueError:
        return None
