"""The slot engine: bookable start times from availability rules and everything that blocks time.

Pure (no I/O, no clock): the caller passes ``now`` and every blocking interval, so the slots route,
the private-session write (re-check at write time) and conflict warnings can all use it.

**Definitions** (all instants are aware datetimes; answers are in UTC):

* The rules (:class:`Hours`) are expanded **in the mentor's wall-clock time** and then placed in
  the zone: for each local date the ranges are that date's override if there is one, else its
  weekday's ranges (touching ranges of a day join: 09:00-12:00 + 12:00-17:00 is 09:00-17:00). A
  range ``[a, b)`` of date *D* is the instants ``[localize(D a), localize(D b))`` — ``24:00`` is
  the next date's 00:00 — so 09:00-17:00 stays 09:00-17:00 local on a DST-change day.
  :func:`shared.platform.wallclock.localize` places them as RFC 5545 (and the class recurrence)
  does: a wall time in a gap moves forward by the gap, a repeated one is its first occurrence.
* **Grid**: candidate starts are the wall times *D* 00:00 + k·step (aligned to local midnight),
  placed by the same rule (a grid time in a gap lands at its forward-moved instant; two grid times
  landing on one instant count once). A candidate ``s`` of a range is kept when
  ``range_start ≤ s`` and ``s + duration ≤ range_end``.
* **Blocks**: every interval passed in ``busy`` (calendar busy times, any source), ``taught``
  (sessions the mentor teaches) and ``held`` (held or booked private sessions) is ``[b0, b1)``.
  A slot ``[s, s + d)`` is bookable iff ``[s - before, s + d + after)`` overlaps no block
  (half-open: touching is not overlapping), where ``before`` / ``after`` are the buffers. So the
  buffers keep free time *around the slot*; equivalently each block forbids the starts
  ``s ∈ (b0 - d - after, b1 + before)``.
* **Notice and horizon**: ``now + notice ≤ s ≤ now + horizon``.
* **Window**: ``window_start ≤ s < window_end`` (a slot may end after the window),
  ``window_end - window_start ≤`` :data:`MAX_WINDOW`.

**Work** is bounded and near-linear: the candidates (≤ 62 days x 1440/step) are generated in
order, the blocks are turned into forbidden open intervals, sorted and merged once
(O(B log B)), and one sweep over candidates and merged intervals decides each candidate.
Limits: :data:`MAX_WINDOW`, :data:`MAX_BLOCKS`, :data:`MAX_DURATION`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from shared.platform.wallclock import localize

#: A range of one local date in minutes after local midnight: ``(start, end)``, ``0 ≤ start < end ≤ 1440``.
Minutes = tuple[int, int]

MAX_WINDOW: Final = timedelta(days=62)
MAX_BLOCKS: Final = 50_000
MAX_DURATION: Final = timedelta(hours=24)
_DAY_MINUTES: Final = 1440


class SlotQueryError(ValueError):
    """A query outside the engine's limits; ``field`` names the argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Hours:
    """Availability rules as the engine takes them (:meth:`AvailabilityRules.hours` builds them)."""

    tz: ZoneInfo
    #: Ranges per weekday, Monday first (``date.weekday()``).
    weekly: tuple[tuple[Minutes, ...], ...]
    overrides: Mapping[date, tuple[Minutes, ...]] = field(default_factory=dict)
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    notice: timedelta = timedelta(0)
    horizon: timedelta = timedelta(days=60)
    step_minutes: int = 30

    def ranges_on(self, day: date) -> tuple[Minutes, ...]:
        """The ranges of local date ``day`` (its override, else its weekday's), sorted, touching ones joined."""
        ranges = self.overrides.get(day)
        if ranges is None:
            ranges = self.weekly[day.weekday()]
        joined: list[list[int]] = []
        for start, end in sorted(ranges):
            if joined and start <= joined[-1][1]:
                joined[-1][1] = max(joined[-1][1], end)
            else:
                joined.append([start, end])
        return tuple((a, b) for a, b in joined)


