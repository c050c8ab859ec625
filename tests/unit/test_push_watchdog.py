"""What the safety resync catches (shared.busy.push_watchdog) against moto: the scheduled fan-out
queues a push-covered connection's safety resync as ``RESYNC``; the ``busy_sync`` worker compares
what it read with the stored busy set, flags a channel that missed a change, and the poll and the
renewal act on the flag. End to end (emulator, webhook, worker): tests/e2e/test_push_first_e2e.py."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google_push_support import FakeGoogleChannels
from pydantic import SecretStr

from devstack.metering import count_calls
from shared.busy.poll import fan_out, poll
from shared.busy.push import GooglePush, PushSettings
from shared.busy.push_first import Decision, PushFirst
from shared.busy.push_watchdog import QUIET_S, MissedPushCheck
from shared.busy.sync import BusySync
from shared.platform import aws
from shared.providers.google.calendar import BusySpan
from shared.queues.busy import SyncJob, SyncQueue, SyncReason
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.busy import Block, BusyStore
from shared.store.channels import ChannelStore, PushChannel
from shared.store.repository import connection_sk, mentor_pk

NOW = 1_800_000_000.0
HOUR = 3600.0
DAY = 24 * HOUR
WARNING = "push channel missed a change; back to polling and renewing"


class RecordingQueue:
    def __init__(self) -> None:
        self.jobs: list[SyncJob] = []

    def send_many(self, jobs: list[SyncJob]) -> int:
        self.jobs.extend(jobs)
        return len(jobs)


class FakeCalendar:
    """freeBusy over a list of busy intervals (cut to the asked window, as Google does)."""

    def __init__(self) -> None:
        self.busy: list[tuple[datetime, datetime]] = []

    def free_busy(self, token: Any, calendar_id: str, start: datetime, end: datetime) -> list[BusySpan]:
        return [BusySpan(max(s, start), min(e, end)) for s, e in self.busy if e > start and s < end]


class Mentor:
    """One Google connection with a confirmed channel, the poll rule and the worker over one clock."""

    def __init__(self, store: Store, mentor_id: str = "m1") -> None:
        self.store, self.mentor_id = store, mentor_id
        self.clock = [NOW]
        self.calendar = FakeCalendar()
        self.channels = ChannelStore(store.table)
        self.rule = PushFirst(store.table, safety_resync_s=6 * HOUR, clock=lambda: self.clock[0])
        store.save_connection(
            Connection(
                mentor_id=mentor_id,
                provider=Provider.GOOGLE,
                status=ConnectionStatus.CONNECTED,
                credential=b"sealed",
                account_id=f"{mentor_id}@example.com",
                selected_calendar="primary",
                connected_at=self.at(-HOUR),
            ),
            expected_version=None,
        )
        self.channel = self._channel()
        self.check = MissedPushCheck(BusyStore(store.table), self.channels)
        self.worker = BusySync(
            store=store,
            busy=BusyStore(store.table),
            tokens=lambda mentor, provider, reject=None: SecretStr("access-token"),
            google=lambda: self.calendar,
            open_credential=lambda *_: pytest.fail("no Apple here"),
            apple_url="http://127.0.0.1:9",
            on_reconnect=lambda *_: None,
            missed_push=self.check,
            min_interval=timedelta(0),
            clock=lambda: datetime.fromtimestamp(self.clock[0], UTC),
        )

    def at(self, offset_s: float) -> datetime:
        return datetime.fromtimestamp(self.clock[0] + offset_s, UTC).replace(microsecond=0)

    def _channel(self) -> PushChannel:
        channel = PushChannel(
            channel_id=f"ch-{self.mentor_id}",
            mentor_id=self.mentor_id,
            calendar_id="primary",
            resource_id="",
            expiration_ms=int((NOW + 7 * DAY) * 1000),
            token_hash="0" * 64,
            account_id=f"{self.mentor_id}@example.com",
            created_ms=int(NOW * 1000),
        )
        self.channels.put(channel)
        active = replace(channel, resource_id=f"res-{self.mentor_id}")
        self.channels.activate(active)
        assert self.channels.confirm(channel.channel_id, now_ms=int(NOW * 1000))
        return active

    def poll_jobs(self) -> list[SyncJob]:
        queue = RecordingQueue()
        fan_out(self.store.table, queue, providers=[Provider.GOOGLE], push_first=self.rule)  # type: ignore[arg-type]
        return queue.jobs

    def decide(self) -> Decision:
        item = self.store.table.get(mentor_pk(self.mentor_id), connection_sk("google"))
        assert item is not None
        return self.rule.decide(self.rule.coverage(), item)

    def to_periodic_resync(self) -> SyncJob:
        """The first resync after the new channel (not checked), then six hours of push: the next resync."""
        self.calendar.busy = [(self.at(DAY), self.at(DAY + HOUR)), (self.at(3 * DAY), self.at(3 * DAY + HOUR))]
        (first,) = self.poll_jobs()
        assert (first.reason, first.channel) == (SyncReason.RESYNC, None)
        assert self.worker.handle(first) == "synced:2"
        self.clock[0] += 6 * HOUR
        (job,) = self.poll_jobs()
        assert (job.reason, job.channel) == (SyncReason.RESYNC, self.channel.channel_id)
        return job

    def stored(self) -> tuple[Block, ...]:
        return BusyStore(self.store.table).read(self.mentor_id)[Provider.GOOGLE].blocks

    def channel_item(self) -> dict[str, Any]:
        item = self.store.table.get(f"CHANNEL#{self.channel.channel_id}", "CHANNEL")
        assert item is not None
        return item


def _warnings(logs: io.StringIO) -> list[dict[str, Any]]:
    found = []
    for line in logs.getvalue().splitlines():
        if WARNING in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.fixture
def ada(store: Store) -> Mentor:
    return Mentor(store)


def test_the_fan_out_queues_resyncs_as_resync_and_names_the_channel_after_the_first(ada: Mentor) -> None:
    ada.to_periodic_resync()
    # Between resyncs, nothing; a connection without a channel is polled as before (SCHEDULE)
    assert ada.poll_jobs() == []
    ada.channels.delete(ada.channel)
    (job,) = ada.poll_jobs()
    assert (job.reason, job.channel) == (SyncReason.SCHEDULE, None)
    assert json.loads(job.body()) == {"mentorId": "m1", "provider": "google", "reason": "schedule"}


def test_a_resync_that_finds_nothing_new_leaves_the_channel_alone_for_one_extra_query(
    ada: Mentor, captured_logs: io.StringIO
) -> None:
    job = ada.to_periodic_resync()
    before = ada.channel_item()
    # When the resync reads the same busy times: the window slid six hours, so a block that ended since
    # the last sync is gone and one entered its far end — no change in the part both windows hold
    ada.calendar.busy += [(ada.at(-3 * HOUR), ada.at(-2 * HOUR)), (ada.at(60 * DAY - HOUR), ada.at(60 * DAY))]
    with count_calls(aws.client("dynamodb")) as checked:
        assert ada.worker.handle(job) == "synced:3"
    ada.clock[0] += 1
    # (a plain sync that also stores changed blocks, so both write the same way: the store's one-write
    # refresh of an unchanged set would otherwise make the plain one cheaper)
    ada.calendar.busy += [(ada.at(30 * DAY), ada.at(30 * DAY + HOUR))]
    with count_calls(aws.client("dynamodb")) as plain:
        assert ada.worker.handle(job.model_copy(update={"reason": SyncReason.SCHEDULE, "channel": None})) == "synced:4"
    # Then the channel is untouched, push-first still skips, and the check cost exactly one Query
    assert ada.channel_item() == before
    assert ada.decide() is Decision.SKIP
    assert ada.poll_jobs() == []
    extra = {k: checked.calls.get(k, 0) - plain.calls.get(k, 0) for k in set(checked.calls) | set(plain.calls)}
    assert {k: v for k, v in extra.items() if v} == {"Query": 1}
    assert _warnings(captured_logs) == []


def test_a_resync_that_finds_a_change_no_push_brought_flags_the_channel_polls_and_renews_it(
    ada: Mentor, store: Store, captured_logs: io.StringIO
) -> None:
    job = ada.to_periodic_resync()
    # Given an event Google never pushed (the channel was dropped on Google's side)
    new = (ada.at(2 * DAY), ada.at(2 * DAY + HOUR))
    ada.calendar.busy.append(new)
    # When the safety resync runs
    with count_calls(aws.client("dynamodb")) as calls:
        assert ada.worker.handle(job) == "synced:3"
    # Then the change is stored, the channel is flagged, with one warning naming the channel only
    assert Block(*new) in ada.stored()
    assert ada.channel_item()["suspect_ms"] == int(ada.clock[0] * 1000)
    (warning,) = _warnings(captured_logs)
    assert warning["channel_id"] == ada.channel.channel_id
    assert warning["level"] == "WARNING"
    assert "m1" not in json.dumps({k: v for k, v in warning.items() if k != "channel_id"})
    assert calls.calls.get("TransactWriteItems", 0) == 1
    # And the very next poll polls the connection (no extra read for it)
    ada.clock[0] += 300
    result = poll(store.table, RecordingQueue(), tasks=(), push_first=ada.rule)  # type: ignore[arg-type]
    assert (result.queued["google"], result.push_first["google_poll"]) == (1, 1)
    # And the renewal pass (that same poll's maintenance) replaces the channel at once, days before expiry
    google = FakeGoogleChannels(ada.clock)
    push = GooglePush(
        store,
        config=PushSettings(api_url="https://api.example.test"),
        tokens=lambda mentor: SecretStr("access-token"),
        client=google,  # type: ignore[arg-type]
        queue=SyncQueue(object(), "https://sqs.example.test/busy-sync"),
        clock=lambda: ada.clock[0],
    )
    report = push.renew(now_s=ada.clock[0], horizon_s=DAY)
    assert (report.renewed, google.stopped) == (1, [ada.channel.channel_id])
    (renewed,) = ada.channels.for_mentor("m1")
    assert renewed.channel_id != ada.channel.channel_id
    assert ada.decide() is Decision.POLL  # until Google's handshake confirms the new channel
    headers = {
        "x-goog-channel-id": renewed.channel_id,
        "x-goog-channel-token": google.tokens[renewed.channel_id],
        "x-goog-resource-id": renewed.resource_id,
        "x-goog-resource-state": "sync",
    }
    assert push.handle_push(headers)["received"]
    # Then push-first covers it again: its first resync (not checked), then skips
    (first,) = ada.poll_jobs()
    assert (first.reason, first.channel) == (SyncReason.RESYNC, None)
    assert ada.poll_jobs() == []


@pytest.mark.parametrize(("push_before_s", "flagged"), [(1, False), (QUIET_S - 5, False), (QUIET_S + 60, True)])
def test_a_change_whose_push_is_in_flight_is_not_a_missed_push(
    ada: Mentor, push_before_s: float, flagged: bool
) -> None:
    job = ada.to_periodic_resync()
    # Given a push that queued its sync (due 2 s after it) push_before_s before the resync started
    pushed_ms = int((ada.clock[0] - push_before_s) * 1000)
    (link,) = ada.channels.for_mentor("m1")
    assert ada.channels.claim_push_sync(link, now_ms=pushed_ms, window_ms=2000, margin_ms=1000)
    # When the resync sees the change before that push sync stored it
    ada.calendar.busy.append((ada.at(2 * DAY), ada.at(2 * DAY + HOUR)))
    assert ada.worker.handle(job) == "synced:3"
    # Then a recent push keeps the channel; an old one does not explain the change
    assert bool(ada.channel_item().get("suspect_ms")) is flagged
    assert ada.decide() is (Decision.POLL if flagged else Decision.SKIP)


def test_a_stored_set_whose_last_attempt_failed_is_not_evidence(ada: Mentor) -> None:
    job = ada.to_periodic_resync()
    # Given a push sync of a change that failed (the old blocks stay, the head records the error)
    BusyStore(ada.store.table).record_attempt("m1", Provider.GOOGLE, error="unavailable")
    ada.calendar.busy.append((ada.at(2 * DAY), ada.at(2 * DAY + HOUR)))
    # When the resync brings that change: the push did arrive, its sync failed — no flag
    assert ada.worker.handle(job) == "synced:3"
    assert "suspect_ms" not in ada.channel_item()


def test_the_first_resync_of_a_new_channel_is_not_checked(ada: Mentor) -> None:
    # Given a change made before the channel covered the connection (the stored set is older)
    ada.calendar.busy = [(ada.at(2 * HOUR), ada.at(3 * HOUR))]
    assert ada.worker.handle(SyncJob(mentor_id="m1", provider=Provider.GOOGLE, reason=SyncReason.CONNECT)) == "synced:1"
    ada.calendar.busy.append((ada.at(DAY), ada.at(DAY + HOUR)))
    ada.clock[0] += 60
    (first,) = ada.poll_jobs()
    # When its first resync brings it: expected, no flag
    assert (first.reason, first.channel) == (SyncReason.RESYNC, None)
    assert ada.worker.handle(first) == "synced:2"
    assert "suspect_ms" not in ada.channel_item()
    assert ada.decide() is Decision.SKIP


def test_a_failing_flag_write_does_not_fail_the_sync(
    ada: Mentor, monkeypatch: pytest.MonkeyPatch, captured_logs: io.StringIO
) -> None:
    job = ada.to_periodic_resync()
    ada.calendar.busy.append((ada.at(2 * DAY), ada.at(2 * DAY + HOUR)))

    def throttled(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("ProvisionedThroughputExceeded")

    monkeypatch.setattr(ChannelStore, "flag_suspect", throttled)
    # When the flag cannot be written, the sync still stores the new busy set
    assert ada.worker.handle(job) == "synced:3"
    assert len(ada.stored()) == 3
    assert "missed-push check failed; the sync goes on" in captured_logs.getvalue()
    # And a check whose read fails is just as harmless
    monkeypatch.setattr(BusyStore, "read", throttled)
    ada.clock[0] += 1
    assert ada.worker.handle(job) == "synced:3"
