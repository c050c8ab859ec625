"""``POST /private-sessions`` through the local gateway (PRODUCT.md §2.10): the platform books a free
time of a mentor's availability; the time leaves ``GET /mentors/{id}/slots`` at once; an overlapping
request gets 409 ``slot_unavailable``; Stripe's payment confirms it and the meetings worker mints its
Meet link; an expired hold or a cancellation frees the time; a mentor token is refused."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from classes_support import oauth_mentor, tables
from e2e_support import Providers
from private_support import at, body, day, set_rules, slot_starts

from devstack import stripe_events
from devstack.stack import LocalStack
from shared import wiring


def test_a_private_session_takes_its_time_at_once_and_a_mentor_token_is_refused(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], local_stack: LocalStack, mentor: str
) -> None:
    set_rules(api, headers)
    base = day()
    assert "10:00" in slot_starts(api, platform_headers, mentor, base)

    # When the platform books 10:00-11:00 in person
    resp = api.post("/private-sessions", json=body(mentor, at(base, 10)), headers=platform_headers)

    # Then 201 PENDING with the hold, the session in the mentor's zone, and the token once
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["status"] == "PENDING"
    assert made["start"] == at(base, 10).isoformat()
    assert made["end"] == at(base, 11).isoformat()
    assert made["bookingToken"]
    assert made["holdExpiresAt"]
    assert made["warnings"] == []
    # And the 60-minute slots touching 10:00-11:00 are gone at once
    starts = slot_starts(api, platform_headers, mentor, base)
    assert {"09:30", "10:00", "10:30"}.isdisjoint(starts)
    assert {"09:00", "11:00"} <= set(starts)
    # And an overlapping request is 409 slot_unavailable, a touching one 201
    again = api.post("/private-sessions", json=body(mentor, at(base, 10, 30)), headers=platform_headers)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "slot_unavailable"
    touching = api.post("/private-sessions", json=body(mentor, at(base, 11)), headers=platform_headers)
    assert touching.status_code == 201, touching.text
    # And the booking reads like any booking, the class as the mentor's one-seat class
    seen = api.get(f"/bookings/{made['bookingId']}", headers={"x-booking-token": made["bookingToken"]}).json()
    assert (seen["status"], seen["format"], seen["location"]) == ("PENDING", "in_person", "Studio 2, Main St 1")
    klass = api.get(f"/classes/{made['classId']}", headers=headers).json()
    assert [(s["capacity"], s["seatsTaken"]) for s in klass["sessions"]] == [(1, 1)]
    # And the mentor cannot move it (cancel and re-book instead)
    moved = api.patch(
        f"/classes/{made['classId']}/sessions/{made['sessionId']}",
        json={"start": at(base, 14).isoformat()},
        headers=headers,
    )
    assert moved.status_code == 409, moved.text
    assert moved.json()["error"]["code"] == "private_session_fixed"

    # When a mentor token posts one / Then 403 and nothing is written
    refused = api.post("/private-sessions", json=body(mentor, at(base, 14)), headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert "14:00" in slot_starts(api, platform_headers, mentor, base)


@pytest.mark.parametrize(
    ("change", "field_or_code"),
    [
        ({"start": "2027-05-03T10:00:00"}, "start"),  # no offset
        ({"start": "2999-05-03T10:00:00Z"}, "start"),  # out of range
        ({"durationMinutes": 4}, "durationMinutes"),
        ({"durationMinutes": 481}, "durationMinutes"),
        ({"location": None}, "location"),  # in person needs one
        ({"format": "online", "location": "Room 1"}, "location"),
        ({"studentName": "Bad\r\nName"}, "studentName"),
        ({"mentorId": "a#b"}, "mentorId"),
        ({"currency": "euro"}, "currency"),
    ],
)
def test_bad_bodies_are_400_and_write_nothing(
    api: httpx.Client,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    mentor: str,
    change: dict[str, Any],
    field_or_code: str,
) -> None:
    set_rules(api, headers)
    sent = body(mentor, at(day(), 12)) | change
    resp = api.post(
        "/private-sessions", json={k: v for k, v in sent.items() if v is not None}, headers=platform_headers
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request"
    assert field_or_code in str(error.get("fields")) or field_or_code in error["message"], error
    assert "12:00" in slot_starts(api, platform_headers, mentor, day())


def test_times_outside_the_rules_are_refused(
    api: httpx.Client, headers: dict[str, str], platform_headers: dict[str, str], mentor: str
) -> None:
    base = day()
    # Given no availability yet / Then nothing can be booked
    none = api.post("/private-sessions", json=body(mentor, at(base, 10)), headers=platform_headers)
    assert none.status_code == 409, none.text
    assert none.json()["error"]["code"] == "slot_unavailable"
    # Given 09:00-17:00 with a 30-minute step and 15-minute buffers
    set_rules(api, headers, bufferBeforeMinutes=15, bufferAfterMinutes=15)
    for start in (at(base, 8, 30), at(base, 16, 30), at(base, 10, 10)):  # before, past the end, off the grid
        resp = api.post("/private-sessions", json=body(mentor, start), headers=platform_headers)
        assert resp.status_code == 409, (start, resp.text)
    assert api.post("/private-sessions", json=body(mentor, at(base, 10)), headers=platform_headers).status_code == 201
    # And the buffer keeps 11:00 (15 minutes after 11:00 ends) free: 11:00 is refused, 11:30 is fine
    assert api.post("/private-sessions", json=body(mentor, at(base, 11)), headers=platform_headers).status_code == 409
    assert (
        api.post("/private-sessions", json=body(mentor, at(base, 11, 30)), headers=platform_headers).status_code == 201
    )


def test_an_expired_hold_and_a_cancellation_free_the_time(
    api: httpx.Client,
    headers: dict[str, str],
    platform_headers: dict[str, str],
    local_stack: LocalStack,
    mentor: str,
) -> None:
    set_rules(api, headers)
    base = day()
    made = api.post("/private-sessions", json=body(mentor, at(base, 13)), headers=platform_headers).json()
    assert "13:00" not in slot_starts(api, platform_headers, mentor, base)
    # And the held session is in the mentor's teaching feed
    feed_url = api.get("/mentors/me/feed", headers=headers).json()["url"]
    path = feed_url.removeprefix(local_stack.api_url)
    assert made["sessionId"] in api.get(path).text
    # When Stripe says the checkout expired / Then the booking is EXPIRED and 13:00 is bookable again
    event = stripe_events.build_event(
        "checkout.session.expired", booking_id=made["bookingId"], amount=6000, currency="eur"
    )
    sent = stripe_events.send(local_stack.api_url, event, os.environ["STRIPE_WEBHOOK_SECRET"], client=api)
    assert sent.status_code == 200, sent.text
    _, schedule = tables(local_stack)
    expired = schedule.get_booking(made["bookingId"])
    assert expired is not None
    assert expired.status.value == "EXPIRED"
    assert "13:00" in slot_starts(api, platform_headers, mentor, base)
    assert made["sessionId"] not in api.get(path).text  # a lapsed hold never happened: not in the feed
    # And another student can take it; the platform cancels it / Then it is free again
    second = api.post("/private-sessions", json=body(mentor, at(base, 13)), headers=platform_headers)
    assert second.status_code == 201, second.text
    cancelled = api.post(f"/bookings/{second.json()['bookingId']}/cancel", headers=platform_headers)
    assert cancelled.status_code == 202, cancelled.text
    assert "13:00" in slot_starts(api, platform_headers, mentor, base)


def test_an_online_private_session_gets_its_meet_link_through_stripe_and_the_worker(
    api: httpx.Client,
    local_stack: LocalStack,
    providers: Providers,
    mentor_headers: Any,
    platform_headers: dict[str, str],
    mentor: str,
) -> None:
    headers = oauth_mentor(api, local_stack, providers, mentor_headers, mentor, "google")
    set_rules(api, headers)
    base = day(5)
    resp = api.post(
        "/private-sessions",
        json=body(mentor, at(base, 15), 45, format="online", location=None, studentName="Olu"),
        headers=platform_headers,
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()
    event = stripe_events.build_event(
        "checkout.session.completed", booking_id=made["bookingId"], amount=6000, currency="eur"
    )
    sent = stripe_events.send(local_stack.api_url, event, os.environ["STRIPE_WEBHOOK_SECRET"], client=api)
    assert sent.status_code == 200, sent.text
    local_stack.drain()
    seen = api.get(f"/bookings/{made['bookingId']}", headers={"x-booking-token": made["bookingToken"]}).json()
    assert seen["status"] == "CONFIRMED", seen
    assert seen["provider"] == "google_meet", seen
    assert seen["meetingUrl"].startswith("https://meet.google.com/"), seen
    assert seen["title"] == "Private session with Olu"
    # And a paid private session still blocks its time
    assert "15:00" not in slot_starts(api, platform_headers, mentor, base, 45)
    wiring.reset()
