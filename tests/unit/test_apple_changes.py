"""Apple change detection without a server: the busy-relevant reduction of calendar objects, RFC 6578
answers (changes, removals, truncation, expired tokens), the calendar cache's bounds and races, and the
per-calendar decisions of :class:`shared.busy.apple.CalendarReader` with a scripted reader."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree  # type: ignore[import-untyped]
from pydantic import SecretStr

from shared.busy.apple import CalendarReader, busy_relevant
from shared.providers.apple import caldav as apple
from shared.store import Store
from shared.store.busy import Block
from shared.store.caldav_cache import MAX_OBJECTS, CalendarCache, CalendarCacheStore, cache_sk, encode
from shared.store.repository import mentor_pk

HOME = "https://p01-caldav.icloud.com/1/calendars/"
CAL = HOME + "work/"
NOW = datetime(2027, 3, 1, tzinfo=UTC)

APPLE_OBJECT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//iOS 18//EN\r\nCALSCALE:GREGORIAN\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "DTSTART:19961027T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:e1\r\nDTSTART;TZID=Europe/Berlin:20270302T090000\r\nDURATION:PT1H\r\n"
    "SUMMARY:Salary talk with\r\n  the boss\r\nDESCRIPTION:private\r\nLOCATION:Room 1\r\nTRANSP:OPAQUE\r\n"
    'ATTENDEE;CN="Doe: Ann";PARTSTAT=DECLINED:mailto:Ada@iCloud.com\r\n'
    "ATTENDEE;PARTSTAT=DECLINED:mailto:bob@example.com\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ada@me.com\r\n"
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nDESCRIPTION:alarm\r\nEND:VALARM\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_busy_relevant_keeps_times_zones_and_my_declines_only() -> None:
    reduced = busy_relevant(APPLE_OBJECT, ["ada@icloud.com", "ada@me.com"])
    assert reduced is not None
    # No title (even folded), notes, place, alarm, or other people's answers; the zone and times stay
    for gone in ("SUMMARY", "boss", "DESCRIPTION", "LOCATION", "VALARM", "bob@example.com", "ACCEPTED", "PRODID"):
        assert gone not in reduced
    assert "BEGIN:VTIMEZONE" in reduced
    assert "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU" in reduced
    assert "DTSTART;TZID=Europe/Berlin:20270302T090000" in reduced
    assert 'ATTENDEE;CN="Doe: Ann";PARTSTAT=DECLINED:mailto:Ada@iCloud.com' in reduced
    # And it still parses to the same VEVENT times
    import icalendar

    (event,) = icalendar.Calendar.from_ical(reduced).walk("VEVENT")
    assert event.decoded("DTSTART").isoformat() == "2027-03-02T09:00:00+01:00"
    # A to-do list entry is not an event
    todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    assert busy_relevant(todo, []) is None


def _multistatus(*responses: str, marker: str | None = "tok-2") -> Any:
    body = (
        '<?xml version="1.0"?><multistatus xmlns="DAV:">'
        + "".join(responses)
        + (f"<sync-token>{marker}</sync-token>" if marker else "")
        + "</multistatus>"
    )
    return etree.fromstring(body.encode())


def _changed(href: str, etag: str) -> str:
    return (
        f"<response><href>{href}</href><propstat><prop><getetag>{etag}</getetag></prop>"
        "<status>HTTP/1.1 200 OK</status></propstat></response>"
    )


def _removed(href: str) -> str:
    return f"<response><href>{href}</href><status>HTTP/1.1 404 Not Found</status></response>"


def test_sync_answer_changes_removals_truncation_and_one_spelling_per_url() -> None:
    root = _multistatus(
        _changed("/1/calendars/work/a%40b.ics", '"1"'),
        _removed("/1/calendars/work/gone.ics"),
        _removed("/1/calendars/work/"),  # not the collection's marker: 404 is not 507
        "<response><href>/1/calendars/work/</href><status>HTTP/1.1 507 Insufficient Storage</status></response>",
    )
    changes = apple.sync_changes(root, CAL)
    assert changes.changed == {CAL + "a@b.ics": '"1"'}  # %40 and @ are one member
    assert changes.removed == {CAL + "gone.ics"}
    assert (changes.token, changes.truncated) == ("tok-2", True)


class ScriptedClient:
    """Stands in for caldav's DAVClient: answers REPORTs from a list."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.bodies: list[str] = []

    def report(self, url: str, body: str, depth: int | None = 0) -> Any:
        self.bodies.append(body)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        return None


