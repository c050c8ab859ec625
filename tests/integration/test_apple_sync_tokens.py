"""Apple change detection (issue 17 item 2) against a real CalDAV server: Radicale on loopback, its
requests and bytes metered by a WSGI wrapper (every request and answer, headers and bodies).

An idle hour (12 polls, nothing changed) costs one PROPFIND a poll and no REPORT; a change in one
calendar is read with a ``sync-collection`` and a ``calendar-multiget`` of that calendar only; an
expired token, a server without sync-tokens, new and removed calendars, and a cached range that ran
out are all read correctly.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import caldav
import pytest
from pydantic import SecretStr

from devstack.radicale import RadicaleServer
from shared.busy.sync import BusySync
from shared.platform import aws
from shared.providers.apple import caldav as apple
from shared.queues.busy import SyncJob, SyncReason
from shared.store import Connection, Provider, Store
from shared.store.busy import Block, BusyStore
from shared.store.caldav_cache import CalendarCacheStore, cache_sk
from shared.store.repository import mentor_pk
from shared.vault import AppleCredential, Vault
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache

PASSWORD = "abcd-efgh-ijkl-mnop"
NOW = datetime(2027, 3, 1, 8, tzinfo=UTC)
POLL = timedelta(minutes=5)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    kind: str  # propfind / calendar-query / calendar-multiget / sync-collection / other
    depth: str
    status: int
    sent: int  # request line + headers + body
    received: int  # status line + headers + body (as on the wire: gzip when the client asks for it)
    body: bytes


class Meter:
    """WSGI middleware recording every request Radicale answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log: list[Request] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        headers = sum(len(k) - 5 + len(str(v)) + 4 for k, v in environ.items() if k.startswith("HTTP_"))
        line = len(environ["REQUEST_METHOD"]) + len(environ.get("PATH_INFO", "")) + 12
        seen: dict[str, Any] = {}

        def start(status: str, response_headers: list[tuple[str, str]], *args: Any) -> Any:
            seen["status"] = int(status.split()[0])
            seen["headers"] = len(status) + 11 + sum(len(k) + len(v) + 4 for k, v in response_headers)
            return start_response(status, response_headers, *args)

        chunks = list(self.app(environ, start))
        kind = environ["REQUEST_METHOD"].lower()
        for name in (b"sync-collection", b"calendar-multiget", b"calendar-query"):
            if name in body:
                kind = name.decode()
        self.log.append(
            Request(
                method=environ["REQUEST_METHOD"],
                path=environ.get("PATH_INFO", ""),
                kind=kind,
                depth=str(environ.get("HTTP_DEPTH", "")),
                status=seen["status"],
                sent=line + headers + len(body),
                received=seen["headers"] + sum(len(c) for c in chunks),
                body=body,
            )
        )
        return chunks


class MeteredRadicale(RadicaleServer):
    meter: Meter

    def _app(self) -> Any:
        self.meter = Meter(super()._app())
        return self.meter


@pytest.fixture(scope="module")
def server() -> Iterator[MeteredRadicale]:
    with MeteredRadicale() as running:
        yield running


_BERLIN = [
    "BEGIN:VTIMEZONE",
    "TZID:Europe/Berlin",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0100",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "DTSTART:19810329T020000",
    "TZNAME:CEST",
    "TZOFFSETTO:+0200",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0200",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "DTSTART:19961027T030000",
    "TZNAME:CET",
    "TZOFFSETTO:+0100",
    "END:STANDARD",
    "END:VTIMEZONE",
]


