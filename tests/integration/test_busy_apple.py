"""Apple busy-time sync against a real CalDAV server (Radicale on loopback) with moto (table, KMS, SES).

Recurrence (EXDATE, a moved instance, DST weeks), all-day / transparent / cancelled / declined events,
calendars that hold no events, a revoked app-specific password, the discovery cache, and failures
that keep the previous blocks.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import caldav
import pytest
from pydantic import SecretStr

from devstack.radicale import RadicaleServer
from shared.busy.sync import BusySync, TransientSyncError
from shared.platform import aws
from shared.providers.apple import caldav as apple
from shared.queues.busy import SyncJob, SyncReason
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.busy import Block, BusyStore
from shared.vault import AppleCredential, Vault
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache

PASSWORD = "abcd-efgh-ijkl-mnop"
#: A Monday a week before Berlin springs forward (2027-03-28).
SPRING = datetime(2027, 3, 22, tzinfo=UTC)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def _ics(*vevents: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN", *vevents, "END:VCALENDAR", ""])


def _vevent(uid: str, *lines: str) -> str:
    return "\r\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20270101T000000Z", "SUMMARY:private", *lines, "END:VEVENT"]
    )


class Mentor:
    """One mentor with an Apple ID on Radicale, a sealed credential and a connection."""

    def __init__(self, store: Store, vault: Vault, radicale: RadicaleServer, *, timezone: str, now: datetime) -> None:
        self.id = f"mentor-{uuid.uuid4().hex[:8]}"
        self.apple_id = f"{self.id}@icloud.com"
        radicale.add_user(self.apple_id, PASSWORD)
        store.upsert_mentor(self.id, email=f"{self.id}@mentor.example.com", timezone=timezone)
        sealed = vault.seal_credential(
            AppleCredential(apple_id=self.apple_id, app_specific_password=SecretStr(PASSWORD)),
            mentor_id=self.id,
            provider="apple",
        )
        store.save_connection(
            Connection(
                mentor_id=self.id,
                provider=Provider.APPLE,
                account_id=self.apple_id,
                credential=sealed,
                connected_at=now - timedelta(days=1),
            ),
            expected_version=None,
        )
        self.principal = caldav.DAVClient(url=radicale.url, username=self.apple_id, password=PASSWORD).principal()

    def calendar(self, name: str, components: list[str] | None = None) -> Any:
        return self.principal.make_calendar(name=name, supported_calendar_component_set=components or ["VEVENT"])

    @property
    def job(self) -> SyncJob:
        return SyncJob(mentor_id=self.id, provider=Provider.APPLE, reason=SyncReason.SCHEDULE)


@pytest.fixture
def vault(store: Store) -> Vault:
    return Vault(
        kms=aws.client("kms"),
        store=DynamoBranchStore(aws.client("dynamodb"), store.table.name),
        kms_key_id="alias/mentor-connections",
        cache=KeyCache(),
    )


@pytest.fixture
def notified() -> list[tuple[str, Provider]]:
    return []


@pytest.fixture
def worker(
    store: Store, vault: Vault, radicale: RadicaleServer, notified: list[tuple[str, Provider]]
) -> Callable[[datetime], BusySync]:
    def make(now: datetime) -> BusySync:
        def no_google() -> Any:
            raise AssertionError("an Apple sync called Google")

        return BusySync(
            store=store,
            busy=BusyStore(store.table),
            tokens=lambda *_: SecretStr("unused"),
            google=no_google,
            open_credential=lambda blob, mentor_id: vault.open_credential(blob, mentor_id=mentor_id, provider="apple"),
            apple_url=radicale.url,
            on_reconnect=lambda mentor_id, provider: notified.append((mentor_id, provider)),
            min_interval=timedelta(0),
            http_timeout_s=5,
            clock=lambda: now,
        )

    return make


@pytest.fixture
def mentor_at(store: Store, vault: Vault, radicale: RadicaleServer) -> Callable[..., Mentor]:
    def make(timezone: str = "Europe/Berlin", now: datetime = SPRING) -> Mentor:
        return Mentor(store, vault, radicale, timezone=timezone, now=now)

    return make


def _blocks(store: Store, mentor: Mentor) -> tuple[Block, ...]:
    return BusyStore(store.table).read(mentor.id)[Provider.APPLE].blocks


def test_weekly_event_with_exdate_and_a_moved_instance_across_dst(
    store: Store, worker: Callable[[datetime], BusySync], mentor_at: Callable[..., Mentor]
) -> None:
    # Given a weekly 18:00-19:00 Europe/Berlin event for six weeks from 22 March 2027 (DST starts on the
    # 28th), the 5 April instance excluded and the 12 April one moved to Tuesday 13 April 09:00
    mentor = mentor_at("Europe/Berlin")
    mentor.calendar("Work").add_event(
        _ics(
            _vevent(
                "weekly",
                "DTSTART;TZID=Europe/Berlin:20270322T180000",
                "DTEND;TZID=Europe/Berlin:20270322T190000",
                "RRULE:FREQ=WEEKLY;COUNT=6",
                "EXDATE;TZID=Europe/Berlin:20270405T180000",
            ),
            _vevent(
                "weekly",
                "RECURRENCE-ID;TZID=Europe/Berlin:20270412T180000",
                "DTSTART;TZID=Europe/Berlin:20270413T090000",
                "DTEND;TZID=Europe/Berlin:20270413T100000",
            ),
        )
    )
    # When the connection syncs on 22 March
    outcome = worker(SPRING).handle(mentor.job)
    # Then exactly these blocks: 18:00 local is 17:00Z before the change and 16:00Z after it
    assert outcome == "synced:5"
    assert _blocks(store, mentor) == (
        Block(_utc(2027, 3, 22, 17), _utc(2027, 3, 22, 18)),
        Block(_utc(2027, 3, 29, 16), _utc(2027, 3, 29, 17)),
        Block(_utc(2027, 4, 13, 7), _utc(2027, 4, 13, 8)),
        Block(_utc(2027, 4, 19, 16), _utc(2027, 4, 19, 17)),
        Block(_utc(2027, 4, 26, 16), _utc(2027, 4, 26, 17)),
    )


def test_all_day_transparent_cancelled_and_declined(
    store: Store, worker: Callable[[datetime], BusySync], mentor_at: Callable[..., Mentor]
) -> None:
    # Given, in a New York mentor's two event calendars and a Reminders list:
    mentor = mentor_at("America/New_York")
    work, home = mentor.calendar("Work"), mentor.calendar("Home")
    tasks = mentor.calendar("Reminders", ["VTODO"])
    me = mentor.apple_id.upper()  # addresses compare case-insensitively
    for uid, lines in {
        "all-day": ["DTSTART;VALUE=DATE:20270401", "DTEND;VALUE=DATE:20270402"],
        "transparent": ["DTSTART:20270402T140000Z", "DTEND:20270402T150000Z", "TRANSP:TRANSPARENT"],
        "cancelled": ["DTSTART:20270402T160000Z", "DTEND:20270402T170000Z", "STATUS:CANCELLED"],
        "declined": [
            "DTSTART:20270403T140000Z",
            "DTEND:20270403T150000Z",
            "ORGANIZER:mailto:boss@example.com",
            f"ATTENDEE;PARTSTAT=DECLINED:mailto:{me}",
        ],
        "accepted": [
            "DTSTART:20270403T160000Z",
            "DTEND:20270403T170000Z",
            "ORGANIZER:mailto:boss@example.com",
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{me}",
            "ATTENDEE;PARTSTAT=DECLINED:mailto:someone-else@example.com",
        ],
    }.items():
        work.add_event(_ics(_vevent(uid, *lines)))
    # ... a daily series in the other calendar whose 6 April instance is cancelled by an override
    home.add_event(
        _ics(
            _vevent("daily", "DTSTART:20270405T120000Z", "DURATION:PT30M", "RRULE:FREQ=DAILY;COUNT=3"),
            _vevent(
                "daily",
                "RECURRENCE-ID:20270406T120000Z",
                "DTSTART:20270406T120000Z",
                "DURATION:PT30M",
                "STATUS:CANCELLED",
            ),
        )
    )
    tasks.add_todo(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t1\r\nDTSTAMP:20270101T000000Z\r\nDUE:20270402T100000Z\r\nSUMMARY:todo\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    # When it syncs
    worker(SPRING).handle(mentor.job)
    # Then: the all-day event blocks the whole New York day (04:00Z to 04:00Z), the accepted invitation
    # and the live instances of the series block; transparent, cancelled and declined ones do not
    assert _blocks(store, mentor) == (
        Block(_utc(2027, 4, 1, 4), _utc(2027, 4, 2, 4)),
        Block(_utc(2027, 4, 3, 16), _utc(2027, 4, 3, 17)),
        Block(_utc(2027, 4, 5, 12), _utc(2027, 4, 5, 12, 30)),
        Block(_utc(2027, 4, 7, 12), _utc(2027, 4, 7, 12, 30)),
    )


def test_fall_back_week_and_floating_times_use_the_mentor_zone(
    store: Store, worker: Callable[[datetime], BusySync], mentor_at: Callable[..., Mentor]
) -> None:
    # Given a Berlin mentor on 25 October 2027 (Berlin falls back on the 31st): a weekly 18:00 event,
    # and a one-off 09:00 event with no zone (floating)
    now = _utc(2027, 10, 25)
    mentor = mentor_at("Europe/Berlin", now)
    cal = mentor.calendar("Work")
    cal.add_event(
        _ics(_vevent("w", "DTSTART;TZID=Europe/Berlin:20271025T180000", "DURATION:PT1H", "RRULE:FREQ=WEEKLY;COUNT=2"))
    )
    cal.add_event(_ics(_vevent("f", "DTSTART:20271102T090000", "DTEND:20271102T100000")))
    # When it syncs
    worker(now).handle(mentor.job)
    # Then 18:00 Berlin is 16:00Z in summer time and 17:00Z after; the floating 09:00 is Berlin's (08:00Z)
    assert _blocks(store, mentor) == (
        Block(_utc(2027, 10, 25, 16), _utc(2027, 10, 25, 17)),
        Block(_utc(2027, 11, 1, 17), _utc(2027, 11, 1, 18)),
        Block(_utc(2027, 11, 2, 8), _utc(2027, 11, 2, 9)),
    )


def test_only_the_window_is_read_and_a_second_sync_replaces_the_set(
    store: Store,
    worker: Callable[[datetime], BusySync],
    mentor_at: Callable[..., Mentor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an event inside the 60-day window and one beyond it
    mentor = mentor_at()
    cal = mentor.calendar("Work")
    cal.add_event(_ics(_vevent("in", "DTSTART:20270401T100000Z", "DTEND:20270401T110000Z")))
    cal.add_event(_ics(_vevent("out", "DTSTART:20270601T100000Z", "DTEND:20270601T110000Z")))
    worker(SPRING).handle(mentor.job)
    assert _blocks(store, mentor) == (Block(_utc(2027, 4, 1, 10), _utc(2027, 4, 1, 11)),)
    # When the first event is deleted and the mentor adds another, then it syncs again (discovery is
    # cached: the second sync does not run it)
    cal.event_by_uid("in").delete()
    cal.add_event(_ics(_vevent("new", "DTSTART:20270402T100000Z", "DTEND:20270402T110000Z")))
    monkeypatch.setattr(apple.CalDavReader, "discover", lambda self: pytest.fail("discovery ran again"))
    worker(SPRING + timedelta(minutes=5)).handle(mentor.job)
    # Then the set is replaced
    assert _blocks(store, mentor) == (Block(_utc(2027, 4, 2, 10), _utc(2027, 4, 2, 11)),)


def test_revoked_password_marks_needs_reconnect_and_emails_once(
    store: Store,
    worker: Callable[[datetime], BusySync],
    mentor_at: Callable[..., Mentor],
    radicale: RadicaleServer,
    notified: list[tuple[str, Provider]],
) -> None:
    # Given a synced connection whose app-specific password is then revoked
    mentor = mentor_at()
    mentor.calendar("Work").add_event(_ics(_vevent("e", "DTSTART:20270401T100000Z", "DTEND:20270401T110000Z")))
    worker(SPRING).handle(mentor.job)
    radicale.remove_user(mentor.apple_id)
    # When it syncs twice more
    first = worker(SPRING + timedelta(minutes=5)).handle(mentor.job)
    second = worker(SPRING + timedelta(minutes=10)).handle(mentor.job)
    # Then the connection needs reconnecting, the mentor was told once, nothing was retried
    assert (first, second) == ("skipped:needs_reconnect", "skipped:needs_reconnect")
    conn = store.get_connection(mentor.id, Provider.APPLE)
    assert conn is not None
    assert (conn.status, conn.status_reason, conn.credential) == (
        ConnectionStatus.NEEDS_RECONNECT,
        "apple_auth_failed",
        None,
    )
    assert notified == [(mentor.id, Provider.APPLE)]
    # And the last blocks are kept (the read side leaves them out while the connection needs reconnecting)
    busy = BusyStore(store.table).read(mentor.id)[Provider.APPLE]
    assert len(busy.blocks) == 1
    assert busy.head.error == "needs_reconnect"


def test_provider_trouble_is_transient_and_keeps_the_previous_blocks(
    store: Store,
    worker: Callable[[datetime], BusySync],
    mentor_at: Callable[..., Mentor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a synced connection
    mentor = mentor_at()
    mentor.calendar("Work").add_event(_ics(_vevent("e", "DTSTART:20270401T100000Z", "DTEND:20270401T110000Z")))
    worker(SPRING).handle(mentor.job)

    # When iCloud rate-limits the next sync, then cannot be reached
    def limited(self: Any, *_: Any) -> Any:
        raise apple.AppleRateLimited("slow down", retry_after_s=42)

    # (an unchanged calendar costs only the calendar list, so that is the request refused)
    monkeypatch.setattr(apple.CalDavReader, "calendars", limited)
    with pytest.raises(TransientSyncError) as caught:
        worker(SPRING + timedelta(minutes=5)).handle(mentor.job)
    assert (caught.value.code, caught.value.delay_s) == ("rate_limited", 42)
    monkeypatch.undo()
    unreachable = worker(SPRING + timedelta(minutes=10))
    unreachable.apple_url = "http://127.0.0.1:9"
    real_context = BusyStore.context

    def uncached(self: BusyStore, *args: Any, **kwargs: Any) -> Any:  # no cached home: discovery must run
        return dataclasses.replace(real_context(self, *args, **kwargs), head=None)

    monkeypatch.setattr(BusyStore, "context", uncached)
    with pytest.raises(TransientSyncError) as caught:
        unreachable.handle(mentor.job)
    assert caught.value.code == "unavailable"
    # Then the blocks of the last good sync are still there, and the error is noted
    monkeypatch.undo()
    busy = BusyStore(store.table).read(mentor.id)[Provider.APPLE]
    assert busy.blocks == (Block(_utc(2027, 4, 1, 10), _utc(2027, 4, 1, 11)),)
    assert busy.head.error == "unavailable"


def test_a_scheduled_sync_right_after_one_is_skipped(
    store: Store, worker: Callable[[datetime], BusySync], mentor_at: Callable[..., Mentor]
) -> None:
    # Given a connection synced a moment ago
    mentor = mentor_at()
    mentor.calendar("Work")
    sync = worker(SPRING)
    sync.min_interval = timedelta(seconds=60)
    sync.handle(mentor.job)
    # When the schedule asks again 30 s later / Then it is skipped; a push sync still runs
    later = worker(SPRING + timedelta(seconds=30))
    later.min_interval = timedelta(seconds=60)
    assert later.handle(mentor.job) == "skipped:fresh"
    push = SyncJob(mentor_id=mentor.id, provider=Provider.APPLE, reason=SyncReason.PUSH)
    assert later.handle(push) == "synced:0"
