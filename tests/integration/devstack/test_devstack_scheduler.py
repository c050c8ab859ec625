"""The scheduler: registered functions fired with EventBridge's "Scheduled Event"."""

from __future__ import annotations

import time
from collections.abc import Iterator

import devstack_probe_handlers as probe
import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from devstack.routes import FunctionNotFoundError, Schedule
from devstack.scheduler import Scheduler
from devstack.stack import LocalStack

PROBE = "devstack_probe_handlers"


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    running = Scheduler()
    running.start()
    yield running
    running.stop()


def _ticks(name: str) -> list[dict]:
    return [c["event"] for c in probe.calls("schedule") if c["event"]["resources"][0].endswith(f"/{name}")]


def test_registered_schedule_fires_every_interval(scheduler: Scheduler) -> None:
    # Given a schedule every 0.2 s
    scheduler.register(Schedule("probe-every-200ms", "probe", interval_s=0.2, module=PROBE, detail={"k": "v"}))
    # When a second passes
    deadline = time.monotonic() + 3
    while len(_ticks("probe-every-200ms")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.unregister("probe-every-200ms")
    # Then it fired repeatedly with the scheduled-event shape
    ticks = _ticks("probe-every-200ms")
    assert len(ticks) >= 3
    event = ticks[0]
    EventBridgeModel.model_validate(event)
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["version"] == "0"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/probe-every-200ms"]
    assert event["detail"] == {"k": "v"}
    assert len({t["id"] for t in ticks}) == len(ticks)


def test_tick_now_invokes_synchronously(local_stack: LocalStack) -> None:
    # Given a schedule on the running stack that would not fire for an hour
    local_stack.scheduler.register(Schedule("probe-hourly", "probe", interval_s=3600, module=PROBE))
    try:
        # When a test ticks it
        result = local_stack.tick("probe-hourly")
        # Then the function ran at once, in this thread, and its result comes back
        assert result == {"ticked": "arn:aws:events:us-east-1:123456789012:rule/probe-hourly"}
        assert len(_ticks("probe-hourly")) == 1
    finally:
        local_stack.scheduler.unregister("probe-hourly")


def test_tick_now_of_unwritten_function_raises(scheduler: Scheduler) -> None:
    scheduler.register(Schedule("not-yet", "calendar_poll_not_written", interval_s=3600))
    with pytest.raises(FunctionNotFoundError):
        scheduler.tick_now("not-yet")
    with pytest.raises(KeyError):
        scheduler.tick_now("unknown")
