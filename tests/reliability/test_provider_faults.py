"""Provider faults (issue 8): meetings and busy sync together, under 10 % faults, latency spikes and
an iCloud outage.

Everything is the real path on loopback: mentors connect Google and Zoom through the OAuth dance and
Apple through ``POST /connections/apple`` against Radicale; bookings are paid with signed Stripe
events through the gateway, so the pump delivers the mint jobs to ``mint_meeting``; the scheduled
poll is ticked, so the pump delivers the sync jobs to ``busy_sync`` (and Google pushes add their own).
While both workers run:

* both emulators answer 5 % of requests with 429 and 5 % with 500 (token endpoints included: access
  tokens are short-lived, so every use refreshes first) and hold 10 % of requests 0.5-2 s longer;
* Radicale (the local iCloud) is stopped for several polls, then started again on the same port
  with the same calendars;
* one more mentor's selected Google calendar answers every call with 503 (a long outage of one
  calendar): their mint jobs fail every receive, so they must reach the DLQ *with* a reason.

Outcomes asserted, not "no crash":

* every message either worker received was either completed (its last receive returned) or is in
  that queue's dead-letter queue with a reason (a mint job: ``meetingStatus`` failed + error on the
  booking; a sync job: the error on the connection's busy head); completed + dead-lettered = seen;
* each paid booking is ready with its session's one link (one meeting per session at the provider)
  or failed with a reason and dead-lettered (the unlucky mentor's are, and they got one "Action
  needed" e-mail for the session);
* ``GET /mentors/me/busy``, sampled over and over while faults and the outage are on, never loses a
  block it had (never empty, never mislabelled), while the Apple source reports the outage as an
  error with its last good sync kept; once Radicale is back and the faults are off, one poll brings
  Apple back to no error with the events added during the outage;
* no connection is flipped to ``needs_reconnect`` and no reconnect e-mail goes out.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import caldav
import httpx
import pytest
from classes_support import create, future, online, set_plan, tables
from e2e_support import Providers, busy_ics, short_lived_tokens, utc_z

from devstack import flows, stripe_events
from devstack.outbox import read_outbox
from devstack.stack import LocalStack
from shared import wiring
from shared.store import ConnectionStatus, MeetingStatus, Provider
from shared.store.busy import BusyStore

Headers = Callable[..., dict[str, str]]
Block = tuple[str, str, tuple[str, ...]]

MENTORS = 3
SESSIONS_PER_CLASS = 4  # a Google Meet class and a Zoom class per mentor
BOOKINGS_PER_SESSION = 2
PASSWORD = "abcd-efgh-ijkl-mnop"
#: Every access refreshes its token first (within the accessor's refresh-ahead window), so the
#: faulty token endpoints are on both workers' paths.
SHORT_TOKEN_TTL_S = 240
#: 10 % injected answers (5 % 429 + 5 % 500) and 10 % latency spikes of 0.5-2 s on every path of
#: both emulators. ``Retry-After: 0`` lets the adapters' own jittered backoff pace retries.
FAULTS: dict[str, Any] = {
    "rate_429": 0.05,
    "rate_500": 0.05,
    "retry_after": 0,
    "spike_rate": 0.10,
    "spike_min_ms": 500,
    "spike_ms": 2000,
}
#: On top of the random ones, one sure fault on each path the test is about (the first matching
#: requests), so every run proves each path met a fault: freeBusy, both token endpoints, both creates.
GOOGLE_INSERT = "/calendar/v3/calendars/primary/events"
ZOOM_CREATE = "/v2/users/me/meetings"
FORCED: dict[str, list[dict[str, Any]]] = {
    "google": [
        {"status": 503, "count": 1, "path_prefix": "/calendar/v3/freeBusy", "method": "POST"},
        {"status": 429, "count": 1, "path_prefix": "/token", "method": "POST"},
        {"status": 500, "count": 1, "path_prefix": GOOGLE_INSERT, "method": "POST"},
    ],
    "zoom": [
        {"status": 500, "count": 1, "path_prefix": "/oauth/token", "method": "POST"},
        {"status": 429, "count": 1, "path_prefix": ZOOM_CREATE, "method": "POST"},
    ],
}
#: The random faults' seed (``PROVIDER_FAULTS_SEED`` picks another, to reproduce or explore).
SEED = int(os.environ.get("PROVIDER_FAULTS_SEED", "8"))
#: Scheduled polls while Radicale is down.
OUTAGE_POLLS = 3
MEET = "google_meet"

#: The calendar sources these mentors connect (GET /mentors/me/busy also lists microsoft, not connected).
CONNECTED_SOURCES = ("apple", "google")


# -- what the workers did ------------------------------------------------------------------------


@dataclass
class Seen:
    """Every receive of every message one worker handled: message id → [(receive, outcome)].

    The outcome is the record handler's return value, or ``raised:<type>`` (the message goes back
    to the queue, or to the DLQ after its last receive).
    """

    receives: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, original: Callable[[Any], str]) -> Callable[[Any], str]:
        def record_handler(record: Any) -> str:
            receive = int(record.attributes.approximate_receive_count or 1)
            try:
                outcome = original(record)
            except Exception as exc:
                self._add(record, receive, f"raised:{type(exc).__name__}")
                raise
            self._add(record, receive, outcome)
            return outcome

        return record_handler

    def _add(self, record: Any, receive: int, outcome: str) -> None:
        with self.lock:
            self.receives.setdefault(record.message_id, []).append((receive, outcome))
            try:
                self.bodies[record.message_id] = json.loads(record.body)
            except ValueError:
                self.bodies[record.message_id] = {"unreadable": record.body[:200]}

    def final(self) -> dict[str, str]:
        """Message id → the outcome of its last receive."""
        with self.lock:
            return {mid: max(got)[1] for mid, got in self.receives.items()}


@pytest.fixture
def seen(provider_env: pytest.MonkeyPatch) -> dict[str, Seen]:
    """Watch both workers' record handlers (the real ones run; only their outcomes are noted)."""
    import functions.busy_sync.handler as busy_sync
    import functions.mint_meeting.handler as mint_meeting

    watched = {"meetings": Seen(), "busy-sync": Seen()}
    provider_env.setattr(mint_meeting, "record_handler", watched["meetings"].wrap(mint_meeting.record_handler))
    provider_env.setattr(busy_sync, "record_handler", watched["busy-sync"].wrap(busy_sync.record_handler))
    return watched


