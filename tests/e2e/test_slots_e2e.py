"""``GET /mentors/{mentorId}/slots`` through the local gateway (real HTTP): the mentor sets hours with
``PUT /mentors/me/availability``, the platform reads slots; a Google busy event (synced by the
scheduled poll) and a class session remove theirs; a ``needs_reconnect`` source is degraded; a mentor
token is refused; a window over 62 days is 400. Also counts the DynamoDB calls one ``GET`` makes. A
Google event removes its slots within 5 s through push alone; an iCloud event after one poll."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.client import BaseClient
from classes_support import connect, create, in_person
from e2e_support import Providers, busy_ics, utc_z
from private_support import at, set_rules
from private_support import day as local_day

from devstack import flows
from devstack.stack import LocalStack
from shared import wiring
from shared.store import ConnectionStatus, Provider, Store


@pytest.fixture(autouse=True)
def _no_retry_wait(provider_env: pytest.MonkeyPatch) -> None:
    provider_env.setenv("BUSY_MAX_ATTEMPTS", "1")
    provider_env.setenv("BUSY_MIN_INTERVAL_S", "0")
    wiring.reset()


def _starts(body: dict[str, Any]) -> list[str]:
    return [s["start"][11:16] for s in body["slots"]]


def _all_day(start: int = 9, end: int = 16) -> list[str]:
    return [f"{h:02d}:{m:02d}" for h in range(start, end + 1) for m in (0, 30) if not (h == end and m == 30)]


def _get(
    api: httpx.Client, platform_headers: dict[str, str], mentor: str, day: datetime, **extra: str
) -> httpx.Response:
    params = {"from": utc_z(day), "to": utc_z(day + timedelta(days=1)), "duration": "60", **extra}
    return api.get(f"/mentors/{mentor}/slots", params=params, headers=platform_headers)


def test_no_rules_no_slots_and_a_mentor_token_is_refused(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], mentor: str
) -> None:
    day = local_day(3)
    resp = _get(api, platform_headers, mentor, day)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"slots": [], "sources": {}, "degradedSources": []}
    refused = api.get(f"/mentors/{mentor}/slots", params={"duration": "60"}, headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "insufficient_scope"


def test_slots_follow_the_rules_and_skip_busy_and_taught_time(
    api: httpx.Client,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    local_stack: LocalStack,
    mentor: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a Berlin mentor with 09:00-17:00 every day
    set_rules(api, headers)
    day = local_day(3)
    first = _get(api, platform_headers, mentor, day)
    assert first.status_code == 200, first.text
    body = first.json()
    assert _starts(body) == _all_day()
    assert body["slots"][0] == {"start": at(day, 9).isoformat(), "end": at(day, 10).isoformat()}

    # And Google connected with a busy event 10:00-11:00, synced by the scheduled poll
    stack_store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com", timezone="Europe/Berlin")
    email = flows.seed_google_account(providers.google, f"sl-{uuid.uuid4().hex[:8]}@example.com", calendars=[])
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
    providers.google.seed_event(
        email, {"start": {"dateTime": utc_z(at(day, 10))}, "end": {"dateTime": utc_z(at(day, 11))}, "summary": "x"}
    )
    local_stack.tick("calendar-poll")
    local_stack.drain(timeout=60)
    # And an in-person class at 13:00 (60 minutes)
    create(api, headers, in_person(starts=[at(day, 13).replace(tzinfo=None).isoformat()]))

    # When the platform reads the slots (counting the DynamoDB calls of this one request)
    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls[operation] += 1
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    resp = _get(api, platform_headers, mentor, day)
    monkeypatch.undo()

    # Then the busy hour and the taught hour are gone (a 60-minute slot may not overlap either)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    gone = {"09:30", "10:00", "10:30", "12:30", "13:00", "13:30"}
    assert _starts(body) == [s for s in _all_day() if s not in gone]
    assert body["sources"]["google"]["status"] == "connected"
    assert body["sources"]["google"]["syncedAt"] is not None
    assert body["degradedSources"] == []
    # And the reads are a constant handful: rules, connections, busy sets, classes, one per class
    print(f"DynamoDB calls per GET /slots (1 class): {dict(calls)}")
    assert sum(calls.values()) <= 6, calls


def test_a_source_that_needs_reconnecting_is_degraded(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], stack_store: Store, mentor: str
) -> None:
    set_rules(api, headers)
    connect(stack_store, mentor, Provider.APPLE, status=ConnectionStatus.NEEDS_RECONNECT)
    resp = _get(api, platform_headers, mentor, local_day(3))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["sources"] == {"apple": {"status": "needs_reconnect", "syncedAt": None}}
    assert body["degradedSources"] == ["apple"]
    assert _starts(body) == _all_day()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"to": "2099-01-01T00:00:00Z"}, "to"),
        ({"duration": "4"}, "duration"),
        ({"duration": "481"}, "duration"),
        ({"duration": "abc"}, "duration"),
        ({"from": "2020-01-01T00:00:00Z"}, "from"),
        ({"from": "2027-01-01T00:00:00"}, "from"),
    ],
)
def test_a_bad_query_is_400(
    api: httpx.Client, platform_headers: dict[str, str], mentor: str, extra: dict[str, str], field: str
) -> None:
    day = local_day(3)
    if extra.get("to") == "2099-01-01T00:00:00Z":
        extra = {"to": utc_z(day + timedelta(days=63))}
    resp = _get(api, platform_headers, mentor, day, **extra)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_request"
    assert resp.json()["error"]["fields"][0]["field"] == field


def _wait_for(check: Any, seconds: float) -> float:
    """Seconds until ``check()`` is true (polling every 100 ms), or fail after ``seconds``."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if check():
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"not true within {seconds} s")


