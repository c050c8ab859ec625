"""Microsoft busy times under Graph faults (issue 18, "10 % 429/500 and latency spikes on every Graph
path"; the Teams half is ``tests/e2e/test_microsoft_e2e.py::test_teams_under_graph_faults…``).

Three mentors connect Microsoft 365 through the OAuth dance (one subscription each, validated at
``POST /webhooks/microsoft``), with access tokens short enough that every use refreshes first. Then,
while the Graph emulator answers 5 % of requests 429 and 5 % 500 and holds 10 % of them longer —
``getSchedule``, ``/subscriptions`` (create, renew, delete) and the token endpoint, each also meeting
one sure fault — events are added in Outlook (change notifications → syncs), Graph sends
``reauthorizationRequired``, ``subscriptionRemoved`` and ``missed``, and scheduled polls run (with a
renewal horizon that renews every subscription). Asserted:

* every busy-sync message the worker received completed (its last receive returned) or is in the
  busy-sync DLQ with the error on the mentor's busy head;
* ``GET /mentors/me/busy``, sampled throughout, never loses a block a mentor had and never shows one
  the calendar never held;
* once the faults stop (and a failed subscribe's backoff is fast-forwarded), each mentor has exactly
  one live subscription, at Graph and in our table, the same one, and busy shows every event.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from e2e_support import utc_z

from devstack import flows
from devstack.emulators import microsoft as ms
from devstack.emulators.microsoft import MicrosoftEmulator
from devstack.stack import LocalStack
from shared import wiring
from shared.store import Provider, Store
from shared.store.busy import BusyStore
from shared.store.channels import ChannelStore, WatchRetry

MENTORS = 3
ROUNDS = 3
FAULTS: dict[str, Any] = {
    "seed": 18,
    "rate_429": 0.05,
    "rate_500": 0.05,
    "retry_after": 0,
    "spike_rate": 0.10,
    "spike_min_ms": 200,
    "spike_ms": 800,
}
Span = tuple[str, str]


@pytest.fixture(scope="module")
def microsoft(local_stack: LocalStack) -> Iterator[MicrosoftEmulator]:
    emu = MicrosoftEmulator(allow_http_loopback_notifications=True).start()  # the gateway is http on loopback
    emu.add_client(ms.DEFAULT_CLIENT_ID, ms.DEFAULT_CLIENT_SECRET, [f"{local_stack.api_url}/oauth/microsoft/callback"])
    yield emu
    emu.stop()


@pytest.fixture
def graph(microsoft: MicrosoftEmulator, provider_env: pytest.MonkeyPatch) -> Iterator[MicrosoftEmulator]:
    """The functions pointed at the emulator; short-lived tokens, quick sync retries, a renewal
    horizon that renews every subscription at each poll; faults and token lifetime restored after."""
    for name, value in microsoft.environment().items():
        provider_env.setenv(name, value)
    provider_env.setenv("BUSY_RETRY_DELAY_S", "1")
    provider_env.setenv("BUSY_MAX_ATTEMPTS", "3")
    provider_env.setenv("BUSY_MIN_INTERVAL_S", "0")
    provider_env.setenv("MICROSOFT_PUSH_COALESCE_S", "0")
    provider_env.setenv("MICROSOFT_SUBSCRIPTION_TTL_S", str(4230 * 60))
    provider_env.setenv("MICROSOFT_SUBSCRIPTION_RENEW_BEFORE_S", str(4230 * 60 - 1))
    wiring.reset()
    saved_ttl = microsoft.state.settings.access_token_ttl_seconds
    microsoft.clear_faults()
    microsoft.configure(access_token_ttl_seconds=240)  # < the accessor's 300 s refresh-ahead
    try:
        yield microsoft
    finally:
        microsoft.clear_faults()
        microsoft.configure(access_token_ttl_seconds=saved_ttl)


@dataclass
class Seen:
    """The busy-sync worker's receives: message id → [(receive, outcome or ``raised:<type>``)]."""

    receives: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, original: Callable[[Any], str]) -> Callable[[Any], str]:
        def record_handler(record: Any) -> str:
            receive = int(record.attributes.approximate_receive_count or 1)
            try:
                outcome = original(record)
            except Exception as exc:
                self._add(record.message_id, receive, f"raised:{type(exc).__name__}")
                raise
            self._add(record.message_id, receive, outcome)
            return outcome

        return record_handler

    def _add(self, message_id: str, receive: int, outcome: str) -> None:
        with self.lock:
            self.receives.setdefault(message_id, []).append((receive, outcome))

    def final(self) -> dict[str, str]:
        with self.lock:
            return {mid: max(got)[1] for mid, got in self.receives.items()}


