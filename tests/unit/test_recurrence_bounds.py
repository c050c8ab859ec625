"""A class's RRULE is bounded in work, not only in count (PRODUCT.md §2.4, issue 14).

``BY*`` lists are limited in size and may not repeat a value, and the walk is charged per period
and per CPU second: whatever the rule, ``POST /classes`` spends well under 0.2 s of CPU on it and
answers 201 or 400, never a 5xx. The fuzz drives the domain the handler calls (the request model,
then :func:`shared.schedule.classes.session_starts`): any exception but a 400 would be a 5xx.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.platform.api import ApiError
from shared.schedule import recurrence
from shared.schedule.classes import CreateClassRequest, session_starts
from shared.schedule.recurrence import MAX_LIST, RecurrenceError, expand, parse_rule

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
#: CPU one request may spend on its rule (issue 14's bound).
REQUEST_CPU = 0.2
_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@pytest.fixture
def gc_paused() -> Iterator[None]:
    """The cyclic GC paused while CPU is measured: a pass over this test process's garbage is not the code's cost."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(MAX_LIST))
def test_each_by_list_has_a_limit(key: str) -> None:
    limit = MAX_LIST[key]
    values = (
        [f"{n}{_DAYS[n % 7]}" for n in range(1, limit + 2)] if key == "BYDAY" else [str(n) for n in range(1, limit + 2)]
    )
    parse_rule(f"FREQ=YEARLY;COUNT=1;{key}={','.join(values[:limit])}")  # the limit itself is fine
    with pytest.raises(RecurrenceError) as err:
        parse_rule(f"FREQ=YEARLY;COUNT=1;{key}={','.join(values)}")
    assert (err.value.field, err.value.code) == ("rrule", "too_many_values")


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MONTHLY;COUNT=2;BYMONTHDAY=1,2,1",
        "FREQ=MONTHLY;COUNT=2;BYMONTHDAY=1,+1",
        "FREQ=MONTHLY;COUNT=2;BYSETPOS=-1,-01",
        "FREQ=MONTHLY;COUNT=2;BYDAY=1MO,+1MO",
        "FREQ=WEEKLY;COUNT=2;BYDAY=mo,MO",
        "FREQ=YEARLY;COUNT=2;BYMONTH=3,03",
    ],
)
def test_a_value_listed_twice_is_refused(rule: str) -> None:
    with pytest.raises(RecurrenceError) as err:
        parse_rule(rule)
    assert err.value.code == "duplicate_value"


