"""Done-when of Google push (PRODUCT.md §2.7): a change made in Google Calendar is visible in
``GET /mentors/me/busy`` without waiting for the schedule.

Connect Google through OAuth (the emulator opens the watch channel), add an event at the emulator
as the mentor would in Google Calendar → Google's push → ``POST /webhooks/google`` → busy-sync
queue → ``busy_sync`` worker → ``GET /mentors/me/busy`` shows the block. The ``calendar-poll``
schedule is held off for the duration, so the block can only have come through the push.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import Providers

from devstack import flows
from shared.store import Store
from shared.store.channels import ChannelStore

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (ROOT / "functions" / "busy_sync" / "handler.py").exists(),
    reason="needs the busy_sync worker and GET /mentors/me/busy (busy sync core, issue 6)",
)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _blocks(body: Any) -> list[dict[str, Any]]:
    """Every object with a ``start`` and an ``end`` in the answer, whatever its envelope."""
    if isinstance(body, list):
        return [b for item in body for b in _blocks(item)]
    if not isinstance(body, dict):
        return []
    found = [body] if _instant(body.get("start")) and _instant(body.get("end")) else []
    return found + [b for value in body.values() for b in _blocks(value)]


def _covered(body: Any, start: datetime, end: datetime) -> bool:
    for block in _blocks(body):
        s, e = _instant(block["start"]), _instant(block["end"])
        if s is not None and e is not None and s <= start and e >= end:
            return True
    return False


def test_a_google_change_is_visible_in_busy_without_the_schedule(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    mentor: str,
    no_scheduled_poll: None,
) -> None:
    google = providers.google
    email = flows.seed_google_account(google, f"ada-{uuid.uuid4().hex[:8]}@example.com")
    # Given Google connected through OAuth: the callback opened a watch channel
    assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
    (channel,) = ChannelStore(stack_store.table).for_mentor(mentor)
    start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=1)
    window = {"from": (start - timedelta(days=1)).isoformat(), "to": (end + timedelta(days=1)).isoformat()}
    before = api.get("/mentors/me/busy", headers=headers, params=window)
    assert before.status_code == 200, before.text
    assert not _covered(before.json(), start, end)
    # When the mentor adds an event in Google Calendar
    google.seed_event(
        email, {"summary": "Dentist", "start": {"dateTime": start.isoformat()}, "end": {"dateTime": end.isoformat()}}
    )
    # Then Google pushed it to our webhook, which accepted it
    assert google.flush_pushes(10)
    pushed = [d for d in google.push_deliveries() if d["headers"]["X-Goog-Channel-ID"] == channel.channel_id]
    assert [(d["headers"]["X-Goog-Resource-State"], d.get("status")) for d in pushed] == [
        ("sync", 200),
        ("exists", 200),
    ]
    # And within seconds (push → queue → worker), without a poll, the busy times show the block
    deadline = time.monotonic() + 30
    body: Any = None
    while time.monotonic() < deadline:
        resp = api.get("/mentors/me/busy", headers=headers, params=window)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if _covered(body, start, end):
            break
        time.sleep(0.25)
    assert _covered(body, start, end), body
