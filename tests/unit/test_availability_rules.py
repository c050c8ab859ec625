"""Availability rules (shared.availability.rules / .service, shared.store.availability): the checks
that answer field-level 400s, the defaults before the first write, versions and the conditional write."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.availability.rules import AvailabilityRules, PutAvailabilityRequest, problems
from shared.availability.service import get_availability, put_availability
from shared.platform.api import ApiError
from shared.store import Store
from shared.store.availability import AvailabilityStore
from shared.store.errors import ConflictError

TODAY = date(2027, 1, 10)
NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "weekly": {"mon": [{"start": "09:00", "end": "17:00"}], "sun": []},
        "overrides": [{"date": "2027-03-01", "ranges": []}],
        "bufferBeforeMinutes": 0,
        "bufferAfterMinutes": 0,
        "minimumNoticeMinutes": 120,
        "horizonDays": 60,
        "slotStepMinutes": 30,
    }
    doc.update(changes)
    return doc


def fields(doc: dict[str, Any]) -> list[str]:
    return [f["field"] for f in problems(AvailabilityRules.model_validate(doc), TODAY)]


def test_the_contract_example_is_valid() -> None:
    assert fields(body()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"weekly": {"mon": [{"start": "17:00", "end": "09:00"}]}}, ["weekly.mon.0.end"]),
        ({"weekly": {"tue": [{"start": "09:00", "end": "09:00"}]}}, ["weekly.tue.0.end"]),
        ({"weekly": {"wed": [{"start": "24:00", "end": "24:00"}]}}, ["weekly.wed.0.start"]),
        (
            {"weekly": {"fri": [{"start": "12:00", "end": "18:00"}, {"start": "09:00", "end": "12:30"}]}},
            ["weekly.fri.0"],
        ),
        ({"timezone": "Mars/Olympus"}, ["timezone"]),
        ({"timezone": "localtime"}, ["timezone"]),
        ({"slotStepMinutes": 7}, ["slotStepMinutes"]),
        ({"slotStepMinutes": 90}, ["slotStepMinutes"]),
        ({"overrides": [{"date": "2027-01-08", "ranges": []}]}, ["overrides.0.date"]),
        ({"overrides": [{"date": "2037-01-11", "ranges": []}]}, ["overrides.0.date"]),
        (
            {"overrides": [{"date": "2027-03-01", "ranges": []}, {"date": "2027-03-01", "ranges": []}]},
            ["overrides.1.date"],
        ),
        (
            {"overrides": [{"date": "2027-03-01", "ranges": [{"start": "10:00", "end": "09:00"}]}]},
            ["overrides.0.ranges.0.end"],
        ),
    ],
)
def test_problems_name_the_field(changes: dict[str, Any], expected: list[str]) -> None:
    assert fields(body(**changes)) == expected


def test_touching_ranges_24_00_and_yesterday_are_fine() -> None:
    doc = body(
        weekly={"sat": [{"start": "00:00", "end": "12:00"}, {"start": "12:00", "end": "24:00"}]},
        overrides=[{"date": "2027-01-09", "ranges": [{"start": "08:00", "end": "09:00"}]}],
        slotStepMinutes=1440,
    )
    assert fields(doc) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"horizonDays": 366},
        {"horizonDays": 0},
        {"bufferBeforeMinutes": -1},
        {"bufferAfterMinutes": "10"},
        {"minimumNoticeMinutes": True},
        {"weekly": {"mon": [{"start": "9:00", "end": "17:00"}]}},
        {"weekly": {"mon": [{"start": "09:00", "end": "24:30"}]}},
        {"weekly": {"funday": []}},
        {"weekly": {"mon": [{"start": f"{h:02d}:00", "end": f"{h:02d}:30"} for h in range(13)]}},
        {"overrides": [{"date": "2027-03-01"}] * 401},
        {"surprise": 1},
    ],
)
def test_types_and_bounds_are_refused_by_the_model(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PutAvailabilityRequest.model_validate(body(**changes))


def test_get_before_put_answers_the_defaults(store: Store) -> None:
    view = get_availability(AvailabilityStore(store.table), "m-1").model_dump(by_alias=True, mode="json")
    assert view["version"] == 0
    assert view["timezone"] == "UTC"
    assert all(v == [] for v in view["weekly"].values())
    assert view["minimumNoticeMinutes"] == 120
    assert view["horizonDays"] == 60
    assert view["slotStepMinutes"] == 30


def test_put_then_get_round_trip_and_versions(store: Store) -> None:
    repo = AvailabilityStore(store.table)
    first = put_availability(repo, "m-1", PutAvailabilityRequest.model_validate(body()), now=NOW)
    assert first.version == 1
    got = get_availability(repo, "m-1").model_dump(by_alias=True, mode="json")
    assert got["weekly"]["mon"] == [{"start": "09:00", "end": "17:00"}]
    assert got["overrides"][0]["date"] == "2027-03-01"
    assert get_availability(repo, "m-2").version == 0  # another mentor's item is its own
    second = put_availability(repo, "m-1", PutAvailabilityRequest.model_validate(body(version=1)), now=NOW)
    assert second.version == 2
    with pytest.raises(ApiError) as stale:
        put_availability(repo, "m-1", PutAvailabilityRequest.model_validate(body(version=1)), now=NOW)
    assert stale.value.status == 409
    assert stale.value.code == "availability_changed"
    assert stale.value.extra["currentVersion"] == 2
    assert put_availability(repo, "m-1", PutAvailabilityRequest.model_validate(body()), now=NOW).version == 3


def test_invalid_put_writes_nothing(store: Store) -> None:
    repo = AvailabilityStore(store.table)
    bad = PutAvailabilityRequest.model_validate(body(timezone="Nowhere/Land", slotStepMinutes=7))
    with pytest.raises(ApiError) as err:
        put_availability(repo, "m-1", bad, now=NOW)
    assert err.value.status == 400
    assert err.value.code == "invalid_request"
    assert [f["field"] for f in err.value.extra["fields"]] == ["timezone", "slotStepMinutes"]
    assert repo.get("m-1") is None


def test_store_write_is_conditional(store: Store) -> None:
    repo = AvailabilityStore(store.table)
    assert repo.put("m-1", {"a": 1}, expected_version=0, now=NOW) == 1
    with pytest.raises(ConflictError):
        repo.put("m-1", {"a": 2}, expected_version=0, now=NOW)
    with pytest.raises(ConflictError):
        repo.put("m-1", {"a": 2}, expected_version=5, now=NOW)
    assert repo.get("m-1").doc == {"a": 1}  # type: ignore[union-attr]
