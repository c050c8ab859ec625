"""Push-first Google sync end to end (PRODUCT.md §2.7 "nothing changed → (almost) nothing sent";
issue 17): Google connected through OAuth, its watch channel confirmed by Google's handshake at
``POST /webhooks/google``, the real ``calendar_poll`` handler run by hand (the schedule is held off),
the SQS pump running the real ``busy_sync`` worker.

* an idle hour (12 polls) costs this mentor 0 Google requests once the new channel's safety resync ran;
* a change made in Google Calendar shows in ``GET /mentors/me/busy`` within 5 s, through push only;
* a push sync that fails puts the connection back on the poll at the very next poll, and a
  successful sync puts it back under push.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_support import Providers, utc_z

from devstack import flows
from devstack.routes import SCHEDULES, LambdaContext
from devstack.scheduler import scheduled_event
from devstack.stack import LocalStack
from shared import wiring
from shared.busy.push_first import SYNC_FAILED_ATTR
from shared.store import Provider, Store
from shared.store.channels import ChannelStore
from shared.store.repository import connection_sk, mentor_pk

PUSH_LATENCY_S = 5.0


@pytest.fixture(autouse=True)
def _fast_retries(provider_env: pytest.MonkeyPatch) -> None:
    # Polls here come seconds apart (no "synced a moment ago" skip); a failed sync is acknowledged at
    # once, so drain() waits only for this test's work.
    provider_env.setenv("BUSY_MAX_ATTEMPTS", "1")
    provider_env.setenv("BUSY_MIN_INTERVAL_S", "0")
    wiring.reset()


def _poll(local_stack: LocalStack) -> dict[str, Any]:
    """One run of the real calendar_poll handler, then every queued sync drained."""
    from functions.calendar_poll.handler import lambda_handler

    (schedule,) = [s for s in SCHEDULES if s.function == "calendar_poll"]
    result: dict[str, Any] = lambda_handler(scheduled_event(schedule), LambdaContext("calendar_poll"))
    local_stack.drain(timeout=60)
    return result


def _calendar_requests(google: Any, email: str) -> int:
    """Calendar API requests made with this account's access tokens (freeBusy, events, watch …)."""
    tokens = {f"Bearer {t}" for t in flows.google_tokens(google, email)}
    return sum(1 for r in google.requests_log("/calendar/v3") if r["headers"].get("Authorization") in tokens)


def _busy_covers(api: httpx.Client, headers: dict[str, str], start: datetime, end: datetime) -> bool:
    window = {"from": utc_z(start - timedelta(hours=1)), "to": utc_z(end + timedelta(hours=1))}
    resp = api.get("/mentors/me/busy", headers=headers, params=window)
    assert resp.status_code == 200, resp.text
    return any(b["start"] <= utc_z(start) and b["end"] >= utc_z(end) for b in resp.json()["busy"])


def _event(google: Any, email: str, start: datetime) -> None:
    google.seed_event(
        email,
        {"summary": "x", "start": {"dateTime": utc_z(start)}, "end": {"dateTime": utc_z(start + timedelta(hours=1))}},
    )


def test_push_first_idle_hour_push_latency_and_fallback_to_polling(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    local_stack: LocalStack,
    mentor: str,
    no_scheduled_poll: None,
) -> None:
    google = providers.google
    email = flows.seed_google_account(google, f"ada-{uuid.uuid4().hex[:8]}@example.com", calendars=[])
    # Given Google connected through OAuth: a watch channel, confirmed by Google's handshake
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
    assert google.flush_pushes(10)
    channels = ChannelStore(stack_store.table)
    (link,) = channels.for_mentor(mentor)
    channel = channels.get(link.channel_id)
    assert channel is not None
    assert channel.confirmed_ms > 0
    local_stack.drain(timeout=60)

    # When the first poll after the new channel runs: one safety resync (one freeBusy)
    before = _calendar_requests(google, email)
    _poll(local_stack)
    assert _calendar_requests(google, email) - before == 1
    # Then an idle hour — 12 scheduled polls, nothing changed — costs this mentor no Google request
    before = _calendar_requests(google, email)
    for _ in range(12):
        _poll(local_stack)
    assert _calendar_requests(google, email) - before == 0

    # When the mentor adds an event in Google Calendar, it shows through push within 5 s
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    started = time.monotonic()
    _event(google, email, day)
    while not _busy_covers(api, headers, day, day + timedelta(hours=1)):
        assert time.monotonic() - started < PUSH_LATENCY_S, "the change did not arrive through push in 5 s"
        time.sleep(0.1)
    print(f"push → busy: {time.monotonic() - started:.2f} s")

    # When Google fails the next push sync (503 on every attempt) …
    google.set_faults(forced=[{"status": 503, "count": 4, "path_prefix": "/calendar/v3/freeBusy", "retry_after": 0}])
    try:
        _event(google, email, day + timedelta(days=1))
        assert google.flush_pushes(10)
        deadline = time.monotonic() + 30
        while not stack_store.table.get(mentor_pk(mentor), connection_sk(Provider.GOOGLE)).get(SYNC_FAILED_ATTR):  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the failed push sync was not recorded"
            time.sleep(0.1)
        local_stack.drain(timeout=60)
    finally:
        google.clear_faults()
    # … the very next poll polls the connection again, and that sync brings the missed change
    before = _calendar_requests(google, email)
    result = _poll(local_stack)
    assert result["push_first"]["google_poll"] >= 1
    assert _calendar_requests(google, email) - before == 1
    assert _busy_covers(api, headers, day + timedelta(days=1), day + timedelta(days=1, hours=1))
    # And once a sync succeeded, push covers it again: the next poll sends nothing for it
    assert SYNC_FAILED_ATTR not in (stack_store.table.get(mentor_pk(mentor), connection_sk(Provider.GOOGLE)) or {})
    before = _calendar_requests(google, email)
    _poll(local_stack)
    assert _calendar_requests(google, email) - before == 0


