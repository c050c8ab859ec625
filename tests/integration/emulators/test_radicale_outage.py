"""Radicale (the local iCloud) taken down and brought back: ``pause`` / ``resume`` / ``outage``.

While it is down, clients get a refused connection, which the CalDAV reader reports as
:class:`~shared.providers.apple.caldav.AppleUnavailableError` (transient, never the 401 that means a
revoked password); afterwards it serves the same URL with the same users and calendars.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import caldav
import httpx
import pytest
from pydantic import SecretStr

from devstack.radicale import RadicaleServer
from shared.providers.apple import caldav as apple

PASSWORD = "abcd-efgh-ijkl-mnop"


@pytest.fixture
def server() -> Iterator[RadicaleServer]:
    with RadicaleServer() as running:
        yield running


def _calendars(url: str, user: str) -> list[str]:
    with apple.CalDavReader(url, user, SecretStr(PASSWORD), timeout_s=5) as reader:
        return sorted(c.name or "" for c in reader.calendars(reader.discover().home_url))


def test_an_outage_refuses_connections_then_the_same_server_comes_back(server: RadicaleServer) -> None:
    # Given a user with a calendar
    user = f"mentor-{uuid.uuid4().hex[:8]}@icloud.com"
    server.add_user(user, PASSWORD)
    caldav.DAVClient(url=server.url, username=user, password=PASSWORD).principal().make_calendar(name="Home")
    url = server.url
    assert _calendars(url, user) == ["Home"]
    # When it is taken down
    server.pause()
    # Then it is not running, its URL is still known, and a read is a transient "unavailable"
    assert not server.running
    assert server.url == url
    with pytest.raises(apple.AppleUnavailableError) as caught:
        _calendars(url, user)
    assert not isinstance(caught.value, apple.AppleAuthError)
    assert "could not be reached" in str(caught.value)
    # When it comes back: same port, same user, same calendar
    server.resume()
    assert server.running
    assert server.url == url
    assert _calendars(url, user) == ["Home"]
    assert server.outages == 1


def test_a_client_that_talked_to_it_before_gets_no_answer_during_the_outage(server: RadicaleServer) -> None:
    # Given a client that was answered before (one pooled HTTP client, as the workers' would be)
    with httpx.Client(timeout=5) as client:
        assert client.request("PROPFIND", server.url + "/", headers={"Depth": "0"}).status_code in (207, 401)
        # When the server is taken down
        server.pause()
        # Then the open connection does not get an answer either
        with pytest.raises(httpx.TransportError):
            client.request("PROPFIND", server.url + "/", headers={"Depth": "0"})
        # And once it is back, the same client is answered again
        server.resume()
        assert client.request("PROPFIND", server.url + "/", headers={"Depth": "0"}).status_code in (207, 401)


def test_the_outage_context_brings_it_back_even_when_the_block_fails(server: RadicaleServer) -> None:
    url = server.url
    running_inside: list[bool] = []

    def fail_during_outage() -> None:
        with server.outage():
            running_inside.append(server.running)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_during_outage()
    assert running_inside == [False]
    assert server.running
    assert server.url == url
    # Pausing twice is a mistake the caller hears about
    server.pause()
    with pytest.raises(RuntimeError):
        server.pause()
    server.resume()
    server.resume()  # already running: nothing happens
    assert server.running