def test_a_walk_over_its_cpu_budget_is_refused_as_too_complex(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no CPU to spare
    monkeypatch.setattr(recurrence, "WALK_SECONDS", -1.0)
    # When a rule needs more than a few dozen periods / Then it is refused, with its code
    with pytest.raises(RecurrenceError) as err:
        expand("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1", datetime(2027, 3, 1, 18), BERLIN, max_sessions=99)
    assert (err.value.field, err.value.code) == ("rrule", "rrule_too_complex")


def test_a_rule_that_never_matches_walks_ten_years_not_eight_thousand(gc_paused: None) -> None:
    started = time.process_time()
    with pytest.raises(RecurrenceError, match="no session within 10 years"):
        expand("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1", datetime(2027, 3, 1, 18), BERLIN, max_sessions=99)
    assert time.process_time() - started < 0.05


def test_dtstart_near_the_ends_of_the_calendar_is_a_recurrence_error() -> None:
    for dtstart in (datetime(1, 1, 1, 0, 30), datetime(9999, 12, 31, 23)):
        with pytest.raises(RecurrenceError) as err:
            expand("FREQ=DAILY;COUNT=2", dtstart, ZoneInfo("Pacific/Kiritimati"), max_sessions=99)
        assert (err.value.field, err.value.code) == ("dtstart", "out_of_range")
    with pytest.raises(RecurrenceError) as err:
        expand("FREQ=DAILY;UNTIL=99991231T230000", datetime(2027, 1, 1), ZoneInfo("America/New_York"), max_sessions=99)
    assert err.value.code == "out_of_range"


def _worst(freq: str) -> str:
    """Every BY* list at its limit, none of it able to match (BYSETPOS past each period's days)."""
    lists = {
        "BYDAY": ",".join(f"{n}{d}" for n in (1, 2) for d in _DAYS),
        "BYMONTHDAY": ",".join(str(n) for n in range(1, 32)),
        "BYYEARDAY": ",".join(str(n) for n in range(300, 331)),
        "BYWEEKNO": ",".join(str(n) for n in range(1, 54)),
        "BYMONTH": "2,4,6,9,11,1,3,5,7,8,10,12",
        "BYSETPOS": ",".join(str(n) for n in range(359, 367)),
    }
    return f"FREQ={freq};COUNT=5;" + ";".join(f"{k}={v}" for k, v in lists.items())


@pytest.mark.parametrize("freq", ["DAILY", "WEEKLY", "MONTHLY", "YEARLY"])
def test_the_costliest_rule_the_limits_allow_is_cheap(freq: str, gc_paused: None) -> None:
    rule = _worst(freq)
    started = time.process_time()
    with pytest.raises(RecurrenceError):
        expand(rule, datetime(2027, 3, 1, 18), BERLIN, max_sessions=99)
    assert time.process_time() - started < REQUEST_CPU / 2


# --- fuzz: through the domain the handler calls ---------------------------------------------------

_ints = st.integers(-400, 400).map(str)
_bydays = st.tuples(st.one_of(st.just(""), st.integers(-60, 60).map(str)), st.sampled_from(_DAYS)).map("".join)
_BY = {
    "BYDAY": _bydays,
    "BYMONTHDAY": _ints,
    "BYYEARDAY": _ints,
    "BYWEEKNO": _ints,
    "BYMONTH": st.integers(-1, 14).map(str),
    "BYSETPOS": _ints,
}


@st.composite
def hostile_rules(draw: st.DrawFn) -> str:
    parts = [f"FREQ={draw(st.sampled_from(['DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY', 'HOURLY', 'SECONDLY']))}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 400))}")
    end = draw(st.sampled_from(["COUNT", "UNTIL", "both", "neither"]))
    if end in ("COUNT", "both"):
        parts.append(f"COUNT={draw(st.integers(1, 120))}")
    if end in ("UNTIL", "both"):
        day = draw(st.dates(date(1, 1, 1), date(9999, 12, 31)))
        form = draw(st.sampled_from(["%Y%m%d", "%Y%m%dT235959", "%Y%m%dT235959Z"]))
        parts.append("UNTIL=" + f"{day.year:04d}" + day.strftime(form)[len(str(day.year)) :])
    for key in draw(st.lists(st.sampled_from(sorted(_BY)), unique=True, max_size=6)):
        values = draw(st.lists(_BY[key], min_size=1, max_size=80))
        parts.append(f"{key}={','.join(values)}")
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(_DAYS))}")
    return ";".join(draw(st.permutations(parts)))


_dtstarts = st.one_of(
    st.datetimes(datetime(2027, 1, 10, 13), datetime(2036, 12, 31)),
    st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)),
).map(lambda d: d.replace(microsecond=0).isoformat())


def _attempt(rule: str, dtstart: str, timezone: str) -> str:
    """What ``POST /classes`` answers for this rule, as the handler would: ``201`` or ``400 <code>``."""
    body = {
        "title": "Fuzz",
        "format": "in_person",
        "timezone": timezone,
        "durationMinutes": 60,
        "capacity": 2,
        "location": "Studio 3",
        "rrule": rule,
        "dtstart": dtstart,
    }
    try:
        request = CreateClassRequest.model_validate(body)
        session_starts(request, ZoneInfo(timezone), NOW)
    except ValidationError:
        return "400 validation"
    except ApiError as exc:
        return f"{exc.status} {exc.extra.get('fields', [{}])[0].get('code')}"
    return "201"


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    rule=hostile_rules(),
    dtstart=_dtstarts,
    timezone=st.sampled_from(["Europe/Berlin", "Pacific/Kiritimati", "America/Adak"]),
)
@example(
    rule="FREQ=DAILY;COUNT=2;BYSETPOS=" + ",".join(map(str, range(2, 226))), dtstart="2027-03-01T10:00", timezone="UTC"
)
@example(rule=_worst("DAILY"), dtstart="2027-03-01T10:00", timezone="Europe/Berlin")
@example(rule="FREQ=DAILY;UNTIL=99991231T230000", dtstart="9999-12-31T23:00", timezone="America/Adak")
@example(rule="FREQ=YEARLY;COUNT=3", dtstart="0001-01-01T00:00:00+14:00", timezone="Europe/Berlin")
def test_fuzzed_rules_answer_201_or_400_within_the_cpu_budget(
    rule: str, dtstart: str, timezone: str, gc_paused: None
) -> None:
    started = time.process_time()
    answer: Any = _attempt(rule[:500], dtstart, timezone)
    spent = time.process_time() - started
    assert answer == "201" or answer.startswith("400")
    assert spent < REQUEST_CPU, (rule, dtstart, spent)
