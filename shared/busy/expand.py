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

Guards (a calendar is someone else's input: one hostile event must cost little, never spin):

* a rule whose ``BY*`` lists are longer than ``expand_rules.MAX_LIST`` allows, that lists a value
  twice, or whose ``BYHOUR`` x ``BYMINUTE`` x ``BYSECOND`` exceeds ``MAX_TIMES`` is skipped (logged) —
  one iCloud event with 100 ``BYSETPOS`` values cost 6 s of CPU; its ``DTSTART`` still counts;
* a series is walked at most :data:`MAX_STEPS` instances and twice as many periods, within
  ``expand_rules.SERIES_SECONDS`` of CPU, and one :func:`expand` call within ``budget_seconds``
  (:func:`shared.platform.bounds.budgeted`); a walk over budget stops there, logged, keeping what
  it found (a ``FREQ=MINUTELY`` rule started years ago stops, as one that never matches would);
* a rule is walked on a copy of its start shifted by whole 400-year Gregorian cycles so that the
  window's end lies just before year 9999 (where dateutil stops), so a rule that never matches
  (``BYMONTH=2;BYMONTHDAY=30``) does not walk far past the window either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from time import thread_time
from typing import Any

from shared.busy.expand_rules import WalkLimits, rule_set, shift_for, shifted_by
from shared.busy.expand_rules import first_value as _first
from shared.platform.bounds import WalkBudgetExceeded

log = logging.getLogger(__name__)

#: Most instances generated for one series before giving up (logged).
MAX_STEPS = 100_000
#: CPU seconds one :func:`expand` call may take walking recurrences, by default.
EXPAND_SECONDS = 2.0


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


# --- expansion -------------------------------------------------------------------------------------


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
    masters: dict[str, Any] = {}
    overrides: dict[str, list[Any]] = {}
    for n, component in enumerate(components):
        uid = str(component.get("UID") or f"no-uid-{n}")
        if component.get("RECURRENCE-ID") is None:
            masters.setdefault(uid, component)
        else:
            overrides.setdefault(uid, []).append(component)
    found: list[Occurrence] = []
    limits = WalkLimits(max_steps=max_steps, deadline=thread_time() + budget_seconds)
    for uid in masters.keys() | overrides.keys():
        found.extend(_series(uid, masters.get(uid), overrides.get(uid, []), start, end, tz, limits))
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
    uid: str, master: Any, overrides: list[Any], start: datetime, end: datetime, tz: tzinfo, limits: WalkLimits
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
    for wall in _walls(master, clock, clock.wall(dtstart), start, end, span, limits, uid):
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
    limits: WalkLimits,
    uid: str,
) -> Iterator[datetime]:
    """The instance wall times of the master that may overlap the window (EXDATEs removed)."""
    excluded = _exclusions(master, clock)
    extra = sorted({clock.wall(_period_start(v)) for v in _date_values(master, "RDATE")} | {first})
    # The walls that can overlap [start, end): a margin of the longest duration plus two days of
    # zone offsets on each side; exact overlap is checked on instants afterwards.
    reach = span.exact + timedelta(days=span.nominal_days + 2)
    lo = clock.wall(start) - reach
    hi = clock.wall(end) + timedelta(days=2)
    # Shifted so the window's end, not the first instance, lands just before year 9999: a series
    # begun in 1990 shifted by its own year would put a 2026 window past 9999 (dateutil's end).
    shift = shift_for(max(first.year, hi.year))
    budget = limits.budget()
    rset = rule_set(master, clock, first, extra, shift, budget)
    if rset is None:
        for wall in extra:
            if lo <= wall <= hi and not excluded(wall):
                yield wall
        return
    lo_s, hi_s = shifted_by(lo, shift), shifted_by(hi, shift)
    steps = 0
    reached: datetime | None = None  # the last wall the rules reached (shifted)
    cut = True
    try:
        for moved in rset:
            steps += 1
            budget.tick()
            if moved > hi_s:
                return
            if steps > limits.max_steps:
                log.warning("recurrence walk stopped after %d instances (uid %s)", limits.max_steps, uid[:80])
                return
            reached = moved
            if moved < lo_s:
                continue
            wall = shifted_by(moved, -shift)
            if not excluded(wall):
                yield wall
        cut = False
    except WalkBudgetExceeded as exc:
        log.warning("recurrence walk stopped: over its %s budget (uid %s)", exc.reason, uid[:80])
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:  # dateutil on a pathological rule
        log.warning("recurrence walk failed: %s", str(exc)[:120])
    # A walk cut short still keeps the series' own dates (DTSTART, RDATEs) it had not reached.
    for wall in extra if cut else ():
        if lo <= wall <= hi and not excluded(wall) and (reached is None or shifted_by(wall, shift) > reached):
            yield wall


def _exclusions(master: Any, clock: _Clock) -> Callable[[datetime], bool]:
    """Whether the master's EXDATEs remove the instance at a wall time.

    An EXDATE in UTC names an instant: it also removes an instance a DST gap moved off its wall time.
    """
    exdates = [_period_start(v) for v in _date_values(master, "EXDATE")]
    walls = {clock.wall(v) for v in exdates}
    instants = {v.astimezone(UTC) for v in exdates if isinstance(v, datetime) and v.tzinfo is not None}
    return lambda wall: wall in walls or (bool(instants) and clock.instant(wall) in instants)


def _period_start(value: Any) -> date | datetime:
    """An RDATE may be a PERIOD ``(start, end or duration)``: its start (the series' span applies)."""
    if isinstance(value, tuple):
        return value[0]  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]
