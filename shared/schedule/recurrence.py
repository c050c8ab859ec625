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

Bounded in work, not only in count (PRODUCT.md §2.4): each ``BY*`` list holds at most
:data:`MAX_LIST` values (a 224-entry ``BYSETPOS`` made dateutil spend 13.8 s of CPU on every period),
none twice; and the walk is charged per period (:func:`shared.platform.bounds.budgeted`). A rule
that stepped through as many periods as the ten-year horizon holds without reaching its end has
no further session within it (``BYMONTH=2;BYMONTHDAY=30`` never matches: dateutil alone walks to
year 9999), and a walk over :data:`WALK_SECONDS` of CPU is refused (``rrule_too_complex``).
With ``bounds`` (the API's date range) ``UNTIL`` and every session must lie in it (``out_of_range``).

Every :class:`RecurrenceError` carries a machine ``code``: ``invalid``, ``too_many_values``,
``duplicate_value``, ``rrule_too_complex`` or ``out_of_range``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.platform.bounds import WalkBudget, WalkBudgetExceeded, budgeted
from shared.platform.wallclock import iana_zone, localize

#: Every session of a recurring class starts within this many years of the first.
MAX_HORIZON_YEARS = 10
#: Most values of each BY* list (a class schedule needs a few; every value costs on every period).
MAX_LIST = {"BYDAY": 14, "BYMONTHDAY": 31, "BYYEARDAY": 31, "BYWEEKNO": 53, "BYMONTH": 12, "BYSETPOS": 8}
#: CPU seconds one expansion may take before it is refused (a backstop: the limits keep it at ms).
WALK_SECONDS = 0.1
_PERIOD_DAYS = {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 28, "YEARLY": 365}
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")

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
_UNTIL = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")


class RecurrenceError(ValueError):
    """A client mistake in a time zone, a date-time or a rule; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code


def zone(key: str) -> ZoneInfo:
    """The IANA zone ``key`` (``Europe/Berlin``); :class:`RecurrenceError` for anything else."""
    found = iana_zone(key)
    if found is None:
        raise RecurrenceError("timezone", f"{str(key)[:64]!r} is not an IANA time zone (e.g. Europe/Berlin)")
    return found


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
    for key, limit in MAX_LIST.items():
        if key in parts:
            _check_list(key, parts[key], limit)
    return parts


def _check_list(key: str, value: str, limit: int) -> None:
    """A BY* list: at most ``limit`` values, none twice (``1`` and ``+01`` are the same value)."""
    values = value.split(",")
    if len(values) > limit:
        raise RecurrenceError(
            "rrule", f"{key} may list at most {limit} values (got {len(values)})", code="too_many_values"
        )
    seen: set[object] = set()
    for raw in values:
        item = raw.strip()
        day = _BYDAY.match(item) if key == "BYDAY" else None
        norm: object = (int(day.group(1) or 0), day.group(2)) if day else item
        if key != "BYDAY" and re.fullmatch(r"[+-]?\d{1,4}", item):
            norm = int(item)
        if norm in seen:
            raise RecurrenceError("rrule", f"{key} lists {item[:12]!r} twice", code="duplicate_value")
        seen.add(norm)


def _until_instant(value: str, tz: ZoneInfo, dtstart: datetime) -> datetime:
    """UNTIL as a UTC instant: ``…Z`` as is, a floating date-time in ``tz``, a date through its end."""
    match = _UNTIL.match(value)
    if match is None:
        raise RecurrenceError("rrule", "UNTIL must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ")
    try:
        day = datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        raise RecurrenceError("rrule", "UNTIL is not a valid date or date-time") from None
    if day.year > dtstart.year + MAX_HORIZON_YEARS + 1:
        # Checked before any zone conversion: 99991231T230000 in New York overflows as UTC.
        raise RecurrenceError(
            "rrule", f"UNTIL must be within {MAX_HORIZON_YEARS} years of dtstart", code="out_of_range"
        )
    if day.year < 2:
        return datetime.min.replace(tzinfo=UTC)  # before every session
    try:
        if match.group(2) is None:
            # A date is inclusive: everything before the next local midnight.
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


def _periods(parts: dict[str, str]) -> int:
    """How many periods of the rule the horizon holds (over-counted: a month as 28 days), plus margin."""
    days = 366 * MAX_HORIZON_YEARS + 3
    return math.ceil(days / (_PERIOD_DAYS[parts["FREQ"]] * int(parts.get("INTERVAL", "1")))) + 3


def expand(
    rule: str,
    dtstart: datetime,
    tz: ZoneInfo,
    *,
    max_sessions: int,
    bounds: tuple[datetime, datetime] | None = None,
) -> list[datetime]:
    """Every start of ``rule`` from local wall time ``dtstart`` (naive) in ``tz``, as aware datetimes in ``tz``.

    Each start keeps ``dtstart``'s wall time, except a start that would fall in a DST gap, which
    moves forward (see the module docstring). Raises :class:`RecurrenceError` for a malformed,
    unbounded, oversized or too costly rule, or one that yields no session. ``bounds`` (aware
    instants), when given, is the range ``UNTIL`` and every session must lie in.
    """
    if dtstart.tzinfo is not None:
        raise ValueError("expand() takes dtstart as a naive local wall time")
    dtstart = dtstart.replace(microsecond=0)  # RFC 5545 date-times have whole seconds (as dateutil)
    parts = parse_rule(rule)
    if dtstart.year > 9999 - MAX_HORIZON_YEARS - 2:
        raise RecurrenceError("dtstart", "dtstart is too far in the future", code="out_of_range")
    if dtstart.year < 2:
        raise RecurrenceError("dtstart", "dtstart is too far in the past", code="out_of_range")
    count = int(parts["COUNT"]) if "COUNT" in parts else None
    if count is not None and count > max_sessions:
        raise RecurrenceError("rrule", f"COUNT={count} is more than {max_sessions} sessions")
    horizon = dtstart + timedelta(days=365 * MAX_HORIZON_YEARS + MAX_HORIZON_YEARS // 4)
    until = _until_instant(parts.pop("UNTIL"), tz, dtstart) if "UNTIL" in parts else None
    if until is not None and until > localize(horizon, tz).astimezone(UTC):
        raise RecurrenceError(
            "rrule", f"UNTIL must be within {MAX_HORIZON_YEARS} years of dtstart", code="out_of_range"
        )
    if until is not None and bounds is not None and not bounds[0] <= until <= bounds[1]:
        raise RecurrenceError("rrule", f"UNTIL {_range_message(bounds)}", code="out_of_range")
    text = "RRULE:" + ";".join(f"{k}={v}" for k, v in parts.items())
    starts, generated = _walk(text, dtstart, tz, _Limits(until, horizon, max_sessions, _periods(parts), bounds))
    if not starts:
        raise RecurrenceError("rrule", f"the rule yields no session within {MAX_HORIZON_YEARS} years of dtstart")
    if count is not None and generated < count:
        raise RecurrenceError(
            "rrule", f"the rule yields only {len(starts)} of COUNT={count} sessions within {MAX_HORIZON_YEARS} years"
        )
    return starts


@dataclass(frozen=True)
class _Limits:
    until: datetime | None
    horizon: datetime  # naive wall time
    max_sessions: int
    periods: int
    bounds: tuple[datetime, datetime] | None


def _range_message(bounds: tuple[datetime, datetime]) -> str:
    return f"must lie between {bounds[0]:%Y-%m-%d} and {bounds[1]:%Y-%m-%d}"


def _walk(text: str, dtstart: datetime, tz: ZoneInfo, limits: _Limits) -> tuple[list[datetime], int]:
    """The sessions of the rule (deduplicated) and how many occurrences it generated, under a budget.

    A walk through every period of the horizon ends it (nothing later can be a session); one over
    :data:`WALK_SECONDS` of CPU is refused.
    """
    from dateutil.rrule import rrulestr

    starts: list[datetime] = []
    generated = 0
    try:
        for wall in budgeted(rrulestr(text, dtstart=dtstart), WalkBudget(periods=limits.periods, seconds=WALK_SECONDS)):
            start = localize(wall, tz)
            if limits.until is not None and start.astimezone(UTC) > limits.until:
                break
            if wall > limits.horizon:
                raise RecurrenceError("rrule", f"every session must start within {MAX_HORIZON_YEARS} years of dtstart")
            if limits.bounds is not None and start.astimezone(UTC) > limits.bounds[1]:
                raise RecurrenceError("rrule", f"every session {_range_message(limits.bounds)}", code="out_of_range")
            generated += 1
            if starts and start.astimezone(UTC) == starts[-1].astimezone(UTC):
                continue  # a skipped calendar day moved it onto the next occurrence's instant
            if len(starts) == limits.max_sessions:
                raise RecurrenceError("rrule", f"the rule yields more than {limits.max_sessions} sessions")
            starts.append(start)
    except WalkBudgetExceeded as exc:
        if exc.reason != "periods":
            raise RecurrenceError(
                "rrule", "the rule is too costly to expand: simplify its BY* parts", code="rrule_too_complex"
            ) from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        if isinstance(exc, RecurrenceError):
            raise
        raise RecurrenceError("rrule", f"not a valid RRULE: {str(exc)[:120]}") from None
    return starts, generated
