"""The demo's availability chapter (issue 15): hours, slots that busy times remove, and a private
session booked by the platform, raced, paid and given its Meet link. Runs after ``step_busy`` (which
put a weekly iCloud standup on Mondays 09:00-09:30 and a Google dentist appointment on Wednesday
12:00-13:00, Europe/Berlin)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx

from devstack import flows

if TYPE_CHECKING:
    from devstack.demo import Demo

BERLIN = ZoneInfo("Europe/Berlin")
WORKDAY = [{"start": "09:00", "end": "17:00"}]


def _platform(demo: Demo) -> dict[str, str]:
    return {"authorization": f"Bearer {demo.stack.platform_token()}"}


def _slots(demo: Demo, day: datetime) -> list[str]:
    params = {"from": day.astimezone(UTC).isoformat(), "to": (day + timedelta(days=1)).astimezone(UTC).isoformat()}
    resp = demo.http.get(
        f"/mentors/{demo.mentor_id}/slots", params={**params, "duration": "60"}, headers=_platform(demo)
    )
    if resp.status_code != 200:
        raise flows.FlowError(f"GET /mentors/{{id}}/slots: {resp.status_code} {resp.text[:300]}")
    body: dict[str, Any] = resp.json()
    demo.responses.append(resp.text)
    return [s["start"][11:16] for s in body["slots"]]


def _private(demo: Demo, start: datetime, student: str) -> httpx.Response:
    body = {
        "mentorId": demo.mentor_id,
        "start": start.isoformat(),
        "durationMinutes": 60,
        "format": "online",
        "meetingProvider": "google_meet",
        "studentEmail": f"{student.lower()}@example.com",
        "studentName": student,
        "priceAmount": 6000,
        "currency": "EUR",
    }
    with httpx.Client(base_url=demo.stack.api_url, timeout=30) as client:
        return client.post("/private-sessions", json=body, headers=_platform(demo))


def step_availability(demo: Demo) -> None:
    """Availability: weekday hours, slots without the iCloud and Google busy times, a raced private session."""
    from devstack.demo import _api, _view

    rules = {
        "timezone": "Europe/Berlin",
        "weekly": {d: WORKDAY for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [], "sun": []},
        "overrides": [],
        "bufferBeforeMinutes": 0,
        "bufferAfterMinutes": 0,
        "minimumNoticeMinutes": 60,
        "horizonDays": 60,
        "slotStepMinutes": 30,
    }
    _api(demo, "PUT", "/mentors/me/availability", 200, json=rules, headers=demo.bearer())
    demo.say("  PUT /mentors/me/availability: Mon-Fri 09:00-17:00 Europe/Berlin, 30-minute step → 200")
    monday = datetime.fromisoformat(demo.facts["busy_monday"]).replace(tzinfo=BERLIN, hour=0)
    wednesday = monday + timedelta(days=2)
    for label, day, busy in (("Mon", monday, "iCloud standup 09:00-09:30"), ("Wed", wednesday, "Google 12:00-13:00")):
        demo.say(f"  GET /mentors/{{id}}/slots {label} {day:%d %b}, 60 min ({busy}): {' '.join(_slots(demo, day))}")
    free = _slots(demo, wednesday)
    if "09:00" in _slots(demo, monday) or {"11:30", "12:00", "12:30"} & set(free) or "14:00" not in free:
        raise flows.FlowError("the busy times did not remove their slots")

    # Two students' checkouts race for overlapping times: exactly one gets it.
    gate = threading.Barrier(2)

    def race(pair: tuple[datetime, str]) -> httpx.Response:
        gate.wait()
        return _private(demo, *pair)

    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(race, [(wednesday.replace(hour=14), "Ines"), (wednesday.replace(hour=14, minute=30), "Jo")])
        )
    won = [r for r in answers if r.status_code == 201]
    lost = [r for r in answers if r.status_code == 409]
    for resp in answers:
        demo.responses.append(resp.text)
        outcome = resp.json().get("error", {}).get("code") or f"bookingId {resp.json()['bookingId']}, PENDING"
        demo.say(f"  POST /private-sessions (platform) at the same moment → {resp.status_code} {outcome}")
    if len(won) != 1 or len(lost) != 1:
        raise flows.FlowError(f"expected one 201 and one 409, got {[r.status_code for r in answers]}")
    booked: dict[str, Any] = won[0].json()
    demo.facts.setdefault("secrets", []).append(booked["bookingToken"])
    _pay_private(demo, booked["bookingId"])
    demo.stack.drain()
    view = _view(demo, booked)
    demo.show("GET /bookings/{id}?token=…", {k: view.get(k) for k in ("status", "title", "provider", "meetingUrl")})
    if view["status"] != "CONFIRMED" or not str(view.get("meetingUrl", "")).startswith("https://meet.google.com/"):
        raise flows.FlowError("the private session was not confirmed with a Meet link")
    demo.say(f"  slots Wed after the booking: {' '.join(_slots(demo, wednesday))}")


def _pay_private(demo: Demo, booking_id: str) -> None:
    from devstack import stripe_events

    event = stripe_events.build_event("checkout.session.completed", booking_id=booking_id, amount=6000, currency="eur")
    resp = stripe_events.send(
        demo.stack.api_url, event, demo.stack.environment()["STRIPE_WEBHOOK_SECRET"], client=demo.http
    )
    demo.say(f"  POST /webhooks/stripe (checkout.session.completed, 6000 EUR) → {resp.status_code}")
