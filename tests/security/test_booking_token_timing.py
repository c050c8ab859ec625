"""Attack: telling existing bookings from unknown ids by how long a wrong token takes (PRODUCT.md §2.9).

Before issue 14 a wrong token for an existing booking was refused in ≈6 ms and an unknown id in
≈4.4 ms through the gateway: the unknown id skipped reading and parsing the booking. Now both do
the same work — one GetItem projecting only ``token_hash`` (the same request either way), one
SHA-256, one constant-time comparison (against a random stand-in hash when there is no booking) —
and only a matching token reads the booking itself.

The first test counts that work (deterministic); the second times many interleaved refusals and
compares medians with a generous bound (it guards against a gross regression, not nanoseconds).
"""

from __future__ import annotations

import contextlib
import hmac
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from classes_support import create, in_person, tables

from devstack.stack import LocalStack
from shared.platform.api import ApiError
from shared.schedule import bookings
from shared.store import ScheduleStore


def _no_jwt() -> Any:
    raise AssertionError("a booking-token check must not touch the JWT verifier")


@pytest.fixture(scope="module")
def existing(local_stack: LocalStack) -> dict[str, Any]:
    """A real booking (made by the platform) whose token the attacker does not know."""
    owner = {"authorization": f"Bearer {local_stack.token(f'timing-{uuid.uuid4().hex[:8]}')}"}
    platform = {"authorization": f"Bearer {local_stack.platform_token()}"}
    with httpx.Client(base_url=local_stack.api_url, timeout=10) as client:
        session_id = create(client, owner, in_person(capacity=3))["sessions"][0]["sessionId"]
        body = {
            "sessionId": session_id,
            "studentEmail": "timing@example.com",
            "studentName": "Timing",
            "priceAmount": 2500,
            "currency": "EUR",
        }
        resp = client.post("/bookings", json=body, headers=platform)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


@pytest.fixture
def schedule(local_stack: LocalStack) -> ScheduleStore:
    return tables(local_stack)[1]


@pytest.fixture
def dynamodb_calls(schedule: ScheduleStore) -> Iterator[list[tuple[str, tuple[tuple[str, str], ...]]]]:
    """Every DynamoDB request the schedule store's client makes: operation and its parameters, with the
    booking id taken out of the key (the one thing that differs between the two paths by design)."""
    calls: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        shape = {k: repr(v) for k, v in params.items() if k != "Key"}
        calls.append((model.name, tuple(sorted(shape.items()))))

    events = schedule.table.client.meta.events
    events.register("provide-client-params.dynamodb.*", record)
    yield calls
    events.unregister("provide-client-params.dynamodb.*", record)


def _refuse(schedule: ScheduleStore, booking_id: str, token: str) -> None:
    with pytest.raises(ApiError) as err:
        bookings.authorize(schedule, booking_id, token=token, authorization=None, verifier=_no_jwt)
    assert (err.value.status, err.value.code) == (404, "booking_not_found")


def test_a_wrong_token_and_an_unknown_id_do_the_same_work(
    schedule: ScheduleStore,
    existing: dict[str, Any],
    dynamodb_calls: list[tuple[str, tuple[tuple[str, str], ...]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[int, int]] = []
    real_compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((len(a), len(b)))
        return real_compare(a, b)

    monkeypatch.setattr(bookings.hmac, "compare_digest", spy)
    reads: list[str] = []
    real_get = schedule.get_booking
    monkeypatch.setattr(schedule, "get_booking", lambda booking_id: reads.append(booking_id) or real_get(booking_id))
    wrong = "w" * len(existing["bookingToken"])
    outcomes: dict[str, tuple[list[Any], list[Any], list[str]]] = {}
    # When a wrong token is presented for the existing booking, and for an unknown id
    for case, booking_id in (("existing", existing["bookingId"]), ("unknown", f"bkg_{uuid.uuid4().hex[:24]}")):
        dynamodb_calls.clear()
        compared.clear()
        reads.clear()
        _refuse(schedule, booking_id, wrong)
        outcomes[case] = (list(dynamodb_calls), list(compared), list(reads))
    # Then both are the same 404 after the same requests (one GetItem, projecting only token_hash),
    # the same comparison (64 hex chars against 64) and no read of the booking itself
    assert outcomes["existing"] == outcomes["unknown"]
    calls, comparisons, booking_reads = outcomes["unknown"]
    assert [op for op, _ in calls] == ["GetItem"]
    assert ("ProjectionExpression", repr("#a0")) in calls[0][1]
    assert comparisons == [(64, 64)]
    assert booking_reads == []
    # And the right token still gets in (and only then is the booking read)
    booking, caller = bookings.authorize(
        schedule, existing["bookingId"], token=existing["bookingToken"], authorization=None, verifier=_no_jwt
    )
    assert (booking.booking_id, caller.kind) == (existing["bookingId"], bookings.CallerKind.STUDENT)
    assert reads == [existing["bookingId"]]


def test_a_wrong_token_and_an_unknown_id_take_the_same_time(
    local_stack: LocalStack, schedule: ScheduleStore, existing: dict[str, Any]
) -> None:
    wrong = "w" * len(existing["bookingToken"])
    unknown = f"bkg_{uuid.uuid4().hex[:24]}"

    def timed(booking_id: str) -> float:
        started = time.perf_counter()
        with contextlib.suppress(ApiError):
            bookings.authorize(schedule, booking_id, token=wrong, authorization=None, verifier=_no_jwt)
        return time.perf_counter() - started

    def round_ms() -> tuple[float, float]:
        """Median of 150 back-to-back pairs (order alternating): the gap, and one refusal's time."""
        gaps, totals = [], []
        for i in range(150):
            first, second = (existing["bookingId"], unknown) if i % 2 else (unknown, existing["bookingId"])
            a, b = timed(first), timed(second)
            existing_s, unknown_s = (a, b) if first == existing["bookingId"] else (b, a)
            gaps.append(existing_s - unknown_s)
            totals.append((a + b) / 2)
        return statistics.median(gaps) * 1000, statistics.median(totals) * 1000

    local_stack.drain()  # no worker of an earlier test still busy with the table
    for _ in range(10):  # warm up connections and caches
        timed(existing["bookingId"]), timed(unknown)
    # When wrong-token refusals of an existing booking and of an unknown id run in interleaved pairs
    # Then the median gap is within 25 % of one refusal (or 0.5 ms): before, the unknown id was ~27 %
    # faster. Up to three rounds, so a burst of load on the shared machine does not decide it.
    rounds = []
    for _ in range(3):
        gap_ms, refusal_ms = round_ms()
        rounds.append((round(gap_ms, 3), round(refusal_ms, 3)))
        if abs(gap_ms) <= max(0.25 * refusal_ms, 0.5):
            break
    else:
        raise AssertionError(f"(median gap ms, median refusal ms) per round: {rounds}")