@dataclass(frozen=True, order=True)
class Interval:
    """``[start, end)``: a block or a slot (aware datetimes)."""

    start: datetime
    end: datetime


def _seconds(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("the slot engine takes aware datetimes")
    return int(value.timestamp())


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _place(day: date, minutes: int, tz: ZoneInfo) -> int:
    """Epoch seconds of local wall time ``day`` + ``minutes`` (``1440`` = the next date's midnight)."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
    return int(localize(wall, tz).timestamp())


def _forbidden(blocks: Iterable[Interval], before: int, after: int, duration: int) -> list[tuple[int, int]]:
    """Merged open intervals ``(lo, hi)`` of starts the blocks forbid, sorted and disjoint."""
    spans = []
    for block in blocks:
        b0, b1 = _seconds(block.start), _seconds(block.end)
        if b1 > b0:
            spans.append((b0 - duration - after, b1 + before))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        # Open intervals: (a, b) and (c, d) with c < b share points; with c == b the point b stays free.
        if merged and lo < merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def candidate_starts(hours: Hours, first: date, last: date, duration: timedelta) -> list[int]:
    """Grid starts (epoch seconds, sorted, unique) whose slot of ``duration`` lies inside a range of a
    local date in ``[first, last]`` — before blocks, notice, horizon and window."""
    tz, step, d = hours.tz, hours.step_minutes, int(duration.total_seconds())
    found: set[int] = set()
    day = first
    while day <= last:
        for start_min, end_min in hours.ranges_on(day):
            lo, hi = _place(day, start_min, tz), _place(day, end_min, tz)
            k = -(-start_min // step)  # the first grid minute ≥ start
            while k * step < end_min:
                s = _place(day, k * step, tz)
                if s >= lo and s + d <= hi:
                    found.add(s)
                k += 1
        day += timedelta(days=1)
    return sorted(found)


def bookable_slots(
    hours: Hours,
    *,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    duration: timedelta,
    busy: Iterable[Interval] = (),
    taught: Iterable[Interval] = (),
    held: Iterable[Interval] = (),
) -> list[Interval]:
    """The bookable slots ``[start, start + duration)`` (UTC, sorted) — see the module's definitions."""
    if window_end <= window_start:
        raise SlotQueryError("to", "the window must end after it starts")
    if window_end - window_start > MAX_WINDOW:
        raise SlotQueryError("to", f"the window may span at most {MAX_WINDOW.days} days")
    if not timedelta(minutes=1) <= duration <= MAX_DURATION:
        raise SlotQueryError("duration", "duration must be between 1 minute and 24 hours")
    blocks = [*busy, *taught, *held]
    if len(blocks) > MAX_BLOCKS:
        raise SlotQueryError("blocks", f"at most {MAX_BLOCKS} blocking intervals")
    d = int(duration.total_seconds())
    now_s = _seconds(now)
    lo = max(_seconds(window_start), now_s + int(hours.notice.total_seconds()))
    hi_inclusive = now_s + int(hours.horizon.total_seconds())
    hi_exclusive = _seconds(window_end)
    if lo >= hi_exclusive or lo > hi_inclusive:
        return []
    # Local dates whose ranges can hold a start in [lo, hi]: one day of margin each side covers any
    # offset change and a range ending at 24:00.
    first = _utc(lo).astimezone(hours.tz).date() - timedelta(days=1)
    last = _utc(min(hi_exclusive, hi_inclusive)).astimezone(hours.tz).date() + timedelta(days=1)
    forbidden = _forbidden(blocks, int(hours.buffer_before.total_seconds()), int(hours.buffer_after.total_seconds()), d)
    slots: list[Interval] = []
    j, n = 0, len(forbidden)
    for s in candidate_starts(hours, first, last, duration):
        if s < lo:
            continue
        if s >= hi_exclusive or s > hi_inclusive:
            break
        while j < n and forbidden[j][1] <= s:
            j += 1
        if j < n and forbidden[j][0] < s:
            continue
        slots.append(Interval(_utc(s), _utc(s + d)))
    return slots
