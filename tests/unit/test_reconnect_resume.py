"""Reconnecting resumes (issue 16 item 2): waiting markers, one re-queue per reconnect, one summary.

The meetings worker runs against moto with a Zoom double and a token source that answers
``needs_reconnect`` until the test "reconnects"; the re-queued jobs are collected and run by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from classes_support import one_session_zoom_class
from pydantic import SecretStr

from shared.meetings.resume import Resumes, after_connect
from shared.meetings.worker import MeetingsWorker, RetryLater, process_message
from shared.notify.emails import OutgoingEmail
from shared.notify.summaries import StartedSession, reconnect_summary_email
from shared.providers.credentials import ConnectionUnavailable
from shared.providers.meetings import MeetingError, MintedMeeting
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import Booking, ConnectionStatus, Provider, ScheduleStore, Session, Store
from shared.store.meetings import MeetingLedger
from shared.store.waiting import WaitingStore

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
FUTURE = NOW + timedelta(days=2)


@dataclass
class Tokens:
    """``needs_reconnect`` until ``connected`` is set."""

    connected: bool = False

    def __call__(self, mentor_id: str, provider: Provider, /, *, reject: SecretStr | None = None) -> SecretStr:
        if not self.connected:
            raise ConnectionUnavailable(ConnectionStatus.NEEDS_RECONNECT, "invalid_grant", provider=provider)
        return SecretStr("token")


@dataclass
class Zoom:
    created: list[str] = field(default_factory=list)
    down: bool = False

    def create(self, token: SecretStr, spec: Any) -> MintedMeeting:
        if self.down:
            raise MeetingError(
                "Zoom answered HTTP 503.", code="unavailable", status=503, retryable=True, provider="zoom"
            )
        self.created.append(spec.key)
        return MintedMeeting(meeting_id=str(len(self.created)), join_url=f"https://zoom.example/j/{len(self.created)}")

    def find(self, token: SecretStr, spec: Any) -> MintedMeeting | None:
        return None


@dataclass
class Outbox:
    sent: list[OutgoingEmail] = field(default_factory=list)

    def send(self, email: OutgoingEmail) -> str:
        self.sent.append(email)
        return "msg"

    def subjects(self, to: str) -> list[str]:
        return [m.subject for m in self.sent if m.to == to]


@dataclass
class Rig:
    worker: MeetingsWorker
    resumes: Resumes
    waiting: WaitingStore
    tokens: Tokens
    zoom: Zoom
    outbox: Outbox
    queued: list[MeetingJob]

    def run(self, jobs: Sequence[MeetingJob]) -> list[str]:
        return [self.worker.handle(job) for job in jobs]


@pytest.fixture
def rig(schedule: ScheduleStore, store: Store) -> Rig:
    store.upsert_mentor("m-1", email="mentor@example.com")
    tokens, zoom, outbox, queued = Tokens(), Zoom(), Outbox(), []
    waiting = WaitingStore(schedule.table, clock=lambda: NOW.timestamp())
    resumes = Resumes(
        waiting=waiting,
        schedule=schedule,
        store=store,
        mailer=outbox,  # type: ignore[arg-type]
        queue=queued.extend,
        app_url="http://app.example.test",
        clock=lambda: NOW,
    )
    worker = MeetingsWorker(
        schedule=schedule,
        ledger=MeetingLedger(schedule.table, schedule),
        store=store,
        tokens=tokens,
        clients=lambda provider: zoom,  # type: ignore[arg-type,return-value]
        mailer=outbox,  # type: ignore[arg-type]
        app_url="http://app.example.test",
        resumes=resumes,
    )
    return Rig(worker, resumes, waiting, tokens, zoom, outbox, queued)


def _confirmed(schedule: ScheduleStore, session: Session, booking_id: str) -> MeetingJob:
    schedule.create_booking(
        Booking(
            booking_id=booking_id,
            session_id=session.session_id,
            class_id=session.class_id,
            mentor_id="m-1",
            student_email=f"{booking_id}@example.com",
            student_name=f"Student {booking_id}",
            token_hash=hashlib.sha256(booking_id.encode()).hexdigest(),
        )
    )
    assert schedule.confirm_booking(booking_id) is not None
    return MeetingJob(
        kind=JobKind.BOOKING_CONFIRMED,
        mentorId="m-1",
        classId=session.class_id,
        sessionId=session.session_id,
        bookingId=booking_id,
    )


def _booking(schedule: ScheduleStore, booking_id: str) -> Booking:
    found = schedule.get_booking(booking_id)
    assert found is not None
    return found


def test_reconnect_requeues_future_bookings_once_lists_started_ones_and_sends_one_summary(
    rig: Rig, schedule: ScheduleStore
) -> None:
    # Given two bookings of a future Zoom session and one of a session that starts before the reconnect,
    # all confirmed while the mentor's Zoom grant was dead
    future = one_session_zoom_class(schedule, "cls_f", FUTURE)
    soon = one_session_zoom_class(schedule, "cls_s", NOW - timedelta(minutes=10))
    jobs = [
        _confirmed(schedule, future, "bkg_1"),
        _confirmed(schedule, future, "bkg_2"),
        _confirmed(schedule, soon, "bkg_3"),
    ]
    assert rig.run(jobs) == ["failed:needs_reconnect"] * 3
    # Then each booking says why, and each has its waiting marker (written with the failure)
    assert {_booking(schedule, b).meeting_status for b in ("bkg_1", "bkg_2", "bkg_3")} == {"needs_reconnect"}
    assert sorted(m["booking_id"] for m in rig.waiting.waiting("m-1", Provider.ZOOM, limit=10)) == [
        "bkg_1",
        "bkg_2",
        "bkg_3",
    ]
    assert rig.waiting.waiting("m-1", Provider.GOOGLE, limit=10) == []
    failure_mails = len(rig.outbox.subjects("mentor@example.com"))

    # When the mentor reconnects Zoom, twice
    rig.tokens.connected = True
    first = rig.resumes.reconnected("m-1", Provider.ZOOM)
    second = rig.resumes.reconnected("m-1", Provider.ZOOM)

    # Then the future bookings were queued once, the started one only listed; the second queued nothing
    assert (first.queued, first.started) == (2, 1)
    assert (second.queued, second.started, second.resume_id) == (0, 0, None)
    assert sorted(j.booking_id or "" for j in rig.queued) == ["bkg_1", "bkg_2"]
    # And no summary yet: its links do not exist yet
    assert len(rig.outbox.subjects("mentor@example.com")) == failure_mails

    # When the worker runs the re-queued jobs (one delivered twice)
    assert rig.run([*rig.queued, rig.queued[0]]) == ["ready", "ready", "ready"]

    # Then one meeting, both students have the link and one e-mail each, the started one none
    assert rig.zoom.created == [f"{future.session_id}.g1"]
    assert {_booking(schedule, b).meeting_url for b in ("bkg_1", "bkg_2")} == {"https://zoom.example/j/1"}
    assert _booking(schedule, "bkg_3").meeting_url is None
    assert len(rig.outbox.subjects("bkg_1@example.com")) == 1
    assert rig.outbox.subjects("bkg_3@example.com") == []
    # And the mentor got exactly one summary, naming the link and the started session
    summaries = [m for m in rig.outbox.sent if m.to == "mentor@example.com" and "reconnected" in m.subject]
    assert len(summaries) == 1
    assert "1 join link was created after you reconnected Zoom" in summaries[0].text
    assert "2 students have been e-mailed their link" in summaries[0].text
    assert "1 booking belongs to a session that had already started" in summaries[0].text
    assert "Student bkg_3" in summaries[0].text
    # And nothing waits any more
    assert rig.waiting.waiting("m-1", Provider.ZOOM, limit=10) == []
    # And a third reconnect queues and sends nothing
    rig.queued.clear()
    assert rig.resumes.reconnected("m-1", Provider.ZOOM).queued == 0
    assert rig.queued == []
    assert len([m for m in rig.outbox.sent if "reconnected" in m.subject]) == 1


def test_a_resumed_booking_that_fails_again_waits_for_the_next_reconnect(rig: Rig, schedule: ScheduleStore) -> None:
    # Given a booking that waited, and a reconnect that re-queued it
    session = one_session_zoom_class(schedule, "cls_r", FUTURE)
    rig.run([_confirmed(schedule, session, "bkg_r")])
    assert rig.resumes.reconnected("m-1", Provider.ZOOM).queued == 1
    # When the grant dies again before the job runs
    assert rig.run(rig.queued) == ["failed:needs_reconnect"]
    # Then the booking waits again (marker back, unclaimed) and the summary says it still has no link
    (marker,) = rig.waiting.waiting("m-1", Provider.ZOOM, limit=10)
    assert "resume_id" not in marker
    (summary,) = [m for m in rig.outbox.sent if "reconnected" in m.subject]
    assert "0 join links were created" in summary.text
    assert "1 booking still could not get a link" in summary.text
    # When the mentor reconnects for real
    rig.queued.clear()
    rig.tokens.connected = True
    assert rig.resumes.reconnected("m-1", Provider.ZOOM).queued == 1
    assert rig.run(rig.queued) == ["ready"]
    # Then the link is there and a second summary (of this batch) says so
    assert _booking(schedule, "bkg_r").meeting_url
    summaries = [m for m in rig.outbox.sent if "reconnected" in m.subject]
    assert len(summaries) == 2
    assert "1 join link was created" in summaries[1].text


def test_a_booking_cancelled_before_its_resumed_job_runs_is_dropped_quietly(rig: Rig, schedule: ScheduleStore) -> None:
    session = one_session_zoom_class(schedule, "cls_c", FUTURE)
    rig.run([_confirmed(schedule, session, "bkg_c")])
    rig.tokens.connected = True
    assert rig.resumes.reconnected("m-1", Provider.ZOOM).queued == 1
    schedule.cancel_booking("bkg_c", "student")
    assert rig.run(rig.queued) == ["skipped:not_confirmed"]
    # Nothing was created, nothing waits, and the mentor is not told about nothing
    assert rig.zoom.created == []
    assert rig.waiting.waiting("m-1", Provider.ZOOM, limit=10) == []
    assert not [m for m in rig.outbox.sent if "reconnected" in m.subject]
    (batch,) = rig.waiting.batches("m-1", Provider.ZOOM)
    assert batch["dropped"] == {"bkg_c"}
    assert "pending" not in batch


def test_a_resumed_job_that_reaches_the_dead_letter_queue_still_ends_its_batch(
    rig: Rig, schedule: ScheduleStore
) -> None:
    session = one_session_zoom_class(schedule, "cls_d", FUTURE)
    rig.run([_confirmed(schedule, session, "bkg_d")])
    rig.tokens.connected = True
    assert rig.resumes.reconnected("m-1", Provider.ZOOM).queued == 1
    # When Zoom is down for every receive of the re-queued job, up to the last
    rig.zoom.down = True
    with pytest.raises(RetryLater):
        process_message(rig.queued[0].body(), receive_count=5, worker=rig.worker)
    # Then the booking says why and the mentor's summary counts it instead of waiting forever
    assert _booking(schedule, "bkg_d").meeting_status == "failed"
    (summary,) = [m for m in rig.outbox.sent if "reconnected" in m.subject]
    assert "1 booking could not get a link for another reason" in summary.text
    assert rig.waiting.waiting("m-1", Provider.ZOOM, limit=10) == []


@pytest.mark.usefixtures("atomic_dynamodb")
def test_two_racing_reconnects_queue_each_booking_once(rig: Rig, schedule: ScheduleStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    session = one_session_zoom_class(schedule, "cls_x", FUTURE)
    rig.run([_confirmed(schedule, session, f"bkg_x{i}") for i in range(3)])
    rig.tokens.connected = True
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: rig.resumes.reconnected("m-1", Provider.ZOOM), range(2)))
    assert sum(r.queued for r in reports) == 3
    assert sorted(j.booking_id or "" for j in rig.queued) == ["bkg_x0", "bkg_x1", "bkg_x2"]


def test_the_failure_and_its_marker_are_one_write(rig: Rig, schedule: ScheduleStore) -> None:
    session = one_session_zoom_class(schedule, "cls_w", FUTURE)
    _confirmed(schedule, session, "bkg_w")
    schedule.cancel_booking("bkg_w", "student")
    recorded, _ = rig.waiting.record_failure(
        booking_id="bkg_w",
        mentor_id="m-1",
        session_id=session.session_id,
        class_id="cls_w",
        connection=Provider.ZOOM,
        meeting_provider="zoom",
        reason="needs_reconnect",
        error="reconnect",
        session_end=session.end,
    )
    # A booking no longer confirmed gets neither the status nor a marker
    assert recorded is False
    assert _booking(schedule, "bkg_w").meeting_status is None
    assert rig.waiting.waiting("m-1", Provider.ZOOM, limit=10) == []


def test_after_connect_syncs_a_reconnected_calendar_and_resumes_video_providers_without_raising() -> None:
    calls: list[tuple[str, str]] = []

    class SyncQueue:
        def send(self, job: Any) -> None:
            calls.append(("sync", job.provider.value))

    class Broken:
        def reconnected(self, mentor_id: str, provider: Provider) -> None:
            calls.append(("resume", provider.value))
            raise RuntimeError("table unavailable")

    for provider, reconnected in [(Provider.GOOGLE, True), (Provider.ZOOM, True), (Provider.APPLE, True)]:
        after_connect("m-1", provider, reconnected, sync_queue=SyncQueue, resumes=Broken)  # type: ignore[arg-type]
    after_connect("m-1", Provider.APPLE, False, sync_queue=SyncQueue, resumes=Broken)  # type: ignore[arg-type]
    assert calls == [("sync", "google"), ("resume", "google"), ("resume", "zoom"), ("sync", "apple")]


def test_summary_escapes_stored_text_and_counts_what_it_does_not_list() -> None:
    started = [
        StartedSession("<b>Evil</b>", NOW + timedelta(hours=i), NOW + timedelta(hours=i + 1), "Europe/Berlin", "Ann")
        for i in range(25)
    ]
    email = reconnect_summary_email(
        "m@example.com", "Google", links=3, bookings=4, started=started, still_waiting=0, failed=1, app_url="http://a"
    )
    assert email.subject == "Google reconnected: 3 join links were created"
    assert "<b>Evil</b>" not in email.html
    assert "&lt;b&gt;Evil&lt;/b&gt;" in email.html
    assert "… and 5 more." in email.text
    assert "1 booking could not get a link for another reason" in email.text
