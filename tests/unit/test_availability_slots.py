"""The slot engine (shared.availability.slots): property tests over many zones — southern hemisphere,
Australia/Lord_Howe's 30-minute shift, zones without DST — and examples on DST-change days.

Properties: no slot overlaps a block widened by the buffers (busy, taught or held); every slot lies
inside a range of the rules placed in the zone; starts lie on the local grid; notice, horizon and
window hold; adding a block never adds a slot and removing one never removes one; and the engine
agrees with a brute-force reference that checks every grid time against every block.
"""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.availability.rules import AvailabilityRules, TimeRange, Weekly
from shared.availability.slots import MAX_WINDOW, Hours, Interval, SlotQueryError, bookable_slots
from shared.platform.wallclock import localize as _localize


def localize(wall: datetime, tz: ZoneInfo) -> datetime:
    """The engine's placement, in UTC: aware datetimes in a zone compare as wall times within one
    zone and never equal across zones inside a repeated hour (PEP 495), so tests compare in UTC."""
    return _localize(wall, tz).astimezone(UTC)


ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Santiago",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "UTC",
)
STEPS = (5, 10, 15, 20, 30, 60, 120)


def _transition_days(tz: ZoneInfo) -> list[date]:
    """Local dates of 2026-2027 on which the zone's offset changes."""
    days, day = [], date(2026, 1, 1)
    prev = datetime.combine(day, time(), tzinfo=tz).utcoffset()
    while day < date(2028, 1, 1):
        day += timedelta(days=1)
        off = datetime.combine(day, time(), tzinfo=tz).utcoffset()
        if off != prev:
            days.append(day - timedelta(days=1))
        prev = off
    return days or [date(2026, 3, 29)]


