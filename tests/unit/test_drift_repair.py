"""Drift repair and the pre-flight check (issue 16 items 3-4, PRODUCT.md §2.6), against moto.

A fake Zoom holds meetings in memory and counts every call, so each test can say exactly which
provider calls and e-mails a check made: a meeting deleted outside is re-created once (generation
2: a new provider key) and each student with the old link gets one e-mail; a moved one is moved
back; our own creates and moves, checked, cause nothing; the pre-flight queues one check per
meeting starting within 24 hours, once.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from classes_support import one_session_zoom_class
from pydantic import SecretStr

from shared.meetings.preflight import Preflight
from shared.meetings.signals import zoom_meeting_changed, zoom_meeting_id
from shared.meetings.worker import MeetingsWorker
from shared.notify.emails import OutgoingEmail
from shared.providers.meetings import MeetingError, MeetingSpec, MintedMeeting
from shared.providers.meetings.observed import Observed
from shared.queues.meetings import JobKind, MeetingJob
from shared.store import Booking, MeetingProvider, MeetingStatus, ScheduleStore, Session, Store
from shared.store.meeting_index import MeetingIndex
from shared.store.meetings import MeetingLedger

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START = NOW + timedelta(hours=5)


class FakeZoom:
    """Zoom's meetings in memory (client and probe in one); ``calls`` counts each operation."""

    def __init__(self) -> None:
        self.meetings: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self._next = 1000

    def create(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting:
        self.calls["create"] += 1
        for mid, m in self.meetings.items():
            if m["key"] == spec.key:
                return MintedMeeting(meeting_id=mid, join_url=m["url"])
        self._next += 1
        mid = str(self._next)
        self.meetings[mid] = {"key": spec.key, "start": spec.start, "minutes": spec.duration_minutes}
        self.meetings[mid]["url"] = f"https://zoom.example/j/{mid}"
        return MintedMeeting(meeting_id=mid, join_url=self.meetings[mid]["url"])

    def find(self, token: SecretStr, spec: MeetingSpec) -> MintedMeeting | None:
        self.calls["find"] += 1
        return None

    def move(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> MintedMeeting:
        self.calls["move"] += 1
        if meeting_id not in self.meetings:
            raise MeetingError(f"Meeting does not exist: {meeting_id}.", code="not_found", status=404)
        self.meetings[meeting_id].update(start=spec.start, minutes=spec.duration_minutes)
        return MintedMeeting(meeting_id=meeting_id, join_url=self.meetings[meeting_id]["url"])

    def delete(self, token: SecretStr, meeting_id: str, spec: MeetingSpec) -> bool:
        self.calls["delete"] += 1
        return self.meetings.pop(meeting_id, None) is not None

    def observe(self, token: SecretStr, meeting_id: str, calendar_id: str | None) -> Observed:
        self.calls["observe"] += 1
        m = self.meetings.get(meeting_id)
        if m is None:
            return Observed(meeting_id=meeting_id, gone=True)
        start = m["start"].astimezone(UTC)
        return Observed(meeting_id=meeting_id, gone=False, start=start, end=start + timedelta(minutes=m["minutes"]))

    # what the host does in Zoom
    def host_delete(self, meeting_id: str) -> None:
        del self.meetings[meeting_id]

    def host_move(self, meeting_id: str, start: datetime) -> None:
        self.meetings[meeting_id]["start"] = start


class Outbox:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[OutgoingEmail] = []
        self.fail = fail

    def send(self, email: OutgoingEmail) -> str:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("SES is down")
        self.sent.append(email)
        return "msg"

    def to(self, address: str) -> list[str]:
        return [m.subject for m in self.sent if m.to == address]


class Jobs:
    """A meetings queue that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[MeetingJob] = []

    def send(self, job: MeetingJob, *, delay_s: int = 0) -> None:
        self.sent.append(job)

    def send_many(self, jobs: list[MeetingJob]) -> int:
        self.sent += jobs
        return len(jobs)


@pytest.fixture
def session(schedule: ScheduleStore, store: Store) -> Session:
    store.upsert_mentor("m-1", email="mentor@example.com")
    return one_session_zoom_class(schedule, "cls_d", START)


@pytest.fixture
def zoom() -> FakeZoom:
    return FakeZoom()


def _worker(schedule: ScheduleStore, store: Store, zoom: FakeZoom, outbox: Outbox) -> MeetingsWorker:
    return MeetingsWorker(
        schedule=schedule,
        ledger=MeetingLedger(schedule.table, schedule),
        store=store,
        tokens=lambda mentor_id, provider, reject=None: SecretStr("token"),
        clients=lambda provider: zoom,
        mailer=outbox,  # type: ignore[arg-type]
        app_url="http://app.example.test",
        index=MeetingIndex(schedule.table),
        probes=lambda provider: zoom,
        clock=NOW.timestamp,
    )


def _confirm(worker: MeetingsWorker, schedule: ScheduleStore, session: Session, booking_id: str) -> None:
    schedule.create_booking(
        Booking(
            booking_id=booking_id,
            session_id=session.session_id,
            class_id=session.class_id,
            mentor_id="m-1",
            student_email=f"{booking_id}@example.com",
            student_name="S",
            token_hash=hashlib.sha256(booking_id.encode()).hexdigest(),
        )
    )
    assert schedule.confirm_booking(booking_id) is not None
    job = MeetingJob(
        kind=JobKind.BOOKING_CONFIRMED, mentorId="m-1", classId=session.class_id, sessionId=session.session_id
    )
    assert worker.handle(job.model_copy(update={"booking_id": booking_id})) == "ready"


def _check(worker: MeetingsWorker, session: Session) -> str:
    job = MeetingJob(kind=JobKind.MEETING_CHECK, mentorId="m-1", classId=session.class_id, sessionId=session.session_id)
    return worker.handle(job)


def _meeting(schedule: ScheduleStore, session: Session) -> Any:
    current = schedule.get_session(session.session_id)
    assert current is not None
    assert current.meeting is not None
    return current.meeting


def _url(schedule: ScheduleStore, booking_id: str) -> str | None:
    booking = schedule.get_booking(booking_id)
    assert booking is not None
    return booking.meeting_url


def test_a_meeting_deleted_outside_is_recreated_once_and_each_student_told_once(
    schedule: ScheduleStore, store: Store, session: Session, zoom: FakeZoom
) -> None:
    # Given two confirmed students sharing the session's Zoom meeting
    outbox = Outbox()
    worker = _worker(schedule, store, zoom, outbox)
    _confirm(worker, schedule, session, "bkg_1")
    _confirm(worker, schedule, session, "bkg_2")
    old = _meeting(schedule, session)
    zoom.calls.clear()
    outbox.sent.clear()
    # When the host deletes it in Zoom and the webhook's check runs (twice: Zoom retried)
    zoom.host_delete(old.meeting_id)
    assert _check(worker, session) == "check:recreated"
    assert _check(worker, session) == "check:ok"
    # Then one new meeting exists, minted under a new key (generation 2), and both bookings carry it
    new = _meeting(schedule, session)
    assert new.status is MeetingStatus.CREATED
    assert new.generation == 2
    assert new.meeting_id != old.meeting_id
    assert [m["key"] for m in zoom.meetings.values()] == [f"{session.session_id}.g2"]
    assert _url(schedule, "bkg_1") == _url(schedule, "bkg_2") == new.url
    assert zoom.calls == Counter(observe=2, create=1)
    # And each student got one "new join link" e-mail with it, the mentor one e-mail
    for booking_id in ("bkg_1", "bkg_2"):
        (subject,) = outbox.to(f"{booking_id}@example.com")
        assert subject.startswith("New join link:")
    mails = {m.to: m for m in outbox.sent}
    assert new.url in mails["bkg_1@example.com"].text
    assert [s.split(":")[0] for s in outbox.to("mentor@example.com")] == ["Meeting re-created"]
    assert "cancelled or moved in MoveMentors" in mails["mentor@example.com"].text
    # And a check still holding the old read cannot mark the new meeting gone (two checks, one re-create)
    assert MeetingLedger(schedule.table, schedule).mark_gone(session.session_id, old, "gone_at_provider") is False
    assert _meeting(schedule, session) == new
    # And the index knows the new meeting, not the old one
    index = MeetingIndex(schedule.table)
    assert index.session_of(MeetingProvider.ZOOM, new.meeting_id) == session.session_id
    assert index.lookup(MeetingProvider.ZOOM, old.meeting_id) is None


def test_a_recreation_interrupted_by_a_failed_email_finishes_on_the_retry_without_duplicates(
    schedule: ScheduleStore, store: Store, session: Session, zoom: FakeZoom
) -> None:
    outbox = Outbox()
    worker = _worker(schedule, store, zoom, outbox)
    _confirm(worker, schedule, session, "bkg_1")
    zoom.host_delete(_meeting(schedule, session).meeting_id)
    outbox.sent.clear()
    # When SES fails on the first repair e-mail, the job raises (and SQS redelivers it)
    outbox.fail = 1
    with pytest.raises(RuntimeError):
        _check(worker, session)
    # Then the retry finishes: one new meeting, the student relinked and told once, the mentor once
    assert _check(worker, session) == "check:recreated"
    assert _check(worker, session) == "check:ok"
    assert len(zoom.meetings) == 1
    assert _url(schedule, "bkg_1") == _meeting(schedule, session).url
    assert len(outbox.to("bkg_1@example.com")) == 1
    assert len(outbox.to("mentor@example.com")) == 1


def test_a_meeting_moved_outside_is_moved_back_and_only_the_mentor_is_told(
    schedule: ScheduleStore, store: Store, session: Session, zoom: FakeZoom
) -> None:
    outbox = Outbox()
    worker = _worker(schedule, store, zoom, outbox)
    _confirm(worker, schedule, session, "bkg_1")
    meeting = _meeting(schedule, session)
    link = _url(schedule, "bkg_1")
    outbox.sent.clear()
    zoom.calls.clear()
    # When the host moves it two hours later in Zoom
    zoom.host_move(meeting.meeting_id, START + timedelta(hours=2))
    assert _check(worker, session) == "check:moved_back"
    # Then it is back at the session's time, the same meeting and link; a second check does nothing
    assert zoom.meetings[meeting.meeting_id]["start"] == session.start
    assert _check(worker, session) == "check:ok"
    assert zoom.calls == Counter(observe=2, move=1)
    assert _url(schedule, "bkg_1") == link
    assert outbox.to("bkg_1@example.com") == []
    assert [s.split(":")[0] for s in outbox.to("mentor@example.com")] == ["Meeting moved back"]


def test_a_move_back_refused_because_the_meeting_vanished_is_left_to_the_next_check(
    schedule: ScheduleStore, store: Store, session: Session, zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(schedule, store, zoom, Outbox())
    _confirm(worker, schedule, session, "bkg_1")
    meeting_id = _meeting(schedule, session).meeting_id
    zoom.host_move(meeting_id, START + timedelta(hours=2))
    seen_moved = zoom.observe(SecretStr("t"), meeting_id, None)
    zoom.host_delete(meeting_id)  # deleted between our GET and our PATCH
    monkeypatch.setattr(zoom, "observe", lambda *args: seen_moved)
    # Then the check does not fail its job into the DLQ: it stops, and the deletion's check re-creates
    assert _check(worker, session) == "check:move_refused"
    monkeypatch.undo()
    assert _check(worker, session) == "check:recreated"
    assert _meeting(schedule, session).generation == 2


def test_our_own_create_and_move_trigger_no_repair(
    schedule: ScheduleStore, store: Store, session: Session, zoom: FakeZoom
) -> None:
    outbox = Outbox()
    worker = _worker(schedule, store, zoom, outbox)
    _confirm(worker, schedule, session, "bkg_1")
    zoom.calls.clear()
    outbox.sent.clear()
    # Our create, checked (Zoom's meeting.created / updated would lead here): nothing to do
    assert _check(worker, session) == "check:ok"
    # The platform moves the session; a check running before its session.moved job leaves it alone
    later = START + timedelta(hours=3)
    schedule.move_session(session.session_id, later, later + timedelta(hours=1))
    assert _check(worker, session) == "check:move_pending"
    move = MeetingJob(
        kind=JobKind.SESSION_MOVED, mentorId="m-1", classId=session.class_id, sessionId=session.session_id
    )
    assert worker.handle(move) == "moved"
    # And our move, checked (Zoom's meeting.updated for it): nothing to do
    assert _check(worker, session) == "check:ok"
    assert zoom.calls == Counter(observe=3, move=1)
    assert outbox.to("mentor@example.com") == []
    assert [s.split(":")[0] for s in outbox.to("bkg_1@example.com")] == ["Moved"]


def test_the_preflight_queues_one_check_per_meeting_starting_within_24_hours_once(
    schedule: ScheduleStore, store: Store, zoom: FakeZoom
) -> None:
    store.upsert_mentor("m-1", email="mentor@example.com")
    worker = _worker(schedule, store, zoom, Outbox())
    soon = one_session_zoom_class(schedule, "cls_soon", NOW + timedelta(hours=23))
    later = one_session_zoom_class(schedule, "cls_late", NOW + timedelta(hours=25))
    past = one_session_zoom_class(schedule, "cls_past", NOW - timedelta(hours=2))
    for s in (soon, later):
        _confirm(worker, schedule, s, f"b_{s.class_id}")
    index = MeetingIndex(schedule.table)
    index.put(MeetingProvider.ZOOM, "999", session_id=past.session_id, mentor_id="m-1", start=past.start, end=past.end)
    jobs = Jobs()
    preflight = Preflight(index, jobs, clock=NOW.timestamp)  # type: ignore[arg-type]
    # When the schedule runs twice
    first, second = preflight.run(), preflight.run()
    # Then the one meeting starting within 24 h got one check, and only once
    assert [(j.kind, j.session_id, j.cause) for j in jobs.sent] == [
        (JobKind.MEETING_CHECK, soon.session_id, "preflight")
    ]
    assert (first.due, first.queued, second.due, second.queued) == (1, 1, 1, 0)
    # And the check it queued is one GET
    zoom.calls.clear()
    assert worker.handle(jobs.sent[0]) == "check:ok"
    assert zoom.calls == Counter(observe=1)


def test_zoom_meeting_events_queue_a_check_only_for_our_meetings(
    schedule: ScheduleStore, store: Store, session: Session, zoom: FakeZoom
) -> None:
    worker = _worker(schedule, store, zoom, Outbox())
    _confirm(worker, schedule, session, "bkg_1")
    ours = _meeting(schedule, session).meeting_id
    jobs = Jobs()

    def event(name: str, meeting_id: Any) -> bool:
        return zoom_meeting_changed(schedule.table, jobs, name, {"object": {"id": meeting_id}})  # type: ignore[arg-type]

    assert event("meeting.deleted", int(ours)) is True
    assert event("meeting.updated", ours) is True
    assert event("meeting.deleted", 12345678901) is False  # another meeting of the account
    assert event("meeting.created", int(ours)) is False
    assert event("meeting.deleted", "1 OR 1=1") is False
    assert [(j.kind, j.session_id) for j in jobs.sent] == [(JobKind.MEETING_CHECK, session.session_id)] * 2
    assert zoom_meeting_id({"object": {"id": True}}) is None
    assert zoom_meeting_id({"object": {"id": "9" * 21}}) is None
    assert zoom_meeting_id({"object": "x"}) is None


def test_a_google_push_that_queues_a_sync_queues_one_meetings_check_and_a_failing_hook_is_harmless(
    store: Store,
) -> None:
    from test_push import NOW as PUSH_NOW
    from test_push import FakeGoogle, FakeSqs, connect, push_headers

    from shared.busy.push import GooglePush, PushSettings
    from shared.queues.busy import SyncQueue

    google, sqs, checks = FakeGoogle(), FakeSqs(), []
    clock = [PUSH_NOW]
    service = GooglePush(
        store,
        config=PushSettings(api_url="https://api.example.test"),
        tokens=lambda mentor: SecretStr("access-token"),
        client=google,  # type: ignore[arg-type]
        queue=SyncQueue(sqs, "https://sqs.example.test/busy-sync"),
        clock=lambda: clock[0],
    )
    service.on_calendar_change = lambda mentor_id, delay_s: checks.append((mentor_id, delay_s))
    connect(store, "m1")
    channel = service.ensure("m1", replace=True)
    assert channel is not None
    # A burst of pushes: one sync, one meetings check, with the sync's delay
    for _ in range(3):
        service.handle_push(push_headers(google, channel))
    assert (len(sqs.sent), checks) == (1, [("m1", 2)])
    # A failing hook does not fail the webhook (the busy sync is queued; the pre-flight backs it up)
    clock[0] += 10

    def broken(mentor_id: str, delay_s: int) -> None:
        raise RuntimeError("SQS is down")

    service.on_calendar_change = broken
    assert service.handle_push(push_headers(google, channel)) == {"received": True, "queued": True}
