"""Microsoft busy times (issue 18 item 4), fast: getSchedule periods and status mapping, the webhook's
verification and coalescing against moto, push-first for Microsoft subscriptions, renewal, and the
idle cost of a mentor with a live subscription. End to end: tests/e2e/test_microsoft_busy_e2e.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from shared.busy.microsoft import busy_blocks, mailbox_address
from shared.busy.microsoft_push import MicrosoftPush, MicrosoftPushSettings
from shared.busy.microsoft_webhook import MicrosoftWebhook, validation_answer
from shared.busy.poll import fan_out
from shared.busy.push_first import PushFirst
from shared.busy.push_settings import token_hash
from shared.platform.api import ApiError
from shared.providers.microsoft.busy import MAX_PERIOD, MicrosoftBusyClient, ScheduleItem, Subscription, periods
from shared.providers.microsoft.errors import MicrosoftApiError
from shared.queues.busy import SyncJob, SyncReason
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore

NOW = 1_800_000_000.0
HOUR = 3600.0
T0 = datetime.fromtimestamp(NOW, UTC)


class Queue:
    def __init__(self) -> None:
        self.jobs: list[tuple[SyncJob, int]] = []

    def send(self, job: SyncJob, *, delay_s: int = 0) -> None:
        self.jobs.append((job, delay_s))

    def send_many(self, jobs: list[SyncJob]) -> int:
        self.jobs.extend((j, 0) for j in jobs)
        return len(jobs)


class Graph:
    """POST / PATCH / DELETE /subscriptions as MicrosoftPush's client sees them (calls counted)."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.calls: list[str] = []
        self.states: dict[str, str] = {}
        self.fail: MicrosoftApiError | None = None
        self.gone = False
        self.lose_answer = False  # make the subscription, then answer 503 (the answer is lost)
        self.missing = False  # DELETE answers 404
        self.deleted: list[str] = []
        self.on_post: list[Any] = []  # called with the clientState when a POST arrives

    def subscribe(
        self, token: SecretStr, calendar_id: str, *, url: str, client_state: SecretStr, expiration: datetime
    ) -> Subscription:
        self.calls.append("POST")
        for hook in self.on_post:
            hook(client_state.get_secret_value())
        if self.fail is not None:
            raise self.fail
        sub_id = f"sub-{len(self.calls)}"
        self.states[sub_id] = client_state.get_secret_value()
        if self.lose_answer:
            raise MicrosoftApiError("Microsoft Graph answered HTTP 503 (no code).", status=503)
        return Subscription(id=sub_id, resource="me/events", expiration=expiration)

    def renew(self, token: SecretStr, subscription_id: str, expiration: datetime) -> datetime | None:
        self.calls.append("PATCH")
        return None if self.gone else expiration

    def delete_subscription(self, token: SecretStr, subscription_id: str) -> bool:
        self.calls.append("DELETE")
        self.deleted.append(subscription_id)
        return not self.missing


@pytest.fixture
def clock() -> list[float]:
    return [NOW]


@pytest.fixture
def graph(clock: list[float]) -> Graph:
    return Graph(clock)


@pytest.fixture
def push(store: Store, graph: Graph, clock: list[float]) -> MicrosoftPush:
    return MicrosoftPush(
        store,
        tokens=lambda mentor_id: SecretStr("at"),
        queue=Queue,  # type: ignore[arg-type]
        client=lambda: graph,  # type: ignore[arg-type,return-value]
        config=MicrosoftPushSettings(api_url="https://api.example.com"),
        clock=lambda: clock[0],
    )


def _connect(store: Store, mentor: str, calendar: str | None = None) -> None:
    store.save_connection(
        Connection(
            mentor_id=mentor,
            provider=Provider.MICROSOFT,
            status=ConnectionStatus.CONNECTED,
            credential=b"sealed",
            account_id=f"id-{mentor}",
            account_label=f"Connected as {mentor}@contoso.example",
            selected_calendar=calendar,
        ),
        expected_version=None,
    )


def _note(sub_id: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"subscriptionId": sub_id, "clientState": state, "changeType": "updated", **extra}


def _body(*notes: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(notes)}).encode()