class Answer:
    def __init__(self, status: int, tree: Any = None, raw: bytes = b"") -> None:
        self.status, self.tree, self._raw = status, tree, raw


def _reader(*answers: Any) -> tuple[apple.CalDavReader, ScriptedClient]:
    reader = apple.CalDavReader("https://caldav.icloud.com/", "ada@icloud.com", SecretStr("abcd-efgh-ijkl-mnop"))
    client = ScriptedClient(*answers)
    reader._client = client  # type: ignore[assignment]
    return reader, client


def test_truncated_sync_answers_are_followed_with_their_tokens_and_bounded() -> None:
    # Given a server that truncates the first answer (507 for the collection) and gives a token to go on
    truncated = "<response><href>/1/calendars/work/</href><status>HTTP/1.1 507 Insufficient Storage</status></response>"
    reader, client = _reader(
        Answer(207, _multistatus(_changed("/1/calendars/work/a.ics", '"1"'), truncated, marker="t2")),
        Answer(
            207,
            _multistatus(_removed("/1/calendars/work/a.ics"), _changed("/1/calendars/work/b.ics", '"2"'), marker="t3"),
        ),
    )
    # When the changes since t1 are asked for
    changes = reader.changes(CAL, "t1")
    # Then both pages count, the later winning, and the second asked from the first page's token
    assert (changes.changed, changes.removed, changes.token) == ({CAL + "b.ics": '"2"'}, {CAL + "a.ics"}, "t3")
    assert "<D:sync-token>t1</D:sync-token>" in client.bodies[0]
    assert "<D:sync-token>t2</D:sync-token>" in client.bodies[1]
    # And a server that never stops truncating is given up on (the calendar is then read whole)
    pages = [Answer(207, _multistatus(truncated, marker=f"t{n}")) for n in range(apple.MAX_SYNC_PAGES + 1)]
    reader, client = _reader(*pages)
    with pytest.raises(apple.AppleSyncTokenInvalid):
        reader.changes(CAL, "t")
    assert len(client.bodies) == apple.MAX_SYNC_PAGES


def test_expired_tokens_and_refused_reports_are_told_apart_from_other_refusals() -> None:
    from caldav.lib import error as caldav_error

    expired = b'<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>'
    # 409 (some servers) and 403 (RFC 6578, raised by caldav) with DAV:valid-sync-token: read anew
    for answer in (
        Answer(409, raw=expired),
        caldav_error.AuthorizationError(reason="Forbidden", preconditions=["{DAV:}valid-sync-token"], status=403),
    ):
        reader, _ = _reader(answer)
        with pytest.raises(apple.AppleSyncTokenInvalid) as caught:
            reader.changes(CAL, "t")
        assert not caught.value.unsupported
    # 403 DAV:supported-report: the server does not do sync-collection here
    reader, _ = _reader(
        caldav_error.AuthorizationError(reason="Forbidden", preconditions=["{DAV:}supported-report"], status=403)
    )
    with pytest.raises(apple.AppleSyncTokenInvalid) as caught:
        reader.changes(CAL, "t")
    assert caught.value.unsupported
    # A server that does not know the report (400 / 501 to it): no sync-collection there
    for status in (400, 501):
        reader, _ = _reader(Answer(status, raw=b"Bad Request"))
        with pytest.raises(apple.AppleSyncTokenInvalid) as caught:
            reader.changes(CAL, "t")
        assert caught.value.unsupported
    # A 403 without those preconditions stays a refusal, a 409 without them an error
    reader, _ = _reader(caldav_error.AuthorizationError(reason="Forbidden", status=403))
    with pytest.raises(apple.AppleUnavailableError) as refused:
        reader.changes(CAL, "t")
    assert not isinstance(refused.value, apple.AppleSyncTokenInvalid)
    reader, _ = _reader(Answer(409, raw=b"<html>conflict</html>"))
    with pytest.raises(apple.AppleUnavailableError, match="HTTP 409"):
        reader.changes(CAL, "t")


