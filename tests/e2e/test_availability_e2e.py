"""``GET`` / ``PUT /mentors/me/availability`` through the local gateway (real HTTP): defaults before
the first write, a round trip, field-level 400s, versions, each mentor on its own data, and the
platform token refused on the mentor route."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

PATH = "/mentors/me/availability"


def _rules(**changes: Any) -> dict[str, Any]:
    soon = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    doc: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "weekly": {
            "mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
            "tue": [],
            "wed": [],
            "thu": [],
            "fri": [{"start": "09:00", "end": "24:00"}],
            "sat": [],
            "sun": [],
        },
        "overrides": [{"date": soon, "ranges": []}],
        "bufferBeforeMinutes": 10,
        "bufferAfterMinutes": 5,
        "minimumNoticeMinutes": 120,
        "horizonDays": 60,
        "slotStepMinutes": 30,
    }
    doc.update(changes)
    return doc


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code
    return error


def test_defaults_then_put_and_get(api: httpx.Client, headers: dict[str, str]) -> None:
    first = api.get(PATH, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 0
    assert first.json()["timezone"] == "UTC"
    assert all(ranges == [] for ranges in first.json()["weekly"].values())

    put = api.put(PATH, json=_rules(), headers=headers)
    assert put.status_code == 200, put.text
    assert put.json() == {**_rules(), "version": 1}
    got = api.get(PATH, headers=headers)
    assert got.json() == {**_rules(), "version": 1}

    assert api.put(PATH, json=_rules(version=1, horizonDays=30), headers=headers).json()["version"] == 2
    stale = _error(api.put(PATH, json=_rules(version=1), headers=headers), 409, "availability_changed")
    assert stale["currentVersion"] == 2


def test_field_level_400s(api: httpx.Client, headers: dict[str, str]) -> None:
    bad = _rules(
        timezone="Nowhere/Land",
        slotStepMinutes=7,
        weekly={
            "mon": [{"start": "10:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}],
            "tue": [{"start": "17:00", "end": "09:00"}],
            "wed": [{"start": "24:00", "end": "24:00"}],
        },
        overrides=[{"date": "2001-01-01", "ranges": []}],
    )
    error = _error(api.put(PATH, json=bad, headers=headers), 400, "invalid_request")
    assert {f["field"] for f in error["fields"]} == {
        "timezone",
        "slotStepMinutes",
        "weekly.mon.1",
        "weekly.tue.0.end",
        "weekly.wed.0.start",
        "overrides.0.date",
    }
    typed = _error(api.put(PATH, json=_rules(horizonDays=400), headers=headers), 400, "invalid_request")
    assert [f["field"] for f in typed["fields"]] == ["horizonDays"]
    shape = _error(
        api.put(PATH, json=_rules(weekly={"mon": [{"start": "9am", "end": "17:00"}]}), headers=headers),
        400,
        "invalid_request",
    )
    assert [f["field"] for f in shape["fields"]] == ["weekly.mon.0.start"]
    assert api.get(PATH, headers=headers).json()["version"] == 0  # nothing was written


def test_each_mentor_acts_on_its_own_rules(
    api: httpx.Client, mentor: str, headers: dict[str, str], mentor_headers: Callable[..., dict[str, str]]
) -> None:
    other = mentor_headers(f"{mentor}-other")
    assert api.put(PATH, json=_rules(), headers=headers).status_code == 200
    assert api.get(PATH, headers=other).json()["version"] == 0
    assert api.put(PATH, json=_rules(timezone="America/New_York"), headers=other).json()["version"] == 1
    assert api.get(PATH, headers=headers).json()["timezone"] == "Europe/Berlin"


def test_platform_token_and_no_token_are_refused(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str]
) -> None:
    _error(api.get(PATH, headers=platform_headers), 403, "insufficient_scope")
    # Refused before the body is read: a bad body still answers 403, and nothing is written.
    _error(api.put(PATH, json={"nonsense": True}, headers=platform_headers), 403, "insufficient_scope")
    _error(api.put(PATH, json=_rules(), headers=platform_headers), 403, "insufficient_scope")
    assert api.get(PATH).status_code == 401
    assert api.get(PATH, headers=headers).json()["version"] == 0
