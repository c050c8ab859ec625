"""Availability rules (PRODUCT.md §2.10): the model, its limits and the checks that need more than types.

Shape (``PUT /mentors/me/availability``)::

    {"timezone": "Europe/Berlin",
     "weekly": {"mon": [{"start": "09:00", "end": "17:00"}], ..., "sun": []},
     "overrides": [{"date": "2027-03-01", "ranges": []}],
     "bufferBeforeMinutes": 0, "bufferAfterMinutes": 0, "minimumNoticeMinutes": 120,
     "horizonDays": 60, "slotStepMinutes": 30}

Times are local wall times ``HH:MM`` in ``timezone``; ``24:00`` is allowed only as an end (the end
of the day). A weekday left out has no hours. An override replaces that date's weekly hours
(``ranges: []`` = not available that day).

Two passes, both answering 400 ``invalid_request`` with ``fields`` (``[{field, message}]``):

* the types and bounds (pydantic, through the route's validation): strict integers in their ranges,
  ``HH:MM`` strings, list sizes (:data:`MAX_RANGES_PER_DAY`, :data:`MAX_OVERRIDES`), unknown keys;
* :func:`problems`: what needs the whole document — end after start, ``24:00`` only as an end,
  no overlapping ranges on a day, an IANA zone, a step in :data:`STEPS`, override dates in
  ``[today - 1 day, today + 10 years]`` and not twice.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from shared.availability.slots import Hours, Minutes
from shared.platform.wallclock import iana_zone

#: Slot steps: divisors of an hour, or whole hours dividing a day (the grid starts at local midnight).
STEPS: Final = (5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440)
MAX_RANGES_PER_DAY: Final = 12
MAX_OVERRIDES: Final = 400
MAX_BUFFER_MINUTES: Final = 720
MAX_NOTICE_MINUTES: Final = 60 * 24 * 60  # 60 days
MAX_HORIZON_DAYS: Final = 365
#: Override dates must lie within this many years of today (and not before yesterday).
OVERRIDE_YEARS: Final = 10
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_HHMM = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
WallTime = Annotated[StrictStr, Field(pattern=_HHMM, description="local wall time HH:MM (24:00 only as an end)")]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class TimeRange(_Model):
    """``[start, end)`` in local wall time."""

    start: WallTime
    end: WallTime


DayRanges = Annotated[list[TimeRange], Field(max_length=MAX_RANGES_PER_DAY)]


class Weekly(_Model):
    """Hours per weekday; a day left out (or ``[]``) has none."""

    mon: DayRanges = []
    tue: DayRanges = []
    wed: DayRanges = []
    thu: DayRanges = []
    fri: DayRanges = []
    sat: DayRanges = []
    sun: DayRanges = []


class Override(_Model):
    """Other hours on one local date (``ranges: []``: not available)."""

    date: date
    ranges: DayRanges = []


class AvailabilityRules(_Model):
    """A mentor's availability (PRODUCT.md §2.10)."""

    timezone: Annotated[StrictStr, Field(max_length=64, description="IANA zone, e.g. Europe/Berlin")]
    weekly: Weekly
    overrides: Annotated[list[Override], Field(max_length=MAX_OVERRIDES)] = []
    buffer_before_minutes: Annotated[StrictInt, Field(ge=0, le=MAX_BUFFER_MINUTES)] = 0
    buffer_after_minutes: Annotated[StrictInt, Field(ge=0, le=MAX_BUFFER_MINUTES)] = 0
    minimum_notice_minutes: Annotated[StrictInt, Field(ge=0, le=MAX_NOTICE_MINUTES)] = 120
    horizon_days: Annotated[StrictInt, Field(ge=1, le=MAX_HORIZON_DAYS)] = 60
    slot_step_minutes: Annotated[StrictInt, Field(description=f"one of {', '.join(map(str, STEPS))}")] = 30

    def hours(self) -> Hours:
        """The rules as the slot engine takes them (call on rules :func:`problems` found nothing in)."""
        tz = iana_zone(self.timezone)
        if tz is None:
            raise ValueError(f"unknown time zone {self.timezone!r}")
        return Hours(
            tz=tz,
            weekly=tuple(_minutes(getattr(self.weekly, day)) for day in DAYS),
            overrides={o.date: _minutes(o.ranges) for o in self.overrides},
            buffer_before=timedelta(minutes=self.buffer_before_minutes),
            buffer_after=timedelta(minutes=self.buffer_after_minutes),
            notice=timedelta(minutes=self.minimum_notice_minutes),
            horizon=timedelta(days=self.horizon_days),
            step_minutes=self.slot_step_minutes,
        )


