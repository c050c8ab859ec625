"""Class times: IANA zones, local wall times, and RRULE expansion in the class's zone (PRODUCT.md §2.4).

A class's sessions are given in *its* time zone. A recurring class keeps its local wall time
across daylight-saving changes — a weekly class at 18:00 Europe/Berlin is at 18:00 in both
summer (UTC+2) and winter (UTC+1) — so the rule is expanded on naive wall-clock times with
python-dateutil and each occurrence is placed in the zone afterwards (never the other way round).

Local times that do not exist or exist twice are resolved as RFC 5545 §3.3.5 says:

* a time in a spring-forward **gap** (02:30 on the day Berlin jumps from 02:00 to 03:00) is
  "interpreted using the UTC offset before the gap": it moves *forward* by the gap's length
  (02:30 → 03:30 local, the same instant as 01:30 UTC). Only that occurrence moves; the others
  keep 02:30.
* a time in a fall-back **overlap** (02:30 on the day Berlin goes from 03:00 back to 02:00)
  "refers to the first occurrence": the earlier instant, still on summer time.

Both are what :func:`localize` does (``fold=0`` under PEP 495, then normalised through UTC). When a
zone skipped a whole calendar day (Pacific/Apia on 2011-12-30) the missing day's occurrence lands on
the next day's instant; the duplicate is dropped, so sessions are strictly increasing.

The rules accepted are the ones a class schedule needs, and every one is bounded:

* ``FREQ`` DAILY, WEEKLY, MONTHLY or YEARLY (sub-daily rules would change the time of day, and
  the time of day comes from ``dtstart``; so ``BYHOUR`` / ``BYMINUTE`` / ``BYSECOND`` are refused);
* ``COUNT`` or ``UNTIL`` (exactly one; an unbounded rule is refused), at most ``max_sessions``
  sessions, all within :data:`MAX_HORIZON_YEARS` of the first;
* ``INTERVAL``, ``BYDAY``, ``BYMONTHDAY``, ``BYYEARDAY``, ``BYWEEKNO``, ``BYMONTH``,
  ``BYSETPOS``, ``WKST``. ``UNTIL`` may be UTC (``…Z``, as RFC 5545 requires with a zoned
  DTSTART), a floating local date-time, or a date (inclusive: through the end of that local day).

dateutil walks a rule period by period until year 9999 when a rule stops matching (e.g.
``BYMONTH=2;BYMONTHDAY=30`` never does), which for a DAILY rule is seconds of CPU. The Gregorian
calendar repeats exactly every 400 years (146,097 days, a whole number of weeks), so the rule is
expanded on a copy of ``dtstart`` shifted by a multiple of 400 years to just before year 9999 and
the results are shifted back: identical occurrences, and at most ~410 years of walking.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Every session of a recurring class starts within this many years of the first.
MAX_HORIZON_YEARS = 10
_CYCLE_YEARS = 400  # the Gregorian calendar's period

ALLOWED_FREQ = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
ALLOWED_PARTS = frozenset(
    {
        "FREQ",
        "INTERVAL",
        "COUNT",
        "UNTIL",
        "BYDAY",
        "BYMONTHDAY",
        "BYYEARDAY",
        "BYWEEKNO",
        "BYMONTH",
        "BYSETPOS",
        "WKST",
    }
)
_TIME_PARTS = frozenset({"BYHOUR", "BYMINUTE", "BYSECOND"})
_ZONE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
_NOT_IANA = frozenset({"localtime", "posixrules", "Factory"})
_UNTIL = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")


class RecurrenceError(ValueError):
    """A client mistake in a time zone, a date-time or a rule; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def zone(key: str) -> ZoneInfo:
    """The IANA zone ``key`` (``Europe/Berlin``); :class:`RecurrenceError` for anything else."""
    if not isinstance(key, str) or len(key) > 64 or not _ZONE_KEY.match(key) or key in _NOT_IANA:
        raise RecurrenceError("timezone", f"{str(key)[:64]!r} is not an IANA time zone (e.g. Europe/Berlin)")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RecurrenceError("timezone", f"{key!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def localize(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant of local wall time ``wall`` (naive) in ``tz``, as an aware datetime in ``tz``.

    RFC 5545: a nonexistent time (spring-forward gap) moves forward by the gap's length; an
    ambiguous one (fall-back overlap) is its first occurrence.
    """
    if wall.tzinfo is not None:
        raise ValueError("localize() takes a naive wall-clock time")
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)


def to_wall(value: datetime, tz: ZoneInfo) -> datetime:
    """``value`` as a naive wall time in ``tz`` (whole seconds, as RFC 5545 date-times): a naive value
    already is one; an aware one is converted."""
    if value.tzinfo is not None:
        value = value.astimezone(tz).replace(tzinfo=None, fold=0)
    return value.replace(microsecond=0)


def place(value: datetime, tz: ZoneInfo) -> datetime:
    """A one-off start in ``tz``: with an offset it is that instant (even the second 02:30 of a
    fall-back night); naive it is a wall time, resolved by :func:`localize`. Whole seconds."""
    if value.tzinfo is not None:
        return value.astimezone(tz).replace(microsecond=0)
    return localize(value.replace(microsecond=0), tz)


def parse_datetime(value: str) -> datetime:
    """An ISO 8601 date-time (``2026-10-01T18:00``, with or without an offset); ``ValueError`` otherwise."""
    if not isinstance(value, str) or len(value) > 40 or "T" not in value.upper():
        raise ValueError("expected an ISO 8601 date-time such as 2026-10-01T18:00 or 2026-10-01T18:00:00+02:00")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "expected an ISO 8601 date-time such as 2026-10-01T18:00 or 2026-10-01T18:00:00+02:00"
        ) from None


def parse_rule(text: str) -> dict[str, str]:
    """The parts of one RRULE value (``FREQ=WEEKLY;COUNT=8``, ``RRULE:`` prefix allowed), checked."""
    body = text.strip()
    if "\n" in body or "\r" in body:
        raise RecurrenceError("rrule", "give a single RRULE value (the first start goes in dtstart)")
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    parts: dict[str, str] = {}
    for chunk in body.split(";"):
        key, sep, value = chunk.partition("=")
        key = key.strip().upper()
        if not sep or not key or not value.strip():
            raise RecurrenceError("rrule", f"malformed RRULE part {chunk[:40]!r} (expected NAME=VALUE)")
        if key in parts:
            raise RecurrenceError("rrule", f"RRULE part {key} is given twice")
        parts[key] = value.strip().upper()
    if "FREQ" not in parts:
        raise RecurrenceError("rrule", "RRULE needs FREQ (DAILY, WEEKLY, MONTHLY or YEARLY)")
    if parts["FREQ"] not in ALLOWED_FREQ:
        raise RecurrenceError("rrule", f"FREQ must be one of {', '.join(ALLOWED_FREQ)} (got {parts['FREQ'][:20]})")
    if _TIME_PARTS & parts.keys():
        raise RecurrenceError("rrule", "BYHOUR, BYMINUTE and BYSECOND are not supported: the time of day is dtstart's")
    unknown = sorted(parts.keys() - ALLOWED_PARTS - _TIME_PARTS)
    if unknown:
        raise RecurrenceError("rrule", f"unsupported RRULE part(s): {', '.join(k[:20] for k in unknown)}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("rrule", "RRULE may have COUNT or UNTIL, not both")
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise RecurrenceError("rrule", "RRULE must end: give COUNT or UNTIL (unbounded rules are not accepted)")
    for key in ("COUNT", "INTERVAL"):
        if key in parts and not (parts[key].isdigit() and 1 <= int(parts[key]) <= 10_000):
            raise RecurrenceError("rrule", f"{key} must be a positive integer")
    return parts


def _until_instant(value: str, tz: ZoneInfo) -> datetime:
    """UNTIL as a UTC instant: ``…Z`` as is, a floating date-time in ``tz``, a date through its end."""
    match = _UNTIL.match(value)
    if match is None:
        raise RecurrenceError("rrule", "UNTIL must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ")
    try:
        day = datetime.strptime(match.group(1), "%Y%m%d").date()
        if match.group(2) is None:
            # A date is inclusive: everything before the next local midnight.
            if day >= date.max:
                raise ValueError("UNTIL out of range")
            return localize(datetime.combine(day + timedelta(days=1), time()), tz).astimezone(UTC) - timedelta(
                microseconds=1
            )
        clock = datetime.strptime(match.group(2), "%H%M%S").time()
    except ValueError:
        raise RecurrenceError("rrule", "UNTIL is not a valid date or date-time") from None
    wall = datetime.combine(day, clock)
    if match.group(3):
        return wall.replace(tzinfo=UTC)
    return localize(wall, tz).astimezone(UTC)


def _add_years(value: datetime, years: int) -> datetime:
    """``value`` moved by ``years``, a multiple of 400 (so 29 February stays a valid date)."""
    return value.replace(year=value.year + years)


def expand(rule: str, dtstart: datetime, tz: ZoneInfo, *, max_sessions: int) -> list[datetime]:
    """Every start of ``rule`` from local wall time ``dtstart`` (naive) in ``tz``, as aware datetimes in ``tz``.

    Each start keeps ``dtstart``'s wall time, except a start that would fall in a DST gap, which
    moves forward (see the module docstring). Raises :class:`RecurrenceError` for a malformed,
    unbounded or oversized rule, or one that yields no session.
    """
    from dateutil.rrule import rrulestr

    if dtstart.tzinfo is not None:
        raise ValueError("expand() takes dtstart as a naive local wall time")
    dtstart = dtstart.replace(microsecond=0)  # RFC 5545 date-times have whole seconds (as dateutil)
    parts = parse_rule(rule)
    if dtstart.year > 9999 - MAX_HORIZON_YEARS - 2:
        raise RecurrenceError("dtstart", "dtstart is too far in the future")
    count = int(parts["COUNT"]) if "COUNT" in parts else None
    if count is not None and count > max_sessions:
        raise RecurrenceError("rrule", f"COUNT={count} is more than {max_sessions} sessions")
    horizon = dtstart + timedelta(days=365 * MAX_HORIZON_YEARS + MAX_HORIZON_YEARS // 4)
    until = _until_instant(parts.pop("UNTIL"), tz) if "UNTIL" in parts else None
    if until is not None and until > localize(horizon, tz).astimezone(UTC):
        raise RecurrenceError("rrule", f"UNTIL must be within {MAX_HORIZON_YEARS} years of dtstart")
    # Walk the rule near year 9999 (an identical calendar, 400·k years on) so it cannot spin for long.
    shift = max(0, (9999 - MAX_HORIZON_YEARS - 2 - dtstart.year) // _CYCLE_YEARS) * _CYCLE_YEARS
    text = "RRULE:" + ";".join(f"{k}={v}" for k, v in parts.items())
    try:
        generator = iter(rrulestr(text, dtstart=_add_years(dtstart, shift)))
        starts: list[datetime] = []
        generated = 0
        for shifted in generator:
            wall = _add_years(shifted, -shift)
            start = localize(wall, tz)
            if until is not None and start.astimezone(UTC) > until:
                break
            if wall > horizon:
                raise RecurrenceError("rrule", f"every session must start within {MAX_HORIZON_YEARS} years of dtstart")
            generated += 1
            if starts and start.astimezone(UTC) == starts[-1].astimezone(UTC):
                continue  # a skipped calendar day moved it onto the next occurrence's instant
            if len(starts) == max_sessions:
                raise RecurrenceError("rrule", f"the rule yields more than {max_sessions} sessions")
            starts.append(start)
    except RecurrenceError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise RecurrenceError("rrule", f"not a valid RRULE: {str(exc)[:120]}") from None
    if not starts:
        raise RecurrenceError("rrule", "the rule yields no session on or after dtstart")
    if count is not None and generated < count:
        raise RecurrenceError(
            "rrule", f"the rule yields only {len(starts)} of COUNT={count} sessions within {MAX_HORIZON_YEARS} years"
        )
    return starts
