"""Push-first Google sync (shared.busy.push_first, shared.busy.poll) against moto: which Google
connections the scheduled fan-out skips, when the safety resync runs, and every way a channel stops
covering its connection. End to end (emulator, webhook, worker): tests/e2e/test_push_first_e2e.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from google_push_support import FakeGoogleChannels
from pydantic import SecretStr

from devstack.metering import count_calls
from shared.busy.poll import fan_out, poll
from shared.busy.push import GooglePush, PushSettings
from shared.busy.push_first import (
    SYNC_FAILED_ATTR,
    Decision,
    PushFirst,
    push_first_outcome,
)
from shared.platform import aws
from shared.queues.busy import SyncJob, SyncQueue
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel, WatchRetry
from shared.store.repository import connection_sk, mentor_pk

NOW = 1_800_000_000.0
HOUR = 3600.0
DAY = 24 * HOUR


class RecordingQueue:
    def __init__(self) -> None:
        self.jobs: list[SyncJob] = []

    def send_many(self, jobs: list[SyncJob]) -> int:
        self.jobs.extend(jobs)
        return len(jobs)


def _connect(store: Store, mentor: str, provider: Provider = Provider.GOOGLE, calendar: str = "primary") -> None:
    store.save_connection(
        Connection(
            mentor_id=mentor,
            provider=provider,
            status=ConnectionStatus.CONNECTED,
            credential=b"sealed",
            account_id=f"{mentor}@example.com",
            selected_calendar=calendar if provider is Provider.GOOGLE else None,
        ),
        expected_version=None,
    )


def _channel(
    store: Store,
    mentor: str,
    *,
    calendar: str = "primary",
    confirmed: bool = True,
    ttl_s: float = 7 * DAY,
    channel_id: str | None = None,
) -> PushChannel:
    channels = ChannelStore(store.table)
    channel = PushChannel(
        channel_id=channel_id or f"ch-{mentor}",
        mentor_id=mentor,
        calendar_id=calendar,
        resource_id="",
        expiration_ms=int((NOW + ttl_s) * 1000),
        token_hash="0" * 64,
        account_id=f"{mentor}@example.com",
        created_ms=int(NOW * 1000),
    )
    channels.put(channel)
    active = replace(channel, resource_id=f"res-{mentor}")
    channels.activate(active)
    if confirmed:
        assert channels.confirm(channel.channel_id, now_ms=int(NOW * 1000))
    return active


def _index_item(store: Store, mentor: str) -> dict[str, Any]:
    item = store.table.get(mentor_pk(mentor), connection_sk("google"))
    assert item is not None
    return item


@pytest.fixture
def clock() -> list[float]:
    return [NOW]


@pytest.fixture
def rule(store: Store, clock: list[float]) -> PushFirst:
    return PushFirst(store.table, safety_resync_s=6 * HOUR, live_margin_s=900, clock=lambda: clock[0])


def _decide(rule: PushFirst, store: Store, mentor: str) -> Decision:
    return rule.decide(rule.coverage(), _index_item(store, mentor))


def test_a_healthy_channel_skips_polls_and_resyncs_after_creation_then_every_six_hours(
    store: Store, rule: PushFirst, clock: list[float]
) -> None:
    _connect(store, "m1")
    _channel(store, "m1")
    # The first poll after a new channel resyncs once (changes made before the channel went live)
    assert _decide(rule, store, "m1") is Decision.RESYNC
    # Then an idle hour of polls sends nothing, and so does the rest of the 6 hours
    for n in range(1, 72):
        clock[0] = NOW + n * 300
        assert _decide(rule, store, "m1") is Decision.SKIP, n
    # Six hours after the first resync, exactly one more
    clock[0] = NOW + 6 * HOUR
    assert _decide(rule, store, "m1") is Decision.RESYNC
    assert _decide(rule, store, "m1") is Decision.SKIP


def test_two_overlapping_polls_queue_the_due_resync_once(store: Store, rule: PushFirst) -> None:
    _connect(store, "m1")
    _channel(store, "m1")
    first, second = rule.coverage(), rule.coverage()  # both read the channel while it was due
    item = _index_item(store, "m1")
    assert [rule.decide(first, item), rule.decide(second, item)] == [Decision.RESYNC, Decision.SKIP]


BROKEN = ("unconfirmed", "expiring", "renewal_failed", "watch_retry", "other_calendar", "other_account", "sync_failed")


def test_a_channel_that_stopped_covering_puts_the_connection_back_on_the_poll(store: Store, rule: PushFirst) -> None:
    # Given one mentor per way a channel stops covering, and one whose channel is fine
    channels = ChannelStore(store.table)
    for broken in (*BROKEN, "healthy"):
        _connect(store, broken)
        channel = _channel(
            store,
            broken,
            confirmed=broken != "unconfirmed",  # Google's handshake never reached the webhook
            ttl_s=600 if broken == "expiring" else 7 * DAY,  # expires within the 15-minute margin
            calendar="work@example.com" if broken == "other_calendar" else "primary",
        )
        if broken == "renewal_failed":
            channels.hold_renewal(channel.channel_id, until_s=NOW + 300, failures=1)
        if broken == "watch_retry":
            channels.put_retry(WatchRetry(mentor_id=broken, attempts=1, due_ms=int((NOW + 300) * 1000)))
        if broken == "other_account":
            store.table.update(
                mentor_pk(broken), connection_sk("google"), expression="SET account_id = :a", values={":a": "b@x.test"}
            )
        if broken == "sync_failed":
            conn = store.get_connection(broken, Provider.GOOGLE)
            assert conn is not None
            push_first_outcome(store.table, conn, failed=True, was_failing=False, now=datetime.fromtimestamp(NOW, UTC))
            assert SYNC_FAILED_ATTR in _index_item(store, broken)
    # Then every broken one is polled; the healthy one is covered (its first resync)
    coverage = rule.coverage()
    decided = {m: rule.decide(coverage, _index_item(store, m)) for m in (*BROKEN, "healthy")}
    assert decided == {**dict.fromkeys(BROKEN, Decision.POLL), "healthy": Decision.RESYNC}
    assert coverage.counts == {"poll": len(BROKEN), "resync": 1}


def test_a_failed_sync_keeps_polling_until_a_sync_succeeds(store: Store, rule: PushFirst) -> None:
    _connect(store, "m1")
    _channel(store, "m1")
    assert _decide(rule, store, "m1") is Decision.RESYNC
    conn = store.get_connection("m1", Provider.GOOGLE)
    assert conn is not None
    at = datetime.fromtimestamp(NOW, UTC)
    push_first_outcome(store.table, conn, failed=True, was_failing=False, now=at)
    assert _decide(rule, store, "m1") is Decision.POLL
    assert _decide(rule, store, "m1") is Decision.POLL
    # A success after the failure lifts the flag: push covers it again
    push_first_outcome(store.table, conn, failed=False, was_failing=True, now=at)
    assert SYNC_FAILED_ATTR not in _index_item(store, "m1")
    assert _decide(rule, store, "m1") is Decision.SKIP
    # A success with nothing failing before writes nothing; Apple never does
    with count_calls(aws.client("dynamodb")) as calls:
        push_first_outcome(store.table, conn, failed=False, was_failing=False, now=at)
        push_first_outcome(
            store.table, conn.model_copy(update={"provider": Provider.APPLE}), failed=True, was_failing=True, now=at
        )
    assert calls.total == 0
    # A connection gone meanwhile is not an error
    push_first_outcome(
        store.table, conn.model_copy(update={"mentor_id": "gone"}), failed=True, was_failing=False, now=at
    )
    assert store.get_connection("gone", Provider.GOOGLE) is None


def test_fan_out_skips_covered_google_connections_without_a_read_per_connection(
    store: Store, rule: PushFirst, clock: list[float]
) -> None:
    # Given 30 Google connections, 20 with a healthy channel (already resynced), and 5 Apple ones
    for n in range(30):
        _connect(store, f"g{n:02d}")
        if n < 20:
            _channel(store, f"g{n:02d}")
    for n in range(5):
        _connect(store, f"a{n}", Provider.APPLE)
    fan_out(store.table, RecordingQueue(), push_first=rule)  # type: ignore[arg-type]  # the first resyncs
    clock[0] = NOW + 300
    queue = RecordingQueue()
    with count_calls(aws.client("dynamodb")) as calls:
        queued = fan_out(store.table, queue, push_first=rule, page_size=7)  # type: ignore[arg-type]
    # Then only the uncovered Google connections and every Apple one are queued
    assert queued == {"apple": 5, "google": 10, "microsoft": 0}
    assert {j.mentor_id for j in queue.jobs if j.provider is Provider.GOOGLE} == {f"g{n:02d}" for n in range(20, 30)}
    # And that cost Queries only: the index pages, the live channels, the retries
    assert set(calls.calls) == {"Query"}
    assert calls.calls["Query"] <= 35 // 7 + 3 + 2
    # And a poller that may hold only 5 channels polls the connections of the others
    capped = PushFirst(store.table, safety_resync_s=6 * HOUR, clock=lambda: clock[0], max_channels=5)
    assert fan_out(store.table, RecordingQueue(), push_first=capped)["google"] == 25  # type: ignore[arg-type]


def test_poll_reports_push_first_and_a_zero_resync_interval_polls_everyone(store: Store, clock: list[float]) -> None:
    _connect(store, "m1")
    _channel(store, "m1")
    on = PushFirst(store.table, safety_resync_s=6 * HOUR, clock=lambda: clock[0])
    assert poll(store.table, RecordingQueue(), tasks=(), push_first=on).push_first == {  # type: ignore[arg-type]
        "google_poll": 0,
        "google_skip": 0,
        "google_resync": 1,
        "microsoft_poll": 0,
        "microsoft_skip": 0,
        "microsoft_resync": 0,
    }
    result = poll(store.table, RecordingQueue(), tasks=(), push_first=on)  # type: ignore[arg-type]
    assert (result.queued, result.push_first["google_skip"]) == ({"apple": 0, "google": 0, "microsoft": 0}, 1)
    off = PushFirst(store.table, safety_resync_s=0, clock=lambda: clock[0])
    result = poll(store.table, RecordingQueue(), tasks=(), push_first=off)  # type: ignore[arg-type]
    assert (result.queued, result.push_first) == ({"apple": 0, "google": 1, "microsoft": 0}, {})


def test_when_the_channels_cannot_be_read_every_connection_is_polled(store: Store, clock: list[float]) -> None:
    _connect(store, "m1")
    _channel(store, "m1")

    class Broken(PushFirst):
        def coverage(self) -> Any:
            raise RuntimeError("DynamoDB throttled")

    result = poll(store.table, RecordingQueue(), tasks=(), push_first=Broken(store.table))  # type: ignore[arg-type]
    assert result.queued == {"apple": 0, "google": 1, "microsoft": 0}


def test_a_channel_covers_only_after_its_handshake_and_a_renewed_one_resyncs_again(
    store: Store, rule: PushFirst, clock: list[float]
) -> None:
    google = FakeGoogleChannels(clock)
    sent: list[Any] = []

    class Sqs:
        def send_message(self, **kwargs: Any) -> dict[str, Any]:
            sent.append(kwargs)
            return {}

    service = GooglePush(
        store,
        config=PushSettings(api_url="https://api.example.test"),
        tokens=lambda mentor: SecretStr("access-token"),
        client=google,  # type: ignore[arg-type]
        queue=SyncQueue(Sqs(), "https://sqs.example.test/busy-sync"),
        clock=lambda: clock[0],
    )

    def handshake(channel: PushChannel) -> None:
        headers = {
            "x-goog-channel-id": channel.channel_id,
            "x-goog-channel-token": google.tokens[channel.channel_id],
            "x-goog-resource-id": channel.resource_id,
            "x-goog-resource-state": "sync",
        }
        assert service.handle_push(headers) == {"received": True, "queued": False}

    _connect(store, "m1")
    channel = service.ensure("m1", replace=True)
    assert channel is not None
    # Google's handshake has not reached the webhook yet: the connection is still polled
    assert _decide(rule, store, "m1") is Decision.POLL
    handshake(channel)
    handshake(channel)  # a repeated handshake changes nothing
    assert _decide(rule, store, "m1") is Decision.RESYNC
    assert _decide(rule, store, "m1") is Decision.SKIP
    assert sent == []  # handshakes queue no sync
    # When the renewal replaces the channel (a day before expiry), the old one is gone and the new one
    # covers only after its own handshake — then its first poll resyncs
    clock[0] = channel.expiration_ms / 1000 - 3600
    assert service.renew(now_s=clock[0], horizon_s=DAY).renewed == 1
    assert google.stopped == [channel.channel_id]
    (renewed,) = service.channels.for_mentor("m1")
    assert _decide(rule, store, "m1") is Decision.POLL
    handshake(renewed)
    assert _decide(rule, store, "m1") is Decision.RESYNC
    assert _decide(rule, store, "m1") is Decision.SKIP
