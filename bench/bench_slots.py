"""Availability benchmarks (issue 15): the slot engine in-process, ``GET /mentors/{id}/slots`` and
``POST /private-sessions`` through the local gateway, and the DynamoDB calls of one ``GET /slots``.

* **Engine**: :func:`shared.availability.slots.bookable_slots` over a 30-day window, Berlin 09:00-17:00
  Mon-Fri with 15-minute buffers, 1,000 busy blocks and 200 taught sessions, 60-minute slots on a
  30-minute step; 200 runs, p50 / p95 (target p95 <= 50 ms).
* **Gateway**: a fresh local stack (no providers, no queue pumps); a mentor with those rules, a
  connected Google calendar whose busy set holds 1,000 blocks (written as busy sync writes it), one
  class of 20 sessions and 30 private sessions; 100 sequential ``GET /slots`` of a 7-day window
  (p50 / p95), and 60 sequential ``POST /private-sessions`` on free half-hours (p50 / p95).
* **DynamoDB calls per GET /slots**, counted on boto3, for the mentor above and for one with 10x the
  busy blocks and private sessions: the target is the same number (no call per busy block, source
  item or private session; one Query per class teaching in the window).

``python -m bench.bench_slots`` prints JSON. Gateway figures are the local stack's (moto), not AWS's.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench import Row

BERLIN = ZoneInfo("Europe/Berlin")
RUNS = 200


def _pcts(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
    }


def _rules() -> dict[str, Any]:
    day = [{"start": "09:00", "end": "17:00"}]
    return {
        "timezone": "Europe/Berlin",
        "weekly": {d: day for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [], "sun": []},
        "overrides": [],
        "bufferBeforeMinutes": 15,
        "bufferAfterMinutes": 15,
        "minimumNoticeMinutes": 0,
        "horizonDays": 120,
        "slotStepMinutes": 30,
    }


def _blocks(start: datetime, days: int, count: int, seed: int) -> list[tuple[datetime, datetime]]:
    rng = random.Random(seed)  # benchmark data, not a secret
    found = []
    for _ in range(count):
        at = start + timedelta(minutes=rng.randrange(0, days * 24 * 60, 15))
        found.append((at, at + timedelta(minutes=rng.choice((15, 30, 45, 60, 90)))))
    return found


def engine() -> dict[str, Any]:
    from shared.availability.rules import AvailabilityRules
    from shared.availability.slots import Interval, bookable_slots

    hours = AvailabilityRules.model_validate(_rules()).hours()
    start = datetime(2027, 3, 1, tzinfo=BERLIN)
    busy = [Interval(a, b) for a, b in _blocks(start, 30, 1_000, 1)]
    taught = [Interval(a, b) for a, b in _blocks(start, 30, 200, 2)]
    samples, found = [], 0
    for _ in range(RUNS):
        began = time.perf_counter()
        found = len(
            bookable_slots(
                hours,
                now=start - timedelta(days=1),
                window_start=start,
                window_end=start + timedelta(days=30),
                duration=timedelta(minutes=60),
                busy=busy,
                taught=taught,
            )
        )
        samples.append(time.perf_counter() - began)
    return {**_pcts(samples), "slots": found}


def _seed_mentor(stack: Any, api: Any, mentor: str, *, blocks: int, privates: int, base: datetime) -> None:
    from shared.store import Connection, ConnectionStatus, Provider, Store, Table
    from shared.store.busy import Block, BusyStore

    headers = {"authorization": f"Bearer {stack.token(mentor)}"}
    platform = {"authorization": f"Bearer {stack.platform_token()}"}
    table = Table(stack.client("dynamodb"), stack.environment()["TABLE_NAME"])
    Store(table).save_connection(
        Connection(mentor_id=mentor, provider=Provider.GOOGLE, status=ConnectionStatus.CONNECTED), expected_version=None
    )
    assert api.put("/mentors/me/availability", json=_rules(), headers=headers).status_code == 200
    now = datetime.now(UTC)
    BusyStore(table).replace(
        mentor,
        Provider.GOOGLE,
        [Block(a, b) for a, b in _blocks(base, 60, blocks, 3)],
        window=(now, now + timedelta(days=60)),
        read_at=now,
    )
    weekly = {
        "title": "Weekly",
        "format": "in_person",
        "timezone": "Europe/Berlin",
        "durationMinutes": 60,
        "capacity": 5,
        "location": "Room 1",
        "rrule": "FREQ=DAILY;COUNT=20",
        "dtstart": base.replace(hour=8, tzinfo=None).isoformat(),
    }
    assert api.post("/classes", json=weekly, headers=headers).status_code == 201
    made = 0
    for day in range(60):
        for hour in range(9, 17):
            if made >= privates:
                return
            start = (base + timedelta(days=day)).replace(hour=hour)
            resp = api.post("/private-sessions", json=_private(mentor, start, made), headers=platform)
            made += resp.status_code == 201


def _private(mentor: str, start: datetime, n: int) -> dict[str, Any]:
    return {
        "mentorId": mentor,
        "start": start.isoformat(),
        "durationMinutes": 30,
        "format": "in_person",
        "location": "Room 2",
        "studentEmail": f"bench{n}@example.com",
        "studentName": "Bench",
        "priceAmount": 5000,
        "currency": "EUR",
    }


def against_local_stack() -> dict[str, Any]:
    import httpx
    from botocore.client import BaseClient

    from devstack.stack import LocalStack
    from shared.platform.observability import logger

    base = datetime.now(BERLIN).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
    result: dict[str, Any] = {}
    with LocalStack(providers=False, queue_workers=()) as stack:
        logger.setLevel("WARNING")
        platform = {"authorization": f"Bearer {stack.platform_token()}"}
        with httpx.Client(base_url=stack.api_url, timeout=30) as api, contextlib.redirect_stdout(io.StringIO()):
            _seed_mentor(stack, api, "m-bench-slots", blocks=1_000, privates=30, base=base)
            _seed_mentor(stack, api, "m-bench-slots-10x", blocks=10_000, privates=300, base=base)
            params = {
                "from": base.astimezone(UTC).isoformat(),
                "to": (base + timedelta(days=7)).astimezone(UTC).isoformat(),
                "duration": "60",
            }
            samples = []
            for _ in range(100):
                began = time.perf_counter()
                resp = api.get("/mentors/m-bench-slots/slots", params=params, headers=platform)
                samples.append(time.perf_counter() - began)
                assert resp.status_code == 200, resp.text
            result["get_slots"] = _pcts(samples)
            calls: dict[str, dict[str, int]] = {}
            original = getattr(BaseClient, "_make_api_call")  # noqa: B009
            for mentor in ("m-bench-slots", "m-bench-slots-10x"):
                counted: Counter[str] = Counter()

                def counting(self: Any, operation: str, kwargs: dict[str, Any], _c: Counter[str] = counted) -> Any:
                    if self.meta.service_model.service_name == "dynamodb":
                        _c[operation] += 1
                    return original(self, operation, kwargs)

                setattr(BaseClient, "_make_api_call", counting)  # noqa: B010 - a private botocore hook
                try:
                    assert api.get(f"/mentors/{mentor}/slots", params=params, headers=platform).status_code == 200
                finally:
                    setattr(BaseClient, "_make_api_call", original)  # noqa: B010
                calls[mentor] = dict(counted)
            result["dynamodb_calls"] = calls
            samples = []
            later = base + timedelta(days=40)
            for n in range(60):
                start = (later + timedelta(days=n // 16)).replace(hour=9) + timedelta(minutes=30 * (n % 16))
                if start.weekday() >= 5:
                    continue
                began = time.perf_counter()
                resp = api.post("/private-sessions", json=_private("m-bench-slots", start, 1000 + n), headers=platform)
                samples.append(time.perf_counter() - began)
                assert resp.status_code in (201, 409), resp.text
            result["post_private"] = _pcts(samples)
    return result


def main() -> dict[str, Any]:
    return {"engine": engine(), "gateway": against_local_stack()}


def summary(result: dict[str, Any]) -> list[Row]:
    eng, gw = result["engine"], result["gateway"]
    calls = gw["dynamodb_calls"]
    one, ten = (sum(c.values()) for c in calls.values())
    return [
        (
            "slot engine, 30 days, 1,000 busy blocks, 200 taught sessions (in-process)",
            f"p50 {eng['p50_ms']} ms, p95 {eng['p95_ms']} ms ({eng['slots']} slots)",
            "p95 <= 50 ms",
            eng["p95_ms"] <= 50,
        ),
        (
            "GET /mentors/{id}/slots through the local gateway (7 days, 1,000 blocks, 1 class, 30 private)",
            f"p50 {gw['get_slots']['p50_ms']} ms, p95 {gw['get_slots']['p95_ms']} ms",
            "",
            None,
        ),
        (
            "DynamoDB calls per GET /slots: 1,000 blocks + 30 private vs 10,000 + 300",
            f"{one} vs {ten} ({json.dumps(list(calls.values()))})",
            "the same",
            one == ten,
        ),
        (
            "POST /private-sessions through the local gateway (sequential)",
            f"p50 {gw['post_private']['p50_ms']} ms, p95 {gw['post_private']['p95_ms']} ms",
            "",
            None,
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