@pytest.fixture
def seen(provider_env: pytest.MonkeyPatch) -> Seen:
    import functions.busy_sync.handler as busy_sync

    watched = Seen()
    provider_env.setattr(busy_sync, "record_handler", watched.wrap(busy_sync.record_handler))
    return watched


def _take_dlq(local_stack: LocalStack, dlq_url: str) -> dict[str, dict[str, Any]]:
    sqs = local_stack.client("sqs")
    found: dict[str, dict[str, Any]] = {}
    while messages := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found[message["MessageId"]] = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _outlook_event(start: datetime) -> dict[str, Any]:
    return {
        "subject": "busy",
        "start": {"dateTime": utc_z(start)[:-1], "timeZone": "UTC"},
        "end": {"dateTime": utc_z(start + timedelta(hours=1))[:-1], "timeZone": "UTC"},
    }


@dataclass
class Mentor:
    mentor_id: str
    headers: dict[str, str]
    email: str
    calendar: str
    held: set[Span] = field(default_factory=set)  # every event the calendar held


class Sampler:
    """``GET /mentors/me/busy`` per mentor: never empty, never losing a block shown before the faults,
    never a block the calendar did not hold."""

    def __init__(self, api: httpx.Client, mentors: list[Mentor], window: dict[str, str]) -> None:
        self.api, self.mentors, self.window = api, mentors, window
        self.kept: dict[str, set[Span]] = {}
        self.samples = 0

    def spans(self, mentor: Mentor) -> set[Span]:
        resp = self.api.get("/mentors/me/busy", headers=mentor.headers, params=self.window)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["sources"]["microsoft"]["status"] == "connected", body
        return {(b["start"], b["end"]) for b in body["busy"] if "microsoft" in b["sources"]}

    def __call__(self) -> None:
        for mentor in self.mentors:
            shown = self.spans(mentor)
            assert shown, f"busy went empty for {mentor.mentor_id}"
            assert self.kept[mentor.mentor_id] <= shown, (mentor.mentor_id, self.kept[mentor.mentor_id] - shown)
            assert shown <= mentor.held, (mentor.mentor_id, shown - mentor.held)
            self.samples += 1