class PutAvailabilityRequest(AvailabilityRules):
    """Body of ``PUT /mentors/me/availability``: the whole rules document, and optionally the
    ``version`` last read (then a newer write in between answers 409 ``availability_changed``)."""

    version: Annotated[StrictInt | None, Field(ge=0)] = None

    def rules(self) -> AvailabilityRules:
        return AvailabilityRules.model_validate(self.model_dump(exclude={"version"}))


class AvailabilityView(AvailabilityRules):
    """``GET`` / ``PUT`` answer: the rules and their ``version`` (0: never saved, these are the defaults)."""

    version: int


#: What ``GET`` answers before the first ``PUT``: no weekly hours (nothing is bookable), UTC.
DEFAULT_RULES: Final = AvailabilityRules(timezone="UTC", weekly=Weekly())


def _to_minutes(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _minutes(ranges: list[TimeRange]) -> tuple[Minutes, ...]:
    return tuple(sorted((_to_minutes(r.start), _to_minutes(r.end)) for r in ranges))


def _range_problems(prefix: str, ranges: list[TimeRange]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    spans: list[tuple[int, int, int]] = []
    for i, r in enumerate(ranges):
        start, end = _to_minutes(r.start), _to_minutes(r.end)
        if r.start == "24:00":
            found.append({"field": f"{prefix}.{i}.start", "message": "24:00 is allowed only as an end"})
        elif end <= start:
            found.append({"field": f"{prefix}.{i}.end", "message": f"end {r.end} is not after start {r.start}"})
        else:
            spans.append((start, end, i))
    spans.sort()
    for (_, prev_end, prev_i), (start, _, i) in pairwise(spans):
        if start < prev_end:
            found.append({"field": f"{prefix}.{i}", "message": f"overlaps range {prev_i} of the same day"})
    return found


def problems(rules: AvailabilityRules, today: date) -> list[dict[str, str]]:
    """What is wrong with ``rules`` beyond types and bounds, as ``[{field, message}]`` (empty: valid).

    ``today`` is the UTC date of the request: override dates may lie from the day before (a mentor
    east of UTC is already on the next date) to :data:`OVERRIDE_YEARS` years ahead.
    """
    found: list[dict[str, str]] = []
    if iana_zone(rules.timezone) is None:
        found.append({"field": "timezone", "message": f"{rules.timezone[:64]!r} is not an IANA time zone"})
    if rules.slot_step_minutes not in STEPS:
        allowed = ", ".join(map(str, STEPS))
        found.append({"field": "slotStepMinutes", "message": f"must be one of {allowed} (minutes)"})
    for day in DAYS:
        found += _range_problems(f"weekly.{day}", getattr(rules.weekly, day))
    earliest = today - timedelta(days=1)
    latest = today.replace(
        year=today.year + OVERRIDE_YEARS, day=28 if (today.month, today.day) == (2, 29) else today.day
    )
    seen: dict[date, int] = {}
    for i, override in enumerate(rules.overrides):
        field = f"overrides.{i}"
        if not earliest <= override.date <= latest:
            found.append(
                {
                    "field": f"{field}.date",
                    "message": f"must lie between {earliest.isoformat()} and {latest.isoformat()}",
                }
            )
        if override.date in seen:
            found.append({"field": f"{field}.date", "message": f"the same date as overrides.{seen[override.date]}"})
        seen.setdefault(override.date, i)
        found += _range_problems(f"{field}.ranges", override.ranges)
    return found