def _ics(uid: str, *lines: str) -> str:
    """A calendar object shaped like the ones Apple Calendar writes (zone, alarm, Apple properties)."""
    alarm = str(uuid.uuid4()).upper()
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Apple Inc.//macOS 15.1//EN",
            "CALSCALE:GREGORIAN",
            *_BERLIN,
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "CREATED:20270110T091523Z",
            f"DTSTAMP:2027011{len(uid) % 10}T09{len(uid) % 60:02d}00Z",
            "LAST-MODIFIED:20270110T091523Z",
            "SEQUENCE:0",
            f"SUMMARY:{uid}: mentoring call with {uuid.uuid4().hex[:10]}",
            f"DESCRIPTION:Agenda for {uid}: review, next steps.",
            "URL;VALUE=URI:",
            "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC",
            *lines,
            "BEGIN:VALARM",
            f"UID:{alarm}",
            f"X-WR-ALARMUID:{alarm}",
            "ACTION:DISPLAY",
            "DESCRIPTION:Reminder",
            "TRIGGER:-PT15M",
            "END:VALARM",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def _at(day: int, hour: int, uid: str, *extra: str) -> str:
    start = NOW + timedelta(days=day, hours=hour - NOW.hour)
    return _ics(uid, f"DTSTART:{start:%Y%m%dT%H%M%SZ}", "DURATION:PT1H", *extra)


class World:
    """A mentor with an Apple connection on the metered Radicale and a busy-sync worker."""

    def __init__(self, store: Store, server: MeteredRadicale) -> None:
        vault = Vault(
            kms=aws.client("kms"),
            store=DynamoBranchStore(aws.client("dynamodb"), store.table.name),
            kms_key_id="alias/mentor-connections",
            cache=KeyCache(),
        )
        self.store, self.server, self.now = store, server, NOW
        self.id = f"mentor-{uuid.uuid4().hex[:8]}"
        self.apple_id = f"{self.id}@icloud.com"
        server.add_user(self.apple_id, PASSWORD)
        store.upsert_mentor(self.id, email=f"{self.id}@example.com", timezone="Europe/Berlin")
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
                connected_at=NOW - timedelta(days=1),
            ),
            expected_version=None,
        )
        self.principal = caldav.DAVClient(url=server.url, username=self.apple_id, password=PASSWORD).principal()
        self.worker = BusySync(
            store=store,
            busy=BusyStore(store.table),
            tokens=lambda *_: SecretStr("unused"),
            google=lambda: pytest.fail("an Apple sync called Google"),
            open_credential=lambda blob, mentor_id: vault.open_credential(blob, mentor_id=mentor_id, provider="apple"),
            apple_url=server.url,
            on_reconnect=lambda *_: None,
            http_timeout_s=5,
            clock=lambda: self.now,
        )

    def calendar(self, name: str, events: int, hour: int = 9) -> Any:
        """A calendar with ``events`` events: the n-th on day 1 + n at ``hour`` + n % 4, every third weekly
        (by day 58 the days start again)."""
        cal = self.principal.make_calendar(name=name)
        for n in range(events):
            extra = ("RRULE:FREQ=WEEKLY;COUNT=10",) if n % 3 == 0 else ()
            cal.add_event(_at(1 + n % 58, hour + n % 4, f"{name}-{n}-{uuid.uuid4()}".upper(), *extra))
        return cal

    def poll(self, *, after: timedelta = POLL) -> list[Request]:
        """One scheduled sync ``after`` the last; the requests it made."""
        self.now += after
        start = len(self.server.meter.log)
        outcome = self.worker.handle(SyncJob(mentor_id=self.id, provider=Provider.APPLE, reason=SyncReason.SCHEDULE))
        assert outcome.startswith("synced:"), outcome
        return self.server.meter.log[start:]

    @property
    def blocks(self) -> tuple[Block, ...]:
        return BusyStore(self.store.table).read(self.id)[Provider.APPLE].blocks

    def caches(self, urls: Iterable[str] | None = None) -> dict[str, Any]:
        """The calendar caches of ``urls`` (default: the calendars the busy head lists)."""
        if urls is None:
            head = BusyStore(self.store.table).head(self.id, Provider.APPLE)
            urls = head.caldav.calendars if head is not None and head.caldav is not None else ()
        return CalendarCacheStore(self.store.table).read(self.id, urls, now=self.now)


@pytest.fixture
def world(store: Store, server: MeteredRadicale) -> World:
    return World(store, server)


def _kinds(requests: list[Request]) -> list[tuple[str, str]]:
    return [(r.kind, r.path) for r in requests]