@pytest.fixture
def faulty(providers: Providers, provider_env: pytest.MonkeyPatch) -> Iterator[Providers]:
    """Short-lived tokens, quick busy-sync retries; faults, token lifetimes and Radicale restored after."""
    # A transient sync failure comes back within a second or so (not 30 s), three receives at most;
    # polls here come seconds apart, so none is skipped as "synced a moment ago".
    provider_env.setenv("BUSY_RETRY_DELAY_S", "1")
    provider_env.setenv("BUSY_MAX_ATTEMPTS", "3")
    provider_env.setenv("BUSY_MIN_INTERVAL_S", "0")
    # Every poll syncs every Google connection here too (push-first off): the faults are meant to hit
    # the scheduled Google syncs, not only the pushes (push-first: tests/e2e/test_push_first_e2e.py).
    provider_env.setenv("GOOGLE_SAFETY_RESYNC_H", "0")
    wiring.reset()
    with short_lived_tokens(providers, SHORT_TOKEN_TTL_S):
        try:
            yield providers
        finally:
            if not providers.caldav.running:
                providers.caldav.resume()


# -- helpers ------------------------------------------------------------------------------------


def _google_event(start: datetime, end: datetime) -> dict[str, Any]:
    return {"summary": "busy", "start": {"dateTime": utc_z(start)}, "end": {"dateTime": utc_z(end)}}


@dataclass
class Mentor:
    mentor_id: str
    headers: dict[str, str]
    email: str
    apple_id: str
    calendar: Any  # the caldav Calendar of the Apple ID
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)  # google_meet / zoom → class


def _take_dlq(local_stack: LocalStack, dlq_url: str) -> dict[str, dict[str, Any]]:
    """Every message in a DLQ (message id → body), removed (other tests expect it empty)."""
    sqs = local_stack.client("sqs")
    found: dict[str, dict[str, Any]] = {}
    while messages := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found[message["MessageId"]] = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _depth(local_stack: LocalStack, url: str) -> int:
    attrs = local_stack.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def _blocks(body: dict[str, Any]) -> set[Block]:
    return {(b["start"], b["end"], tuple(b["sources"])) for b in body["busy"]}