def test_the_window_is_asked_in_periods_under_62_days_and_only_busy_statuses_block() -> None:
    start = T0
    # A 60-day window is one request; a year is cut into periods of at most 61 days, end to end
    assert periods(start, start + timedelta(days=60)) == [(start, start + timedelta(days=60))]
    year = periods(start, start + timedelta(days=366))
    assert len(year) == 6  # 366 = 6 * 61
    assert all(hi - lo <= MAX_PERIOD < timedelta(days=62) for lo, hi in year)
    assert [lo for lo, _ in year[1:]] == [hi for _, hi in year[:-1]]
    # busy, oof, tentative (and unknown) block; free and workingElsewhere do not; overlaps merge, ends clip
    hour = timedelta(hours=1)
    items = [
        ScheduleItem(start - hour, start + hour, "busy"),
        ScheduleItem(start + hour, start + 2 * hour, "tentative"),
        ScheduleItem(start + 3 * hour, start + 4 * hour, "free"),
        ScheduleItem(start + 5 * hour, start + 6 * hour, "workingElsewhere"),
        ScheduleItem(start + 7 * hour, start + 8 * hour, "oof"),
    ]
    blocks = busy_blocks(items, start, start + 24 * hour)
    assert [(b.start, b.end) for b in blocks] == [(start, start + 2 * hour), (start + 7 * hour, start + 8 * hour)]
    # Schedule items are read as UTC; an unreadable or empty one is dropped
    parsed = MicrosoftBusyClient._item(
        {"status": "busy", "start": {"dateTime": "2030-03-04T10:00:00.0000000", "timeZone": "UTC"},
         "end": {"dateTime": "2030-03-04T11:00:00.0000000", "timeZone": "UTC"}}
    )  # fmt: skip
    assert parsed == ScheduleItem(datetime(2030, 3, 4, 10, tzinfo=UTC), datetime(2030, 3, 4, 11, tzinfo=UTC), "busy")
    assert MicrosoftBusyClient._item({"status": "busy", "start": {"dateTime": "x"}, "end": {}}) is None


def test_the_mailbox_address_is_the_connections_mail_or_upn() -> None:
    conn = Connection(mentor_id="m", provider=Provider.MICROSOFT, account_label="Connected as ada@contoso.example")
    assert mailbox_address(conn) == "ada@contoso.example"
    assert mailbox_address(conn.model_copy(update={"account_label": "Ada"})) is None


def test_connect_subscribes_once_with_a_hashed_client_state_and_the_webhook_trusts_only_it(
    store: Store, push: MicrosoftPush, graph: Graph, clock: list[float]
) -> None:
    _connect(store, "m1")
    # When the mentor connects: one subscription, its clientState stored only as a hash, confirmed
    channel = push.subscribe("m1", replace=True)
    assert channel is not None
    assert graph.calls == ["POST"]
    secret = graph.states[channel.channel_id]
    stored = ChannelStore(store.table).get(channel.channel_id)
    assert stored is not None
    assert (stored.provider, stored.token_hash, stored.confirmed_ms > 0) == ("microsoft", token_hash(secret), True)
    assert secret not in json.dumps(list(store.table.query("MENTOR#m1")), default=str)
    # And a calendar switch to the same calendar keeps it (no Graph call)
    kept = push.subscribe("m1", replace=False)
    assert kept is not None
    assert kept.channel_id == channel.channel_id
    assert graph.calls == ["POST"]

    queue = Queue()
    hook = MicrosoftWebhook(store, queue=queue, coalesce_s=2, clock=lambda: clock[0])  # type: ignore[arg-type]
    # The handshake echoes the token; an empty or huge one is a 400, never a 5xx
    assert validation_answer("Validation: a b:c") == "Validation: a b:c"
    for bad in ("", "x" * 5000):
        with pytest.raises(ApiError) as refused:
            validation_answer(bad)
        assert refused.value.status == 400
    # Wrong clientState, unknown subscription: ignored (received 0), nothing queued (an unknown one
    # with a clientState we sent is a stray of ours: test_a_lost_create_answer_leaves_a_stray…)
    forged = _body(_note(channel.channel_id, "guess"), _note("nope", "guess"), _note(channel.channel_id, 5))
    assert hook.handle(forged) == {"received": 0, "queued": 0}
    # A burst of three changes queues one sync, 2 s ahead
    burst = _body(*(_note(channel.channel_id, secret) for _ in range(3)))
    assert hook.handle(burst) == {"received": 3, "queued": 1}
    clock[0] += 0.5
    assert hook.handle(_body(_note(channel.channel_id, secret))) == {"received": 1, "queued": 0}
    assert [(j.mentor_id, j.provider, j.reason.value, d) for j, d in queue.jobs] == [
        ("m1", Provider.MICROSOFT, "push", 2)
    ]
    # Lifecycle: missed → a sync; reauthorizationRequired → a renew job; subscriptionRemoved → recreate
    clock[0] += 10
    queue.jobs.clear()
    events = ("missed", "reauthorizationRequired", "subscriptionRemoved")
    result = hook.handle(_body(*(_note(channel.channel_id, secret, lifecycleEvent=e) for e in events)))
    assert result == {"received": 3, "queued": 3}
    assert [j.subscription for j, _ in queue.jobs] == [None, "renew", "recreate"]
    assert ChannelStore(store.table).get(channel.channel_id) is None  # the removed one is forgotten
    # Malformed bodies are a 400
    for raw in (b"not json", b"[]", b'{"value": 3}'):
        with pytest.raises(ApiError) as bad_body:
            hook.handle(raw)
        assert bad_body.value.status == 400


