"""shared.platform.bounds: the API's date range, control characters, and budgeted recurrence walks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from dateutil.rrule import rruleset, rrulestr

from shared.platform.bounds import (
    WalkBudget,
    WalkBudgetExceeded,
    budgeted,
    control_characters,
    date_range,
    in_range,
    plausible_year,
    without_controls,
)

NOW = datetime(2028, 2, 29, 12, tzinfo=UTC)


def test_the_range_is_a_day_ago_to_ten_years_ahead() -> None:
    assert date_range(NOW) == (datetime(2028, 2, 28, 12, tzinfo=UTC), datetime(2038, 2, 28, 12, tzinfo=UTC))
    assert in_range(NOW - timedelta(days=1), NOW)
    assert not in_range(NOW - timedelta(days=1, seconds=1), NOW)
    assert in_range(datetime(2038, 2, 28, 12, tzinfo=UTC), NOW)
    assert not in_range(datetime(2038, 2, 28, 12, 0, 1, tzinfo=UTC), NOW)
    assert not in_range(datetime(2030, 1, 1), NOW)  # naive: not an instant


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-12))),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59),
    ],
)
def test_the_ends_of_the_calendar_are_implausible_without_converting(value: datetime) -> None:
    assert not plausible_year(value, NOW)
    if value.tzinfo is not None:
        assert not in_range(value, NOW)


def test_control_characters() -> None:
    for bad in ("a\rb", "a\nb", "a\tb", "a\x00b", "a\x7fb", "a\x85b", "a\u2028b", "a\u2029b"):
        assert control_characters(bad), repr(bad)
    for good in ("Yoga — Zoë 東京", "a b", ""):
        assert not control_characters(good)
    assert without_controls("a\r\n\r\nb\t c ") == "a b c"


def test_a_budget_counts_periods() -> None:
    rule = budgeted(
        rrulestr("RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1", dtstart=datetime(2027, 1, 1)),
        WalkBudget(periods=100, seconds=10),
    )
    with pytest.raises(WalkBudgetExceeded) as err:
        list(rule)
    assert err.value.reason == "periods"


def test_a_budget_counts_cpu_seconds_and_works_inside_a_rule_set() -> None:
    ticks = iter(range(1_000_000))
    budget = WalkBudget(periods=10**9, seconds=50, clock=lambda: float(next(ticks)))
    rset = rruleset()
    rset.rrule(budgeted(rrulestr("RRULE:FREQ=SECONDLY;BYSETPOS=2", dtstart=datetime(2027, 1, 1)), budget))
    with pytest.raises(WalkBudgetExceeded) as err:
        next(iter(rset))
    assert err.value.reason == "time"


def test_a_rule_within_budget_is_unchanged() -> None:
    text = "RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=5"
    plain = list(rrulestr(text, dtstart=datetime(2027, 1, 1, 18)))
    assert list(budgeted(rrulestr(text, dtstart=datetime(2027, 1, 1, 18)), WalkBudget(periods=10, seconds=1))) == plain
