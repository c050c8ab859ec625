"""Expand iCalendar VEVENTs into the concrete instances that overlap a time window (RFC 5545).

CalDAV servers return whole calendar objects: a recurring event is one master VEVENT (``RRULE``,
``RDATE``, ``EXDATE``) plus one VEVENT per overridden instance (same ``UID``, a ``RECURRENCE-ID``
naming the instance it replaces). :func:`expand` turns such components into :class:`Occurrence`
values — each with its UTC start and end and the component that describes it (the master, the
override, or the ``RANGE=THISANDFUTURE`` override in force), so callers can read ``TRANSP`` /
``STATUS`` / ``ATTENDEE`` per instance.

The recurrence is ``recurring-ical-events``'s: series grouped by ``UID`` (the highest ``SEQUENCE``
wins), ``RRULE`` / ``RDATE`` (dates, date-times, periods) / ``EXDATE``, overrides replacing the
instance their ``RECURRENCE-ID`` names wherever they moved it (into the window from outside, or out
of it), ``RANGE=THISANDFUTURE`` (the override's shift, duration and properties apply to every later
instance, up to the next such override), overrides without a master (an invitation to one instance)
as events of their own, ``DTSTART`` as the first instance (RFC 5545 §3.8.5.3). What is ours, and why:

* **Times as the mentor reads them** (the library hands them back as the calendar wrote them):
  ``DTSTART;TZID=…`` — wall times in that zone (IANA names, Windows names icalendar maps, or a
  ``VTIMEZONE`` in the object); ``…Z`` — UTC; no zone (**floating**) or an unknown ``TZID`` (icalendar
  reads it as floating) — wall times in ``tz`` (the mentor's zone); ``VALUE=DATE`` (all-day) — whole
  days in ``tz``, from local midnight of the first day to local midnight after the last.
* **Wall clock.** Rules are walked on wall times in the event's zone (the library's dateutil walk on
  zoned datetimes), so a weekly 18:00 Europe/Berlin event stays at 18:00 across DST changes. A wall
  time in a spring-forward gap moves forward by the gap, one in a fall-back overlap is the first of
  the two (RFC 5545 §3.3.5), as :func:`shared.schedule.recurrence.localize` does.
* **Durations** (the library adds them as wall-clock time, so an instance across a DST change would
  gain or lose the hour): ``DTEND`` gives the *exact* duration every instance keeps; ``DURATION`` is
  nominal in its days (calendar days in the zone), exact in its time part (§3.8.5.3). A date-time
  event with neither has no duration (returned, with ``start == end``); an override without either
  keeps its series' duration. An ``RDATE`` period keeps the end it names (the library's).
* **A date ``UNTIL`` on a date-time series** (RFC 5545 wants a date-time there) includes that whole
  day; the library reads midnight UTC and drops the last instance.
* **Guards** (:mod:`shared.busy.expand_rules`; a calendar is someone else's input: one hostile event
  must cost little, never spin, and the library bounds no walk): a rule whose ``BY*`` lists are too
  long, list a value twice or name too many times of day is skipped (logged), its ``DTSTART`` still
  counts; a series walks at most :data:`MAX_STEPS` instances within ``expand_rules.SERIES_SECONDS``
  of CPU, one :func:`expand` call within ``budget_seconds`` (:func:`shared.platform.bounds.budgeted`),
  and no rule walks further than the periods it takes to pass the window (a rule that never matches,
  ``BYMONTH=2;BYMONTHDAY=30``, stops there); a walk that stops keeps what it found (logged).
* **Known limit of the library** (3.8.x): it matches ``EXDATE`` and ``RECURRENCE-ID`` on an instance's UTC
  *or* wall time, so in a series with several instances a day (``BYHOUR`` lists, ``FREQ=HOURLY``) one
  whose wall time equals another's UTC time (10:00 and 11:00 in Berlin in winter) goes with it. The
  series Google, Apple and Outlook let people make have one time a day and cannot meet this.
* **Robustness.** A series the library cannot read (no usable ``DTSTART`` on the master, a value that
  overflows) is kept as its components alone, each at its own ``DTSTART`` (logged); windows are
  clamped away from years 1 and 9999, where padding or a zone conversion would overflow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property
from time import thread_time
from typing import Any

import icalendar
import recurring_ical_events  # type: ignore[import-untyped]
from dateutil.rrule import rrule
from recurring_ical_events import ComponentsWithName, EventAdapter, Series
from recurring_ical_events import Occurrence as LibraryOccurrence
from recurring_ical_events.util import compare_greater, convert_to_datetime  # type: ignore[import-untyped]

from shared.busy.expand_rules import SeriesWalk, WalkLimits, first_value, usable_rules

log = logging.getLogger(__name__)

#: Most instances generated for one series before giving up (logged).
MAX_STEPS = 100_000
#: CPU seconds one :func:`expand` call may take walking recurrences, by default.
EXPAND_SECONDS = 2.0
#: How much more than the window the library is asked for, each side: zone offsets, and the exact
#: durations given here where the library reckons in wall-clock time. Exact overlap is checked after.
_PAD = timedelta(days=2)
_FIRST = datetime(1, 1, 4, tzinfo=UTC)
_LAST = datetime(9999, 12, 29, tzinfo=UTC)
#: What a malformed or hostile series can make the library (or dateutil) raise.
_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


@dataclass(frozen=True)
class Occurrence:
    """One instance of an event: UTC ``start`` / ``end`` and the component it comes from."""

    start: datetime
    end: datetime
    all_day: bool
    uid: str
    component: Any = field(compare=False, repr=False)  # icalendar Event (master or override)


# --- times ------------------------------------------------------------------------------------------


def localize(wall: datetime, tz: tzinfo) -> datetime:
    """The UTC instant of naive wall time ``wall`` in ``tz`` (gap → forward, overlap → first)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _instant(value: date | datetime, tz: tzinfo) -> datetime:
    """A start or end as a UTC instant: a zoned one as it says, a floating one and a date in ``tz``."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        return localize(value.replace(microsecond=0), tz)
    return localize(datetime.combine(value, time()), tz)


def _decoded(component: Any, name: str) -> Any:
    try:
        return first_value(component.decoded(name, None))
    except (ValueError, TypeError, KeyError):  # an unparseable value is treated as absent
        return None


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class _Span:
    """How long an instance lasts: exact seconds, plus nominal days (DURATION's day part, all-day days)."""

    exact: timedelta
    nominal_days: int = 0

    def end(self, start: date | datetime, at: datetime, tz: tzinfo) -> datetime:
        """The end of an instance starting at ``start`` (as the library gives it), the instant ``at``."""
        if self.nominal_days:  # days of the calendar: a zoned datetime plus days keeps its wall time
            return _instant(start + timedelta(days=self.nominal_days), tz) + self.exact
        return at + self.exact


def _span_of(component: Any, tz: tzinfo) -> _Span | None:
    """The component's own duration, or ``None`` if it has neither DTEND nor DURATION."""
    dtstart = _decoded(component, "DTSTART")
    if not isinstance(dtstart, date):
        return None
    dtend = _decoded(component, "DTEND")
    if isinstance(dtend, date):
        if isinstance(dtstart, datetime) and isinstance(dtend, datetime):
            return _Span(exact=max(_instant(dtend, tz) - _instant(dtstart, tz), timedelta(0)))
        return _Span(exact=timedelta(0), nominal_days=max((_as_date(dtend) - _as_date(dtstart)).days, 0))
    duration = _decoded(component, "DURATION")
    if isinstance(duration, timedelta):
        if duration < timedelta(0):
            return _Span(exact=timedelta(0))
        return _Span(exact=timedelta(seconds=duration.seconds), nominal_days=duration.days)
    return None


def _default_span(all_day: bool) -> _Span:
    # RFC 5545 §3.6.1: a date DTSTART without DTEND/DURATION lasts one day; a date-time none.
    return _Span(exact=timedelta(0), nominal_days=1) if all_day else _Span(exact=timedelta(0))


def _date_values(component: Any, name: str) -> Iterator[Any]:
    """Every value of a (possibly repeated) RDATE / EXDATE property; an unparseable one is ignored."""
    prop = component.get(name)
    for group in prop if isinstance(prop, list) else [] if prop is None else [prop]:
        try:
            items = list(getattr(group, "dts", []))
        except ValueError:  # icalendar's broken-property placeholder (the library would raise)
            continue
        for item in items:
            yield item.dt


# --- the library, with our guards -------------------------------------------------------------------


class _Event(EventAdapter):  # type: ignore[misc]
    """The library's VEVENT, read as a broken or hostile producer needs: rules through our guards,
    unparseable RDATE / EXDATE values ignored, and an empty ``UID`` not merging unrelated events."""

    @property
    def component(self) -> Any:
        return self._component

    @cached_property
    def uid(self) -> str:
        return str(self._component.get("UID") or f"no-uid-{id(self._component)}")

    @cached_property
    def rrules(self) -> set[str]:
        return usable_rules(self._component)

    @cached_property
    def exdates(self) -> list[Any]:
        return list(_date_values(self._component, "EXDATE"))

    @cached_property
    def rdates(self) -> list[Any]:
        return list(_date_values(self._component, "RDATE"))


class _Instance(LibraryOccurrence):  # type: ignore[misc]
    """The library's occurrence, with the adapter (and so the component) it comes from."""

    @property
    def adapter(self) -> _Event:
        return self._adapter  # type: ignore[no-any-return]


class _Rules(Series.RecurrenceRules):  # type: ignore[misc]
    """The library's recurrence of one series, each RRULE walked by a :class:`SeriesWalk`: the library's
    ``rule.between`` walks without bound and lets dateutil's errors out."""

    limits: WalkLimits  # set on a subclass per expand() call
    walk: SeriesWalk | None = None

    def rrulestr(self, rule_string: str) -> Any:
        made = super().rrulestr(rule_string)
        rule = made.replace(cache=False)  # budgeted() walks only a rule that does not cache
        rule.string, rule.until = made.string, made.until
        return rule

    def rrule_between(self, span_start: Any, span_stop: Any) -> Iterator[Any]:
        # The library's, less its pytz adjustments (icalendar 7 gives zoneinfo zones).
        lo, hi = convert_to_datetime(span_start, self.tzinfo), convert_to_datetime(span_stop, self.tzinfo)
        if self.walk is None:
            self.walk = self.limits.series(str(self.core.uid))
        for rule in self.rrules:  # first the set of DTSTART and RDATEs (finite), then each RRULE
            starts = self.walk.between(rule, lo, hi) if isinstance(rule, rrule) else rule.between(lo, hi, inc=True)
            for start in starts:
                if rule.until is None or not compare_greater(start, rule.until):
                    yield start


class _Series(Series):  # type: ignore[misc]
    """One UID's components; if the library cannot read them, :attr:`failure` says why."""

    def __init__(self, components: Sequence[_Event]) -> None:
        self.parts = list(components)
        self.failure: Exception | None = None
        try:
            super().__init__(components)
        except _ERRORS as exc:
            self.failure = exc

    def occurrence(self, adapter: _Event, start: Any = None, end: Any = None) -> _Instance:
        return _Instance(adapter, start, end, sequence=self.sequence)


def _collector(limits: WalkLimits) -> Any:
    rules = type("_CallRules", (_Rules,), {"limits": limits})
    return ComponentsWithName("VEVENT", _Event, type("_CallSeries", (_Series,), {"RecurrenceRules": rules}))


# --- expansion --------------------------------------------------------------------------------------


def expand(
    components: Iterable[Any],
    start: datetime,
    end: datetime,
    *,
    tz: tzinfo,
    max_steps: int = MAX_STEPS,
    budget_seconds: float = EXPAND_SECONDS,
) -> list[Occurrence]:
    """Every instance of the VEVENT ``components`` overlapping ``[start, end)`` (aware datetimes).

    ``components`` may come from several calendar objects; they are grouped by ``UID``. ``tz`` is
    the zone of floating times and all-day dates (the calendar owner's). Instances are sorted by
    start; zero-length ones are included when their start is inside the window. Walking the
    recurrences takes at most ``budget_seconds`` of CPU (``SERIES_SECONDS`` per series).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("expand() takes an aware window")
    calendar = icalendar.Calendar()
    calendar.subcomponents.extend(components)
    limits = WalkLimits(max_steps=max_steps, deadline=thread_time() + budget_seconds)
    query = recurring_ical_events.of(calendar, components=[_collector(limits)], skip_bad_series=True)
    # Asked in ``tz``: the library reads floating times in the zone of the window it is given.
    lo = (min(max(start, _FIRST), _LAST) - _PAD).astimezone(tz)
    hi = (min(max(end, _FIRST), _LAST) + _PAD).astimezone(tz)
    found = [
        occurrence
        for series in query.series
        for occurrence in _occurrences(series, lo, hi, tz)
        if _overlaps(occurrence.start, occurrence.end, start, end)
    ]
    found.sort(key=lambda o: (o.start, o.end, o.uid))
    return found


def _overlaps(s: datetime, e: datetime, start: datetime, end: datetime) -> bool:
    return s < end and (e > start or (s == e and s >= start))


def _occurrences(series: _Series, lo: datetime, hi: datetime, tz: tzinfo) -> list[Occurrence]:
    if series.failure is None:
        try:
            core = series.recurrence.core if series.recurrence.has_core else None
            spans: dict[int, _Span | None] = {}  # per adapter: its component's own duration, read once
            fallback = _span_of(core.component, tz) if core is not None else None
            return [_converted(instance, tz, spans, fallback) for instance in series.between(lo, hi)]
        except _ERRORS as exc:
            series.failure = exc
    uid = series.parts[0].uid if series.parts else "?"
    log.warning("recurring event read as its components alone: %s (uid %s)", str(series.failure)[:120], uid[:80])
    return [single for part in series.parts if (single := _alone(part, tz)) is not None]


def _converted(instance: _Instance, tz: tzinfo, spans: dict[int, _Span | None], fallback: _Span | None) -> Occurrence:
    """The library's occurrence in UTC, with the duration RFC 5545 gives it (see the module docstring)."""
    adapter = instance.adapter
    all_day = not isinstance(instance.start, datetime)
    at = _instant(instance.start, tz)
    if instance.end - instance.start != adapter.duration:  # an RDATE PERIOD: the end it names
        until = _instant(instance.end, tz)
    else:
        if id(adapter) not in spans:
            spans[id(adapter)] = _span_of(adapter.component, tz)
        until = (spans[id(adapter)] or fallback or _default_span(all_day)).end(instance.start, at, tz)
    return Occurrence(start=at, end=until, all_day=all_day, uid=adapter.uid, component=adapter.component)


def _alone(part: _Event, tz: tzinfo) -> Occurrence | None:
    """A component at its own DTSTART, when its series could not be read."""
    dtstart = _decoded(part.component, "DTSTART")
    if not isinstance(dtstart, date):
        return None
    all_day = not isinstance(dtstart, datetime)
    try:
        at = _instant(dtstart, tz)
        until = (_span_of(part.component, tz) or _default_span(all_day)).end(dtstart, at, tz)
    except _ERRORS:  # a time at the ends of what datetime holds
        return None
    return Occurrence(start=at, end=until, all_day=all_day, uid=part.uid, component=part.component)