def test_lifecycle_jobs_renew_or_recreate_and_the_renewal_keeps_subscriptions_alive(
    store: Store, push: MicrosoftPush, graph: Graph, clock: list[float]
) -> None:
    _connect(store, "m1")
    first = push.subscribe("m1", replace=True)
    assert first is not None
    # reauthorizationRequired → PATCH, expiry moved
    clock[0] += HOUR
    push.on_lifecycle(SyncJob(mentor_id="m1", provider=Provider.MICROSOFT, subscription="renew"))
    renewed = ChannelStore(store.table).get(first.channel_id)
    assert renewed is not None
    assert renewed.expiration_ms == first.expiration_ms + int(HOUR * 1000)
    # subscriptionRemoved (items forgotten by the webhook) → a new subscription
    ChannelStore(store.table).delete(first)
    push.on_lifecycle(SyncJob(mentor_id="m1", provider=Provider.MICROSOFT, subscription="recreate"))
    (second,) = ChannelStore(store.table).for_mentor("m1", "microsoft")
    assert second.channel_id != first.channel_id
    assert graph.calls == ["POST", "PATCH", "POST"]
    # The scheduled renewal: nothing due now; 47 h later (within a day of its 70 h life) one PATCH
    assert push.renew().renewed == 0
    clock[0] += 47 * HOUR
    assert push.renew().renewed == 1
    assert graph.calls[-1] == "PATCH"
    # One Graph no longer knows (404) is made again
    graph.gone = True
    clock[0] += 47 * HOUR
    report = push.renew()
    assert (report.renewed, graph.calls[-2:]) == (1, ["PATCH", "POST"])
    # A failed subscribe is retried by the renewal with backoff, without failing the caller
    _connect(store, "m2")
    graph.fail = MicrosoftApiError("down", status=503)
    assert push.subscribe("m2", replace=True) is None
    retry = ChannelStore(store.table).get_retry("m2", "microsoft")
    assert retry is not None
    assert retry.attempts == 1
    graph.fail = None
    clock[0] += HOUR
    assert push.renew().retried == 1
    assert len(ChannelStore(store.table).for_mentor("m2", "microsoft")) == 1
    assert ChannelStore(store.table).get_retry("m2", "microsoft") is None


