"""Expand iCalendar VEVENTs into the concrete instances that overlap a time window (RFC 5545).

CalDAV servers return whole calendar objects: a recurring event is one master VEVENT (``RRULE``,
``RDATE``, ``EXDATE``) plus one VEVENT per overridden instance (same ``UID``, a
``RECURRENCE-ID`` naming the instance it replaces). :func:`expand` turns such components into
:class:`Occurrence` values — each with its UTC start and end and the component that describes it
(the master, or the override), so callers can read ``TRANSP`` / ``STATUS`` / ``ATTENDEE`` per
instance.

How times are read:

* ``DTSTART;TZID=…`` — wall times in that zone (IANA names, Windows names icalendar maps, or a
  ``VTIMEZONE`` in the object); ``…Z`` — UTC; no zone (**floating**) or an unknown ``TZID`` — wall
  times in ``tz`` (the mentor's zone).
* ``VALUE=DATE`` (all-day) — whole days in ``tz``: from local midnight of the first day to local
  midnight after the last (``DTEND`` is exclusive; none means one day).
* Recurrences are expanded on **naive wall-clock times** in the event's zone and placed in the zone
  afterwards, so a weekly 18:00 Europe/Berlin event stays at 18:00 across DST changes. A wall time
  in a spring-forward gap moves forward by the gap, one in a fall-back overlap is the first of the
  two (RFC 5545 §3.3.5), as :func:`shared.schedule.recurrence.localize` does.
* ``DTSTART`` is always the first instance (RFC 5545 §3.8.5.3), even when the rule would not
  produce it. ``EXDATE`` removes instances, ``RDATE`` (dates, date-times or periods) adds them.
* Durations: ``DTEND`` gives the *exact* duration every instance keeps; ``DURATION`` is nominal
  (its days are calendar days in the zone, its time part exact), as §3.8.5.3 says. A date-time
  event with neither has no duration (returned, with ``start == end``).
* Overrides replace the instance their ``RECURRENCE-ID`` names, wherever the override moved it,
  so an instance moved into the window from outside is found, and one moved out is gone.
  ``RANGE=THISANDFUTURE`` is treated like a single-instance override (iCloud and Google split the
  series instead of sending it). Overrides without a master (an invitation to one instance) are
  events of their own.

Guards: a rule is walked at most :data:`MAX_STEPS` instances per series (a ``FREQ=MINUTELY`` rule
started years ago stops there, logged), and — like :mod:`shared.schedule.recurrence` — a rule is walked on
a copy of its start shifted by whole 400-year Gregorian cycles to just before year 9999, so a rule
that never matches (``BYMONTH=2;BYMONTHDAY=30``) cannot spin dateutil through eight millennia.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

log = logging.getLogger(__name__)

#: Most instances generated for one series before giving up (logged).
MAX_STEPS = 100_000
_CYCLE_YEARS = 400
_LAST_YEAR = 9990  # shifted walks start at most here (dateutil stops at 9999)


@dataclass(frozen=True)
class Occurrence:
    """One instance of an event: UTC ``start`` / ``end`` and the component it comes from."""

    start: datetime
    end: datetime
    all_day: bool
    uid: str
    component: Any = field(compare=False, repr=False)  # icalendar Event (master or override)


# --- small time helpers ----------------------------------------------------------------------------


def localize(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant of naive wall time ``wall`` in ``tz`` (gap → forward, overlap → first)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _first(value: Any) -> Any:
    """A property given twice (a broken producer) counts once: the first value."""
    return value[0] if isinstance(value, list) and value else value


def _decoded(component: Any, name: str) -> Any:
    try:
        return _first(component.decoded(name, None))
    except (ValueError, TypeError, KeyError):  # an unparseable value is treated as absent
        return None


@dataclass(frozen=True)
class _Clock:
    """How one series reads its times: its zone, and whether it is all-day."""

    zone: tzinfo
    all_day: bool

    def wall(self, value: date | datetime) -> datetime:
        """A DTSTART / RDATE / EXDATE / RECURRENCE-ID value as a naive wall time in this zone."""
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(self.zone).replace(tzinfo=None)
            return value.replace(microsecond=0, fold=0)
        return datetime.combine(value, time())

    def instant(self, wall: datetime) -> datetime:
        return localize(wall, self.zone)


def _clock_of(dtstart: date | datetime, floating: tzinfo) -> _Clock:
    if isinstance(dtstart, datetime):
        return _Clock(zone=dtstart.tzinfo or floating, all_day=False)
    return _Clock(zone=floating, all_day=True)


@dataclass(frozen=True)
class _Span:
    """How long an instance lasts: exact seconds, plus nominal days (DURATION's day part)."""

    exact: timedelta
    nominal_days: int = 0

    def end(self, clock: _Clock, wall: datetime, start: datetime) -> datetime:
        if self.nominal_days:
            return clock.instant(wall + timedelta(days=self.nominal_days)) + self.exact
        return start + self.exact


def _span_of(component: Any, clock: _Clock, dtstart: date | datetime) -> _Span | None:
    """The component's own duration, or ``None`` if it has neither DTEND nor DURATION."""
    dtend = _decoded(component, "DTEND")
    if isinstance(dtend, date):
        if clock.all_day or not isinstance(dtend, datetime) or not isinstance(dtstart, datetime):
            days = (_as_date(dtend) - _as_date(dtstart)).days
            return _Span(exact=timedelta(0), nominal_days=max(days, 0))
        start_wall = clock.wall(dtstart)
        exact = _instant_of(dtend, clock) - clock.instant(start_wall)
        return _Span(exact=max(exact, timedelta(0)))
    duration = _decoded(component, "DURATION")
    if isinstance(duration, timedelta):
        if duration < timedelta(0):
            return _Span(exact=timedelta(0))
        return _Span(exact=timedelta(seconds=duration.seconds), nominal_days=duration.days)
    return None


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _instant_of(value: datetime, clock: _Clock) -> datetime:
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return clock.instant(value.replace(microsecond=0))


def _default_span(clock: _Clock) -> _Span:
    # RFC 5545 §3.6.1: a date DTSTART without DTEND/DURATION lasts one day; a date-time none.
    return _Span(exact=timedelta(0), nominal_days=1) if clock.all_day else _Span(exact=timedelta(0))


# --- date lists (RDATE / EXDATE) ------------------------------------------------------------------


def _date_values(component: Any, name: str) -> Iterator[Any]:
    """Every value of a (possibly repeated) RDATE / EXDATE property: date, datetime or a period tuple."""
    prop = component.get(name)
    if prop is None:
        return
    for group in prop if isinstance(prop, list) else [prop]:
        try:
            items = list(getattr(group, "dts", []))
        except ValueError:  # an unparseable value (icalendar's broken property): ignored
            continue
        for item in items:
            yield item.dt


# --- rules -----------------------------------------------------------------------------------------


def _rules(component: Any, name: str, clock: _Clock, wall_start: datetime, shift: int) -> list[Any]:
    """dateutil rules for every RRULE (or EXRULE) of the component, on shifted wall times."""
    from dateutil.rrule import rrule, rrulestr
    from icalendar.prop import vRecur

    prop = component.get(name)
    if prop is None:
        return []
    made = []
    for recur in prop if isinstance(prop, list) else [prop]:
        try:  # icalendar's broken-property placeholder raises a ValueError on access
            parts = {k.upper(): v for k, v in dict(recur).items()}
            until = parts.pop("UNTIL", None)
            recur_text: Any = vRecur(parts)
            text = "RRULE:" + recur_text.to_ical().decode("utf-8")
            rule = rrulestr(text, dtstart=_shifted(wall_start, shift))
            if not isinstance(rule, rrule):
                continue
            if until and "COUNT" not in parts:
                rule = rule.replace(until=_shifted(_until_wall(_first(until), clock), shift))
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
            log.warning("unreadable recurrence rule skipped: %s", str(exc)[:120])
            continue
        made.append(rule)
    return made


def _until_wall(until: date | datetime, clock: _Clock) -> datetime:
    """UNTIL as a naive wall time of the series (inclusive): UTC converted, a date through its end."""
    if isinstance(until, datetime):
        return clock.wall(until)
    if clock.all_day:
        return datetime.combine(until, time())
    return datetime.combine(until, time(23, 59, 59))


def _shift_for(year: int) -> int:
    return max(0, (_LAST_YEAR - year) // _CYCLE_YEARS) * _CYCLE_YEARS


def _shifted(value: datetime, years: int) -> datetime:
    if not years:
        return value
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # beyond year 9999: clamp (only happens for bounds far outside any window)
        return datetime.max.replace(microsecond=0) if years > 0 else datetime.min


# --- expansion -------------------------------------------------------------------------------------


def expand(
    components: Iterable[Any],
    start: datetime,
    end: datetime,
    *,
    tz: tzinfo,
    max_steps: int = MAX_STEPS,
) -> list[Occurrence]:
    """Every instance of the VEVENT ``components`` overlapping ``[start, end)`` (aware datetimes).

    ``components`` may come from several calendar objects; they are grouped by ``UID``. ``tz`` is
    the zone of floating times and all-day dates (the calendar owner's). Instances are sorted by
    start; zero-length ones are included when their start is inside the window.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("expand() takes an aware window")
    masters: dict[str, Any] = {}
    overrides: dict[str, list[Any]] = {}
    for n, component in enumerate(components):
        uid = str(component.get("UID") or f"no-uid-{n}")
        if component.get("RECURRENCE-ID") is None:
            masters.setdefault(uid, component)
        else:
            overrides.setdefault(uid, []).append(component)
    found: list[Occurrence] = []
    for uid in masters.keys() | overrides.keys():
        found.extend(_series(uid, masters.get(uid), overrides.get(uid, []), start, end, tz, max_steps))
    found.sort(key=lambda o: (o.start, o.end, o.uid))
    return found


def _overlaps(s: datetime, e: datetime, start: datetime, end: datetime) -> bool:
    return s < end and (e > start or (s == e and s >= start))


def _single(
    uid: str, component: Any, start: datetime, end: datetime, tz: tzinfo, fallback: _Span | None = None
) -> Occurrence | None:
    dtstart = _decoded(component, "DTSTART")
    if not isinstance(dtstart, date):
        return None
    clock = _clock_of(dtstart, tz)
    wall = clock.wall(dtstart)
    span = _span_of(component, clock, dtstart) or fallback or _default_span(clock)
    s = clock.instant(wall)
    e = span.end(clock, wall, s)
    if not _overlaps(s, e, start, end):
        return None
    return Occurrence(start=s, end=e, all_day=clock.all_day, uid=uid, component=component)


def _series(
    uid: str, master: Any, overrides: list[Any], start: datetime, end: datetime, tz: tzinfo, max_steps: int
) -> list[Occurrence]:
    out: list[Occurrence] = []
    dtstart = _decoded(master, "DTSTART") if master is not None else None
    if master is None or not isinstance(dtstart, date):
        for override in overrides:  # no (usable) master: each override stands alone
            if (single := _single(uid, override, start, end, tz)) is not None:
                out.append(single)
        return out
    clock = _clock_of(dtstart, tz)
    span = _span_of(master, clock, dtstart) or _default_span(clock)
    replaced: set[datetime] = set()
    for override in overrides:
        rid = _decoded(override, "RECURRENCE-ID")
        if isinstance(rid, date):
            replaced.add(clock.wall(rid))
        if (single := _single(uid, override, start, end, tz, fallback=span)) is not None:
            out.append(single)
    for wall in _walls(master, clock, clock.wall(dtstart), start, end, span, max_steps, uid):
        if wall in replaced:
            continue
        s = clock.instant(wall)
        e = span.end(clock, wall, s)
        if _overlaps(s, e, start, end):
            out.append(Occurrence(start=s, end=e, all_day=clock.all_day, uid=uid, component=master))
    return out


def _walls(
    master: Any,
    clock: _Clock,
    first: datetime,
    start: datetime,
    end: datetime,
    span: _Span,
    max_steps: int,
    uid: str,
) -> Iterator[datetime]:
    """The instance wall times of the master that may overlap the window (EXDATEs removed)."""
    from dateutil.rrule import rruleset

    excluded = {clock.wall(_period_start(v)) for v in _date_values(master, "EXDATE")}
    extra = sorted({clock.wall(_period_start(v)) for v in _date_values(master, "RDATE")} | {first})
    shift = _shift_for(first.year)
    rules = _rules(master, "RRULE", clock, first, shift)
    # The walls that can overlap [start, end): a margin of the longest duration plus two days of
    # zone offsets on each side; exact overlap is checked on instants afterwards.
    reach = span.exact + timedelta(days=span.nominal_days + 2)
    lo = clock.wall(start) - reach
    hi = clock.wall(end) + timedelta(days=2)
    if not rules:
        for wall in extra:
            if lo <= wall <= hi and wall not in excluded:
                yield wall
        return
    rset = rruleset()
    for rule in rules:
        rset.rrule(rule)
    for rule in _rules(master, "EXRULE", clock, first, shift):
        rset.exrule(rule)
    for wall in extra:
        rset.rdate(_shifted(wall, shift))
    lo_s, hi_s = _shifted(lo, shift), _shifted(hi, shift)
    steps = 0
    try:
        for shifted in rset:
            steps += 1
            if shifted > hi_s:
                return
            if steps > max_steps:
                log.warning("recurrence walk stopped after %d instances (uid %s)", max_steps, uid[:80])
                return
            if shifted < lo_s:
                continue
            wall = _shifted(shifted, -shift)
            if wall not in excluded:
                yield wall
    except (ValueError, TypeError, OverflowError) as exc:  # dateutil on a pathological rule
        log.warning("recurrence walk failed: %s", str(exc)[:120])


def _period_start(value: Any) -> date | datetime:
    """An RDATE may be a PERIOD ``(start, end or duration)``: its start (the series' span applies)."""
    if isinstance(value, tuple):
        return value[0]  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]