class BusySampler:
    """``GET /mentors/me/busy`` for every mentor, checked on every sample: it still shows every block
    it showed before the faults (same times, same sources) and nothing the calendars never held,
    and no source needs reconnecting."""

    def __init__(
        self, api: httpx.Client, mentors: list[Mentor], window: dict[str, str], kept: set[Block], allowed: set[Block]
    ) -> None:
        self.api, self.mentors, self.window = api, mentors, window
        self.kept, self.allowed = kept, allowed
        self.samples = 0
        self.apple_errors: Counter[str] = Counter()
        self.last: dict[str, dict[str, Any]] = {}

    def __call__(self) -> None:
        for mentor in self.mentors:
            resp = self.api.get("/mentors/me/busy", headers=mentor.headers, params=self.window)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            shown = _blocks(body)
            assert shown, f"busy went empty for {mentor.mentor_id}: {body}"
            assert self.kept <= shown, f"lost blocks {sorted(self.kept - shown)} for {mentor.mentor_id}: {body}"
            assert shown <= self.allowed, f"unexpected blocks {sorted(shown - self.allowed)}: {body}"
            for name in CONNECTED_SOURCES:
                source = body["sources"][name]
                assert source["status"] == "connected", (name, body)
                assert source["lastSyncedAt"] is not None, (name, body)
            if body["sources"]["apple"]["error"]:
                self.apple_errors[body["sources"]["apple"]["error"]] += 1
            self.samples += 1
            self.last[mentor.mentor_id] = body