def test_a_google_event_removes_its_slots_within_5_s_through_push_without_a_poll(
    api: httpx.Client,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    mentor: str,
    no_scheduled_poll: None,
) -> None:
    # Given Berlin hours and Google connected through OAuth (the callback opened a watch channel)
    set_rules(api, headers)
    stack_store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com", timezone="Europe/Berlin")
    email = flows.seed_google_account(providers.google, f"push-{uuid.uuid4().hex[:8]}@example.com", calendars=[])
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
    day = local_day(4)
    assert "14:00" in _starts(_get(api, platform_headers, mentor, day).json())
    # When the mentor adds 14:00-15:00 in Google Calendar (the schedule is held off: only push can tell us)
    providers.google.seed_event(
        email, {"start": {"dateTime": utc_z(at(day, 14))}, "end": {"dateTime": utc_z(at(day, 15))}, "summary": "x"}
    )
    assert providers.google.flush_pushes(10)
    # Then within 5 s the 60-minute slots touching it are gone
    took = _wait_for(
        lambda: {"13:30", "14:00", "14:30"}.isdisjoint(_starts(_get(api, platform_headers, mentor, day).json())), 5
    )
    print(f"Google event → slots gone through push in {took:.2f} s")


def test_an_icloud_event_removes_its_slots_after_one_poll(
    api: httpx.Client,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    providers: Providers,
    local_stack: LocalStack,
    mentor: str,
) -> None:
    import caldav

    set_rules(api, headers)
    apple_id = f"sl-{uuid.uuid4().hex[:8]}@icloud.com"
    providers.caldav.add_user(apple_id, "abcd-efgh-ijkl-mnop")
    resp = api.post(
        "/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": "abcd-efgh-ijkl-mnop"}
    )
    assert resp.status_code == 201, resp.text
    day = local_day(5)
    calendar = (
        caldav.DAVClient(url=providers.caldav.url, username=apple_id, password="abcd-efgh-ijkl-mnop")
        .principal()
        .make_calendar(name="Home")
    )
    calendar.add_event(busy_ics("slot-1", at(day, 11).astimezone(UTC), at(day, 12).astimezone(UTC)))
    # When the scheduled poll runs once
    local_stack.tick("calendar-poll")
    local_stack.drain(timeout=60)
    # Then 10:30, 11:00 and 11:30 are gone, and apple is a fresh source
    body = _get(api, platform_headers, mentor, day).json()
    assert {"10:30", "11:00", "11:30"}.isdisjoint(_starts(body))
    assert {"10:00", "12:00"} <= set(_starts(body))
    assert body["sources"]["apple"]["status"] == "connected"
    assert "apple" not in body["degradedSources"]