def test_a_live_subscription_takes_the_connection_off_the_poll_idle_cost_under_one_request_an_hour(
    store: Store, push: MicrosoftPush, graph: Graph, clock: list[float]
) -> None:
    _connect(store, "m1")
    _connect(store, "m2")  # no subscription: polled every time
    assert push.subscribe("m1", replace=True) is not None
    rule = PushFirst(store.table, safety_resync_s=0, microsoft_resync_s=24 * HOUR, clock=lambda: clock[0])
    # Three days of polls (hourly here, to stay fast: push-first's answer does not depend on the
    # interval), with the renewal after each, as calendar_poll runs them
    requests = {"m1": 0, "m2": 0}
    polls = 3 * 24
    graph.calls.clear()
    for _ in range(polls):
        queue = Queue()
        fan_out(store.table, queue, push_first=rule)  # type: ignore[arg-type]
        for job, _ in queue.jobs:
            requests[job.mentor_id] += 1  # one getSchedule: the 60-day window is one period
        push.renew()
        clock[0] += HOUR
    requests["m1"] += len(graph.calls)  # renewal PATCHes
    per_hour = requests["m1"] / 72
    # The subscribed mentor: the first resync, a safety resync a day (2 more), one renewal: 4 in 72 h
    assert requests["m1"] == 1 + 2 + 1, requests
    assert per_hour <= 1
    assert requests["m2"] == polls
    print(f"idle Microsoft requests per mentor per hour with a live subscription: {per_hour:.3f}")


def test_a_subscription_flagged_for_a_missed_change_is_polled_then_replaced_by_the_renewal(
    store: Store, push: MicrosoftPush, graph: Graph, clock: list[float]
) -> None:
    _connect(store, "m1")
    first = push.subscribe("m1", replace=True)
    assert first is not None
    rule = PushFirst(store.table, safety_resync_s=0, microsoft_resync_s=24 * HOUR, clock=lambda: clock[0])

    def jobs() -> list[SyncJob]:
        queue = Queue()
        fan_out(store.table, queue, providers=[Provider.MICROSOFT], push_first=rule)  # type: ignore[arg-type]
        return [job for job, _ in queue.jobs]

    # The first resync names no channel; the next safety resync names the subscription it checks
    assert [(j.reason, j.channel) for j in jobs()] == [(SyncReason.RESYNC, None)]
    clock[0] += 24 * HOUR
    assert [(j.reason, j.channel) for j in jobs()] == [(SyncReason.RESYNC, first.channel_id)]
    # When the busy sync flags it (push_watchdog), the connection is polled from the next poll on
    now_ms = int(clock[0] * 1000)
    channels = ChannelStore(store.table)
    assert channels.flag_suspect(first.channel_id, "m1", "microsoft", now_ms=now_ms, quiet_since_ms=now_ms - 30_000)
    assert [j.reason for j in jobs()] == [SyncReason.SCHEDULE]
    # And the renewal replaces it at once (67 h before its expiry): a new subscription, the old deleted
    made = len(graph.calls)
    assert push.renew().recreated == 1
    assert graph.calls[made:] == ["POST", "DELETE"]
    (second,) = channels.for_mentor("m1", "microsoft")
    assert second.channel_id != first.channel_id
    assert [(j.reason, j.channel) for j in jobs()] == [(SyncReason.RESYNC, None)]
    assert jobs() == []