@st.composite
def day_ranges(draw: st.DrawFn, grid: int = 15) -> tuple[tuple[int, int], ...]:
    points = sorted(draw(st.sets(st.integers(0, 1440 // grid), max_size=6)))
    pairs = [(points[i] * grid, points[i + 1] * grid) for i in range(0, len(points) - 1, 2)]
    return tuple(pairs)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    weekly = tuple(draw(day_ranges()) for _ in range(7))
    near = draw(st.sampled_from(_transition_days(tz)))
    base = draw(st.one_of(st.just(near), st.dates(date(2026, 1, 1), date(2027, 12, 31))))
    start = (
        datetime.combine(base, time(), tzinfo=UTC) - timedelta(days=1) + timedelta(minutes=draw(st.integers(0, 1439)))
    )
    window = timedelta(days=draw(st.integers(1, 5)), minutes=draw(st.integers(0, 1439)))
    overrides = {
        base + timedelta(days=draw(st.integers(-1, 5))): draw(day_ranges()) for _ in range(draw(st.integers(0, 2)))
    }
    hours = Hours(
        tz=tz,
        weekly=weekly,
        overrides=overrides,
        buffer_before=timedelta(minutes=draw(st.sampled_from((0, 5, 15, 60)))),
        buffer_after=timedelta(minutes=draw(st.sampled_from((0, 10, 30)))),
        notice=timedelta(minutes=draw(st.sampled_from((0, 60, 120, 1440)))),
        horizon=timedelta(days=draw(st.integers(1, 10))),
        step_minutes=draw(st.sampled_from(STEPS)),
    )

    def blocks() -> list[Interval]:
        out = []
        for _ in range(draw(st.integers(0, 8))):
            s = start + timedelta(minutes=draw(st.integers(-600, int(window.total_seconds() // 60) + 600)))
            out.append(Interval(s, s + timedelta(minutes=draw(st.integers(1, 300)))))
        return out

    return {
        "hours": hours,
        "now": start - timedelta(minutes=draw(st.integers(0, 3000))),
        "window_start": start,
        "window_end": start + window,
        "duration": timedelta(minutes=draw(st.sampled_from((15, 30, 45, 60, 90)))),
        "busy": blocks(),
        "taught": blocks(),
        "held": blocks(),
    }


def _run(sc: dict[str, object], **changes: object) -> list[Interval]:
    return bookable_slots(**{**sc, **changes})  # type: ignore[arg-type]


def _overlaps(a0: datetime, a1: datetime, block: Interval) -> bool:
    return a0 < block.end and block.start < a1


def _joined(ranges: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _day_ranges(hours: Hours, day: date) -> list[tuple[datetime, datetime]]:
    ranges = hours.overrides.get(day, hours.weekly[day.weekday()])
    midnight = datetime.combine(day, time())
    return [
        (localize(midnight + timedelta(minutes=a), hours.tz), localize(midnight + timedelta(minutes=b), hours.tz))
        for a, b in _joined(ranges)
    ]


def _inside_rules(hours: Hours, slot: Interval) -> bool:
    wall_day = slot.start.astimezone(hours.tz).date()
    for day in (wall_day - timedelta(days=1), wall_day, wall_day + timedelta(days=1)):
        if any(lo <= slot.start and slot.end <= hi for lo, hi in _day_ranges(hours, day)):
            return True
    return False


def _on_grid(hours: Hours, start: datetime) -> bool:
    wall = start.astimezone(hours.tz).replace(tzinfo=None)
    for gap in (0, 30, 60, 120):  # a grid time in a gap moved forward by the gap (RFC 5545)
        grid = wall - timedelta(minutes=gap)
        since_midnight = (grid - datetime.combine(grid.date(), time())).total_seconds() / 60
        if since_midnight % hours.step_minutes == 0 and localize(grid, hours.tz) == start:
            return True
    return False


def _reference(sc: dict[str, object]) -> list[datetime]:
    """Every grid time of every nearby local date, checked one by one against every block."""
    hours: Hours = sc["hours"]  # type: ignore[assignment]
    now: datetime = sc["now"]  # type: ignore[assignment]
    ws: datetime = sc["window_start"]  # type: ignore[assignment]
    we: datetime = sc["window_end"]  # type: ignore[assignment]
    d: timedelta = sc["duration"]  # type: ignore[assignment]
    blocks = [*sc["busy"], *sc["taught"], *sc["held"]]  # type: ignore[misc]
    found: set[datetime] = set()
    day = ws.astimezone(hours.tz).date() - timedelta(days=2)
    while day <= we.astimezone(hours.tz).date() + timedelta(days=1):
        midnight = datetime.combine(day, time())
        for lo, hi in _day_ranges(hours, day):
            for k in range(0, 1440 // hours.step_minutes):
                s = localize(midnight + timedelta(minutes=k * hours.step_minutes), hours.tz)
                wall_min = k * hours.step_minutes
                in_range = any(
                    a <= wall_min < b for a, b in _joined(hours.overrides.get(day, hours.weekly[day.weekday()]))
                )
                if not in_range or not (lo <= s and s + d <= hi):
                    continue
                if not (ws <= s < we and now + hours.notice <= s <= now + hours.horizon):
                    continue
                a0, a1 = s - hours.buffer_before, s + d + hours.buffer_after
                if any(_overlaps(a0, a1, b) for b in blocks):
                    continue
                found.add(s.astimezone(UTC))
        day += timedelta(days=1)
    return sorted(found)


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(scenarios())
def test_slots_respect_blocks_rules_grid_and_bounds(sc: dict[str, object]) -> None:
    hours: Hours = sc["hours"]  # type: ignore[assignment]
    slots = _run(sc)
    blocks = [*sc["busy"], *sc["taught"], *sc["held"]]  # type: ignore[misc]
    assert slots == sorted(set(slots))
    for slot in slots:
        assert slot.start.tzinfo is UTC
        assert slot.end - slot.start == sc["duration"]
        widened = (slot.start - hours.buffer_before, slot.end + hours.buffer_after)
        assert not any(_overlaps(*widened, b) for b in blocks), slot
        assert _inside_rules(hours, slot), slot
        assert _on_grid(hours, slot.start), slot
        assert sc["now"] + hours.notice <= slot.start <= sc["now"] + hours.horizon  # type: ignore[operator]
        assert sc["window_start"] <= slot.start < sc["window_end"]  # type: ignore[operator]


@PROPS
@given(scenarios())
def test_slots_equal_brute_force_reference(sc: dict[str, object]) -> None:
    assert [s.start for s in _run(sc)] == _reference(sc)


@PROPS
@given(scenarios(), st.data())
def test_a_block_never_adds_a_slot(sc: dict[str, object], data: st.DataObject) -> None:
    before = set(_run(sc))
    ws: datetime = sc["window_start"]  # type: ignore[assignment]
    s = ws + timedelta(minutes=data.draw(st.integers(-300, 6 * 1440)))
    extra = Interval(s, s + timedelta(minutes=data.draw(st.integers(1, 240))))
    kind = data.draw(st.sampled_from(("busy", "taught", "held")))
    after = set(_run(sc, **{kind: [*sc[kind], extra]}))  # type: ignore[misc]
    assert after <= before
    busy: list[Interval] = sc["busy"]  # type: ignore[assignment]
    if busy:
        removed = set(_run(sc, busy=busy[1:]))
        assert removed >= before


# --- examples -------------------------------------------------------------------------------------

NINE_TO_FIVE = ((9 * 60, 17 * 60),)


def _hours(zone: str, step: int = 60, **kw: object) -> Hours:
    return Hours(tz=ZoneInfo(zone), weekly=(NINE_TO_FIVE,) * 7, step_minutes=step, **kw)  # type: ignore[arg-type]


def _local_starts(hours: Hours, day: date, duration: timedelta = timedelta(hours=1)) -> list[str]:
    start = datetime.combine(day, time(), tzinfo=hours.tz)
    slots = bookable_slots(
        hours,
        now=start - timedelta(days=1),
        window_start=start,
        window_end=start + timedelta(days=1),
        duration=duration,
    )
    return [s.start.astimezone(hours.tz).strftime("%H:%M") for s in slots]


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Europe/Berlin", date(2026, 3, 29)),
        ("Europe/Berlin", date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8)),
        ("America/New_York", date(2026, 11, 1)),
        ("Australia/Lord_Howe", date(2026, 4, 5)),
        ("Australia/Lord_Howe", date(2026, 10, 4)),
        ("Australia/Sydney", date(2026, 4, 5)),
    ],
)
def test_local_hours_hold_on_dst_change_days(zone: str, day: date) -> None:
    hours = _hours(zone)
    assert _local_starts(hours, day) == [f"{h:02d}:00" for h in range(9, 17)]


def test_a_range_through_the_gap_moves_forward() -> None:
    """Berlin 2026-03-29: 02:00-03:00 does not exist; a 01:00-04:00 range is two real hours."""
    hours = Hours(tz=ZoneInfo("Europe/Berlin"), weekly=(((60, 240),),) * 7, step_minutes=30)
    starts = _local_starts(hours, date(2026, 3, 29), timedelta(minutes=30))
    assert starts == ["01:00", "01:30", "03:00", "03:30"]


def test_repeated_hour_uses_first_occurrence() -> None:
    """Berlin 2026-10-25: 02:00-03:00 happens twice; grid times there are the first occurrence."""
    hours = Hours(tz=ZoneInfo("Europe/Berlin"), weekly=(((60, 240),),) * 7, step_minutes=60)
    start = datetime(2026, 10, 25, tzinfo=hours.tz)
    slots = bookable_slots(
        hours,
        now=start - timedelta(days=1),
        window_start=start,
        window_end=start + timedelta(days=1),
        duration=timedelta(hours=1),
    )
    assert [s.start.isoformat() for s in slots] == [
        "2026-10-24T23:00:00+00:00",  # 01:00 CEST
        "2026-10-25T00:00:00+00:00",  # 02:00 CEST (the first 02:00)
        "2026-10-25T02:00:00+00:00",  # 03:00 CET
    ]


def test_buffers_widen_the_slot_against_blocks() -> None:
    hours = _hours("UTC", step=30, buffer_before=timedelta(minutes=15), buffer_after=timedelta(minutes=30))
    day = datetime(2027, 3, 1, tzinfo=UTC)
    busy = [Interval(day.replace(hour=12), day.replace(hour=13))]
    slots = bookable_slots(
        hours,
        now=day - timedelta(days=1),
        window_start=day,
        window_end=day + timedelta(days=1),
        duration=timedelta(hours=1),
        busy=busy,
    )
    starts = [s.start.strftime("%H:%M") for s in slots]
    # 10:30 + 1 h + 30 min after = 12:00 (touching); 13:30 - 15 min before = 13:15 (after the block).
    assert starts == ["09:00", "09:30", "10:00", "10:30", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00"]


def test_overrides_replace_weekly_hours() -> None:
    hours = _hours("Europe/Berlin", overrides={date(2027, 3, 1): (), date(2027, 3, 2): ((600, 660),)})
    assert _local_starts(hours, date(2027, 3, 1)) == []
    assert _local_starts(hours, date(2027, 3, 2)) == ["10:00"]


def test_notice_horizon_and_touching_ranges() -> None:
    hours = Hours(
        tz=ZoneInfo("UTC"),
        weekly=(((540, 720), (720, 1020)),) * 7,
        step_minutes=60,
        notice=timedelta(hours=2),
        horizon=timedelta(days=1),
    )
    now = datetime(2027, 3, 1, 8, 30, tzinfo=UTC)
    slots = bookable_slots(
        hours,
        now=now,
        window_start=now - timedelta(days=1),
        window_end=now + timedelta(days=5),
        duration=timedelta(hours=1),
    )
    starts = [s.start.strftime("%d %H:%M") for s in slots]
    assert starts[0] == "01 11:00"  # 08:30 + 2 h notice → first grid time 11:00; 11:00-12:00 + 12:00-… joined
    assert starts == ["01 11:00", "01 12:00", "01 13:00", "01 14:00", "01 15:00", "01 16:00"]  # horizon: ≤ 02 08:30


def test_limits() -> None:
    hours = _hours("UTC")
    now = datetime(2027, 3, 1, tzinfo=UTC)
    with pytest.raises(SlotQueryError):
        bookable_slots(
            hours,
            now=now,
            window_start=now,
            window_end=now + MAX_WINDOW + timedelta(seconds=1),
            duration=timedelta(hours=1),
        )
    with pytest.raises(SlotQueryError):
        bookable_slots(hours, now=now, window_start=now, window_end=now, duration=timedelta(hours=1))
    with pytest.raises(SlotQueryError):
        bookable_slots(hours, now=now, window_start=now, window_end=now + timedelta(days=1), duration=timedelta(0))


def test_rules_model_feeds_the_engine() -> None:
    rules = AvailabilityRules(timezone="America/New_York", weekly=Weekly(mon=[TimeRange(start="09:00", end="24:00")]))
    hours = rules.hours()
    assert hours.weekly[0] == ((540, 1440),)
    assert hours.weekly[1] == ()
    assert _local_starts(hours, date(2027, 3, 1))[-1] == "23:00"


def test_thirty_day_window_with_1000_busy_blocks_is_fast() -> None:
    """The bench's case (a generous bound here: shared CI cores; the bench reports the real p95)."""
    import random

    rnd = random.Random(7)
    week = ((480, 720), (780, 1200))
    hours = Hours(tz=ZoneInfo("Europe/Berlin"), weekly=(week,) * 7, step_minutes=15)
    now = datetime(2026, 10, 1, tzinfo=UTC)

    def blocks(n: int, minutes: int) -> list[Interval]:
        out = []
        for _ in range(n):
            s = now + timedelta(minutes=rnd.randrange(30 * 1440))
            out.append(Interval(s, s + timedelta(minutes=minutes)))
        return out

    busy, taught = blocks(1000, 30), blocks(200, 60)
    times = []
    for _ in range(20):
        t0 = clock.perf_counter()
        bookable_slots(
            hours,
            now=now,
            window_start=now,
            window_end=now + timedelta(days=30),
            duration=timedelta(hours=1),
            busy=busy,
            taught=taught,
        )
        times.append(clock.perf_counter() - t0)
    assert sorted(times)[len(times) // 2] < 0.2


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1)),
)
def test_wallclock_places_times_as_the_class_recurrence_does(zone: str, wall: datetime) -> None:
    from shared.schedule.recurrence import localize as class_localize

    tz = ZoneInfo(zone)
    assert _localize(wall, tz).timestamp() == class_localize(wall, tz).timestamp()