def _event(calendar: Any, prefix: str) -> Any:
    (found,) = [e for e in calendar.events() if str(e.icalendar_component["UID"]).startswith(f"{prefix.upper()}-")]
    return found


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _bytes(requests: Iterable[Request]) -> int:
    return sum(r.sent + r.received for r in requests)


def test_idle_hour_is_one_propfind_a_poll_and_over_ten_times_fewer_bytes(world: World) -> None:
    # Given an Apple mentor with three calendars (40, 20 and 10 events written the way Apple Calendar
    # writes them, every third weekly: about eight events a week in the window) synced once. (The idle
    # poll is a fixed ~1.5 kB; before, a poll cost 5.4 kB with three empty calendars and grew with
    # the events: 10x is passed from about 60 events; bytes measured for other loads are in the README.)
    cals = [world.calendar("Work", 40), world.calendar("Home", 20, 14), world.calendar("Club", 10, 19)]
    first = world.poll(after=timedelta(0))
    blocks = world.blocks
    assert len(blocks) > 24
    # (the first sync reads each calendar whole, as every poll did before issue 17: that is the
    # baseline per poll, discovery left out)
    listed = [r for r in first if not (r.kind == "propfind" and r.depth == "0")]
    assert sorted(r.kind for r in listed) == ["calendar-query"] * 3 + ["propfind"]
    before = _bytes(listed)
    # When twelve scheduled polls run over the next hour and nothing changes
    hour = [request for _ in range(12) for request in world.poll()]
    # Then no REPORT at all, one PROPFIND (the calendar list) a poll, and over ten times fewer bytes
    assert [r.kind for r in hour] == ["propfind"] * 12
    after = _bytes(hour)
    print(f"\nidle hour: {12 * before} bytes before, {after} after ({12 * before / after:.1f}x)")
    assert after * 10 <= 12 * before
    # And the busy blocks are the same (recomputed from the cache for the sliding window)
    assert world.blocks == blocks
    assert {_name(url) for url in world.caches()} == {_name(str(cal.url)) for cal in cals}


def test_a_change_in_one_calendar_fetches_only_its_changes(world: World) -> None:
    # Given three synced calendars
    work, home, _ = world.calendar("Work", 6), world.calendar("Home", 6, 14), world.calendar("Club", 3, 19)
    world.poll(after=timedelta(0))
    before = set(world.blocks)
    # When the mentor adds an event to Home, moves another and deletes a third there
    home.add_event(_at(3, 6, "added"))
    moved = _event(home, "Home-1")
    moved.data = _at(2, 6, str(moved.icalendar_component["UID"]))
    moved.save()
    _event(home, "Home-2").delete()
    requests = world.poll()
    # Then only Home is read: what changed since its token, then those two objects in one multiget
    home_path = unquote(str(home.url.path))
    assert _kinds(requests) == [
        ("propfind", requests[0].path),
        ("sync-collection", home_path),
        ("calendar-multiget", home_path),
    ]
    assert requests[2].body.count(b"<D:href>") == 2
    # And the busy times show it at once: the new and moved events block, the deleted one does not
    day = NOW.replace(hour=0)
    added = Block(day + timedelta(days=3, hours=6), day + timedelta(days=3, hours=7))
    moved_to = Block(day + timedelta(days=2, hours=6), day + timedelta(days=2, hours=7))
    moved_from = Block(day + timedelta(days=2, hours=15), day + timedelta(days=2, hours=16))
    deleted = Block(day + timedelta(days=3, hours=16), day + timedelta(days=3, hours=17))
    after = set(world.blocks)
    assert {added, moved_to} <= after
    assert {moved_from, deleted} <= before
    assert not {moved_from, deleted} & after
    # And the next poll is idle again; Work's cache is still the first sync's, Home's the second's
    assert [r.kind for r in world.poll()] == ["propfind"]
    read_at = {_name(url): cache.read_at for url, cache in world.caches().items()}
    assert (read_at[_name(str(work.url))], read_at[_name(str(home.url))]) == (NOW, NOW + POLL)


