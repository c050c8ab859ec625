"""Helpers of the private-session tests (e2e and reliability): rules, times and request bodies."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from e2e_support import utc_z

BERLIN = ZoneInfo("Europe/Berlin")


def rules(**over: Any) -> dict[str, Any]:
    """Berlin, 09:00-17:00 every day, 30-minute step, no notice (tests book a few days ahead)."""
    day = [{"start": "09:00", "end": "17:00"}]
    return {
        "timezone": "Europe/Berlin",
        "weekly": {d: day for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "overrides": [],
        "bufferBeforeMinutes": 0,
        "bufferAfterMinutes": 0,
        "minimumNoticeMinutes": 0,
        "horizonDays": 60,
        "slotStepMinutes": 30,
        **over,
    }


def day(days: int = 4) -> datetime:
    d = (datetime.now(BERLIN) + timedelta(days=days)).date()
    return datetime(d.year, d.month, d.day, tzinfo=BERLIN)


def at(base: datetime, hour: int, minute: int = 0) -> datetime:
    return datetime(base.year, base.month, base.day, hour, minute, tzinfo=BERLIN)


def body(mentor: str, start: datetime, minutes: int = 60, **over: Any) -> dict[str, Any]:
    return {
        "mentorId": mentor,
        "start": start.isoformat(),
        "durationMinutes": minutes,
        "format": "in_person",
        "location": "Studio 2, Main St 1",
        "studentEmail": f"s-{uuid.uuid4().hex[:8]}@example.com",
        "studentName": "Sam Student",
        "priceAmount": 6000,
        "currency": "EUR",
        **over,
    }


def slot_starts(
    api: httpx.Client, platform: dict[str, str], mentor: str, base: datetime, minutes: int = 60
) -> list[str]:
    params = {"from": utc_z(base), "to": utc_z(base + timedelta(days=1)), "duration": str(minutes)}
    resp = api.get(f"/mentors/{mentor}/slots", params=params, headers=platform)
    assert resp.status_code == 200, resp.text
    return [s["start"][11:16] for s in resp.json()["slots"]]


def set_rules(api: httpx.Client, headers: dict[str, str], **over: Any) -> None:
    resp = api.put("/mentors/me/availability", json=rules(**over), headers=headers)
    assert resp.status_code == 200, resp.text
