"""Bookings end to end through the local gateway (real HTTP): create, the capacity race, reading a
booking with its token or the mentor's JWT (verified by the function against the gateway's JWKS),
and cancelling (with the job it queues).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from classes_support import JobsQueue, create, in_person, private_jobs_queue, tables

from devstack.jwt import LocalIssuer
from devstack.stack import LocalStack
from shared.store import MeetingProvider, ScheduleStore, Store


@pytest.fixture(scope="module")
def stores(local_stack: LocalStack) -> tuple[Store, ScheduleStore]:
    return tables(local_stack)


@pytest.fixture
def schedule(stores: tuple[Store, ScheduleStore]) -> ScheduleStore:
    return stores[1]


@pytest.fixture
def queued(local_stack: LocalStack) -> Iterator[JobsQueue]:
    with private_jobs_queue(local_stack) as queue:
        yield queue


def _session(api: httpx.Client, headers: dict[str, str], capacity: int = 8) -> str:
    created = create(api, headers, in_person(capacity=capacity))
    session_id: str = created["sessions"][0]["sessionId"]
    return session_id


def _book(api: httpx.Client, platform: dict[str, str], session_id: str, n: int = 1) -> httpx.Response:
    """``POST /bookings`` as the platform (its route, PRODUCT.md §2.9)."""
    body = {
        "sessionId": session_id,
        "studentEmail": f"student{n}@example.com",
        "studentName": f"Student {n}",
        "priceAmount": 4900,
        "currency": "USD",
    }
    return api.post("/bookings", json=body, headers=platform)


def _booked(api: httpx.Client, platform: dict[str, str], session_id: str) -> dict[str, Any]:
    resp = _book(api, platform, session_id)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code, error
    return error


# --- create --------------------------------------------------------------------------------------


def test_booking_is_created_pending_with_a_token_only_its_hash_stored(
    api: httpx.Client,
    headers: dict[str, str],
    schedule: ScheduleStore,
    platform_headers: dict[str, str],
) -> None:
    # Given a session
    sid = _session(api, headers)
    # When the platform books a seat
    created = _booked(api, platform_headers, sid)
    # Then 201 PENDING with an id and a ≥128-bit token; only the token's SHA-256 is stored
    assert created["status"] == "PENDING"
    assert created["sessionId"] == sid
    assert len(created["bookingToken"]) >= 43  # token_urlsafe(32): 256 bits
    booking = schedule.get_booking(created["bookingId"])
    assert booking is not None
    assert booking.token_hash == hashlib.sha256(created["bookingToken"].encode()).hexdigest()
    raw = schedule.table.get(f"BOOKING#{created['bookingId']}", "BOOKING")
    assert raw is not None
    assert created["bookingToken"] not in json.dumps(raw, default=str)
    # And the seat is taken
    session = schedule.get_session(sid)
    assert session is not None
    assert session.seats_taken == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sessionId": "x-s01", "studentEmail": "not-an-email", "studentName": "A"}, "studentEmail"),
        ({"sessionId": "x-s01", "studentEmail": "a@example.com"}, "studentName"),
        ({"studentEmail": "a@example.com", "studentName": "A"}, "sessionId"),
        ({"sessionId": "x-s01", "studentEmail": "a@example.com", "studentName": "A", "price": 5}, "price"),
    ],
)
def test_malformed_booking_is_400(
    api: httpx.Client, body: dict[str, Any], field: str, platform_headers: dict[str, str]
) -> None:
    # When the booking body is malformed / Then 400 invalid_request naming the field
    error = _error(api.post("/bookings", json=body, headers=platform_headers), 400, "invalid_request")
    assert field in [f["field"] for f in error["fields"]]


def test_booking_errors(api: httpx.Client, platform_headers: dict[str, str]) -> None:
    # Invalid JSON → 400; an unknown session (ours-shaped or not) → 404; no platform JWT → 401 (gateway)
    bad = api.post("/bookings", content=b"{", headers={**platform_headers, "content-type": "application/json"})
    _error(bad, 400, "invalid_request")
    _error(_book(api, platform_headers, "cls_missing-s01"), 404, "session_not_found")
    _error(_book(api, platform_headers, "nonsense"), 404, "session_not_found")
    assert api.post("/bookings", json={}).status_code == 401


def test_capacity_race_through_the_gateway_lets_exactly_capacity_win(
    api: httpx.Client,
    headers: dict[str, str],
    local_stack: LocalStack,
    schedule: ScheduleStore,
    platform_headers: dict[str, str],
) -> None:
    # Given a session with 3 seats
    capacity, racers = 3, 12
    sid = _session(api, headers, capacity=capacity)

    # When 12 bookings race for it, each on its own connection
    def attempt(n: int) -> httpx.Response:
        with httpx.Client(base_url=local_stack.api_url, timeout=30) as client:
            return _book(client, platform_headers, sid, n)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        results = list(pool.map(attempt, range(racers)))
    # Then exactly 3 are 201 and the rest 409 session_full; no 500
    statuses = Counter(r.status_code for r in results)
    assert statuses == {201: capacity, 409: racers - capacity}, [r.text for r in results]
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} == {"session_full"}
    # And the table agrees: 3 seats taken, 3 bookings, exactly the winners
    session = schedule.get_session(sid)
    assert session is not None
    assert session.seats_taken == capacity
    winners = {r.json()["bookingId"] for r in results if r.status_code == 201}
    assert {b.booking_id for b in schedule.bookings_of_session(sid)} == winners
    # And a cancellation frees a seat for the next booking
    token = next(r.json()["bookingToken"] for r in results if r.status_code == 201)
    booking_id = next(r.json()["bookingId"] for r in results if r.status_code == 201)
    assert api.post(f"/bookings/{booking_id}/cancel", params={"token": token}).status_code == 202
    assert _book(api, platform_headers, sid, 99).status_code == 201
    _error(_book(api, platform_headers, sid, 100), 409, "session_full")


# --- read: booking token or the mentor's JWT --------------------------------------------------------


def test_booking_is_read_with_its_token_or_the_mentors_jwt(
    api: httpx.Client,
    platform_headers: dict[str, str],
    headers: dict[str, str],
    mentor_headers: Callable[..., dict[str, str]],
    mentor: str,
    schedule: ScheduleStore,
) -> None:
    # Given a booking
    created = create(api, headers, in_person())
    session = created["sessions"][0]
    booking = _booked(api, platform_headers, session["sessionId"])
    url = f"/bookings/{booking['bookingId']}"
    # When the student reads it with the token (no JWT)
    resp = api.get(url, params={"token": booking["bookingToken"]})
    # Then the status, the session's times in Berlin and the class, never the token or its hash
    assert resp.status_code == 200, resp.text
    view = resp.json()
    assert (view["bookingId"], view["status"], view["title"], view["classId"]) == (
        booking["bookingId"],
        "PENDING",
        "Morning flow",
        created["classId"],
    )
    assert (view["start"], view["end"], view["sessionStatus"]) == (session["start"], session["end"], "scheduled")
    assert view["meetingUrl"] is None
    text = resp.text
    assert booking["bookingToken"] not in text
    assert hashlib.sha256(booking["bookingToken"].encode()).hexdigest() not in text
    assert "tokenHash" not in text
    assert "token_hash" not in text
    # When the mentor reads it with their JWT / Then the same view
    as_mentor = api.get(url, headers=headers)
    assert as_mentor.status_code == 200, as_mentor.text
    assert as_mentor.json() == view
    # And a wrong token, another mentor, and an unknown id are the same 404
    _error(api.get(url, params={"token": booking["bookingToken"][:-2] + "xx"}), 404, "booking_not_found")
    _error(api.get(url, params={"token": ""}), 404, "booking_not_found")
    _error(api.get(url, headers=mentor_headers("another-mentor")), 404, "booking_not_found")
    _error(api.get("/bookings/bkg_unknown", params={"token": booking["bookingToken"]}), 404, "booking_not_found")
    # And no credential, or a token the function cannot verify, is 401
    _error(api.get(url), 401, "unauthorized")
    _error(api.get(url, headers={"authorization": "Bearer not.a.jwt"}), 401, "unauthorized")
    _error(api.get(url, headers={"authorization": "Basic Zm9vOmJhcg=="}), 401, "unauthorized")


def test_jwt_checks_match_the_gateway_authorizer(
    api: httpx.Client,
    headers: dict[str, str],
    local_stack: LocalStack,
    mentor: str,
    tmp_path: Path,
    platform_headers: dict[str, str],
) -> None:
    # Given a booking of this mentor
    url = f"/bookings/{_booked(api, platform_headers, _session(api, headers))['bookingId']}"
    foreign = LocalIssuer(tmp_path, issuer=local_stack.issuer.issuer, audience=local_stack.issuer.audience)
    refused = {
        "expired": local_stack.token(mentor, ttl_s=-120),
        "wrong audience": local_stack.token(mentor, aud="someone-else"),
        "wrong issuer": local_stack.token(mentor, iss="https://evil.example"),
        "not yet valid": local_stack.token(mentor, nbf=int(time.time()) + 600),
        "foreign key": foreign.issue(mentor),
        "tampered": local_stack.token(mentor)[:-4] + "AAAA",
    }
    # When each is presented / Then 401 (the gateway's authorizer would refuse them too)
    for case, token in refused.items():
        resp = api.get(url, headers={"authorization": f"Bearer {token}"})
        assert resp.status_code == 401, (case, resp.text)
        assert token not in resp.text


def test_confirmed_booking_shows_its_meeting_and_cancel_clears_it(
    api: httpx.Client,
    headers: dict[str, str],
    schedule: ScheduleStore,
    mentor: str,
    queued: JobsQueue,
    platform_headers: dict[str, str],
) -> None:
    # Given a confirmed booking whose meeting the worker minted
    booking = _booked(api, platform_headers, _session(api, headers))
    bid, token = booking["bookingId"], booking["bookingToken"]
    assert schedule.confirm_booking(bid) is not None
    schedule.update_booking(
        bid, meeting_url="https://meet.example/abc-defg-hij", meeting_provider=MeetingProvider.GOOGLE_MEET
    )
    # When the student reads it / Then the join link and provider are there
    view = api.get(f"/bookings/{bid}", params={"token": token}).json()
    assert (view["status"], view["meetingUrl"], view["provider"]) == (
        "CONFIRMED",
        "https://meet.example/abc-defg-hij",
        "google_meet",
    )
    # When the student cancels with the token
    resp = api.post(f"/bookings/{bid}/cancel", params={"token": token})
    # Then 202 CANCELLED; the link is gone; the seat is free; a booking.cancelled job is queued
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"bookingId": bid, "status": "CANCELLED"}
    view = api.get(f"/bookings/{bid}", params={"token": token}).json()
    assert (view["status"], view["cancelReason"]) == ("CANCELLED", "student")
    assert view["meetingUrl"] is None
    stored = schedule.get_booking(bid)
    assert stored is not None
    assert (stored.meeting_url, stored.job_pending) == (None, None)
    session = schedule.get_session(stored.session_id)
    assert session is not None
    assert (session.seats_taken, session.confirmed) == (0, 0)
    assert queued.drain() == [
        {
            "kind": "booking.cancelled",
            "mentorId": mentor,
            "classId": stored.class_id,
            "sessionId": stored.session_id,
            "bookingId": bid,
            "cause": "student",
        }
    ]
    # When it is cancelled again (by the mentor this time) / Then 202 again and nothing new is queued
    again = api.post(f"/bookings/{bid}/cancel", headers=headers)
    assert (again.status_code, again.json()["status"]) == (202, "CANCELLED")
    assert queued.drain() == []


def test_mentor_cancels_with_jwt_and_a_stranger_cannot(
    api: httpx.Client,
    platform_headers: dict[str, str],
    headers: dict[str, str],
    mentor_headers: Callable[..., dict[str, str]],
    schedule: ScheduleStore,
    queued: JobsQueue,
) -> None:
    # Given a pending booking
    bid = _booked(api, platform_headers, _session(api, headers))["bookingId"]
    # When another mentor or nobody tries to cancel it / Then 404 / 401 and it stays PENDING
    _error(api.post(f"/bookings/{bid}/cancel", headers=mentor_headers("intruder")), 404, "booking_not_found")
    _error(api.post(f"/bookings/{bid}/cancel"), 401, "unauthorized")
    _error(api.post(f"/bookings/{bid}/cancel", params={"token": "guess"}), 404, "booking_not_found")
    stored = schedule.get_booking(bid)
    assert stored is not None
    assert stored.status.value == "PENDING"
    assert queued.drain() == []
    # When its mentor cancels / Then it is cancelled with cause "mentor"
    assert api.post(f"/bookings/{bid}/cancel", headers=headers).status_code == 202
    assert [(j["kind"], j["cause"]) for j in queued.drain()] == [("booking.cancelled", "mentor")]


def test_a_retried_cancel_requeues_a_job_that_never_went_out(
    api: httpx.Client,
    headers: dict[str, str],
    schedule: ScheduleStore,
    queued: JobsQueue,
    platform_headers: dict[str, str],
) -> None:
    # Given a booking cancelled earlier whose job was recorded but never queued (a crash in between)
    booking = _booked(api, platform_headers, _session(api, headers))
    assert schedule.cancel_booking(booking["bookingId"], "student") is not None
    # When the student retries the cancel / Then 202 and the job goes out now, the mark cleared
    resp = api.post(f"/bookings/{booking['bookingId']}/cancel", params={"token": booking["bookingToken"]})
    assert resp.status_code == 202
    assert [j["kind"] for j in queued.drain()] == ["booking.cancelled"]
    stored = schedule.get_booking(booking["bookingId"])
    assert stored is not None
    assert stored.job_pending is None


def test_a_session_that_has_started_cannot_be_booked(
    api: httpx.Client,
    headers: dict[str, str],
    schedule: ScheduleStore,
    platform_headers: dict[str, str],
) -> None:
    # Given a session whose start has passed (moved there directly in the table)
    sid = _session(api, headers)
    session = schedule.get_session(sid)
    assert session is not None
    schedule.move_session(sid, session.start.replace(year=2020), session.end.replace(year=2020))
    # When it is booked / Then 409 session_started
    _error(_book(api, platform_headers, sid), 409, "session_started")
