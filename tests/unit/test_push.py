"""shared.busy.push and shared.store.channels against moto, with a fake Google: the rules that the
integration tests (tests/integration/test_google_push.py) cannot provoke easily — which channels
a watch stops, coalescing edges, failures half-way, renewal backoff and bounds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from shared.busy.push import GooglePush, PushSettings, token_hash
from shared.providers.google.calendar import GoogleApiError
from shared.providers.google.channels import WatchedChannel
from shared.queues.busy import SyncQueue
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel

NOW = 1_800_000_000.0
DAY = 24 * 3600


@dataclass
class FakeGoogle:
    """events.watch / channels.stop as the client sees them."""

    now: float = NOW
    watched: list[dict[str, Any]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    watch_error: GoogleApiError | None = None
    stop_error: GoogleApiError | None = None

    def watch(
        self, token: SecretStr, calendar_id: str, *, channel_id: str, address: str, channel_token: SecretStr, ttl_s: int
    ) -> WatchedChannel:
        if self.watch_error is not None:
            raise self.watch_error
        self.watched.append({"id": channel_id, "calendar": calendar_id, "token": channel_token.get_secret_value()})
        return WatchedChannel(
            id=channel_id, resource_id=f"res-{calendar_id}", expiration_ms=int((self.now + ttl_s) * 1000)
        )

    def stop(self, token: SecretStr, *, channel_id: str, resource_id: str) -> bool:
        if self.stop_error is not None:
            raise self.stop_error
        self.stopped.append(channel_id)
        return True


@dataclass
class FakeSqs:
    sent: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("SQS is down")
        self.sent.append(kwargs)
        return {}


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture
def sqs() -> FakeSqs:
    return FakeSqs()


@pytest.fixture
def clock() -> list[float]:
    return [NOW]


@pytest.fixture
def service(store: Store, google: FakeGoogle, sqs: FakeSqs, clock: list[float]) -> GooglePush:
    return GooglePush(
        store,
        config=PushSettings(api_url="https://api.example.test"),
        tokens=lambda mentor: SecretStr("access-token"),
        client=google,  # type: ignore[arg-type]
        queue=SyncQueue(sqs, "https://sqs.example.test/busy-sync"),
        clock=lambda: clock[0],
    )


def connect(store: Store, mentor: str, *, calendar: str = "primary", status: ConnectionStatus | None = None) -> None:
    store.save_connection(
        Connection(
            mentor_id=mentor,
            provider=Provider.GOOGLE,
            status=status or ConnectionStatus.CONNECTED,
            account_id=f"{mentor}@example.com",
            selected_calendar=calendar,
            credential=b"sealed",
        ),
        expected_version=None,
    )


def push_headers(google: FakeGoogle, channel: PushChannel, state: str = "exists") -> dict[str, str | None]:
    token = next(w["token"] for w in google.watched if w["id"] == channel.channel_id)
    return {
        "x-goog-channel-id": channel.channel_id,
        "x-goog-channel-token": token,
        "x-goog-resource-id": channel.resource_id,
        "x-goog-resource-state": state,
    }


# --- settings -----------------------------------------------------------------------------------------


def test_settings_refuse_a_horizon_longer_than_half_the_ttl() -> None:
    with pytest.raises(ValueError, match="at most half"):
        PushSettings(google_channel_ttl_s=3600, google_channel_renew_before_s=2000)
    assert PushSettings(api_url="https://api.example.test/").address == "https://api.example.test/webhooks/google"
    assert PushSettings(google_push_address="https://hooks.example.test/g").address == "https://hooks.example.test/g"


# --- the channel store --------------------------------------------------------------------------------


def _channel(n: int, expiration_ms: int, mentor: str = "m1") -> PushChannel:
    return PushChannel(
        channel_id=f"ch-{n:03d}",
        mentor_id=mentor,
        calendar_id="primary",
        resource_id="res",
        expiration_ms=expiration_ms,
        token_hash=token_hash(f"t{n}"),
        created_ms=n,
    )


def test_expiring_is_strictly_before_the_bound_and_pages(store: Store) -> None:
    channels = ChannelStore(store.table)
    for n in range(7):
        channels.put(_channel(n, 1_000 * (n + 1), mentor=f"m{n}"))
    found = [c.channel_id for c in channels.expiring(4_000, page_size=2)]
    assert found == ["ch-000", "ch-001", "ch-002"]
    # The link items carry no token hash; the channel item does.
    assert channels.for_mentor("m1")[0].token_hash == ""
    assert channels.get("ch-001").token_hash == token_hash("t1")  # type: ignore[union-attr]


def test_push_sync_claims_coalesce_until_shortly_before_the_due_time(store: Store) -> None:
    channels = ChannelStore(store.table)
    channel = _channel(1, 10**13)
    channels.put(channel)
    claim = {"window_ms": 3_000, "margin_ms": 1_000}
    assert channels.claim_push_sync(channel, now_ms=100_000, **claim)  # due 103_000
    assert not channels.claim_push_sync(channel, now_ms=101_999, **claim)  # covered (due ≥ now + 1 s)
    assert channels.claim_push_sync(channel, now_ms=102_000, **claim)  # too close: a new sync
    assert not channels.claim_push_sync(_channel(2, 10**13), now_ms=1, **claim)  # no such channel
    # The due time is kept on the link item (in no index), not on the indexed channel item
    assert "sync_due_ms" not in (store.table.get("CHANNEL#ch-001", "CHANNEL") or {})
    assert store.table.get("MENTOR#m1", "CHANNEL#google#ch-001")["sync_due_ms"] == 105_000  # type: ignore[index]


# --- watch ----------------------------------------------------------------------------------------------


def test_watch_stores_a_hash_and_stops_only_older_channels(
    service: GooglePush, store: Store, google: FakeGoogle
) -> None:
    connect(store, "m1")
    first = service.ensure("m1", replace=True)
    assert first is not None
    (sent,) = google.watched
    assert len(sent["token"]) >= 43  # 256 bits, URL-safe base64
    stored = service.channels.get(first.channel_id)
    assert stored is not None
    assert stored.token_hash == token_hash(sent["token"])
    assert sent["token"] not in json.dumps(store.table.get(f"CHANNEL#{first.channel_id}", "CHANNEL"), default=str)
    # A second connect replaces it: the new one is opened, then the old one stopped
    second = service.ensure("m1", replace=True)
    assert second is not None
    assert google.stopped == [first.channel_id]
    assert [c.channel_id for c in service.channels.for_mentor("m1")] == [second.channel_id]


def test_ensure_keeps_a_live_channel_and_replaces_one_near_expiry(
    service: GooglePush, store: Store, google: FakeGoogle
) -> None:
    connect(store, "m1")
    first = service.ensure("m1", replace=True)
    assert service.ensure("m1", replace=False) == service.channels.for_mentor("m1")[0]
    assert len(google.watched) == 1
    # Within the renewal horizon of its expiry it is replaced
    renewed = service.ensure("m1", replace=False, now_s=NOW + 7 * DAY - DAY + 1)
    assert renewed is not None
    assert first is not None
    assert renewed.channel_id != first.channel_id
    assert google.stopped == [first.channel_id]


def test_a_failed_watch_leaves_nothing_and_is_retried_only_when_worth_it(
    service: GooglePush, store: Store, google: FakeGoogle
) -> None:
    connect(store, "m1")
    google.watch_error = GoogleApiError("Google answered HTTP 400 (push.webhookUrlNotHttps).", status=400)
    assert service.watch("m1", replace=True) is None
    assert service.channels.for_mentor("m1") == []
    assert list(store.table.query("CHANNEL#", index=None)) == []
    assert service.channels.get_retry("m1") is None  # a bad request does not get better by retrying
    google.watch_error = GoogleApiError("Google could not be reached: ConnectTimeout")
    assert service.watch("m1", replace=True) is None
    retry = service.channels.get_retry("m1")
    assert retry is not None
    assert (retry.attempts, retry.due_ms) == (1, int((NOW + 300) * 1000))


def test_a_channel_that_cannot_be_recorded_is_stopped_at_once(
    service: GooglePush, store: Store, google: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(store, "m1")

    def broken(channel: PushChannel) -> None:
        raise RuntimeError("DynamoDB is down")

    monkeypatch.setattr(service.channels, "activate", broken)
    assert service.watch("m1", replace=True) is None
    (sent,) = google.watched
    assert google.stopped == [sent["id"]]
    assert service.channels.for_mentor("m1") == []


def test_stop_all_forgets_channels_even_when_google_fails(
    service: GooglePush, store: Store, google: FakeGoogle
) -> None:
    connect(store, "m1")
    service.ensure("m1", replace=True)
    google.stop_error = GoogleApiError("Google answered HTTP 503.", status=503)
    assert service.stop_all("m1") == 0
    assert service.channels.for_mentor("m1") == []


# --- webhook ---------------------------------------------------------------------------------------------


def test_a_push_whose_sync_cannot_be_queued_fails_and_releases_its_claim(
    service: GooglePush, store: Store, google: FakeGoogle, sqs: FakeSqs
) -> None:
    connect(store, "m1")
    channel = service.ensure("m1", replace=True)
    assert channel is not None
    sqs.fail = True
    with pytest.raises(RuntimeError):
        service.handle_push(push_headers(google, channel))
    # Google retries a 5xx; the retry is not swallowed by the failed attempt's claim
    sqs.fail = False
    assert service.handle_push(push_headers(google, channel)) == {"received": True, "queued": True}
    (sent,) = sqs.sent
    assert sent["DelaySeconds"] == 2  # GOOGLE_PUSH_COALESCE_S default
    assert json.loads(sent["MessageBody"]) == {"mentorId": "m1", "provider": "google", "reason": "push"}


def test_a_push_from_a_calendar_no_longer_selected_is_ignored(
    service: GooglePush, store: Store, google: FakeGoogle, sqs: FakeSqs
) -> None:
    connect(store, "m1")
    channel = service.ensure("m1", replace=True)
    assert channel is not None
    current = store.get_connection("m1", Provider.GOOGLE)
    assert current is not None
    store.update_connection("m1", Provider.GOOGLE, expected_version=current.version, selected_calendar="other")
    assert service.handle_push(push_headers(google, channel)) == {"received": True, "queued": False}
    assert sqs.sent == []


# --- renewal ----------------------------------------------------------------------------------------------


def test_a_failing_renewal_backs_off_then_gives_the_channel_up_to_the_retries(
    service: GooglePush, store: Store, google: FakeGoogle
) -> None:
    connect(store, "m1")
    channel = service.ensure("m1", replace=True)
    assert channel is not None
    expiry_s = channel.expiration_ms / 1000
    google.watch_error = GoogleApiError("Google answered HTTP 503.", status=503)
    # A renewal within the horizon fails: the channel stays, left alone for 5 minutes
    first = service.renew(now_s=expiry_s - 3600, horizon_s=DAY)
    assert (first.failed, first.renewed) == (1, 0)
    held = service.channels.get(channel.channel_id)
    assert held is not None
    assert held.renew_failures == 1
    assert service.renew(now_s=expiry_s - 3600 + 60, horizon_s=DAY).skipped == 1
    # After the backoff it is tried again (and backs off longer)
    again = service.renew(now_s=expiry_s - 3600 + 301, horizon_s=DAY)
    assert again.failed == 1
    assert service.channels.get(channel.channel_id).renew_failures == 2  # type: ignore[union-attr]
    # Once it has expired it is forgotten and the watch becomes a retry
    late = service.renew(now_s=expiry_s + 7200, horizon_s=DAY)
    assert late.failed == 1
    assert service.channels.get(channel.channel_id) is None
    assert service.channels.get_retry("m1") is not None


def test_renewal_handles_at_most_max_mentors_per_run(service: GooglePush, store: Store, google: FakeGoogle) -> None:
    for n in range(3):
        connect(store, f"m{n}")
        service.ensure(f"m{n}", replace=True)
    google.now = NOW + 7 * DAY - 60  # new channels live a week from the run
    report = service.renew(now_s=NOW + 7 * DAY - 60, horizon_s=DAY, max_mentors=2)
    assert (report.renewed, report.skipped) == (2, 1)
    rest = service.renew(now_s=NOW + 7 * DAY - 60, horizon_s=DAY, max_mentors=2)
    assert rest.renewed == 1


def test_renewal_drops_channels_of_disconnected_mentors(service: GooglePush, store: Store) -> None:
    connect(store, "m1")
    channel = service.ensure("m1", replace=True)
    assert channel is not None
    store.delete_connection("m1", Provider.GOOGLE)
    report = service.renew(now_s=NOW + 7 * DAY - 60, horizon_s=DAY)
    assert report.removed == 1
    assert service.channels.get(channel.channel_id) is None
    assert list(store.table.query("MENTOR#m1")) == []
