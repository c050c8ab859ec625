"""The guards of :mod:`shared.busy.expand`: what keeps one hostile recurrence rule cheap.

``recurring-ical-events`` walks every RRULE with dateutil's ``rrule.between`` from ``DTSTART`` to the
end of the window, with no bound on work: a rule that never matches (``BYMONTH=2;BYMONTHDAY=30``)
walks to year 9999, one whose ``BY*`` lists are long makes every period expensive, and dateutil
errors on some rules (``BYDAY=53MO``) escape. Nothing in the library limits that (``between``,
``after`` and ``paginate`` all walk the same way), so these guards are ours:

* :func:`usable_rules` — a rule whose ``BY*`` lists are longer than :data:`MAX_LIST` allows (RFC
  5545's ranges, each value once), that lists a value twice, or that names more than
  :data:`MAX_TIMES` times of day is not walked, nor is one that cannot be read (logged). One iCloud
  event listing 100 ``BYSETPOS`` values cost 6 s of CPU: dateutil tries every position in every period.
  A date ``UNTIL`` on a date-time series is given as the end of its day (the library reads midnight UTC).
* :class:`SeriesWalk` — each series walks its rules under a :class:`~shared.platform.bounds.WalkBudget`:
  at most ``max_steps`` instances, :data:`SERIES_SECONDS` of CPU within what is left of the whole
  :func:`~shared.busy.expand.expand` call's budget, and only as many periods as it takes to pass the
  window (:func:`periods_to`): a rule that matches nothing stops just after the window, not in 9999.
  A walk that stops keeps what it found; dateutil errors end the walk of that rule only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import thread_time
from typing import Any

from shared.platform.bounds import WalkBudget, WalkBudgetExceeded, budgeted

log = logging.getLogger(__name__)

#: Most values of each BY* list (RFC 5545's ranges, each value once; real calendars use a few).
MAX_LIST = {
    "BYSECOND": 60,
    "BYMINUTE": 60,
    "BYHOUR": 24,
    "BYDAY": 35,
    "BYMONTHDAY": 31,
    "BYYEARDAY": 62,
    "BYWEEKNO": 53,
    "BYMONTH": 12,
    "BYSETPOS": 12,
}
#: Most times of day a rule may name (BYHOUR x BYMINUTE x BYSECOND): one a minute.
MAX_TIMES = 1440
#: CPU seconds one series may take to walk.
SERIES_SECONDS = 0.12
#: dateutil's frequencies (YEARLY=0 … SECONDLY=6): seconds in one period of the sub-weekly ones.
_PERIOD_SECONDS = {3: 86_400, 4: 3_600, 5: 60, 6: 1}
_YEARLY, _MONTHLY, _WEEKLY = 0, 1, 2


def first_value(value: Any) -> Any:
    """A property given twice (a broken producer) counts once: the first value."""
    return value[0] if isinstance(value, list) and value else value


def too_costly(parts: dict[str, Any]) -> str | None:
    """Why a rule's BY* lists make it too costly to walk (too long, a value twice), or ``None``."""
    sizes = {}
    for key, limit in MAX_LIST.items():
        values = parts.get(key)
        values = values if isinstance(values, list) else [] if values is None else [values]
        normal = {str(v).strip().upper().lstrip("+").lstrip("0") or "0" for v in values}
        if len(values) > limit:
            return f"{key} lists {len(values)} values (at most {limit})"
        if len(normal) < len(values):
            return f"{key} lists a value twice"
        sizes[key] = len(values)
    if math.prod(max(sizes[k], 1) for k in ("BYHOUR", "BYMINUTE", "BYSECOND")) > MAX_TIMES:
        return f"BYHOUR x BYMINUTE x BYSECOND name more than {MAX_TIMES} times of day"
    return None


def usable_rules(component: Any) -> set[str]:
    """The component's RRULEs as the library reads them (``vRecur.to_ical``), those too costly to walk
    or unreadable left out (logged): the event then still counts from its DTSTART and RDATEs."""
    from dateutil.rrule import rrulestr

    prop = component.get("RRULE")
    rules = set()
    for recur in prop if isinstance(prop, list) else [] if prop is None else [prop]:
        try:  # icalendar's broken-property placeholder raises a ValueError on access
            if (problem := too_costly({k.upper(): v for k, v in dict(recur).items()})) is not None:
                log.warning("recurrence rule skipped: %s", problem)
                continue
            text = _with_until_through_its_day(recur, component).to_ical().decode("utf-8")
            rrulestr(text, dtstart=datetime(2000, 1, 1), ignoretz=True)  # what dateutil refuses, the library raises on
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
            log.warning("unreadable recurrence rule skipped: %s", str(exc)[:120])
            continue
        rules.add(text)
    return rules


