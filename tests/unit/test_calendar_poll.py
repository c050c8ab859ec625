"""calendar_poll (shared.busy.poll + functions/calendar_poll): one message per calendar connection from a
paged read of the sparse sync index, maintenance tasks that cannot break the poll, a small cold start."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta

import pytest

from devstack.metering import count_calls
from devstack.routes import LambdaContext
from devstack.scheduler import scheduled_event
from shared import wiring
from shared.busy.poll import MaintenanceTask, fan_out, poll, run_maintenance
from shared.platform import aws
from shared.providers.google.calendar import RateLimiter, split_window
from shared.queues.busy import SyncJob, SyncQueue, SyncReason
from shared.store import Connection, ConnectionStatus, Provider, Store


class RecordingQueue:
    """Stands in for SyncQueue: remembers every job."""

    def __init__(self) -> None:
        self.jobs: list[SyncJob] = []

    def send_many(self, jobs: list[SyncJob]) -> int:
        self.jobs.extend(jobs)
        return len(jobs)


def _connect(
    store: Store, mentor: str, provider: Provider, status: ConnectionStatus = ConnectionStatus.CONNECTED
) -> None:
    store.save_connection(
        Connection(mentor_id=mentor, provider=provider, status=status, credential=b"x", account_id=f"{mentor}-acct"),
        expected_version=None,
    )


@pytest.fixture
def connections(store: Store) -> dict[Provider, set[str]]:
    """25 Google and 7 Apple calendar connections that sync, plus ones that must not be polled."""
    for n in range(25):
        _connect(store, f"g-{n:02d}", Provider.GOOGLE)
    for n in range(7):
        _connect(store, f"a-{n:02d}", Provider.APPLE)
    _connect(store, "zoom-only", Provider.ZOOM)
    _connect(store, "g-stale", Provider.GOOGLE, ConnectionStatus.NEEDS_RECONNECT)
    _connect(store, "a-revoked", Provider.APPLE)
    store.mark_needs_reconnect("a-revoked", Provider.APPLE, "apple_auth_failed")
    return {Provider.GOOGLE: {f"g-{n:02d}" for n in range(25)}, Provider.APPLE: {f"a-{n:02d}" for n in range(7)}}


def test_fan_out_queues_one_scheduled_sync_per_calendar_connection_paged(
    store: Store, connections: dict[Provider, set[str]]
) -> None:
    # Given the sync index, read four connections per page
    queue = RecordingQueue()
    with count_calls(aws.client("dynamodb")) as calls:
        queued = fan_out(store.table, queue, page_size=4)  # type: ignore[arg-type]
    # Then one scheduled job per connected Google / Apple connection, and nothing else
    assert queued == {"apple": 7, "google": 25, "microsoft": 0}
    found = {p: {j.mentor_id for j in queue.jobs if j.provider is p} for p in (Provider.GOOGLE, Provider.APPLE)}
    assert found == connections
    assert len(queue.jobs) == 32
    assert {j.reason for j in queue.jobs} == {SyncReason.SCHEDULE}
    # And the index was read in pages (Query only: no Scan, no per-connection reads)
    assert set(calls.calls) == {"Query"}
    assert calls.calls["Query"] >= 32 // 4


def test_poll_sends_to_sqs_in_batches_and_reports(store: Store, connections: dict[Provider, set[str]]) -> None:
    # Given the busy-sync queue
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="busy-sync-test")["QueueUrl"]
    ran: list[str] = []

    def task() -> dict[str, int]:
        ran.append("ok")
        return {"renewed": 0}

    tasks = (MaintenanceTask("boom", lambda: 1 / 0), MaintenanceTask("ok", task))
    # When one poll runs
    with count_calls(sqs) as calls:
        result = poll(store.table, SyncQueue(sqs, url), tasks=tasks)
    # Then 32 messages were sent ten at a time, the failing task did not stop the other one
    assert result.total == 32
    assert calls.calls["SendMessageBatch"] == 4  # 25 → 3 batches, 7 → 1 batch
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "32"
    body = json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    assert body["reason"] == "schedule"
    assert body["provider"] in ("google", "apple")
    assert result.maintenance["boom"] == "failed: ZeroDivisionError"
    assert result.maintenance["ok"].startswith("ok")
    assert ran == ["ok"]


def test_the_handler_answers_the_scheduled_event(
    store: Store, connections: dict[Provider, set[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function's environment (queue URL) and no maintenance to do
    sqs = aws.client("sqs")
    monkeypatch.setenv("BUSY_SYNC_QUEUE_URL", sqs.create_queue(QueueName="busy-sync-handler")["QueueUrl"])

    wiring.reset()
    monkeypatch.setattr(wiring, "maintenance_tasks", tuple)
    from devstack.routes import SCHEDULES
    from functions.calendar_poll.handler import lambda_handler

    (schedule,) = [s for s in SCHEDULES if s.function == "calendar_poll"]
    # When EventBridge fires it
    result = lambda_handler(scheduled_event(schedule), LambdaContext("calendar_poll"))
    wiring.reset()
    # Then it queued every connection
    assert result["total"] == 32
    assert (schedule.name, schedule.interval_s) == ("calendar-poll", 300)


def test_maintenance_tasks_name_the_google_channel_renewal(monkeypatch: pytest.MonkeyPatch) -> None:
    task, sweep, preflight, microsoft = wiring.maintenance_tasks()
    names = (task.name, sweep.name, preflight.name, microsoft.name)
    assert names == (
        "renew_google_channels",
        "expire_seat_holds",
        "preflight_meetings",
        "renew_microsoft_subscriptions",
    )
    # Running it renews, through the Google push service the composition root builds, what expires
    # within GOOGLE_CHANNEL_RENEW_BEFORE_S
    calls: list[tuple[float, float]] = []

    class StubPush:
        config = types.SimpleNamespace(google_channel_renew_before_s=86_400)

        def clock(self) -> float:
            return 1000.0

        def renew(self, *, now_s: float, horizon_s: float) -> str:
            calls.append((now_s, horizon_s))
            return "renewed"

    monkeypatch.setattr(wiring, "google_push", StubPush)
    assert task.run() == "renewed"
    assert calls == [(1000.0, 86_400.0)]
    assert run_maintenance(()) == {}


def test_the_poller_cold_start_imports_no_provider_or_payment_library() -> None:
    # When the handler module is imported in a fresh interpreter
    heavy = "{'caldav', 'icalendar', 'stripe', 'lxml', 'authlib', 'niquests'}"
    loaded = "{m.split('.')[0] for m in sys.modules}"
    code = f"import sys, functions.calendar_poll.handler; print(sorted({loaded} & {heavy}))"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    # Then none of the heavy libraries were loaded
    assert out.stdout.strip() == "[]"


def test_split_window_covers_the_window_in_bounded_pieces() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pieces = split_window(start, start + timedelta(days=150), timedelta(days=60))
    assert [(b - a).days for a, b in pieces] == [60, 60, 30]
    assert pieces[0][0] == start
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert split_window(start, start) == []


def test_rate_limiter_spaces_calls_to_the_configured_rate() -> None:
    # Given 4 calls per second with a burst of 2, on a fake clock
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(rate=4, burst=2, clock=lambda: now[0], sleep=sleep)
    # When 6 calls come at once
    for _ in range(6):
        limiter.acquire()
    # Then the burst went through, the rest waited a quarter second each: 6 calls in 1 s
    assert slept == pytest.approx([0.25, 0.25, 0.25, 0.25])
    assert now[0] == pytest.approx(1.0)
    assert RateLimiter(rate=0).acquire() == 0.0


def test_the_seat_hold_sweep_runs_with_the_configured_look_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a look-back setting, when the poll's second maintenance task runs
    monkeypatch.setenv("BOOKING_HOLD_SWEEP_LOOKBACK_HOURS", "6")
    wiring.reset()
    seen: list[int] = []

    def sweep(schedule: object, *, lookback_hours: int) -> str:
        seen.append(lookback_hours)
        return "swept"

    monkeypatch.setattr("shared.schedule.holds.sweep", sweep)
    monkeypatch.setattr(wiring, "schedule", object)
    _, task, _, _ = wiring.maintenance_tasks()
    # Then it sweeps the configured hours through the composition root's schedule store
    assert task.run() == "swept"
    assert seen == [6]
    wiring.reset()