def _cache(**overrides: Any) -> CalendarCache:
    fields: dict[str, Any] = {
        "url": CAL,
        "account": "ada@icloud.com",
        "range_start": NOW - timedelta(days=1),
        "range_end": NOW + timedelta(days=68),
        "read_at": NOW,
        "sync_token": "t1",
        "me": ("ada@icloud.com",),
        "objects": {CAL + "a.ics": ('"1"', APPLE_OBJECT)},
        "tz": "Europe/Berlin",
        "blocks": ((1_800_000_000, 1_800_003_600),),
    }
    return CalendarCache(**(fields | overrides))


def test_cache_round_trip_race_expiry_and_bounds(store: Store) -> None:
    caches = CalendarCacheStore(store.table)
    # A saved snapshot reads back the same
    assert caches.save("m1", _cache(), now=NOW)
    assert caches.read("m1", [CAL], now=NOW) == {CAL: _cache()}
    # A sync that read the calendar earlier does not overwrite a later one
    assert not caches.save("m1", _cache(read_at=NOW - timedelta(minutes=1), sync_token="t0"), now=NOW)
    assert caches.read("m1", [CAL], now=NOW)[CAL].sync_token == "t1"
    # An item past its ttl is ignored even before DynamoDB removes it
    assert caches.read("m1", [CAL], now=NOW + timedelta(days=31)) == {}
    # Too many objects, or too many bytes, is not cached: the old item goes, the calendar is read whole
    assert encode(_cache(objects={f"{CAL}{n}": (None, "x") for n in range(MAX_OBJECTS + 1)})) is None
    noise = os.urandom(400_000).hex()  # 4 bits of entropy a character: over 300 kB compressed
    assert not caches.save(
        "m1", _cache(read_at=NOW + timedelta(minutes=5), objects={CAL + "a": (None, noise)}), now=NOW
    )
    assert store.table.get(mentor_pk("m1"), cache_sk(CAL)) is None


class ScriptedCalDav:
    """The reader methods CalendarReader calls, answered from dicts; records what was asked."""

    def __init__(self, texts: dict[str, str], *, sync: Any = None) -> None:
        self.texts = texts  # url -> text (etag = text's hash)
        self.sync = sync
        self.calls: list[str] = []

    def _found(self, urls: Any, data: bool = True) -> list[apple.CalendarObject]:
        return [
            apple.CalendarObject(url=u, etag=str(hash(self.texts[u])), text=self.texts[u] if data else None)
            for u in urls
            if u in self.texts
        ]

    def objects(self, url: str, start: datetime, end: datetime, *, data: bool = True) -> list[apple.CalendarObject]:
        self.calls.append("query" if data else "etags")
        return self._found(self.texts, data)

    def multiget(self, url: str, urls: list[str]) -> list[apple.CalendarObject]:
        self.calls.append(f"multiget:{len(urls)}")
        return self._found(urls)

    def changes(self, url: str, token: str) -> apple.SyncChanges:
        self.calls.append("sync")
        if isinstance(self.sync, Exception):
            raise self.sync
        return self.sync  # type: ignore[no-any-return]


def _event(uid: str, day: int) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "BEGIN:VEVENT", f"UID:{uid}", f"DTSTART:202703{day:02d}T100000Z"]
    return "\r\n".join([*lines, "DURATION:PT1H", "END:VEVENT", "END:VCALENDAR", ""])