def _drain_sampling(local_stack: LocalStack, sample: Callable[[], None], timeout: float = 60.0) -> None:
    """Wait until both queues are drained, sampling the busy times between short waits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            local_stack.drain(timeout=0.4)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
        sample()


# -- the test ------------------------------------------------------------------------------------


def test_meetings_and_busy_sync_under_faults_spikes_and_an_icloud_outage(
    api: httpx.Client,
    local_stack: LocalStack,
    faulty: Providers,
    seen: dict[str, Seen],
    mentor: str,
    mentor_headers: Headers,
) -> None:
    providers = faulty
    store, schedule = tables(local_stack)
    busy_store = BusyStore(store.table)
    queues = local_stack.aws
    assert _depth(local_stack, queues.meetings.dlq_url) == 0
    assert _depth(local_stack, queues.busy_sync.dlq_url) == 0

    # Given three mentors, each with Google (OAuth), Zoom (OAuth) and Apple (app-specific password)
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"from": utc_z(day - timedelta(days=1)), "to": utc_z(day + timedelta(days=4))}
    mentors: list[Mentor] = []
    for n in range(MENTORS):
        mentor_id = f"{mentor}-{n}"
        set_plan(store, mentor_id, "pro")
        store.upsert_mentor(mentor_id, email=f"{mentor_id}@mentor.example.com", timezone="UTC")
        headers = mentor_headers(mentor_id)
        email = flows.seed_google_account(providers.google, f"{mentor_id}@example.com", calendars=[])
        assert flows.connect_oauth(api, headers, "google")["status"] == "connected"
        flows.seed_zoom_account(providers.zoom, email, plan=2)
        assert flows.connect_oauth(api, headers, "zoom")["status"] == "connected"
        apple_id = f"{mentor_id}-{uuid.uuid4().hex[:6]}@icloud.com"
        providers.caldav.add_user(apple_id, PASSWORD)
        calendar = (
            caldav.DAVClient(url=providers.caldav.url, username=apple_id, password=PASSWORD)
            .principal()
            .make_calendar(name="Home")
        )
        resp = api.post(
            "/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": PASSWORD}
        )
        assert resp.status_code == 201, resp.text
        mentors.append(Mentor(mentor_id, headers, email, apple_id, calendar))

    # And known busy times: Google 08-09 and Apple 08:30-10 (one merged block), Apple alone the
    # next day at noon, Google alone that afternoon
    h = timedelta(hours=1)
    for m in mentors:
        providers.google.seed_event(m.email, _google_event(day + 8 * h, day + 9 * h))
        providers.google.seed_event(m.email, _google_event(day + 39 * h, day + 40 * h))
        m.calendar.add_event(busy_ics(f"a1-{m.mentor_id}", day + 8.5 * h, day + 10 * h))
        m.calendar.add_event(busy_ics(f"a2-{m.mentor_id}", day + 36 * h, day + 37 * h))
    baseline = {
        (utc_z(day + 8 * h), utc_z(day + 10 * h), ("apple", "google")),
        (utc_z(day + 36 * h), utc_z(day + 37 * h), ("apple",)),
        (utc_z(day + 39 * h), utc_z(day + 40 * h), ("google",)),
    }
    # What the calendars gain while things break: Apple during the outage, Google during the faults
    added_apple = (utc_z(day + 57 * h), utc_z(day + 58 * h), ("apple",))
    added_google = (utc_z(day + 62 * h), utc_z(day + 63 * h), ("google",))
    final = baseline | {added_apple, added_google}

    # And classes with online sessions 3-4 weeks out (outside the busy window), two bookings each
    booked: list[dict[str, Any]] = []
    platform = {"authorization": f"Bearer {local_stack.platform_token()}"}  # POST /bookings is the platform's
    for m in mentors:
        for offset, meeting_provider in ((20, MEET), (24, "zoom")):
            title = f"Faults {meeting_provider} {m.mentor_id}"
            starts = [future(offset + k, 18) for k in range(SESSIONS_PER_CLASS)]
            body = online(title=title, meetingProvider=meeting_provider, durationMinutes=30, starts=starts)
            m.classes[meeting_provider] = create(api, m.headers, body)
            for i, session in enumerate(m.classes[meeting_provider]["sessions"]):
                for k in range(BOOKINGS_PER_SESSION):
                    student = f"{m.mentor_id}-{meeting_provider}-{i}-{k}@example.com"
                    resp = api.post(
                        "/bookings",
                        json={
                            "sessionId": session["sessionId"],
                            "studentEmail": student,
                            "studentName": "S",
                            "priceAmount": 4900,
                            "currency": "USD",
                        },
                        headers=platform,
                    )
                    assert resp.status_code == 201, resp.text
                    booked.append({**resp.json(), "sessionId": session["sessionId"], "student": student})
    sessions_total = MENTORS * 2 * SESSIONS_PER_CLASS
    assert len(booked) == sessions_total * BOOKINGS_PER_SESSION

    # And an unlucky mentor whose Meet class lives on a selected "Teaching" calendar, one session
    # with two bookings: that calendar will be down for the whole test
    dark_id = f"{mentor}-dark"
    set_plan(store, dark_id, "pro")
    store.upsert_mentor(dark_id, email=f"{dark_id}@mentor.example.com", timezone="UTC")
    dark_headers = mentor_headers(dark_id)
    dark_email = flows.seed_google_account(providers.google, f"{dark_id}@example.com")
    assert flows.connect_oauth(api, dark_headers, "google")["status"] == "connected"
    teaching = f"teaching-{dark_email}"
    resp = api.put("/connections/google/calendar", headers=dark_headers, json={"calendarId": teaching})
    assert resp.status_code == 200, resp.text
    dark_class = create(
        api,
        dark_headers,
        online(title=f"Dark {dark_id}", meetingProvider=MEET, durationMinutes=30, starts=[future(28, 18)]),
    )
    dark_session = dark_class["sessions"][0]["sessionId"]
    dark_booked = []
    for k in range(2):
        resp = api.post(
            "/bookings",
            json={
                "sessionId": dark_session,
                "studentEmail": f"{dark_id}-{k}@example.com",
                "studentName": "S",
                "priceAmount": 4900,
                "currency": "USD",
            },
            headers=platform,
        )
        assert resp.status_code == 201, resp.text
        dark_booked.append({**resp.json(), "sessionId": dark_session, "student": f"{dark_id}-{k}@example.com"})
    # (503 with "Retry-After: 120", as an outage answers: too long to wait in-process, so each
    # receive fails at once and the queue brings the job back)
    dark_down = {
        "status": 503,
        "count": 10_000,
        "path_prefix": f"/calendar/v3/calendars/{teaching}/",
        "retry_after": 120,
    }

    # And a clean poll: every source synced, the busy times are the baseline
    local_stack.drain(timeout=60)
    local_stack.tick("calendar-poll")
    local_stack.drain(timeout=60)
    synced_before: dict[str, str] = {}
    for m in mentors:
        body = api.get("/mentors/me/busy", headers=m.headers, params=window).json()
        assert _blocks(body) == baseline, body
        assert {p: (s["status"], s["error"]) for p, s in body["sources"].items()} == {
            "apple": ("connected", None),
            "google": ("connected", None),
            "microsoft": ("not_connected", None),  # listed since issue 18; these mentors never connect it
        }
        synced_before[m.mentor_id] = body["sources"]["apple"]["lastSyncedAt"]
        m.calendar.add_event(busy_ics(f"a3-{m.mentor_id}", day + 57 * h, day + 58 * h))  # not synced yet
    sample = BusySampler(api, mentors, window, kept=baseline, allowed=final)
    for name in seen:
        seen[name].receives.clear()

    try:
        # When both emulators turn faulty and slow, and Radicale goes down
        started = time.monotonic()
        providers.google.set_faults(seed=SEED, forced=[*FORCED["google"], dark_down], **FAULTS)
        providers.zoom.set_faults(seed=SEED, forced=FORCED["zoom"], **FAULTS)
        providers.caldav.pause()
        local_stack.tick("calendar-poll")
        # ... while every booking is paid (the mint jobs flow) and Google events change (pushes)
        for n, one in enumerate(booked + dark_booked):
            event = stripe_events.build_event("checkout.session.completed", booking_id=one["bookingId"])
            resp = stripe_events.send(local_stack.api_url, event, os.environ["STRIPE_WEBHOOK_SECRET"], client=api)
            assert resp.status_code == 200, resp.text
            if n % 8 == 7:
                sample()
        for m in mentors:
            providers.google.seed_event(m.email, _google_event(day + 62 * h, day + 63 * h))
        _drain_sampling(local_stack, sample, timeout=150)
        phases = {"paid+drained": time.monotonic() - started}
        # ... and more scheduled polls come and go during the outage
        for _ in range(OUTAGE_POLLS - 1):
            local_stack.tick("calendar-poll")
            _drain_sampling(local_stack, sample, timeout=120)
        phases["outage"] = time.monotonic() - started
        during_outage = {m.mentor_id: sample.last[m.mentor_id]["sources"]["apple"] for m in mentors}
        samples_in_outage = sample.samples
        apple_heads_in_outage = {m.mentor_id: busy_store.head(m.mentor_id, Provider.APPLE) for m in mentors}
        sync_dlq = _take_dlq(local_stack, queues.busy_sync.dlq_url)
        sync_dlq_heads = {
            mid: busy_store.head(body["mentorId"], Provider(body["provider"])) for mid, body in sync_dlq.items()
        }

        # When Radicale comes back (faults still on) and the next poll runs
        providers.caldav.resume()
        local_stack.tick("calendar-poll")
        _drain_sampling(local_stack, sample, timeout=120)
        # And the faults clear and one more poll runs
        injected = {e.state.name: e.snapshot() for e in (providers.google, providers.zoom)}
        for emulator in (providers.google, providers.zoom):
            emulator.clear_faults()
        local_stack.tick("calendar-poll")
        _drain_sampling(local_stack, sample, timeout=120)
        sample()
        phases["recovered"] = time.monotonic() - started
        more = _take_dlq(local_stack, queues.busy_sync.dlq_url)
        sync_dlq_heads |= {
            mid: busy_store.head(body["mentorId"], Provider(body["provider"])) for mid, body in more.items()
        }
        sync_dlq |= more
        mint_dlq = _take_dlq(local_stack, queues.meetings.dlq_url)
    finally:
        for emulator in (providers.google, providers.zoom):
            emulator.clear_faults()
        if not providers.caldav.running:
            providers.caldav.resume()
        with contextlib.suppress(TimeoutError):  # after a failure: let what is in flight finish
            local_stack.drain(timeout=60)
        leftover = _take_dlq(local_stack, queues.meetings.dlq_url) | _take_dlq(local_stack, queues.busy_sync.dlq_url)
    assert leftover == {}
    mint_final = seen["meetings"].final()
    sync_final = seen["busy-sync"].final()
    sync_completed = {mid: out for mid, out in sync_final.items() if not out.startswith("raised:")}
    mine = {m.mentor_id for m in mentors}
    my_outcomes = Counter(
        (body["provider"], out if out.startswith("gave_up") else out.split(":")[0])
        for mid, out in sync_completed.items()
        if (body := seen["busy-sync"].bodies[mid])["mentorId"] in mine
    )
    on_dark = [e for e in injected["google"]["faults_injected"] if e["path"].startswith(dark_down["path_prefix"])]
    random_faults = sum(len(snap["faults_injected"]) for snap in injected.values()) - len(on_dark)
    random_faults -= sum(map(len, FORCED.values()))
    print(  # the numbers, for the report (pytest -s)
        f"\nmint jobs {len(mint_final)} (DLQ {len(mint_dlq)}: {Counter(mint_final.values())}); "
        f"sync messages {len(sync_final)} (DLQ {len(sync_dlq)}; this test's {dict(my_outcomes)}); "
        f"faults/spikes {[(n, len(s['faults_injected']), len(s['latency_spikes'])) for n, s in injected.items()]} "
        f"({random_faults} random, {len(on_dark)} on the dark calendar); "
        f"busy samples {sample.samples} ({samples_in_outage} in the outage), apple errors {dict(sample.apple_errors)}; "
        f"retried receives {sum(len(r) - 1 for r in seen['meetings'].receives.values())} mint, "
        f"{sum(len(r) - 1 for r in seen['busy-sync'].receives.values())} sync; "
        f"phases { ({k: round(v, 1) for k, v in phases.items()}) }"
    )

    # Then the faults really happened: each sure one, and random 429s, 500s and spikes besides
    for name, snap in injected.items():
        got = Counter((e["path"], e["status"]) for e in snap["faults_injected"])
        for rule in FORCED[name]:
            assert got[(rule["path_prefix"], rule["status"])] >= 1, (name, rule, got)
    spikes = [e for snap in injected.values() for e in snap["latency_spikes"]]
    assert random_faults >= 1
    assert spikes
    assert all(500 <= e["spike_ms"] <= 2000 for e in spikes)

    # And every mint job completed or is dead-lettered with the reason on its booking
    lost = {mid: out for mid, out in mint_final.items() if out.startswith("raised:") and mid not in mint_dlq}
    assert lost == {}, f"mint jobs neither completed nor dead-lettered: {lost}"
    assert set(mint_dlq) <= set(mint_final)
    paid = {one["bookingId"] for one in booked + dark_booked}
    mint_jobs = {mid: body for mid, body in seen["meetings"].bodies.items() if body.get("bookingId") in paid}
    assert sorted(b["bookingId"] for b in mint_jobs.values()) == sorted(paid)  # one job per payment
    completed = {mid for mid in mint_jobs if mid not in mint_dlq}
    assert {mint_final[mid] for mid in completed} <= {"ready"}, Counter(mint_final.values())
    assert len(completed) + len(set(mint_jobs) & set(mint_dlq)) == len(paid)
    by_booking = {b["bookingId"]: mid for mid, b in mint_jobs.items()}
    assert {by_booking[one["bookingId"]] for one in dark_booked} <= set(mint_dlq)
    links: dict[str, set[str]] = {}
    failed_sessions: set[str] = set()
    for one in booked + dark_booked:
        view = api.get(f"/bookings/{one['bookingId']}", params={"token": one["bookingToken"]}).json()
        assert view["status"] == "CONFIRMED", view
        if by_booking[one["bookingId"]] in mint_dlq:
            assert view["meetingStatus"] == "failed", view
            assert "could not be created" in view["meetingError"], view
            assert view["meetingUrl"] is None, view
            failed_sessions.add(one["sessionId"])
        else:
            assert view["meetingStatus"] == "ready", view
            assert view["meetingUrl"], view
            links.setdefault(one["sessionId"], set()).add(view["meetingUrl"])
    assert all(len(urls) == 1 for urls in links.values()), links

    # And each session with a link has exactly one meeting at its provider, the one it recorded
    for m in mentors:
        for meeting_provider, klass in m.classes.items():
            recorded = {}
            for session in klass["sessions"]:
                stored = schedule.get_session(session["sessionId"])
                assert stored is not None
                if session["sessionId"] in links:
                    assert stored.meeting is not None
                    assert stored.meeting.status is MeetingStatus.CREATED
                    recorded[str(stored.meeting.meeting_id)] = stored.meeting.url
            if meeting_provider == MEET:
                held = [
                    e
                    for e in providers.google.events(m.email)
                    if e.get("summary") == klass["title"] and e.get("status") != "cancelled"
                ]
            else:
                held = [x for x in providers.zoom.meetings() if x.get("topic") == klass["title"]]
            assert sorted(str(x["id"]) for x in held) == sorted(recorded), (m.mentor_id, meeting_provider)
    assert [e for e in providers.google.events(teaching) if e.get("summary") == dark_class["title"]] == []

    # And every sync message completed (synced, skipped or given up until the next poll with the
    # error on the busy head) or is dead-lettered with the error on the head
    lost = {mid: out for mid, out in sync_final.items() if out.startswith("raised:") and mid not in sync_dlq}
    assert lost == {}, f"sync jobs neither completed nor dead-lettered: {lost}"
    for mid, head in sync_dlq_heads.items():
        assert head is not None, sync_dlq[mid]
        assert head.error, (sync_dlq[mid], head)
    assert len(sync_completed) + len(sync_dlq) == len(sync_final)
    # Apple gave up during the outage (every outage poll, every mentor), then synced again
    assert my_outcomes[("apple", "gave_up:unavailable")] >= MENTORS * OUTAGE_POLLS, my_outcomes
    assert my_outcomes[("apple", "synced")] >= MENTORS * 2, my_outcomes
    assert my_outcomes[("google", "synced")] >= MENTORS * (OUTAGE_POLLS + 2), my_outcomes

    # And during the outage the Apple source said so and kept its last good sync and its blocks
    assert samples_in_outage >= MENTORS * 4
    assert sample.apple_errors["unavailable"] >= MENTORS, sample.apple_errors
    for m in mentors:
        source = during_outage[m.mentor_id]
        assert (source["status"], source["error"]) == ("connected", "unavailable"), source
        assert source["lastSyncedAt"] == synced_before[m.mentor_id]
        head = apple_heads_in_outage[m.mentor_id]
        assert head is not None
        assert (head.blocks, head.error) == (2, "unavailable"), head

    # And once Radicale is back and the faults are gone, one poll brought Apple back with the event
    # added during the outage, and Google with the one added during the faults
    for m in mentors:
        body = sample.last[m.mentor_id]
        assert _blocks(body) == final, body
        for name in CONNECTED_SOURCES:
            source = body["sources"][name]
            assert (source["status"], source["error"]) == ("connected", None), (name, source)
        assert body["sources"]["apple"]["lastSyncedAt"] > synced_before[m.mentor_id]

    # And no connection was flagged for reconnecting, nobody was asked to reconnect
    dark_google = store.get_connection(dark_id, Provider.GOOGLE)
    assert dark_google is not None
    assert dark_google.status is ConnectionStatus.CONNECTED
    for m in mentors:
        for provider in (Provider.GOOGLE, Provider.ZOOM, Provider.APPLE):
            conn = store.get_connection(m.mentor_id, provider)
            assert conn is not None, (m.mentor_id, provider)
            assert conn.status is ConnectionStatus.CONNECTED, (m.mentor_id, provider, conn.status)
    # (the mentors heard only of meetings that could not be made; each ready student got one link)
    sent = read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"])  # the addresses are this test's own
    to_mentors = {f"{m_id}@mentor.example.com" for m_id in [*(m.mentor_id for m in mentors), dark_id]}
    to_mentor = Counter(e.subject.split(":")[0] for e in sent if to_mentors & set(e.to))
    assert to_mentor == Counter({"Action needed": len(failed_sessions)} if failed_sessions else {}), to_mentor
    assert dark_session in failed_sessions
    for one in booked + dark_booked:
        mails = [e for e in sent if one["student"] in e.to]
        if by_booking[one["bookingId"]] not in mint_dlq:
            assert [e.subject.split(":")[0] for e in mails] == ["Booked"], (one["student"], mails)