class Schedule:
    """getSchedule as the busy sync sees it: answers ``items`` or raises ``error``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, datetime, datetime]] = []
        self.items: list[ScheduleItem] = []
        self.error: Exception | None = None

    def schedule(self, token: SecretStr, address: str, start: datetime, end: datetime) -> list[ScheduleItem]:
        self.asked.append((address, start, end))
        if self.error is not None:
            raise self.error
        return self.items


def test_the_busy_sync_stores_outlook_busy_blocks_and_maps_graph_errors(store: Store) -> None:
    from shared.busy.sync import BusySync, TransientSyncError
    from shared.providers.microsoft.errors import MicrosoftRateLimited
    from shared.store.busy import BusyStore

    _connect(store, "m1")
    graph, lifecycle, now = Schedule(), list[SyncJob](), [T0]
    worker = BusySync(
        store=store,
        busy=BusyStore(store.table),
        tokens=lambda *_, **__: SecretStr("at"),
        google=lambda: pytest.fail("a Microsoft sync called Google"),
        open_credential=lambda *_: pytest.fail("a Microsoft sync opened an Apple credential"),
        apple_url="http://127.0.0.1:9",
        on_reconnect=lambda *_: None,
        microsoft=lambda: graph,
        lifecycle=lifecycle.append,
        min_interval=timedelta(0),
        clock=lambda: now[0],
    )
    job = SyncJob(mentor_id="m1", provider=Provider.MICROSOFT)
    # A tentative meeting and an out-of-office day block; a free one does not
    graph.items = [
        ScheduleItem(T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1), "tentative"),
        ScheduleItem(T0 + timedelta(days=2), T0 + timedelta(days=3), "oof"),
        ScheduleItem(T0 + timedelta(days=4), T0 + timedelta(days=4, hours=1), "free"),
    ]
    assert worker.handle(job) == "synced:2"
    assert graph.asked == [("m1@contoso.example", T0, T0 + timedelta(days=60))]
    stored = BusyStore(store.table).read("m1")[Provider.MICROSOFT].blocks
    assert [(b.start, b.end) for b in stored] == [(i.start, i.end) for i in graph.items[:2]]
    # Throttled past the retries: retried later after Graph's Retry-After; a 4xx is recorded and acknowledged
    graph.error = MicrosoftRateLimited("throttled", status=429, code="TooManyRequests", retry_after_s=7.0)
    with pytest.raises(TransientSyncError) as later:
        worker.handle(job)
    assert (later.value.code, later.value.delay_s) == ("rate_limited", 7.0)
    graph.error = MicrosoftApiError("no mailbox", status=400, code="ErrorMailRecipientNotFound")
    assert worker.handle(job) == "failed:ErrorMailRecipientNotFound"
    # The previous blocks stay through failures; a lifecycle job runs its step before the sync
    assert len(BusyStore(store.table).read("m1")[Provider.MICROSOFT].blocks) == 2
    graph.error, now[0] = None, T0 + timedelta(minutes=1)
    renew = SyncJob(mentor_id="m1", provider=Provider.MICROSOFT, subscription="renew")
    assert worker.handle(renew) == "synced:2"
    assert lifecycle == [renew]


def test_a_lost_create_answer_leaves_a_stray_the_webhook_has_the_worker_delete(
    store: Store, push: MicrosoftPush, graph: Graph, clock: list[float]
) -> None:
    from shared.store.subscription_states import SubscriptionStateStore

    states, channels = SubscriptionStateStore(store.table), ChannelStore(store.table)
    _connect(store, "m1")
    at_post: list[object] = []
    graph.on_post.append(lambda state: at_post.append(states.get(token_hash(state))))
    # Given a create whose answer is lost: Graph made the subscription, we recorded nothing but its
    # clientState's hash, written before the POST, for this mentor
    graph.lose_answer = True
    assert push.subscribe("m1", replace=True) is None
    (stray_id,) = graph.states
    stray_state = graph.states[stray_id]
    (pending,) = at_post
    assert pending is not None
    assert (pending.mentor_id, pending.provider, pending.state_hash) == ("m1", "microsoft", token_hash(stray_state))
    assert channels.for_mentor("m1", "microsoft") == []
    # And the retry makes the recorded one (its pending state written first too, and kept after)
    graph.lose_answer = False
    recorded = push.subscribe("m1", replace=True)
    assert recorded is not None
    secret = graph.states[recorded.channel_id]
    assert len(at_post) == 2
    assert at_post[1] is not None
    kept = store.table.get(f"SUBSTATE#{token_hash(secret)}", "SUBSTATE")
    assert kept is not None
    assert kept["ttl"] == int(NOW) + 70 * 3600 + 24 * 3600
    everything = json.dumps(store.table.client.scan(TableName=store.table.name)["Items"], default=str)
    assert stray_state not in everything
    assert secret not in everything

    queue = Queue()
    hook = MicrosoftWebhook(
        store,
        queue=queue,  # type: ignore[arg-type]
        coalesce_s=2,
        clock=lambda: clock[0],
        stray_delay_s=180,
    )
    # When the stray notifies a burst of changes: nothing synced, ONE delete job queued for the worker
    burst = _body(*(_note(stray_id, stray_state) for _ in range(3)))
    assert hook.handle(burst) == {"received": 0, "queued": 1}
    clock[0] += 1
    assert hook.handle(_body(_note(stray_id, stray_state))) == {"received": 0, "queued": 0}
    ((job, delay),) = queue.jobs
    assert (job.mentor_id, job.provider, job.subscription, job.channel, delay) == (
        "m1",
        Provider.MICROSOFT,
        "delete",
        stray_id,
        180,
    )
    assert json.loads(job.body())["channelId"] == stray_id
    # A forged notification (unknown id, a clientState we never sent) queues nothing
    assert hook.handle(_body(_note("sub-forged", "guess"), _note("sub-forged", 7))) == {"received": 0, "queued": 0}
    assert len(queue.jobs) == 1
    # A stray made by a POST retried inside the client (the recorded clientState) is ours too
    assert hook.handle(_body(_note("sub-twin", secret))) == {"received": 0, "queued": 1}
    assert [(j.subscription, j.channel) for j, _ in queue.jobs[1:]] == [("delete", "sub-twin")]

    # Then the worker deletes the stray at Graph and nothing else
    push.on_lifecycle(job)
    assert graph.deleted == [stray_id]
    assert channels.get(recorded.channel_id) is not None
    # It never deletes the recorded subscription, even if asked to
    graph.calls.clear()
    push.on_lifecycle(job.model_copy(update={"channel": recorded.channel_id}))
    assert graph.calls == []
    assert [c.channel_id for c in channels.for_mentor("m1", "microsoft")] == [recorded.channel_id]
    # A stray Graph no longer knows (404) is fine: no error, no subscribe retry
    graph.missing = True
    push.on_lifecycle(job)
    assert graph.deleted == [stray_id, stray_id]
    assert channels.get_retry("m1", "microsoft") is None
    # And the claim expires: a later burst from a stray still alive queues one more delete
    clock[0] += 600
    assert hook.handle(_body(_note(stray_id, stray_state))) == {"received": 0, "queued": 1}


def test_a_stray_delete_job_runs_no_busy_sync(store: Store) -> None:
    from shared.busy.sync import BusySync
    from shared.store.busy import BusyStore

    _connect(store, "m1")
    graph, lifecycle = Schedule(), list[SyncJob]()
    worker = BusySync(
        store=store,
        busy=BusyStore(store.table),
        tokens=lambda *_, **__: SecretStr("at"),
        google=lambda: pytest.fail("a Microsoft sync called Google"),
        open_credential=lambda *_: pytest.fail("a Microsoft sync opened an Apple credential"),
        apple_url="http://127.0.0.1:9",
        on_reconnect=lambda *_: None,
        microsoft=lambda: graph,
        lifecycle=lifecycle.append,
        min_interval=timedelta(0),
        clock=lambda: T0,
    )
    delete = SyncJob(mentor_id="m1", provider=Provider.MICROSOFT, reason=SyncReason.PUSH, subscription="delete")
    assert worker.handle(delete.model_copy(update={"channel": "sub-1"})) == "subscription:delete"
    assert [j.channel for j in lifecycle] == ["sub-1"]
    assert graph.asked == []


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_a_watch_token_failure_is_one_watch_error_for_both_providers(provider: str) -> None:
    from shared.busy.push_settings import WatchError, access_token
    from shared.providers.credentials import ConnectionUnavailable
    from shared.providers.oauth import OAuthError
    from shared.vault import VaultError

    def failing(exc: Exception) -> Any:
        def tokens(mentor_id: str) -> SecretStr:
            raise exc

        return tokens

    assert access_token(lambda _: SecretStr("at"), "m1", provider).get_secret_value() == "at"
    cases = [
        (ConnectionUnavailable(ConnectionStatus.NEEDS_RECONNECT, "invalid_grant"), False),
        (OAuthError("temporarily_unavailable"), True),
        (VaultError("sealed blob failed authentication"), True),
    ]
    got = []
    for exc, _ in cases:
        with pytest.raises(WatchError) as caught:
            access_token(failing(exc), "m1", provider)
        got.append((str(caught.value), caught.value.retry))
    assert got == [
        (f"{provider} connection unavailable (needs_reconnect)", False),
        ("access token unavailable (OAuthError)", True),
        ("access token unavailable (VaultError)", True),
    ]
