"""CalDAV multistatus parsing (shared.providers.apple.caldav) against real iCloud response shapes and the
RFC 4791 examples in ../shared/specs/caldav, and the busy filter over calendar data (shared.busy.sync)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.busy.sync import ical_busy_blocks
from shared.providers.apple import caldav as apple
from shared.store.busy import Block

SPECS = Path(__file__).parents[3] / "shared" / "specs" / "caldav"
ICLOUD = "https://caldav.icloud.com/"
HOME = "https://p180-caldav.icloud.com:443/123456789/calendars/"


def _body(name: str) -> bytes:
    return (SPECS / name).read_bytes()


def test_icloud_principal_home_and_event_calendars() -> None:
    # Given iCloud's three discovery answers (default DAV: namespace, per-element xmlns, 404 propstats)
    principal = apple.principal_url(
        apple.parse_multistatus(_body("icloud-01-propfind-current-user-principal.response.xml"), ICLOUD), ICLOUD
    )
    # Then the principal is resolved against the server
    assert principal == "https://caldav.icloud.com/123456789/principal/"
    # And the calendar home is an absolute URL on a partition host
    home = apple.calendar_home(
        apple.parse_multistatus(_body("icloud-02-propfind-calendar-home-set.response.xml"), principal), principal
    )
    assert home == apple.CalDavHome(home_url=HOME, addresses=())
    # And only the VEVENT calendar collections count: not the home, inbox, outbox, notifications or
    # the VTODO-only Reminders list
    calendars = apple.event_calendars(
        apple.parse_multistatus(_body("icloud-03-propfind-calendar-collections-depth1.response.xml"), HOME)
    )
    assert [(c.url, c.name) for c in calendars] == [
        (HOME + "4D24D1CF-D573-4130-BFB7-F9E0B616E6FE/", "Personal Calendar"),
        (HOME + "work/", "Work Calendar"),
    ]


def test_properties_in_a_404_propstat_do_not_count() -> None:
    # Given iCloud's home collection: calendar-color only in the 404 propstat
    (home, *_) = apple.parse_multistatus(_body("icloud-03-propfind-calendar-collections-depth1.response.xml"), HOME)
    assert "{http://apple.com/ns/ical/}calendar-color" not in home.props
    assert "{DAV:}displayname" in home.props


def test_address_set_gives_the_mentor_addresses() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<multistatus xmlns="DAV:"><response><href>/1/principal/</href><propstat><prop>'
        b'<calendar-home-set xmlns="urn:ietf:params:xml:ns:caldav">'
        b'<href xmlns="DAV:">https://p01-caldav.icloud.com/1/calendars/</href></calendar-home-set>'
        b'<calendar-user-address-set xmlns="urn:ietf:params:xml:ns:caldav">'
        b'<href xmlns="DAV:">mailto:Ada@Me.com</href>'
        b'<href xmlns="DAV:">urn:uuid:1</href><href xmlns="DAV:">mailto:ada@icloud.com</href>'
        b"</calendar-user-address-set>"
        b"</prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"
    )
    home = apple.calendar_home(apple.parse_multistatus(body, ICLOUD), ICLOUD)
    assert home == apple.CalDavHome("https://p01-caldav.icloud.com/1/calendars/", ("ada@me.com", "ada@icloud.com"))


def test_calendar_query_answers_with_prefixes_or_cdata_give_the_same_busy_blocks() -> None:
    # Given RFC 4791 §7.8.1's REPORT answer (D:/C: prefixes, escaped text) ...
    rfc = _body("rfc4791-7.8.1-calendar-query-time-range.response.xml")
    texts = apple.calendar_data(apple.parse_multistatus(rfc, "http://cal.example.com/bernard/work/"))
    assert len(texts) == 2
    # ... and the same data the way iCloud sends it: DAV: as default namespace, calendar-data in CDATA
    icloud = (
        b'<?xml version="1.0" encoding="UTF-8"?><multistatus xmlns="DAV:">'
        + b"".join(
            b'<response><href>/1/calendars/work/e%d.ics</href><propstat><prop><getetag>"x"</getetag>'
            b'<calendar-data xmlns="urn:ietf:params:xml:ns:caldav"><![CDATA[' + t.encode() + b"]]></calendar-data>"
            b"</prop><status>HTTP/1.1 200 OK</status></propstat></response>"
            for t in texts
        )
        + b"</multistatus>"
    )
    again = apple.calendar_data(apple.parse_multistatus(icloud, HOME))
    assert again == texts
    # When turned into busy blocks for the RFC's window
    window = (datetime(2006, 1, 4, tzinfo=UTC), datetime(2006, 1, 5, tzinfo=UTC))
    blocks = ical_busy_blocks(again, *window, tz=ZoneInfo("UTC"), me={"bernard@example.com"})
    # Then the one-off and the moved instance, not the instance it replaced
    assert blocks == [
        Block(datetime(2006, 1, 4, 15, tzinfo=UTC), datetime(2006, 1, 4, 16, tzinfo=UTC)),
        Block(datetime(2006, 1, 4, 19, tzinfo=UTC), datetime(2006, 1, 4, 20, tzinfo=UTC)),
    ]


def test_query_body_asks_for_a_utc_time_range_and_busy_fields_only() -> None:
    body = apple.calendar_query_body(
        datetime(2026, 6, 1, 2, tzinfo=ZoneInfo("Europe/Berlin")), datetime(2026, 6, 2, tzinfo=UTC)
    )
    assert '<C:time-range start="20260601T000000Z" end="20260602T000000Z"/>' in body
    assert 'name="SUMMARY"' not in body
    assert 'name="DESCRIPTION"' not in body
    assert 'name="ATTENDEE"' in body
    assert 'name="TRANSP"' in body


def test_busy_filter_skips_transparent_cancelled_and_declined() -> None:
    # Given four events at the same time: plain, transparent, cancelled, declined by the mentor
    def event(uid: str, *extra: str) -> str:
        return "\r\n".join(
            [
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                "BEGIN:VEVENT",
                f"UID:{uid}",
                "DTSTART:20260601T100000Z",
                "DTEND:20260601T110000Z",
                *extra,
                "END:VEVENT",
                "END:VCALENDAR",
                "",
            ]
        )

    texts = [
        event("transparent", "TRANSP:TRANSPARENT"),
        event("cancelled", "STATUS:CANCELLED"),
        event(
            "declined",
            "ATTENDEE;PARTSTAT=DECLINED:mailto:Ada@iCloud.com",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@x.org",
        ),
        event("someone-else-declined", "ATTENDEE;PARTSTAT=DECLINED:mailto:bob@x.org"),
        "not a calendar at all",
    ]
    window = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
    # Then only the event someone else declined blocks time (the broken object is skipped)
    blocks = ical_busy_blocks(texts, *window, tz=ZoneInfo("UTC"), me={"ada@icloud.com"})
    assert blocks == [Block(datetime(2026, 6, 1, 10, tzinfo=UTC), datetime(2026, 6, 1, 11, tzinfo=UTC))]
