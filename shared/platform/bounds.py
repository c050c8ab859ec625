"""Bounds on what the API takes (PRODUCT.md §2.4): the range of dates, control characters, and a
budget on walking a recurrence rule.

* **Dates.** Every date the API takes — a class's starts, an RRULE's ``UNTIL`` and what it expands
  to, a session's new start, a busy window — lies within :func:`date_range`: from one day before
  now to ten years after. :func:`plausible_year` is the cheap first test, made *before* a value is
  converted between zones (``0001-01-01T00:00+02:00`` or ``9999-12-31T23:00-05:00`` overflow
  ``datetime`` when converted to UTC), :func:`in_range` the exact one on an aware instant.
* **Text.** :func:`control_characters` finds what a title or a location may not hold: C0/C1
  controls (CR and LF among them, which break e-mail headers) and the Unicode line separators.
* **Recurrence walks.** dateutil walks a rule period by period and only stops on an occurrence,
  ``COUNT`` or year 9999: a rule that never matches, or one whose ``BY*`` lists make every period
  expensive, spins for seconds inside one ``next()``. :func:`budgeted` makes one rule charge a
  :class:`WalkBudget` for every period dateutil steps through (every call of its per-period
  day-set / time-set builders), which raises :class:`WalkBudgetExceeded` once the periods or the
  CPU time of the walking thread (``time.thread_time``) run out. It runs dateutil's own ``_iter``
  with its per-period helper replaced for this one rule: nothing global is patched.
"""

from __future__ import annotations

import re
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

#: How far before now a date may lie (a client's clock a little behind ours).
EARLIEST_BEFORE_NOW = timedelta(days=1)
#: How many years after now a date may lie.
LATEST_YEARS = 10

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _add_years(value: datetime, years: int) -> datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February → 28 February
        return value.replace(year=value.year + years, day=28)


def date_range(now: datetime) -> tuple[datetime, datetime]:
    """``[now - 1 day, now + 10 years]`` as aware UTC datetimes (``now`` aware)."""
    now = now.astimezone(UTC)
    return now - EARLIEST_BEFORE_NOW, _add_years(now, LATEST_YEARS)


def plausible_year(value: date, now: datetime) -> bool:
    """Whether ``value`` (naive or aware, any zone) can lie in :func:`date_range` at all.

    Looks at the year only, with a year's slack each side, so no conversion is needed; a value
    that passes converts between zones without overflowing.
    """
    return now.year - 1 <= value.year <= now.year + LATEST_YEARS + 1


def in_range(value: datetime, now: datetime) -> bool:
    """Whether the aware instant ``value`` lies in :func:`date_range`."""
    if value.tzinfo is None or not plausible_year(value, now):
        return False
    earliest, latest = date_range(now)
    return earliest <= value <= latest


def range_message(now: datetime) -> str:
    earliest, latest = date_range(now)
    return f"must lie between {earliest:%Y-%m-%d} and {latest:%Y-%m-%d} (from a day ago to {LATEST_YEARS} years ahead)"


def control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (CR, LF, tab, NUL, C1, U+2028/2029…)."""
    return _CONTROL.search(text) is not None


def without_controls(text: str) -> str:
    """``text`` with every control character (and run of them) replaced by one space."""
    return re.sub(r" {2,}", " ", _CONTROL.sub(" ", text)).strip()


# --- recurrence walks -------------------------------------------------------------------------------


class WalkBudgetExceeded(Exception):
    """A recurrence walk used up its :class:`WalkBudget` (``reason``: ``periods`` or ``time``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"recurrence walk over budget ({reason})")
        self.reason = reason


class WalkBudget:
    """At most ``periods`` periods and ``seconds`` of the thread's CPU for one walk
    (``time.thread_time``: other threads of the process, such as the local stack's, do not spend it).

    One budget may be shared by several rules (a series' RRULEs and EXRULEs): they spend it together.
    """

    _CHECK_EVERY = 32  # ticks between two looks at the clock

    def __init__(self, *, periods: int, seconds: float, clock: Callable[[], float] = time.thread_time) -> None:
        self.periods = periods
        self.spent = 0
        self._ticks = 0
        self._clock = clock
        self.deadline = clock() + seconds

    def charge(self) -> None:
        """One more period; :class:`WalkBudgetExceeded` when it is one too many or time is up."""
        self.spent += 1
        if self.spent > self.periods:
            raise WalkBudgetExceeded("periods")
        if self._clock() > self.deadline:  # every period: one can cost milliseconds (sub-daily rules)
            raise WalkBudgetExceeded("time")

    def tick(self) -> None:
        """Some work that is not a period (an occurrence handled): only the clock is looked at."""
        self._ticks += 1
        if self._ticks % self._CHECK_EVERY == 0 and self._clock() > self.deadline:
            raise WalkBudgetExceeded("time")


_PER_PERIOD = ("ydayset", "mdayset", "wdayset", "ddayset", "htimeset", "mtimeset", "stimeset")


def _budgeted_info(base: type, budget: WalkBudget) -> type:
    """dateutil's ``_iterinfo`` whose per-period builders charge ``budget`` first."""

    def charging(name: str) -> Callable[..., Any]:
        inner = getattr(base, name)

        def method(self: Any, *args: Any) -> Any:
            budget.charge()
            return inner(self, *args)

        return method

    # No ``__slots__`` of its own: the base's ``__init__`` walks ``self.__slots__`` to reset its fields.
    return type("_BudgetedIterInfo", (base,), {n: charging(n) for n in _PER_PERIOD})


def budgeted(rule: Any, budget: WalkBudget) -> Any:
    """``rule`` (a dateutil ``rrule``), changed in place to walk under ``budget``; returned.

    Iterating it (directly or inside an ``rruleset``) raises :class:`WalkBudgetExceeded` once the
    budget is spent. The rule must not cache (``rrulestr``'s default).
    """
    from dateutil import rrule as module

    plain: Any = vars(module.rrule)["_iter"]  # dateutil's generator, run below with another _iterinfo
    namespace = dict(vars(module), _iterinfo=_budgeted_info(module._iterinfo, budget))
    walk = types.FunctionType(plain.__code__, namespace, plain.__name__, plain.__defaults__, plain.__closure__)

    def _iter() -> Iterator[datetime]:
        return walk(rule)  # type: ignore[no-any-return]

    rule._iter = _iter
    return rule
