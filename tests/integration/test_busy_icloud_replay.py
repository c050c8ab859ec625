"""The Apple sync against a tiny fake iCloud that replays real iCloud response bodies (../shared/specs/caldav):
discovery on caldav.icloud.com, the calendar home on a partition host, REPORTs only to event calendars."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from shared.busy.sync import BusySync
from shared.platform import aws
from shared.queues.busy import SyncJob
from shared.store import Connection, Provider, Store
from shared.store.busy import Block, BusyStore
from shared.vault import AppleCredential, Vault
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache

SPECS = Path(__file__).parents[3] / "shared" / "specs" / "caldav"
APPLE_ID = "ada@icloud.com"
PASSWORD = "abcd-efgh-ijkl-mnop"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//iCloud//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTART;TZID=Europe/Berlin:{start}\r\nDTEND;TZID=Europe/Berlin:{end}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _report_body(*events: tuple[str, str, str]) -> bytes:
    """A calendar-query answer the way iCloud writes one: DAV: default namespace, CDATA calendar-data."""
    parts = [
        f'<response><href>/123456789/calendars/x/{uid}.ics</href><propstat><prop><getetag>"{uid}"</getetag>'
        f'<calendar-data xmlns="urn:ietf:params:xml:ns:caldav"><![CDATA[{EVENT.format(uid=uid, start=s, end=e)}]]>'
        "</calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response>"
        for uid, s, e in events
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?><multistatus xmlns="DAV:">' + "".join(parts) + "</multistatus>"
    ).encode()


class FakeICloud:
    """Two loopback servers: the front door (principal) and a partition host (the calendar home)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []  # host, method, path, depth
        self.front = self._serve("front")
        self.partition = self._serve("partition")

    def _serve(self, name: str) -> Any:
        server = make_server("127.0.0.1", 0, self._app(name), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def url(self, server: Any) -> str:
        return f"http://127.0.0.1:{server.server_port}"

    def _app(self, name: str) -> Any:
        expected = "Basic " + base64.b64encode(f"{APPLE_ID}:{PASSWORD}".encode()).decode()

        @Request.application  # type: ignore[misc]
        def app(request: Request) -> Response:
            self.seen.append((name, request.method, request.path, request.headers.get("Depth", "")))
            if request.headers.get("Authorization") != expected:
                return Response("", 401, {"WWW-Authenticate": 'Basic realm="iCloud"'})
            key = (name, request.method, request.path)
            if key == ("front", "PROPFIND", "/"):
                return self._xml((SPECS / "icloud-01-propfind-current-user-principal.response.xml").read_bytes())
            if key == ("front", "PROPFIND", "/123456789/principal/"):
                body = (SPECS / "icloud-02-propfind-calendar-home-set.response.xml").read_bytes()
                return self._xml(body.replace(b"https://p180-caldav.icloud.com:443", self.url(self.partition).encode()))
            if key == ("partition", "PROPFIND", "/123456789/calendars/"):
                return self._xml((SPECS / "icloud-03-propfind-calendar-collections-depth1.response.xml").read_bytes())
            if key == ("partition", "REPORT", "/123456789/calendars/work/"):
                return self._xml(_report_body(("w1", "20260602T090000", "20260602T100000")))
            if key == ("partition", "REPORT", "/123456789/calendars/4D24D1CF-D573-4130-BFB7-F9E0B616E6FE/"):
                return self._xml(_report_body(("p1", "20260603T180000", "20260603T190000")))
            return Response("", 404)

        return app

    @staticmethod
    def _xml(body: bytes) -> Response:
        return Response(body, 207, content_type="text/xml; charset=utf-8")

    def stop(self) -> None:
        for server in (self.front, self.partition):
            server.shutdown()
            server.server_close()


@pytest.fixture
def icloud() -> Iterator[FakeICloud]:
    fake = FakeICloud()
    yield fake
    fake.stop()


def test_sync_follows_icloud_from_principal_to_partition_host(store: Store, icloud: FakeICloud) -> None:
    # Given an Apple connection whose CalDAV server answers exactly like iCloud
    vault = Vault(
        kms=aws.client("kms"),
        store=DynamoBranchStore(aws.client("dynamodb"), store.table.name),
        kms_key_id="alias/mentor-connections",
        cache=KeyCache(),
    )
    store.upsert_mentor("m-icloud", timezone="Europe/Berlin")
    sealed = vault.seal_credential(
        AppleCredential(apple_id=APPLE_ID, app_specific_password=SecretStr(PASSWORD)),
        mentor_id="m-icloud",
        provider="apple",
    )
    store.save_connection(
        Connection(
            mentor_id="m-icloud", provider=Provider.APPLE, credential=sealed, connected_at=NOW - timedelta(days=1)
        ),
        expected_version=None,
    )
    busy = BusyStore(store.table)
    worker = BusySync(
        store=store,
        busy=busy,
        tokens=lambda *_: SecretStr("unused"),
        google=lambda: None,
        open_credential=lambda blob, mentor: vault.open_credential(blob, mentor_id=mentor, provider="apple"),
        apple_url=icloud.url(icloud.front) + "/",
        on_reconnect=lambda *_: None,
        clock=lambda: NOW,
    )
    # When it syncs
    outcome = worker.handle(SyncJob(mentor_id="m-icloud", provider=Provider.APPLE))
    # Then discovery went principal → home on the partition host, and only the two event calendars
    # were asked for events (not the inbox, outbox, notifications or Reminders), all signed in
    assert outcome == "synced:2"
    assert [(h, m, p, d) for h, m, p, d in icloud.seen] == [
        ("front", "PROPFIND", "/", "0"),
        ("front", "PROPFIND", "/123456789/principal/", "0"),
        ("partition", "PROPFIND", "/123456789/calendars/", "1"),
        ("partition", "REPORT", "/123456789/calendars/4D24D1CF-D573-4130-BFB7-F9E0B616E6FE/", "1"),
        ("partition", "REPORT", "/123456789/calendars/work/", "1"),
    ]
    # And the events (Berlin summer time) are the busy blocks
    assert busy.read("m-icloud")[Provider.APPLE].blocks == (
        Block(datetime(2026, 6, 2, 7, tzinfo=UTC), datetime(2026, 6, 2, 8, tzinfo=UTC)),
        Block(datetime(2026, 6, 3, 16, tzinfo=UTC), datetime(2026, 6, 3, 17, tzinfo=UTC)),
    )
    # And the next sync starts at the cached home on the partition host, and since iCloud's getctag of
    # both calendars is unchanged (issue 17), the calendar list is the only request; the blocks stay
    icloud.seen.clear()
    worker.clock = lambda: NOW + timedelta(minutes=5)
    assert worker.handle(SyncJob(mentor_id="m-icloud", provider=Provider.APPLE)) == "synced:2"
    assert [(h, m) for h, m, _, _ in icloud.seen] == [("partition", "PROPFIND")]
    assert len(busy.read("m-icloud")[Provider.APPLE].blocks) == 2
