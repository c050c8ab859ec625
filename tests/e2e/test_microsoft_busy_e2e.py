"""Done-when of Microsoft busy times (issue 18 item 4; PRODUCT.md §2.7) through the local gateway.

Microsoft connected through OAuth: the connect subscribes to the default calendar's events (Graph's
``validationToken`` handshake answered by ``POST /webhooks/microsoft``). With the ``calendar-poll``
schedule held off and the real ``calendar_poll`` handler run by hand:

* the first poll after the new subscription resyncs once (one getSchedule); an idle hour (12 polls)
  then costs this mentor no Graph request;
* an event added in Outlook (the emulator's admin route) shows in ``GET /mentors/me/busy`` within
  5 s, through the change notification only;
* ``reauthorizationRequired`` renews the subscription (PATCH), ``subscriptionRemoved`` makes a new
  one, and the poll's maintenance renews a subscription that is within its renewal horizon.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_support import utc_z

from devstack import flows
from devstack.emulators import microsoft as ms
from devstack.emulators.microsoft import MicrosoftEmulator
from devstack.routes import SCHEDULES, LambdaContext
from devstack.scheduler import scheduled_event
from devstack.stack import LocalStack
from shared import wiring
from shared.store import Store
from shared.store.channels import ChannelStore, PushChannel

PUSH_LATENCY_S = 5.0


@pytest.fixture(scope="module")
def microsoft(local_stack: LocalStack) -> Iterator[MicrosoftEmulator]:
    emu = MicrosoftEmulator(allow_http_loopback_notifications=True).start()  # the gateway is http on loopback
    emu.add_client(ms.DEFAULT_CLIENT_ID, ms.DEFAULT_CLIENT_SECRET, [f"{local_stack.api_url}/oauth/microsoft/callback"])
    yield emu
    emu.stop()


@pytest.fixture
def ms_env(microsoft: MicrosoftEmulator, provider_env: pytest.MonkeyPatch) -> MicrosoftEmulator:
    for name, value in microsoft.environment().items():
        provider_env.setenv(name, value)
    # Polls here come seconds apart (no "synced a moment ago" skip)
    provider_env.setenv("BUSY_MIN_INTERVAL_S", "0")
    provider_env.setenv("BUSY_MAX_ATTEMPTS", "1")
    wiring.reset()
    microsoft.clear_faults()
    return microsoft


def _poll(local_stack: LocalStack) -> dict[str, Any]:
    """One run of the real calendar_poll handler, then every queued sync drained."""
    from functions.calendar_poll.handler import lambda_handler

    (schedule,) = [s for s in SCHEDULES if s.function == "calendar_poll"]
    result: dict[str, Any] = lambda_handler(scheduled_event(schedule), LambdaContext("calendar_poll"))
    local_stack.drain(timeout=60)
    return result


def _graph_requests(emu: MicrosoftEmulator, email: str) -> int:
    """Graph API requests (getSchedule, subscriptions …) made with ``email``'s tokens, not the identity
    platform's — other mentors of the same local stack (other test files) poll too."""
    tokens = set(flows.microsoft_tokens(emu, email))
    return sum(
        1
        for entry in emu.requests_log("/v1.0")
        if str(entry["headers"].get("Authorization", "")).removeprefix("Bearer ") in tokens
    )


def _busy_covers(api: httpx.Client, headers: dict[str, str], start: datetime, end: datetime) -> bool:
    window = {"from": utc_z(start - timedelta(hours=1)), "to": utc_z(end + timedelta(hours=1))}
    resp = api.get("/mentors/me/busy", headers=headers, params=window)
    assert resp.status_code == 200, resp.text
    return any(b["start"] <= utc_z(start) and b["end"] >= utc_z(end) for b in resp.json()["busy"])


def _subscription(store: Store, mentor: str) -> PushChannel:
    (link,) = ChannelStore(store.table).for_mentor(mentor, "microsoft")
    channel = ChannelStore(store.table).get(link.channel_id)
    assert channel is not None
    return channel