def _with_until_through_its_day(recur: Any, component: Any) -> Any:
    """A date ``UNTIL`` on a date-time series (RFC 5545 wants a date-time) as the end of that day.

    The library reads it as midnight UTC, which drops the last day's instance; producers mean the day.
    """
    from icalendar.prop import vRecur

    until, dtstart = first_value(recur.get("UNTIL")), first_value(component.decoded("DTSTART", None))
    if not isinstance(dtstart, datetime) or not isinstance(until, date) or isinstance(until, datetime):
        return recur
    last = datetime.combine(until, time(23, 59, 59))
    fixed: Any = vRecur(dict(recur))
    fixed["UNTIL"] = [last.replace(tzinfo=dtstart.tzinfo).astimezone(UTC) if dtstart.tzinfo else last]
    return fixed


def periods_to(rule: Any, last: datetime) -> int:
    """How many periods of ``rule`` (a dateutil ``rrule``) lie between its start and ``last``, and then some.

    dateutil advances at least one period (``INTERVAL`` units of ``FREQ``) per step and calls at most two of
    the builders :func:`~shared.platform.bounds.budgeted` charges per step, so a walk charged twice this
    many periods has passed ``last``. Wall times are compared (a day more covers any zone offset).
    """
    # dateutil keeps these as private attributes only (bounds.budgeted relies on its internals too).
    first: datetime = rule._dtstart
    freq, interval = int(rule._freq), max(int(rule._interval), 1)
    try:
        stop = last.replace(tzinfo=None) + timedelta(days=1)
    except OverflowError:
        stop = datetime.max
    begin = first.replace(tzinfo=None)
    if stop <= begin:
        return 2
    if freq == _YEARLY:
        units = stop.year - begin.year + 1
    elif freq == _MONTHLY:
        units = (stop.year - begin.year) * 12 + stop.month - begin.month + 1
    elif freq == _WEEKLY:
        units = (stop - begin).days // 7 + 1
    else:
        units = int((stop - begin).total_seconds()) // _PERIOD_SECONDS[freq] + 1
    return units // interval + 2


@dataclass(frozen=True)
class WalkLimits:
    """The bounds of one :func:`~shared.busy.expand.expand` call."""

    max_steps: int
    deadline: float  # thread_time() at which every walk of this call stops

    def series(self, uid: str) -> SeriesWalk:
        """The walk of one series: :data:`SERIES_SECONDS` of what time is left, from now."""
        left = max(0.0, min(SERIES_SECONDS, self.deadline - thread_time()))
        return SeriesWalk(uid=uid[:80], max_steps=self.max_steps, deadline=thread_time() + left)


@dataclass
class SeriesWalk:
    """Walks the rules of one series, sharing its instance count and CPU time between them."""

    uid: str
    max_steps: int
    deadline: float
    steps: int = field(default=0)

    def between(self, rule: Any, lo: datetime, hi: datetime) -> Iterator[datetime]:
        """The starts of ``rule`` in ``[lo, hi]`` (as ``rrule.between(lo, hi, inc=True)``), walked under the
        guards; a walk that stops early is logged and keeps what it found."""
        reach, cap = 2 * periods_to(rule, hi), 2 * self.max_steps
        budget = WalkBudget(periods=min(reach, cap), seconds=max(0.0, self.deadline - thread_time()))
        try:
            for start in budgeted(rule, budget):
                budget.tick()
                if start > hi:
                    return
                self.steps += 1
                if self.steps > self.max_steps:
                    log.warning("recurrence walk stopped after %d instances (uid %s)", self.max_steps, self.uid)
                    return
                if start >= lo:
                    yield start
        except WalkBudgetExceeded as exc:
            if exc.reason == "periods" and reach <= cap:
                return  # walked past the window without a match there: done, as a match past it would end it
            log.warning("recurrence walk stopped: over its %s budget (uid %s)", exc.reason, self.uid)
        except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:  # dateutil on a pathological rule
            log.warning("recurrence walk failed: %s (uid %s)", str(exc)[:120], self.uid)
