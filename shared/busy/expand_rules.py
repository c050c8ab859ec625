"""The rules side of :mod:`shared.busy.expand`: dateutil rules from a VEVENT's RRULEs and EXRULEs,
the guards that keep one hostile rule cheap, and the 400-year shift of the walk.

* :func:`too_costly` — a rule whose ``BY*`` lists are longer than :data:`MAX_LIST` allows (RFC
  5545's ranges, each value once), that lists a value twice, or that names more than
  :data:`MAX_TIMES` times of day is not walked (logged). One iCloud event listing 100 ``BYSETPOS``
  values cost 6 s of CPU: dateutil tries every position in every period, and walks a rule that
  never matches to year 9999.
* :class:`WalkLimits` — each series walks under a :class:`~shared.platform.bounds.WalkBudget`:
  twice ``max_steps`` periods and :data:`SERIES_SECONDS` of CPU, within what is left of the
  whole :func:`~shared.busy.expand.expand` call's budget.
* :func:`shift_for` / :func:`shifted_by` — whole 400-year Gregorian cycles (the calendar repeats
  exactly), so the walk ends at dateutil's year 9999 soon after the window.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, time
from time import thread_time
from typing import Any, Protocol

from shared.platform.bounds import WalkBudget, budgeted

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
_CYCLE_YEARS = 400
_LAST_YEAR = 9990  # shifted walks start at most here (dateutil stops at 9999)


class WallClock(Protocol):
    """How a series reads its times (:class:`shared.busy.expand._Clock`)."""

    @property
    def all_day(self) -> bool: ...

    def wall(self, value: date | datetime) -> datetime: ...


def first_value(value: Any) -> Any:
    """A property given twice (a broken producer) counts once: the first value."""
    return value[0] if isinstance(value, list) and value else value


def _rules(component: Any, name: str, clock: WallClock, wall_start: datetime, shift: int) -> list[Any]:
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
            if (problem := too_costly(parts)) is not None:
                log.warning("recurrence rule skipped: %s", problem)
                continue
            until = parts.pop("UNTIL", None)
            recur_text: Any = vRecur(parts)
            text = "RRULE:" + recur_text.to_ical().decode("utf-8")
            rule = rrulestr(text, dtstart=shifted_by(wall_start, shift))
            if not isinstance(rule, rrule):
                continue
            if until and "COUNT" not in parts:
                rule = rule.replace(until=shifted_by(_until_wall(first_value(until), clock), shift))
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
            log.warning("unreadable recurrence rule skipped: %s", str(exc)[:120])
            continue
        made.append(rule)
    return made


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


def _until_wall(until: date | datetime, clock: WallClock) -> datetime:
    """UNTIL as a naive wall time of the series (inclusive): UTC converted, a date through its end."""
    if isinstance(until, datetime):
        return clock.wall(until)
    if clock.all_day:
        return datetime.combine(until, time())
    return datetime.combine(until, time(23, 59, 59))


def shift_for(year: int) -> int:
    return max(0, (_LAST_YEAR - year) // _CYCLE_YEARS) * _CYCLE_YEARS


def shifted_by(value: datetime, years: int) -> datetime:
    if not years:
        return value
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # beyond year 9999: clamp (only happens for bounds far outside any window)
        return datetime.max.replace(microsecond=0) if years > 0 else datetime.min


@dataclass(frozen=True)
class WalkLimits:
    max_steps: int
    deadline: float  # thread_time() at which every walk of this expand() call stops

    def budget(self) -> WalkBudget:
        """One series' budget: twice ``max_steps`` periods, :data:`SERIES_SECONDS` of what time is left."""
        left = max(0.0, min(SERIES_SECONDS, self.deadline - thread_time()))
        return WalkBudget(periods=2 * self.max_steps, seconds=left)


def rule_set(
    master: Any, clock: WallClock, first: datetime, extra: list[datetime], shift: int, budget: WalkBudget
) -> Any:
    """The master's RRULEs, EXRULEs and RDATEs as one dateutil ``rruleset`` walking under ``budget``
    (on shifted wall times), or ``None`` when it has no (usable) RRULE."""
    from dateutil.rrule import rruleset

    rules = _rules(master, "RRULE", clock, first, shift)
    if not rules:
        return None
    rset = rruleset()
    for rule in rules:
        rset.rrule(budgeted(rule, budget))
    for rule in _rules(master, "EXRULE", clock, first, shift):
        rset.exrule(budgeted(rule, budget))
    for wall in extra:
        rset.rdate(shifted_by(wall, shift))
    return rset