def _drain_sampling(local_stack: LocalStack, sample: Sampler, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            local_stack.drain(timeout=0.4)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
        sample()


def _path(fault: dict[str, Any], token_path: str) -> str:
    """Which Graph path an injected fault hit."""
    path, method = str(fault["path"]), str(fault["method"])
    if path == token_path:
        return "token"
    if "getSchedule" in path:
        return "getSchedule"
    if path.startswith("/v1.0/subscriptions"):
        return f"subscriptions {method}"
    return f"{method} {path}"


def _subscriptions_at_graph(emu: MicrosoftEmulator, email: str) -> list[str]:
    with emu.state.lock:
        user = emu.state.user_by_email(email)
        assert user is not None
        return [s.id for s in emu.state.subscriptions.values() if s.user_id == user.id]


def test_busy_sync_under_graph_faults_and_spikes_keeps_blocks_and_one_subscription(
    api: httpx.Client,
    local_stack: LocalStack,
    graph: MicrosoftEmulator,
    seen: Seen,
    mentor: str,
    mentor_headers: Callable[..., dict[str, str]],
    stack_store: Store,
) -> None:
    busy_store, channels = BusyStore(stack_store.table), ChannelStore(stack_store.table)
    dlq_url = local_stack.aws.busy_sync.dlq_url
    assert _take_dlq(local_stack, dlq_url) == {}
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"from": utc_z(day - timedelta(days=1)), "to": utc_z(day + timedelta(days=4))}

    # Given three mentors, each with Microsoft 365 connected (OAuth) and two events in Outlook
    mentors: list[Mentor] = []
    for n in range(MENTORS):
        mentor_id = f"{mentor}-{n}"
        stack_store.upsert_mentor(mentor_id, email=f"{mentor_id}@mentor.example.com", timezone="UTC")
        email = f"{mentor_id}-{uuid.uuid4().hex[:6]}@contoso.example"
        graph.add_user(email)
        one = Mentor(mentor_id, mentor_headers(mentor_id), email, graph.default_calendar_id(email))
        for hours in (9 + n, 30 + n):
            start = day + timedelta(hours=hours)
            graph.seed_event(one.calendar, _outlook_event(start))
            one.held.add((utc_z(start), utc_z(start + timedelta(hours=1))))
        graph.set_next_consent(email)
        assert flows.connect_oauth(api, one.headers, "microsoft")["status"] == "connected"
        mentors.append(one)
    assert graph.flush_notifications(5)
    local_stack.drain(timeout=60)
    local_stack.tick("calendar-poll")  # the new subscriptions' first resync
    local_stack.drain(timeout=60)
    sample = Sampler(api, mentors, window)
    for one in mentors:
        sample.kept[one.mentor_id] = sample.spans(one)
        assert sample.kept[one.mentor_id] == one.held, one.mentor_id
    original = {}
    for one in mentors:
        (link,) = channels.for_mentor(one.mentor_id, "microsoft")
        original[one.mentor_id] = link.channel_id

    # When Graph and the token endpoint fail and spike, with one sure fault on each path
    token_path = urlparse(graph.token_url).path
    graph.set_faults(
        **FAULTS,
        forced=[
            {"status": 500, "count": 1, "path_prefix": "/v1.0/me/calendar/", "method": "POST"},  # getSchedule
            {"status": 429, "count": 1, "path_prefix": "/v1.0/subscriptions", "method": "PATCH"},
            {"status": 500, "count": 1, "path_prefix": "/v1.0/subscriptions", "method": "POST"},
            {"status": 500, "count": 1, "path": token_path},
        ],
    )
    started = time.monotonic()
    refreshes = graph.token_calls("refresh_token")
    lifecycle = ("reauthorizationRequired", "subscriptionRemoved", "missed")
    try:
        for r in range(ROUNDS):
            # ... events are added in Outlook (notifications → syncs), Graph sends a lifecycle event ...
            for n, one in enumerate(mentors):
                start = day + timedelta(hours=50 + 3 * r + n)
                one.held.add((utc_z(start), utc_z(start + timedelta(hours=1))))
                graph.seed_event(one.calendar, _outlook_event(start))
            target = mentors[r % MENTORS]
            links = channels.for_mentor(target.mentor_id, "microsoft")
            if links:
                graph.send_lifecycle(links[-1].channel_id, lifecycle[r % len(lifecycle)])
            assert graph.flush_notifications(10)
            _drain_sampling(local_stack, sample)
            # ... and a scheduled poll runs (renewals, retries, polls of uncovered mentors)
            local_stack.tick("calendar-poll")
            _drain_sampling(local_stack, sample)
        injected = Counter(_path(e, token_path) for e in graph.snapshot()["faults_injected"])
        spikes = len(graph.state.faults.spikes)
        under_faults = time.monotonic() - started
    finally:
        graph.clear_faults()
    sync_dlq = _take_dlq(local_stack, dlq_url)
    dlq_heads = {mid: busy_store.head(body["mentorId"], Provider(body["provider"])) for mid, body in sync_dlq.items()}

    # Then every path met faults, tokens were refreshed, and latency spikes happened
    assert {"getSchedule", "subscriptions POST", "subscriptions PATCH", "token"} <= set(injected), injected
    assert graph.token_calls("refresh_token") > refreshes
    assert spikes >= 1
    # And every sync message completed or is dead-lettered with the error on the busy head
    final = seen.final()
    lost = {mid: out for mid, out in final.items() if out.startswith("raised:") and mid not in sync_dlq}
    assert lost == {}, f"sync jobs neither completed nor dead-lettered: {lost}"
    assert set(sync_dlq) <= set(final)
    for mid, head in dlq_heads.items():
        assert head is not None, sync_dlq[mid]
        assert head.error, (sync_dlq[mid], head)

    # When the faults are off, a failed subscribe's backoff is fast-forwarded and one more poll runs
    for one in mentors:
        retry = channels.get_retry(one.mentor_id, "microsoft")
        if retry is not None:
            channels.put_retry(WatchRetry(one.mentor_id, retry.attempts, 0, retry.last_error, "microsoft"))
    local_stack.tick("calendar-poll")
    _drain_sampling(local_stack, sample)
    assert graph.flush_notifications(5)
    local_stack.drain(timeout=60)
    sample()
    # Then each mentor has exactly one live subscription, the same at Graph and here, and every event shows
    now_ms = int(time.time() * 1000)

    def link_of(one: Mentor) -> str:
        return channels.for_mentor(one.mentor_id, "microsoft")[0].channel_id

    for one in mentors:
        links = channels.for_mentor(one.mentor_id, "microsoft")
        assert len(links) == 1, (one.mentor_id, links)
        assert links[0].expiration_ms > now_ms
        assert _subscriptions_at_graph(graph, one.email) == [links[0].channel_id], one.mentor_id
        assert sample.spans(one) == one.held, one.mentor_id
    # (the one Graph removed was replaced; the others were kept, renewed)
    assert [original[one.mentor_id] == link_of(one) for one in mentors] == [True, False, True]
    print(
        f"\nmicrosoft busy under faults: {under_faults:.1f} s, {sample.samples} busy samples, "
        f"sync messages {len(final)} ({Counter(final.values())}), DLQ {len(sync_dlq)}, injected {dict(injected)}, "
        f"spikes {spikes}"
    )


