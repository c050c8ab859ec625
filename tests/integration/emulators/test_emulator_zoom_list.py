"""Zoom emulator: ``GET /users/{userId}/meetings`` (List meetings) as Zoom's OpenAPI describes it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from devstack.emulators import ZoomEmulator
from devstack.emulators import zoom as z
from devstack.emulators.spec import assert_response_conforms


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(http: httpx.Client, zoom: ZoomEmulator, token: str, **fields: Any) -> dict[str, Any]:
    body = {"topic": "Class", "type": 2, "duration": 60, "timezone": "Europe/Berlin", **fields}
    resp = http.post(zoom.api_base + "/users/me/meetings", headers=auth(token), json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


@pytest.fixture
def token(zoom_tokens: Any) -> str:
    return str(zoom_tokens()["access_token"])


def test_list_returns_the_hosts_meetings_in_the_documented_shape(
    zoom: ZoomEmulator, http: httpx.Client, token: str
) -> None:
    """Given two scheduled meetings, one with an agenda longer than 250 characters
    When the host lists them
    Then both come back oldest start first, with join_url, the agenda cut to 250 characters,
    default page size 30 and a response that fits the OpenAPI schema."""
    late = create(http, zoom, token, start_time="2030-05-02T10:00:00", agenda="x" * 300 + "\nref:late")
    early = create(http, zoom, token, start_time="2030-05-01T10:00:00", agenda="short")

    resp = http.get(zoom.api_base + "/users/me/meetings", headers=auth(token), params={"type": "scheduled"})

    assert resp.status_code == 200
    body = resp.json()
    assert_response_conforms(body, zoom_operation=("GET", "/users/{userId}/meetings", 200))
    assert body["page_size"] == 30
    assert body["total_records"] == 2
    assert body["next_page_token"] == ""
    assert [m["id"] for m in body["meetings"]] == [early["id"], late["id"]]
    first, second = body["meetings"]
    assert first["join_url"] == early["join_url"]
    assert first["start_time"] == "2030-05-01T08:00:00Z"
    assert first["agenda"] == "short"
    assert second["agenda"] == "x" * 250
    assert {"uuid", "host_id", "topic", "type", "duration", "timezone", "created_at"} <= set(first)


def test_next_page_token_pages_and_expires(zoom: ZoomEmulator, http: httpx.Client, token: str) -> None:
    """Given five meetings
    When listed two at a time
    Then next_page_token walks three pages; a token is bound to its query and lasts 15 minutes."""
    ids = [create(http, zoom, token, start_time=f"2030-06-0{i + 1}T09:00:00")["id"] for i in range(5)]
    url = zoom.api_base + "/users/me/meetings"

    seen: list[int] = []
    params: dict[str, str] = {"page_size": "2"}
    tokens: list[str] = []
    for _ in range(5):
        body = http.get(url, headers=auth(token), params=params).json()
        assert body["total_records"] == 5
        seen += [m["id"] for m in body["meetings"]]
        if not body["next_page_token"]:
            break
        tokens.append(body["next_page_token"])
        params = {"page_size": "2", "next_page_token": body["next_page_token"]}
    assert seen == ids
    assert len(tokens) == 2

    other_query = http.get(url, headers=auth(token), params={"page_size": "3", "next_page_token": tokens[0]})
    bogus = http.get(url, headers=auth(token), params={"page_size": "2", "next_page_token": "nope"})
    zoom.advance_clock(16 * 60)
    expired = http.get(url, headers=auth(token), params={"page_size": "2", "next_page_token": tokens[1]})
    for resp in (other_query, bogus, expired):
        assert resp.status_code == 400
        assert resp.json()["code"] == 300


def test_type_and_date_filters(zoom: ZoomEmulator, http: httpx.Client, token: str) -> None:
    """Given a meeting that ended in the past and two upcoming ones
    When listed by type and by from/to dates
    Then each filter keeps only its meetings."""
    past = create(http, zoom, token, start_time="2020-01-01T10:00:00")
    june = create(http, zoom, token, start_time="2030-06-01T10:00:00")
    july = create(http, zoom, token, start_time="2030-07-01T10:00:00")
    url = zoom.api_base + "/users/me/meetings"

    def ids(**params: str) -> list[int]:
        resp = http.get(url, headers=auth(token), params=params)
        assert resp.status_code == 200, resp.text
        return [m["id"] for m in resp.json()["meetings"]]

    assert ids(type="scheduled") == [past["id"], june["id"], july["id"]]
    assert ids(type="upcoming") == [june["id"], july["id"]]
    assert ids(type="upcoming_meetings") == [june["id"], july["id"]]
    assert ids(type="previous_meetings") == [past["id"]]
    assert ids(type="live") == []
    assert ids(**{"from": "2030-06-15", "to": "2030-12-31", "timezone": "Europe/Berlin"}) == [july["id"]]


def test_invalid_query_values_are_validation_errors(zoom: ZoomEmulator, http: httpx.Client, token: str) -> None:
    """Given a host / When the list is asked with a page size over 300 or an unknown type
    Then 400 code 300 naming the field."""
    url = zoom.api_base + "/users/me/meetings"
    for params, field in (({"page_size": "301"}, "page_size"), ({"type": "all"}, "type"), ({"from": "x"}, "from")):
        resp = http.get(url, headers=auth(token), params=params)
        assert resp.status_code == 400
        assert resp.json()["code"] == 300
        assert resp.json()["errors"][0]["field"] == field


def test_listing_needs_the_list_meetings_scope(zoom: ZoomEmulator, http: httpx.Client, zoom_tokens: Any) -> None:
    """Given an app whose scopes lack meeting:read:list_meetings
    When it lists meetings / Then Zoom's 4711 error naming the granular scopes."""
    zoom.add_client(
        z.DEFAULT_CLIENT_ID,
        z.DEFAULT_CLIENT_SECRET,
        [z.DEFAULT_REDIRECT_URI],
        scopes=["meeting:write:meeting", "meeting:read:meeting"],
    )
    tok = zoom_tokens()["access_token"]

    resp = http.get(zoom.api_base + "/users/me/meetings", headers=auth(tok))

    assert resp.status_code == 400
    assert resp.json() == {
        "code": 4711,
        "message": "Invalid access token, does not contain scopes:"
        "[meeting:read:list_meetings, meeting:read:list_meetings:admin].",
    }


def test_only_the_hosts_own_meetings_are_listed(zoom: ZoomEmulator, http: httpx.Client, zoom_tokens: Any) -> None:
    """Given two Zoom users with a meeting each
    When one lists 'me' / Then only their meeting; another user's id is 1001 'User does not exist'."""
    mine = zoom_tokens()["access_token"]
    zoom.set_next_consent("other@example.com")
    theirs = zoom_tokens()["access_token"]
    a = create(http, zoom, mine, start_time="2030-06-01T10:00:00")
    create(http, zoom, theirs, start_time="2030-06-01T10:00:00")

    body = http.get(zoom.api_base + "/users/me/meetings", headers=auth(mine)).json()
    assert [m["id"] for m in body["meetings"]] == [a["id"]]
    other = zoom.state.user_by_email("other@example.com")
    assert other is not None
    resp = http.get(f"{zoom.api_base}/users/{other.id}/meetings", headers=auth(mine))
    assert resp.status_code == 404
    assert resp.json()["code"] == 1001