def _step(google: Any, email: str, local_stack: LocalStack) -> tuple[dict[str, Any], int]:
    """One poll (and its syncs): the poll's result and this mentor's Google calendar requests."""
    before = _calendar_requests(google, email)
    result = _poll(local_stack)
    return result, _calendar_requests(google, email) - before


def test_a_channel_google_dropped_silently_is_caught_by_the_safety_resync_and_replaced(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    local_stack: LocalStack,
    mentor: str,
    no_scheduled_poll: None,
) -> None:
    google = providers.google
    email = flows.seed_google_account(google, f"grace-{uuid.uuid4().hex[:8]}@example.com", calendars=[])
    measured: dict[str, int] = {}
    # Given Google connected through OAuth, its channel confirmed, and the first safety resync done
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
    assert google.flush_pushes(10)
    local_stack.drain(timeout=60)
    channels = ChannelStore(stack_store.table)
    (link,) = channels.for_mentor(mentor)
    dropped = channels.get(link.channel_id)
    assert dropped is not None
    assert dropped.confirmed_ms > 0
    _, measured["first resync"] = _step(google, email, local_stack)
    assert measured["first resync"] == 1

    # When Google drops the channel on its side, telling nobody, and the mentor then adds an event
    google.drop_channel(dropped.channel_id)
    deliveries = len(google.push_deliveries())
    day = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    _event(google, email, day)
    assert google.flush_pushes(10)
    local_stack.drain(timeout=60)
    # Then no push arrives, the change is not in busy times, and plain polls still skip the connection
    assert len(google.push_deliveries()) == deliveries
    for n in range(3):
        result, measured[f"plain poll {n + 1}"] = _step(google, email, local_stack)
        assert measured[f"plain poll {n + 1}"] == 0
        assert result["push_first"]["google_skip"] >= 1
    assert not _busy_covers(api, headers, day, day + timedelta(hours=1))

    # When the safety resync falls due (moved into the past on the channel item) and a poll runs
    past_ms = int((time.time() - 60) * 1000)
    stack_store.table.update(
        f"CHANNEL#{dropped.channel_id}", "CHANNEL", expression="SET resync_due_ms = :p", values={":p": past_ms}
    )
    result, measured["safety resync"] = _step(google, email, local_stack)
    # Then that one sync brings the change, and flags the channel as having missed it
    assert result["push_first"]["google_resync"] >= 1
    assert measured["safety resync"] == 1
    assert _busy_covers(api, headers, day, day + timedelta(hours=1))
    flagged = channels.get(dropped.channel_id)
    assert flagged is not None
    assert flagged.suspect_ms > 0

    # When the next poll runs: the connection is polled at once, and the renewal opens a new channel
    result, measured["poll after flag (+ renewal)"] = _step(google, email, local_stack)
    assert result["push_first"]["google_poll"] >= 1
    assert "renewed': 1" in result["maintenance"]["renew_google_channels"], result["maintenance"]
    # freeBusy, events.watch of the new channel, channels.stop of the old (404: Google had dropped it)
    assert measured["poll after flag (+ renewal)"] == 3
    assert google.flush_pushes(10)
    (new_link,) = channels.for_mentor(mentor)
    renewed = channels.get(new_link.channel_id)
    assert renewed is not None
    assert renewed.channel_id != dropped.channel_id
    assert renewed.confirmed_ms > 0
    assert not renewed.suspect_ms
    assert channels.get(dropped.channel_id) is None

    # Then push-first covers it again: the new channel's first resync, then nothing
    result, measured["new channel's first resync"] = _step(google, email, local_stack)
    assert (result["push_first"]["google_resync"] >= 1, measured["new channel's first resync"]) == (True, 1)
    for n in range(3):
        _, measured[f"covered poll {n + 1}"] = _step(google, email, local_stack)
        assert measured[f"covered poll {n + 1}"] == 0
    # And a change now arrives through the new channel's push again
    _event(google, email, day + timedelta(days=1))
    assert google.flush_pushes(10)
    local_stack.drain(timeout=60)
    assert _busy_covers(api, headers, day + timedelta(days=1), day + timedelta(days=1, hours=1))
    print("Google calendar requests per step:", measured)