def _calendar_reader(fake: ScriptedCalDav) -> CalendarReader:
    return CalendarReader(
        fake,  # type: ignore[arg-type]
        "ada@icloud.com",
        ("ada@icloud.com",),
        (NOW - timedelta(days=1), NOW + timedelta(days=61)),
        timedelta(days=7),
        NOW,
        tz="UTC",
        blocks_of=lambda texts, start, end: [Block(NOW, NOW + timedelta(hours=len(texts)))],
    )


def test_a_server_refusing_sync_collection_is_read_whole_then_by_ctag() -> None:
    fake = ScriptedCalDav({CAL + "a.ics": _event("a", 2)}, sync=apple.AppleSyncTokenInvalid("no", unsupported=True))
    listed = apple.AppleCalendar(CAL, "Work", sync_token="t2", ctag="c2")
    # When the token moved but the server refuses sync-collection
    reads = _calendar_reader(fake).read([listed], {CAL: _cache(ctag="c1", me=("ada@icloud.com",), tz="UTC")})
    # Then the calendar is read whole, and its snapshot keeps no token (so the ctag decides next time)
    assert fake.calls == ["sync", "query"]
    (snapshot,) = reads.to_save
    assert (snapshot.sync_token, snapshot.ctag, list(snapshot.objects)) == (None, "c2", [CAL + "a.ics"])
    fake.calls.clear()
    again = _calendar_reader(fake).read([listed], {CAL: snapshot})
    assert (fake.calls, again.kinds["unchanged"], again.to_save) == ([], 1, [])


def test_changes_outside_the_cached_range_are_not_kept_and_too_many_read_whole() -> None:
    # Given a cached calendar and a sync answer: one event moved far beyond the cached range, one added
    far, near = _event("far", 1).replace("202703", "202812"), _event("near", 3)
    fake = ScriptedCalDav(
        {CAL + "a.ics": far, CAL + "b.ics": near},
        sync=apple.SyncChanges({CAL + "a.ics": "x", CAL + "b.ics": "y"}, set(), "t2"),
    )
    listed = apple.AppleCalendar(CAL, "Work", sync_token="t2")
    reads = _calendar_reader(fake).read([listed], {CAL: _cache(tz="UTC")})
    # Then both are fetched in one multiget; only the one in range stays, and the blocks are recomputed
    assert fake.calls == ["sync", "multiget:2"]
    (snapshot,) = reads.to_save
    assert list(snapshot.objects) == [CAL + "b.ics"]
    assert snapshot.blocks == ((int(NOW.timestamp()), int(NOW.timestamp()) + 3600),)
    # And an answer with more changes than a snapshot may hold reads the calendar whole
    many = {f"{CAL}{n}.ics": "e" for n in range(MAX_OBJECTS + 1)}
    fake = ScriptedCalDav({CAL + "b.ics": near}, sync=apple.SyncChanges(many, set(), "t3"))
    _calendar_reader(fake).read([listed], {CAL: _cache(tz="UTC")})
    assert fake.calls == ["sync", "query"]


def test_a_server_writing_list_and_sync_tokens_differently_is_still_idle_when_nothing_changed() -> None:
    # Given a calendar whose token moved; the sync answer names a token other than the list's
    fake = ScriptedCalDav({}, sync=apple.SyncChanges({}, set(), "answer-token"))
    listed = apple.AppleCalendar(CAL, "Work", sync_token="list-token-2")
    reads = _calendar_reader(fake).read([listed], {CAL: _cache(tz="UTC")})
    (snapshot,) = reads.to_save
    assert (fake.calls, snapshot.sync_token, snapshot.listed_token) == (["sync"], "answer-token", "list-token-2")
    # When the list shows the same token again / Then nothing is asked
    fake.calls.clear()
    again = _calendar_reader(fake).read([listed], {CAL: snapshot})
    assert (fake.calls, dict(again.kinds)) == ([], {"unchanged": 1})