def test_a_lost_subscription_answer_leaves_a_stray_that_its_first_notification_gets_deleted(
    api: httpx.Client,
    local_stack: LocalStack,
    graph: MicrosoftEmulator,
    mentor: str,
    mentor_headers: Callable[..., dict[str, str]],
    stack_store: Store,
    provider_env: pytest.MonkeyPatch,
) -> None:
    provider_env.setenv("MICROSOFT_STRAY_DELETE_DELAY_S", "0")
    wiring.reset()
    channels = ChannelStore(stack_store.table)
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"from": utc_z(day - timedelta(days=1)), "to": utc_z(day + timedelta(days=4))}
    stack_store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com", timezone="UTC")
    email = f"{mentor}-{uuid.uuid4().hex[:6]}@contoso.example"
    graph.add_user(email)
    one = Mentor(mentor, mentor_headers(mentor), email, graph.default_calendar_id(email))
    start = day + timedelta(hours=9)
    event = graph.seed_event(one.calendar, _outlook_event(start))
    graph.set_next_consent(email)

    # Given a connect whose first POST /subscriptions is made at Graph but its answer lost (500)
    lost = {"status": 500, "count": 1, "path": "/v1.0/subscriptions", "method": "POST", "after": True}
    graph.set_faults(forced=[lost])
    try:
        assert flows.connect_oauth(api, one.headers, "microsoft")["status"] == "connected"
        assert [f for f in graph.snapshot()["faults_injected"] if f.get("after")], "the answer was not lost"
    finally:
        graph.clear_faults()
    assert graph.flush_notifications(5)
    local_stack.drain(timeout=60)
    if not channels.for_mentor(mentor, "microsoft"):  # the subscribe failed as a whole: the renewal retries it
        retry = channels.get_retry(mentor, "microsoft")
        assert retry is not None
        channels.put_retry(WatchRetry(mentor, retry.attempts, 0, retry.last_error, "microsoft"))
        local_stack.tick("calendar-poll")
        local_stack.drain(timeout=60)
    (link,) = channels.for_mentor(mentor, "microsoft")
    at_graph = _subscriptions_at_graph(graph, email)
    assert len(at_graph) == 2, at_graph  # the recorded one and a stray
    assert link.channel_id in at_graph
    (stray,) = set(at_graph) - {link.channel_id}

    # When the mentor moves the event in Outlook: Graph notifies both subscriptions
    moved = start + timedelta(hours=3)
    graph.update_event_external(str(event["id"]), _outlook_event(moved))
    assert graph.flush_notifications(5)
    local_stack.drain(timeout=60)

    # Then the stray is deleted at Graph, the recorded subscription is kept, and busy shows the change
    assert _subscriptions_at_graph(graph, email) == [link.channel_id]
    assert stray in [d.get("id") for d in graph.state.deleted_subscriptions]
    assert [c.channel_id for c in channels.for_mentor(mentor, "microsoft")] == [link.channel_id]
    resp = api.get("/mentors/me/busy", headers=one.headers, params=window)
    assert resp.status_code == 200, resp.text
    shown = {(b["start"], b["end"]) for b in resp.json()["busy"] if "microsoft" in b["sources"]}
    assert shown == {(utc_z(moved), utc_z(moved + timedelta(hours=1)))}