def _wait(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_outlook_changes_arrive_by_notification_and_subscriptions_stay_alive(
    api: httpx.Client,
    ms_env: MicrosoftEmulator,
    local_stack: LocalStack,
    provider_env: pytest.MonkeyPatch,
    headers: dict[str, str],
    stack_store: Store,
    mentor: str,
    no_scheduled_poll: None,
) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@contoso.example"
    ms_env.add_user(email, "Ada Lovelace")
    ms_env.set_next_consent(email)
    # Given Microsoft connected through OAuth: one subscription on the mailbox's events, validated
    assert flows.connect_oauth(api, headers, "microsoft")["status"] == "connected"
    channel = _subscription(stack_store, mentor)
    (sub,) = [s for s in ms_env.subscriptions() if s["id"] == channel.channel_id]
    assert (sub["resource"], sub["notificationUrl"]) == ("me/events", f"{local_stack.api_url}/webhooks/microsoft")
    assert sub["clientState"]
    assert sub["clientState"] not in str(list(stack_store.table.query(f"MENTOR#{mentor}")))
    assert channel.confirmed_ms > 0
    assert any(v["ok"] for v in ms_env.validations())
    local_stack.drain(timeout=60)
    # And a forged notification (wrong clientState) is acknowledged and ignored; junk is a 400, never a 5xx
    forged = {"value": [{"subscriptionId": channel.channel_id, "clientState": "guess", "changeType": "updated"}]}
    resp = api.post("/webhooks/microsoft", json=forged)
    assert (resp.status_code, resp.json()) == (202, {"received": 0, "queued": 0})
    for junk in ({"content": b"not json"}, {"params": {"validationToken": "x" * 5000}}):
        assert api.post("/webhooks/microsoft", **junk).status_code == 400  # type: ignore[arg-type]
    echo = api.post("/webhooks/microsoft", params={"validationToken": "Validation: a b:c"})
    assert (echo.status_code, echo.headers["content-type"], echo.text) == (200, "text/plain", "Validation: a b:c")

    # When the first poll after the new subscription runs: one safety resync (one getSchedule)
    before = _graph_requests(ms_env, email)
    assert _poll(local_stack)["push_first"]["microsoft_resync"] >= 1
    assert _graph_requests(ms_env, email) - before == 1
    # Then an idle hour — 12 scheduled polls, nothing changed — costs this mentor no Graph request
    before = _graph_requests(ms_env, email)
    for _ in range(12):
        _poll(local_stack)
    assert _graph_requests(ms_env, email) - before == 0

    # When the mentor adds an event in Outlook, it shows through the notification within 5 s
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    started = time.monotonic()
    ms_env.seed_event(
        ms_env.default_calendar_id(email),
        {"subject": "Dentist", "start": {"dateTime": utc_z(day)[:-1], "timeZone": "UTC"},
         "end": {"dateTime": utc_z(day + timedelta(hours=1))[:-1], "timeZone": "UTC"}},
    )  # fmt: skip
    assert _wait(lambda: _busy_covers(api, headers, day, day + timedelta(hours=1)), PUSH_LATENCY_S + 5)
    latency = time.monotonic() - started
    assert latency <= PUSH_LATENCY_S, latency
    assert ms_env.flush_notifications(5)
    assert [d.get("status") for d in ms_env.deliveries("change")][-1:] == [202]

    # When Graph asks for reauthorization: the subscription is renewed (PATCH) right away
    patches = len(ms_env.requests_log("/v1.0/subscriptions", "PATCH"))
    ms_env.send_lifecycle(channel.channel_id, "reauthorizationRequired")
    assert ms_env.flush_notifications(5)
    local_stack.drain(timeout=60)
    assert len(ms_env.requests_log("/v1.0/subscriptions", "PATCH")) == patches + 1

    # When Graph removes the subscription: a new one is made, validated, and takes its place
    ms_env.send_lifecycle(channel.channel_id, "subscriptionRemoved")
    assert ms_env.flush_notifications(5)
    local_stack.drain(timeout=60)
    assert _wait(lambda: len(ChannelStore(stack_store.table).for_mentor(mentor, "microsoft")) == 1)
    replaced = _subscription(stack_store, mentor)
    assert replaced.channel_id != channel.channel_id
    assert [s["id"] for s in ms_env.subscriptions() if s["creatorId"] == sub["creatorId"]] == [replaced.channel_id]

    # When the subscription is within the renewal horizon, the poll's maintenance renews it before expiry
    provider_env.setenv("MICROSOFT_SUBSCRIPTION_TTL_S", str(4230 * 60))
    provider_env.setenv("MICROSOFT_SUBSCRIPTION_RENEW_BEFORE_S", str(4230 * 60 - 1))
    wiring.reset()
    result = _poll(local_stack)
    assert "renewed" in result["maintenance"]["renew_microsoft_subscriptions"]
    renewed = _subscription(stack_store, mentor)
    assert renewed.channel_id == replaced.channel_id
    assert renewed.expiration_ms > replaced.expiration_ms
    (at_graph,) = [s for s in ms_env.subscriptions() if s["id"] == renewed.channel_id]
    assert at_graph["expirationDateTime"] > sub["expirationDateTime"]
    print(f"microsoft push latency: {latency:.2f} s")