def test_an_expired_sync_token_reads_the_calendar_whole(world: World) -> None:
    # Given a synced calendar whose stored sync-token the server no longer knows
    cal = world.calendar("Work", 2)
    world.poll(after=timedelta(0))
    (url,) = world.caches()
    world.store.table.update(
        mentor_pk(world.id),
        cache_sk(url),
        expression="SET #t = :t",
        names={"#t": "sync_token"},
        values={":t": "http://radicale.org/ns/sync/" + "0" * 64},
    )
    cal.add_event(_at(5, 12, "new"))
    # When it polls
    requests = world.poll()
    # Then the sync-collection is refused (403 DAV:valid-sync-token) and the calendar is read whole
    assert [(r.kind, r.status) for r in requests] == [
        ("propfind", 207),
        ("sync-collection", 403),
        ("calendar-query", 207),
    ]
    day = NOW.replace(hour=0)
    assert Block(day + timedelta(days=5, hours=12), day + timedelta(days=5, hours=13)) in world.blocks
    # And the fresh token works: the next poll is idle
    assert [r.kind for r in world.poll()] == ["propfind"]


def test_new_and_removed_calendars_and_a_range_that_ran_out(world: World) -> None:
    # Given one synced calendar
    world.calendar("Work", 2)
    world.poll(after=timedelta(0))
    # When the mentor adds a calendar with an event
    club = world.calendar("Club", 1, 19)
    requests = world.poll()
    # Then only the new one is read (whole), and its event blocks
    assert _kinds(requests)[1:] == [("calendar-query", unquote(str(club.url.path)))]
    day = NOW.replace(hour=0)
    club_block = Block(day + timedelta(days=1, hours=19), day + timedelta(days=1, hours=20))
    assert club_block in world.blocks
    cached = world.caches()
    assert len(cached) == 2
    # When the calendar is deleted
    club.delete()
    requests = world.poll()
    # Then no REPORT, its blocks are gone and so is its cache
    assert [r.kind for r in requests] == ["propfind"]
    assert club_block not in world.blocks
    assert len(world.caches()) == 1
    assert world.caches(cached).keys() == world.caches().keys()  # the Club item itself was deleted
    # When an event is added beyond the 60-day window plus the 7-day horizon read so far, then nine
    # days pass (the cached range no longer covers the window)
    (work,) = [c for c in world.principal.calendars() if c.get_display_name() == "Work"]
    work.add_event(_at(68, 9, "far"))
    requests = world.poll(after=timedelta(days=9))
    # Then the calendar is read whole again, and the far event is within the window now
    assert [r.kind for r in requests] == ["propfind", "calendar-query"]
    far = Block(day + timedelta(days=68, hours=9), day + timedelta(days=68, hours=10))
    assert far in world.blocks


def test_a_server_without_sync_tokens_compares_ctag_then_etags(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a server that lists no sync-token (only getctag), and a synced calendar
    listed = apple.CalDavReader.calendars

    def no_tokens(self: apple.CalDavReader, home_url: str) -> list[apple.AppleCalendar]:
        return [dataclasses.replace(c, sync_token=None) for c in listed(self, home_url)]

    monkeypatch.setattr(apple.CalDavReader, "calendars", no_tokens)
    cal = world.calendar("Work", 5)
    world.poll(after=timedelta(0))
    # When nothing changed / Then the ctag says so: no REPORT
    assert [r.kind for r in world.poll()] == ["propfind"]
    # When one event changes
    event = _event(cal, "Work-4")
    event.data = _at(6, 7, str(event.icalendar_component["UID"]))
    event.save()
    requests = world.poll()
    # Then the etags of the cached range are listed (no calendar data) and only that event is fetched
    assert [r.kind for r in requests] == ["propfind", "calendar-query", "calendar-multiget"]
    assert b"calendar-data" not in requests[1].body
    assert requests[2].body.count(b"<D:href>") == 1
    day = NOW.replace(hour=0)
    assert Block(day + timedelta(days=6, hours=7), day + timedelta(days=6, hours=8)) in world.blocks
