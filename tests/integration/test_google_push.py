"""Google push (PRODUCT.md §2.7) through the local stack: ``events.watch`` channels opened on connect
and on a calendar switch, ``POST /webhooks/google`` verifying channel id / token / resource id and
queueing a sync, renewal before expiry, watch retries, and ``channels.stop`` on disconnect.

The Google emulator is the stack's own (``local_stack.component("google")``); its pusher thread
delivers notifications to ``<API_URL>/webhooks/google`` over real HTTP (http on loopback: the
emulator does not insist on HTTPS unless ``require_https_push`` is set). Syncs the webhook queues
are recorded by a stand-in queue (the real busy-sync queue is consumed by the stack's worker).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import flows
from devstack.emulators import GoogleEmulator
from devstack.providers import GoogleProvider
from devstack.stack import LocalStack
from shared import wiring
from shared.busy import push
from shared.busy.push import renew_expiring_channels, token_hash
from shared.queues.busy import SyncQueue
from shared.store import ConnectionStatus, Store, Table
from shared.store.channels import ChannelStore, PushChannel

PATH = "/webhooks/google"
REPO = Path(__file__).resolve().parents[2]


# --- fixtures -----------------------------------------------------------------------------------------


@dataclass
class _RecordingSqs:
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"MessageId": str(uuid.uuid4())}


class RecordingQueue(SyncQueue):
    """The busy-sync queue, recorded instead of sent."""

    def __init__(self) -> None:
        super().__init__(_RecordingSqs(), "https://sqs.local/busy-sync")

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return [{**json.loads(m["MessageBody"]), "delay": m.get("DelaySeconds", 0)} for m in self.sqs.sent]

    def jobs_for(self, mentor: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j["mentorId"] == mentor]


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingQueue]:
    recorder = RecordingQueue()
    monkeypatch.setattr(wiring, "sync_queue", lambda: recorder)
    wiring.google_push.reset()  # the container's push service is built anew over this queue
    yield recorder
    wiring.google_push.reset()


@pytest.fixture
def google(local_stack: LocalStack) -> GoogleEmulator:
    component = local_stack.component("google")
    assert isinstance(component, GoogleProvider)
    return component.emulator


@pytest.fixture
def store(local_stack: LocalStack) -> Store:
    return Store(Table(local_stack.client("dynamodb"), local_stack.aws.table_name))


@pytest.fixture
def channels(store: Store) -> ChannelStore:
    return ChannelStore(store.table)


@pytest.fixture
def push_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``push_env(GOOGLE_CHANNEL_TTL_S="3600", …)`` for the in-process functions (reset afterwards)."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        wiring.reset()

    yield set_env
    monkeypatch.undo()
    wiring.reset()


@pytest.fixture
def no_scheduled_poll(local_stack: LocalStack) -> Iterator[None]:
    """Hold the stack's calendar-poll schedule off: its renewal must not race the test's own."""
    scheduler = local_stack.scheduler
    saved = scheduler.schedules.get("calendar-poll")
    scheduler.unregister("calendar-poll")
    try:
        yield
    finally:
        if saved is not None:
            scheduler.register(saved)


@dataclass
class Mentor:
    id: str
    email: str
    headers: dict[str, str]


@pytest.fixture
def mentor(
    api: httpx.Client, google: GoogleEmulator, mentor_headers: Callable[..., dict[str, str]], queue: RecordingQueue
) -> Mentor:
    """A mentor with a fresh Google account (primary + Teaching + Holidays), not yet connected."""
    mentor_id = f"push-{uuid.uuid4().hex[:10]}"
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    flows.seed_google_account(google, email)
    return Mentor(mentor_id, email, mentor_headers(mentor_id))


def connect(api: httpx.Client, m: Mentor, google: GoogleEmulator) -> None:
    google.set_next_consent(m.email)
    view = flows.connect_oauth(api, m.headers, "google")
    assert view["status"] == "connected", view


def only_channel(channels: ChannelStore, mentor: str) -> PushChannel:
    (channel,) = channels.for_mentor(mentor)
    return channel


def emulator_channel(google: GoogleEmulator, channel_id: str) -> Any:
    with google.state.lock:
        return google.state.channels[channel_id]


def deliveries(google: GoogleEmulator, channel_id: str) -> list[dict[str, Any]]:
    assert google.flush_pushes(10)
    return [d for d in google.push_deliveries() if d["headers"]["X-Goog-Channel-ID"] == channel_id]


def event(summary: str = "Dentist", *, days: int = 2, hours: int = 1) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=hours)
    return {"summary": summary, "start": {"dateTime": start.isoformat()}, "end": {"dateTime": end.isoformat()}}


def headers_for(google: GoogleEmulator, channel_id: str, state: str = "exists", **override: str) -> dict[str, str]:
    ch = emulator_channel(google, channel_id)
    sent = {
        "X-Goog-Channel-ID": ch.id,
        "X-Goog-Channel-Token": ch.token,
        "X-Goog-Resource-ID": ch.resource_id,
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": "99",
    }
    sent.update(override)
    return sent


# --- watch on connect -----------------------------------------------------------------------------------


def test_connect_opens_a_token_authenticated_channel(
    api: httpx.Client, google: GoogleEmulator, local_stack: LocalStack, channels: ChannelStore, mentor: Mentor
) -> None:
    # Given a mentor who connects Google
    connect(api, mentor, google)
    # Then one channel watches the selected (primary) calendar, addressed to our webhook
    channel = only_channel(channels, mentor.id)
    at_google = emulator_channel(google, channel.channel_id)
    assert at_google.address == f"{local_stack.api_url}{PATH}"
    assert at_google.calendar_id == mentor.email
    assert channel.calendar_id == "primary"
    assert channel.resource_id == at_google.resource_id
    assert channel.expiration_ms == at_google.expiration_ms
    assert at_google.params == {"ttl": str(7 * 24 * 3600)}
    # And its token is a ≥128-bit secret of which only the SHA-256 is stored
    assert len(at_google.token) >= 32
    stored = channels.table.get(f"CHANNEL#{channel.channel_id}", "CHANNEL")
    assert stored is not None
    assert stored["token_hash"] == token_hash(at_google.token)
    assert at_google.token not in json.dumps(stored, default=str)
    # And Google's "sync" handshake was acknowledged (the item is written before events.watch)
    assert [
        (d["headers"]["X-Goog-Resource-State"], d.get("status")) for d in deliveries(google, channel.channel_id)
    ] == [("sync", 200)]


def test_a_change_at_google_is_pushed_and_queues_one_sync(
    api: httpx.Client, google: GoogleEmulator, channels: ChannelStore, mentor: Mentor, queue: RecordingQueue
) -> None:
    # Given a connected mentor (the handshake queued nothing)
    connect(api, mentor, google)
    channel = only_channel(channels, mentor.id)
    deliveries(google, channel.channel_id)
    assert queue.jobs_for(mentor.id) == []
    # When the mentor adds an event in Google Calendar
    google.seed_event(mentor.email, event())
    # Then Google's "exists" notification reached the webhook (200) and one push sync was queued
    states = [(d["headers"]["X-Goog-Resource-State"], d.get("status")) for d in deliveries(google, channel.channel_id)]
    assert states == [("sync", 200), ("exists", 200)]
    assert queue.jobs_for(mentor.id) == [
        {"mentorId": mentor.id, "provider": "google", "reason": "push", "delay": 2},
    ]


def test_a_burst_of_changes_is_coalesced_into_one_sync(
    api: httpx.Client, google: GoogleEmulator, channels: ChannelStore, mentor: Mentor, queue: RecordingQueue
) -> None:
    # Given a connected mentor
    connect(api, mentor, google)
    channel = only_channel(channels, mentor.id)
    # When three changes arrive within the coalescing window
    for n in range(3):
        google.seed_event(mentor.email, event(f"Busy {n}", days=3 + n))
    # Then all are acknowledged and one sync, due after the last of them, covers them
    assert [d.get("status") for d in deliveries(google, channel.channel_id)] == [200, 200, 200, 200]
    assert len(queue.jobs_for(mentor.id)) == 1


def test_coalescing_can_be_turned_off(
    api: httpx.Client,
    google: GoogleEmulator,
    channels: ChannelStore,
    mentor: Mentor,
    queue: RecordingQueue,
    push_env: Callable[..., None],
) -> None:
    # Given GOOGLE_PUSH_COALESCE_S=0
    push_env(GOOGLE_PUSH_COALESCE_S="0")
    connect(api, mentor, google)
    channel = only_channel(channels, mentor.id)
    # When two changes arrive / Then two syncs are queued, without delay
    google.seed_event(mentor.email, event("One"))
    google.seed_event(mentor.email, event("Two", days=4))
    deliveries(google, channel.channel_id)
    assert [j["delay"] for j in queue.jobs_for(mentor.id)] == [0, 0]


# --- the webhook refuses what is not Google's -------------------------------------------------------------


def test_forged_or_unknown_notifications_are_refused_and_queue_nothing(
    api: httpx.Client, google: GoogleEmulator, channels: ChannelStore, mentor: Mentor, queue: RecordingQueue
) -> None:
    connect(api, mentor, google)
    channel = only_channel(channels, mentor.id)
    deliveries(google, channel.channel_id)
    # A wrong token, a missing token, or the right token for another resource → 401
    for bad in (
        headers_for(google, channel.channel_id, **{"X-Goog-Channel-Token": "forged-token"}),
        {k: v for k, v in headers_for(google, channel.channel_id).items() if k != "X-Goog-Channel-Token"},
        headers_for(google, channel.channel_id, **{"X-Goog-Resource-ID": "another-resource"}),
    ):
        resp = api.post(PATH, headers=bad)
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "invalid_channel_token"), resp.text
    # An unknown channel (a valid token of another channel does not help) → 404
    unknown = headers_for(google, channel.channel_id, **{"X-Goog-Channel-ID": str(uuid.uuid4())})
    resp = api.post(PATH, headers=unknown)
    assert (resp.status_code, resp.json()["error"]["code"]) == (404, "channel_not_found")
    long_id = headers_for(google, channel.channel_id, **{"X-Goog-Channel-ID": "x" * 5000})
    assert api.post(PATH, headers=long_id).status_code == 404
    # No headers at all → 400
    resp = api.post(PATH)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "invalid_request")
    assert queue.jobs_for(mentor.id) == []


def test_sync_handshake_and_other_states_queue_nothing(
    api: httpx.Client, google: GoogleEmulator, channels: ChannelStore, mentor: Mentor, queue: RecordingQueue
) -> None:
    connect(api, mentor, google)
    channel = only_channel(channels, mentor.id)
    deliveries(google, channel.channel_id)
    for state in ("sync", "unknown-state"):
        resp = api.post(PATH, headers=headers_for(google, channel.channel_id, state))
        assert resp.status_code == 200
        assert resp.json() == {"received": True, "queued": False}
    assert queue.jobs_for(mentor.id) == []
    # While a genuine "exists" does queue (the answer says so)
    resp = api.post(PATH, headers=headers_for(google, channel.channel_id, "exists"))
    assert resp.json() == {"received": True, "queued": True}
    assert len(queue.jobs_for(mentor.id)) == 1


def test_pushes_for_a_connection_needing_reconnect_are_acknowledged_and_ignored(
    api: httpx.Client,
    google: GoogleEmulator,
    store: Store,
    channels: ChannelStore,
    mentor: Mentor,
    queue: RecordingQueue,
) -> None:
    # Given a connected mentor whose token was then revoked (needs_reconnect drops the credential)
    connect(api, mentor, google)
    channel = only_channel(channels, mentor.id)
    assert store.mark_needs_reconnect(mentor.id, "google", "invalid_grant")
    # When Google still pushes a change (nobody could stop the channel without a token)
    google.seed_event(mentor.email, event())
    # Then it is acknowledged (200, Google does not retry) and nothing is queued
    assert [d.get("status") for d in deliveries(google, channel.channel_id)] == [200, 200]
    assert queue.jobs_for(mentor.id) == []
    # And the channel is left to expire
    assert channels.get(channel.channel_id) is not None


# --- calendar switch, renewal, retries, disconnect ---------------------------------------------------------


def test_switching_calendar_watches_the_new_one_and_stops_the_old(
    api: httpx.Client, google: GoogleEmulator, channels: ChannelStore, mentor: Mentor, queue: RecordingQueue
) -> None:
    connect(api, mentor, google)
    old = only_channel(channels, mentor.id)
    teaching = f"teaching-{mentor.email}"
    # When the mentor chooses the Teaching calendar
    resp = api.put("/connections/google/calendar", headers=mentor.headers, json={"calendarId": teaching})
    assert resp.status_code == 200, resp.text
    # Then a channel watches Teaching and the primary calendar's channel is stopped at Google
    new = only_channel(channels, mentor.id)
    assert (new.calendar_id, emulator_channel(google, new.channel_id).calendar_id) == (teaching, teaching)
    assert emulator_channel(google, old.channel_id).stopped
    assert channels.get(old.channel_id) is None
    # And a change on Teaching queues a sync, one on the primary calendar is not even pushed
    google.seed_event(mentor.email, event("Private"))
    google.seed_event(teaching, event("Lesson prep"))
    assert deliveries(google, old.channel_id)[-1]["headers"]["X-Goog-Resource-State"] == "sync"
    assert [d["headers"]["X-Goog-Resource-State"] for d in deliveries(google, new.channel_id)] == ["sync", "exists"]
    assert len(queue.jobs_for(mentor.id)) == 1
    # And choosing the same calendar again keeps the live channel (no new watch)
    again = api.put("/connections/google/calendar", headers=mentor.headers, json={"calendarId": teaching})
    assert again.status_code == 200
    assert only_channel(channels, mentor.id) == new


def test_renewal_opens_a_new_channel_before_stopping_the_expiring_one(
    api: httpx.Client,
    google: GoogleEmulator,
    channels: ChannelStore,
    mentor: Mentor,
    queue: RecordingQueue,
    push_env: Callable[..., None],
    no_scheduled_poll: None,
) -> None:
    # Given a mentor whose channel lives one hour (renewed within 30 minutes of expiry)
    push_env(GOOGLE_CHANNEL_TTL_S="3600", GOOGLE_CHANNEL_RENEW_BEFORE_S="1800")
    connect(api, mentor, google)
    old = only_channel(channels, mentor.id)
    assert old.expiration_ms - time.time() * 1000 < 3601 * 1000
    # When the scheduled renewal runs with a horizon that reaches it
    report = renew_expiring_channels(wiring.google_push(), horizon=timedelta(hours=2))
    # Then a new channel was opened on the same calendar, and only then the old one stopped
    assert report.renewed >= 1
    new = only_channel(channels, mentor.id)
    assert new.channel_id != old.channel_id
    assert new.calendar_id == old.calendar_id
    assert emulator_channel(google, old.channel_id).stopped
    assert not emulator_channel(google, new.channel_id).stopped
    assert channels.get(old.channel_id) is None
    # (found by channel id: the renewal's horizon also reaches channels other tests of this process opened)
    calls = google.requests_log(path_prefix="/calendar/v3")
    watch = next(
        i
        for i, e in enumerate(calls)
        if e["path"].endswith("/events/watch") and (e.get("json") or {}).get("id") == new.channel_id
    )
    stop = next(
        i
        for i, e in enumerate(calls)
        if e["path"] == "/calendar/v3/channels/stop" and (e.get("json") or {}).get("id") == old.channel_id
    )
    assert calls[watch]["path"] == "/calendar/v3/calendars/primary/events/watch"
    assert watch < stop
    # And pushes now arrive on the new channel and still queue syncs
    google.seed_event(mentor.email, event())
    assert [d.get("status") for d in deliveries(google, new.channel_id)] == [200, 200]
    assert len(queue.jobs_for(mentor.id)) == 1
    # And the next run (default horizon: 30 minutes here) leaves the fresh channel alone
    again = renew_expiring_channels(wiring.google_push())
    assert only_channel(channels, mentor.id) == new
    assert again.failed == 0


def test_renewal_drops_channels_of_connections_that_are_gone_or_need_reconnect(
    api: httpx.Client,
    google: GoogleEmulator,
    store: Store,
    channels: ChannelStore,
    mentor: Mentor,
    mentor_headers: Callable[..., dict[str, str]],
    push_env: Callable[..., None],
    no_scheduled_poll: None,
) -> None:
    push_env(GOOGLE_CHANNEL_TTL_S="3600", GOOGLE_CHANNEL_RENEW_BEFORE_S="1800")
    connect(api, mentor, google)
    gone = only_channel(channels, mentor.id)
    store.mark_needs_reconnect(mentor.id, "google", "invalid_grant")
    # When the renewal finds the channel of a connection that needs reconnecting
    report = renew_expiring_channels(wiring.google_push(), horizon=timedelta(hours=2))
    # Then it is forgotten, not renewed (no token to renew or stop it with)
    assert report.failed == 0
    assert channels.for_mentor(mentor.id) == []
    assert channels.get(gone.channel_id) is None
    assert store.get_connection(mentor.id, "google").status is ConnectionStatus.NEEDS_RECONNECT  # type: ignore[union-attr]


def test_a_failed_watch_is_retried_by_the_scheduled_renewal(
    api: httpx.Client,
    google: GoogleEmulator,
    channels: ChannelStore,
    mentor: Mentor,
    store: Store,
    no_scheduled_poll: None,
) -> None:
    # Given Google failing events.watch while the mentor connects
    google.set_faults(
        forced=[{"status": 503, "count": 10, "path_prefix": "/calendar/v3/calendars/primary/events/watch"}]
    )
    try:
        connect(api, mentor, google)  # the connect itself succeeds
    finally:
        google.clear_faults()
    assert channels.for_mentor(mentor.id) == []
    retry = channels.get_retry(mentor.id)
    assert retry is not None
    assert retry.attempts == 1
    # When the renewal runs before the retry is due / Then nothing happens yet
    service = wiring.google_push()
    early = service.renew(now_s=time.time(), horizon_s=60)
    assert early.retried == 0
    assert channels.get_retry(mentor.id) is not None
    # When it runs once the retry is due / Then the channel exists and the retry item is gone
    report = service.renew(now_s=retry.due_ms / 1000 + 1, horizon_s=60)
    assert report.retried == 1
    channel = only_channel(channels, mentor.id)
    assert not emulator_channel(google, channel.channel_id).stopped
    assert channels.get_retry(mentor.id) is None


def test_watch_retries_back_off_and_give_up(
    store: Store, channels: ChannelStore, push_env: Callable[..., None]
) -> None:
    push_env(GOOGLE_WATCH_RETRY_MAX="3")
    service = wiring.google_push()
    mentor_id = f"push-{uuid.uuid4().hex[:10]}"
    now = time.time()
    dues = []
    for _ in range(3):
        retry = service.schedule_retry(mentor_id, "boom", now_s=now)
        assert retry is not None
        dues.append(retry.due_ms - int(now * 1000))
    assert dues == [300_000, 600_000, 1_200_000]
    assert service.schedule_retry(mentor_id, "boom", now_s=now) is None
    assert channels.get_retry(mentor_id) is None


@pytest.mark.parametrize("revoke", [False, True])
def test_disconnect_stops_the_channel_before_the_credential_goes(
    api: httpx.Client,
    google: GoogleEmulator,
    store: Store,
    channels: ChannelStore,
    mentor: Mentor,
    queue: RecordingQueue,
    revoke: bool,
) -> None:
    connect(api, mentor, google)
    channel = only_channel(channels, mentor.id)
    # When the mentor disconnects Google
    resp = api.delete("/connections/google", headers=mentor.headers, params={"revoke": str(revoke).lower()})
    assert resp.status_code == 204
    # Then Google shows the channel stopped, and nothing of it is left in the table
    assert emulator_channel(google, channel.channel_id).stopped
    assert channels.get(channel.channel_id) is None
    assert list(store.table.query(f"MENTOR#{mentor.id}")) == []
    # And a late notification for it is refused (404), queueing nothing
    resp = api.post(PATH, headers=headers_for(google, channel.channel_id))
    assert resp.status_code == 404
    assert queue.jobs_for(mentor.id) == []


def test_push_can_be_disabled(
    api: httpx.Client,
    google: GoogleEmulator,
    channels: ChannelStore,
    mentor: Mentor,
    push_env: Callable[..., None],
) -> None:
    push_env(GOOGLE_PUSH_ENABLED="false")
    connect(api, mentor, google)
    assert channels.for_mentor(mentor.id) == []
    assert channels.get_retry(mentor.id) is None
    assert push.renew_expiring_channels(wiring.google_push()).renewed == 0


def test_the_webhook_import_graph_stays_small() -> None:
    """Given a fresh interpreter, when provider_webhooks is imported, then no HTTP client, provider
    adapter, vault or calendar library comes with it: the webhook makes no provider call."""
    code = "import json, sys; import functions.provider_webhooks.handler; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    modules = set(json.loads(out.stdout))
    heavy = {"httpx", "caldav", "authlib", "icalendar", "stripe", "lxml", "cryptography", "radicale", "moto"}
    forbidden = {m for m in modules if m.split(".")[0] in heavy}
    # (the Zoom webhook is this function's own; the connect flows with their OAuth clients are not)
    heavy_shared = ("shared.providers", "shared.vault", "shared.connections.oauth_flow", "shared.connections.apple")
    heavy_shared += ("shared.connections.calendars",)
    forbidden |= {m for m in modules if m.startswith(heavy_shared)}
    assert forbidden == set()
    assert "shared.busy.push" in modules
