"""Races, on the whole local stack: one refresh for fifty readers, one meeting for two workers, one last seat.

Each "container" here is its own set of objects (its own vault and key cache, its own credential
accessor, its own meetings worker) sharing only what separate Lambda containers share: the table and
KMS key on the moto server, the queues, and the providers. The emulators add latency while the
racers run so that their calls really overlap.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from classes_support import create, future, live_meetings, oauth_mentor, online, tables
from e2e_support import Providers

from devstack.metering import count_calls
from devstack.stack import LocalStack
from shared.connections.oauth_flow import oauth_client
from shared.connections.views import OAUTH_PROVIDERS
from shared.meetings.worker import MeetingsWorker, RetryLater
from shared.notify.emails import Mailer, reconnect_notifier
from shared.platform.config import BaseFunctionSettings, settings
from shared.providers.credentials import CredentialAccessor
from shared.providers.meetings import meetings_client
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import BookingStatus, MeetingStatus, Provider, Table
from shared.store.meetings import MeetingLedger
from shared.vault import KeyCache, Vault
from shared.vault.branch_store import DynamoBranchStore

Headers = Callable[..., dict[str, str]]

READERS = 50
RACERS = 30


def _container(local_stack: LocalStack, kms: Any = None) -> CredentialAccessor:
    """What one fresh Lambda container builds: its own vault (empty key cache) and OAuth clients."""
    cfg: BaseFunctionSettings = settings()
    store, _ = tables(local_stack)
    ddb, kms = local_stack.client("dynamodb"), kms or local_stack.client("kms")
    vault = Vault(
        kms=kms,
        store=DynamoBranchStore(ddb, cfg.table_name),
        kms_key_id=cfg.kms_key_id,
        cache=KeyCache(max_age_s=cfg.vault_cache_max_age_s, max_uses=cfg.vault_cache_max_uses),
    )
    clients = {p: oauth_client(p) for p in OAUTH_PROVIDERS}
    return CredentialAccessor(store, vault, clients, poll_s=0.05, wait_s=20, on_reconnect=reconnect_notifier(store))


def test_fifty_containers_reading_one_expiring_zoom_token_refresh_it_once(
    api: httpx.Client, local_stack: LocalStack, providers: Providers, mentor: str, mentor_headers: Headers
) -> None:
    """Given a Zoom connection whose access token is inside the refresh-ahead window, when 50
    containers ask for it at the same moment while the token endpoint takes 300 ms, then Zoom sees
    exactly one refresh grant, all 50 get the same new token, it works at Zoom, the rotated refresh
    token is the one stored, and the old one was used exactly once."""
    zoom = providers.zoom
    saved_ttl = zoom.state.settings.access_token_ttl_seconds
    zoom.configure(access_token_ttl_seconds=120)  # < the accessors' 300 s refresh-ahead window
    try:
        oauth_mentor(api, local_stack, providers, mentor_headers, mentor, "zoom")
    finally:
        zoom.configure(access_token_ttl_seconds=saved_ttl)
    kms = local_stack.client("kms")
    containers = [_container(local_stack, kms) for _ in range(READERS)]
    refreshes_before = zoom.token_calls("refresh_token")
    start = threading.Barrier(READERS)

    def read(accessor: CredentialAccessor) -> str:
        start.wait()
        return accessor.access_token(mentor, Provider.ZOOM).get_secret_value()

    zoom.set_faults(latency_ms=300)
    try:
        with count_calls(kms) as kms_calls, ThreadPoolExecutor(READERS) as pool:
            began = time.perf_counter()
            tokens = list(pool.map(read, containers))
            elapsed = time.perf_counter() - began
    finally:
        zoom.clear_faults()

    assert zoom.token_calls("refresh_token") - refreshes_before == 1
    assert len(set(tokens)) == 1
    me = httpx.get(f"{zoom.base_url}/v2/users/me", headers={"authorization": f"Bearer {tokens[0]}"}, timeout=5)
    assert me.status_code == 200
    rotated = [rt for rt in zoom.state.refresh_tokens.values() if rt.replaced_by is not None]
    newest = {rt.replaced_by for rt in rotated}
    stored = containers[0].vault.open_credential(
        tables(local_stack)[0].get_connection(mentor, Provider.ZOOM).credential,  # type: ignore[union-attr]
        mentor_id=mentor,
        provider="zoom",
    )
    assert stored.refresh_token is not None
    assert stored.refresh_token.get_secret_value() in newest
    assert zoom.state.refresh_tokens[stored.refresh_token.get_secret_value()].used_at is None
    # Each container unseals with its own key cache: one KMS Decrypt each at most (the refresher
    # seals the new tokens under a data key it already holds or makes one).
    assert 1 <= sum(kms_calls.calls.values()) <= READERS + 1
    print(f"\n{READERS} readers: {elapsed:.2f} s, KMS calls {dict(kms_calls.calls)}")


def _worker(local_stack: LocalStack) -> MeetingsWorker:
    """One meetings worker container (its own accessor, ledger, mailer)."""
    store, schedule = tables(local_stack)
    table = Table(local_stack.client("dynamodb"), os.environ["TABLE_NAME"])
    return MeetingsWorker(
        schedule=schedule,
        ledger=MeetingLedger(table, schedule),
        store=store,
        tokens=_container(local_stack).access_token,
        clients=meetings_client,
        mailer=Mailer(local_stack.client("sesv2")),
        app_url="http://app.example.test",
        lease_s=60.0,
    )


@pytest.mark.parametrize("which", ["google", "zoom"])
def test_two_workers_minting_for_one_session_make_one_meeting(
    which: str, api: httpx.Client, local_stack: LocalStack, providers: Providers, mentor: str, mentor_headers: Headers
) -> None:
    """Given one session with two confirmed bookings, when two workers take the two jobs (and a
    re-delivery of the first) at the same moment while the provider takes 300 ms per request,
    then the provider holds exactly one meeting, both bookings carry its link, a worker that found
    the reservation taken is told to retry later and then succeeds, and each student gets one
    e-mail."""
    headers = oauth_mentor(api, local_stack, providers, mentor_headers, mentor, which)
    title = f"Race {which} {mentor}"
    meeting_provider = "google_meet" if which == "google" else "zoom"
    klass = create(api, headers, online(title=title, meetingProvider=meeting_provider, starts=[future(45)]))
    session_id = klass["sessions"][0]["sessionId"]
    _, schedule = tables(local_stack)
    jobs = []
    platform = {"authorization": f"Bearer {local_stack.platform_token()}"}  # POST /bookings is the platform's
    for student in ("first", "second"):
        resp = api.post(
            "/bookings",
            json={
                "sessionId": session_id,
                "studentEmail": f"{student}-{mentor}@example.com",
                "studentName": student,
                "priceAmount": 4900,
                "currency": "USD",
            },
            headers=platform,
        )
        assert resp.status_code == 201, resp.text
        booking_id = resp.json()["bookingId"]
        assert schedule.confirm_booking(booking_id) is not None  # the job is delivered by this test
        jobs.append(
            MeetingJob(
                kind=JobKind.BOOKING_CONFIRMED,
                mentorId=mentor,
                classId=klass["classId"],
                sessionId=session_id,
                bookingId=booking_id,
            )
        )
    jobs.append(jobs[0])  # a re-delivery, racing too
    workers = [_worker(local_stack) for _ in jobs]
    start = threading.Barrier(len(jobs))
    emulator = providers.google if which == "google" else providers.zoom

    def run(pair: tuple[MeetingsWorker, MeetingJob]) -> tuple[str, int]:
        worker, job = pair
        start.wait()
        for attempt in range(1, 40):
            try:
                return worker.handle(job), attempt
            except RetryLater:
                time.sleep(0.25)  # the queue's redelivery, shortened
        raise AssertionError("never finished")

    emulator.set_faults(latency_ms=300)
    try:
        with ThreadPoolExecutor(len(jobs)) as pool:
            outcomes = list(pool.map(run, zip(workers, jobs, strict=True)))
    finally:
        emulator.clear_faults()

    assert [outcome for outcome, _ in outcomes] == ["ready"] * len(jobs)
    assert max(attempts for _, attempts in outcomes) > 1, "the workers did not overlap"
    held = live_meetings(providers, which, f"{mentor}@example.com", title)
    assert len(held) == 1, held
    session = schedule.get_session(session_id)
    assert session is not None
    assert session.meeting is not None
    assert session.meeting.status is MeetingStatus.CREATED
    assert session.meeting.meeting_id == str(held[0]["id"])
    for job in jobs[:2]:
        booking = schedule.get_booking(job.booking_id or "")
        assert booking is not None
        assert booking.status is BookingStatus.CONFIRMED
        assert booking.meeting_url == session.meeting.url
    from devstack.outbox import read_outbox

    sent = Counter(
        to for mail in read_outbox(local_stack.environment()["AWS_ENDPOINT_URL"]) for to in mail.to if mentor in to
    )
    assert sent == Counter({f"first-{mentor}@example.com": 1, f"second-{mentor}@example.com": 1})


def test_racing_for_the_last_seat_one_booking_wins(
    api: httpx.Client, local_stack: LocalStack, providers: Providers, mentor: str, mentor_headers: Headers
) -> None:
    """Given a session of 3 seats with 2 taken, when 30 students book it at the same moment through
    the gateway, then exactly one gets 201 and 29 get 409 ``session_full``, and the session holds
    exactly 3 bookings and 3 seats taken."""
    headers = oauth_mentor(api, local_stack, providers, mentor_headers, mentor, "zoom")
    klass = create(api, headers, online(title=f"Last seat {mentor}", meetingProvider="zoom", capacity=3))
    session_id = klass["sessions"][0]["sessionId"]
    platform = {"authorization": f"Bearer {local_stack.platform_token()}"}  # POST /bookings is the platform's
    for n in range(2):
        resp = api.post(
            "/bookings",
            json={
                "sessionId": session_id,
                "studentEmail": f"early{n}@example.com",
                "studentName": f"Early {n}",
                "priceAmount": 4900,
                "currency": "USD",
            },
            headers=platform,
        )
        assert resp.status_code == 201, resp.text
    start = threading.Barrier(RACERS)

    def book(n: int) -> tuple[int, Any]:
        with httpx.Client(base_url=local_stack.api_url, timeout=30, headers=platform) as client:
            start.wait()
            resp = client.post(
                "/bookings",
                json={
                    "sessionId": session_id,
                    "studentEmail": f"racer{n}@example.com",
                    "studentName": f"Racer {n}",
                    "priceAmount": 4900,
                    "currency": "USD",
                },
            )
            return resp.status_code, resp.json()

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(book, range(RACERS)))

    statuses = Counter(status for status, _ in answers)
    assert statuses == Counter({201: 1, 409: RACERS - 1}), statuses
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"session_full"}
    _, schedule = tables(local_stack)
    session = schedule.get_session(session_id)
    assert session is not None
    assert (session.capacity, session.seats_taken) == (3, 3)
    assert len(schedule.bookings_of_session(session_id)) == 3
