"""Busy times end to end: Google and Apple connected through the API, the scheduled poll fans out
(``local_stack.tick("calendar-poll")``), the SQS pump runs the real busy_sync worker, and
``GET /mentors/me/busy`` merges both calendars; a revoked Apple password is skipped and reported."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import caldav
import httpx
import pytest
from e2e_support import Providers, busy_ics, utc_z

from devstack import flows
from devstack.stack import LocalStack
from shared import wiring
from shared.store import ConnectionStatus, Provider, Store
from shared.store.busy import BusyStore

PASSWORD = "abcd-efgh-ijkl-mnop"


def _sync_all(local_stack: LocalStack) -> dict[str, object]:
    """One scheduled poll, then wait until every queued sync ran."""
    result = local_stack.tick("calendar-poll")
    local_stack.drain(timeout=60)
    return result  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _no_retry_wait(provider_env: pytest.MonkeyPatch) -> None:
    # The shared stack's table holds other tests' connections too; a transient failure of theirs is
    # acknowledged at once (not redelivered 30 s later), so drain() measures only this test's work.
    # Polls here come seconds apart: no "synced a moment ago" skip.
    provider_env.setenv("BUSY_MAX_ATTEMPTS", "1")
    provider_env.setenv("BUSY_MIN_INTERVAL_S", "0")
    wiring.reset()


def test_poll_syncs_google_and_apple_and_busy_merges_them(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    local_stack: LocalStack,
    mentor: str,
) -> None:
    # Given a mentor (Berlin) with Google connected through OAuth and Apple through the API
    stack_store.upsert_mentor(mentor, email=f"{mentor}@mentor.example.com", timezone="Europe/Berlin")
    email = flows.seed_google_account(providers.google, f"ada-{uuid.uuid4().hex[:8]}@example.com", calendars=[])
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
    apple_id = f"ada-{uuid.uuid4().hex[:8]}@icloud.com"
    providers.caldav.add_user(apple_id, PASSWORD)
    resp = api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": PASSWORD})
    assert resp.status_code == 201, resp.text
    # And busy times in both: Google 10:00-11:00 and Apple 10:30-12:00 the day after tomorrow, Apple
    # alone the day after that, and one event beyond what the mentor asks for
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    providers.google.seed_event(
        email, {"start": {"dateTime": utc_z(day)}, "end": {"dateTime": utc_z(day + timedelta(hours=1))}, "summary": "x"}
    )
    calendar = (
        caldav.DAVClient(url=providers.caldav.url, username=apple_id, password=PASSWORD)
        .principal()
        .make_calendar(name="Home")
    )
    calendar.add_event(busy_ics("a1", day + timedelta(minutes=30), day + timedelta(hours=2)))
    calendar.add_event(busy_ics("a2", day + timedelta(days=1, hours=4), day + timedelta(days=1, hours=5)))
    calendar.add_event(busy_ics("a3", day + timedelta(days=20), day + timedelta(days=20, hours=1)))

    # When the scheduled poll runs and the worker drains the queue
    result = _sync_all(local_stack)
    assert result["total"] >= 2  # type: ignore[operator]
    window = {"from": utc_z(day - timedelta(hours=10)), "to": utc_z(day + timedelta(days=3))}
    resp = api.get("/mentors/me/busy", headers=headers, params=window)

    # Then the busy times of both calendars come back merged, each labelled with its sources
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["busy"] == [
        {"start": utc_z(day), "end": utc_z(day + timedelta(hours=2)), "sources": ["apple", "google"]},
        {
            "start": utc_z(day + timedelta(days=1, hours=4)),
            "end": utc_z(day + timedelta(days=1, hours=5)),
            "sources": ["apple"],
        },
    ]
    for provider in ("google", "apple"):
        source = body["sources"][provider]
        assert source["status"] == "connected"
        assert source["lastSyncedAt"] is not None
        assert source["error"] is None
        assert datetime.fromisoformat(source["syncedUntil"]) >= day + timedelta(days=57)  # now + 60 days

    # When the Apple app-specific password is revoked and the next poll runs
    providers.caldav.remove_user(apple_id)
    _sync_all(local_stack)
    body = api.get("/mentors/me/busy", headers=headers, params=window).json()
    # Then Apple is skipped and reported (needs_reconnect, last good sync kept), Google still shows
    assert body["busy"] == [{"start": utc_z(day), "end": utc_z(day + timedelta(hours=1)), "sources": ["google"]}]
    apple = body["sources"]["apple"]
    assert (apple["status"], apple["error"]) == ("needs_reconnect", "needs_reconnect")
    assert apple["lastSyncedAt"] is not None
    conn = stack_store.get_connection(mentor, Provider.APPLE)
    assert conn is not None
    assert conn.status is ConnectionStatus.NEEDS_RECONNECT

    # And it is not polled again: the next poll leaves it alone
    head = BusyStore(stack_store.table).head(mentor, Provider.APPLE)
    _sync_all(local_stack)
    assert BusyStore(stack_store.table).head(mentor, Provider.APPLE) == head


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-06-01T00:00:00", "to": "2026-06-02T00:00:00Z"}, "from"),
        ({"from": "2026-06-02T00:00:00Z", "to": "2026-06-01T00:00:00Z"}, "to"),
        ({"from": "2026-06-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
    ],
)
def test_a_bad_window_is_400(api: httpx.Client, headers: dict[str, str], params: dict[str, str], field: str) -> None:
    resp = api.get("/mentors/me/busy", headers=headers, params=params)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_request"
    assert resp.json()["error"]["fields"][0]["field"] == field


def test_busy_needs_a_mentor_token(api: httpx.Client) -> None:
    assert api.get("/mentors/me/busy").status_code == 401


def test_a_mentor_with_no_calendar_gets_an_empty_answer(api: httpx.Client, headers: dict[str, str]) -> None:
    body = api.get("/mentors/me/busy", headers=headers).json()
    assert body["busy"] == []
    assert {p: s["status"] for p, s in body["sources"].items()} == {
        "apple": "not_connected",
        "google": "not_connected",
        "microsoft": "not_connected",
    }
