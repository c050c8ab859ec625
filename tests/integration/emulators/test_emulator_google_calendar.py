"""Google Calendar emulator: calendarList, events with Meet, delete semantics, freeBusy,
watch channels and push notifications."""

from __future__ import annotations

from typing import Any

import pytest


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def meet_event(request_id: str = "session-42", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": "Morning yoga",
        "start": {"dateTime": "2030-03-04T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2030-03-04T11:00:00", "timeZone": "Europe/Berlin"},
        "conferenceData": {
            "createRequest": {"requestId": request_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}
        },
    }
    body.update(extra)
    return body


@pytest.fixture
def token(google_tokens) -> str:
    return str(google_tokens()["access_token"])


@pytest.fixture
def events_url(google) -> str:
    return str(google.calendar_base) + "/calendars/primary/events"


def test_calendar_list_has_primary_calendar(google, http, token):
    # Given a user with an extra shared calendar
    google.add_user(
        "mentor@example.com",
        calendars=[{"id": "team@group.calendar.google.com", "summary": "Team", "access_role": "reader"}],
    )
    # When the calendar list is read
    resp = http.get(google.calendar_base + "/users/me/calendarList", headers=auth(token))
    # Then it has the primary calendar first, with the discovery fields
    assert resp.status_code == 200
    body = resp.json()
    assert body["kind"] == "calendar#calendarList"
    primary = body["items"][0]
    assert primary["id"] == "mentor@example.com"
    assert primary["primary"] is True
    assert primary["accessRole"] == "owner"
    assert primary["timeZone"] == "Europe/Berlin"
    assert {i["id"] for i in body["items"]} == {"mentor@example.com", "team@group.calendar.google.com"}
    # And minAccessRole filters
    writers = http.get(
        google.calendar_base + "/users/me/calendarList", params={"minAccessRole": "writer"}, headers=auth(token)
    )
    assert [i["id"] for i in writers.json()["items"]] == ["mentor@example.com"]


def test_insert_with_conference_data_creates_meet_link(google, http, token, events_url):
    # When an event is inserted with a hangoutsMeet create request and conferenceDataVersion=1
    resp = http.post(
        events_url, params={"conferenceDataVersion": 1, "sendUpdates": "none"}, headers=auth(token), json=meet_event()
    )
    # Then the event carries a Meet conference
    assert resp.status_code == 200
    ev = resp.json()
    conf = ev["conferenceData"]
    assert conf["createRequest"]["status"]["statusCode"] == "success"
    video = [e for e in conf["entryPoints"] if e["entryPointType"] == "video"]
    assert len(video) == 1
    assert video[0]["uri"].startswith("https://meet.google.com/")
    assert video[0]["uri"].endswith(conf["conferenceId"])
    assert ev["hangoutLink"] == video[0]["uri"]
    assert ev["kind"] == "calendar#event"
    assert ev["organizer"]["email"] == "mentor@example.com"


def test_same_request_id_on_same_calendar_returns_same_conference(google, http, token, events_url):
    # Given an event minted with requestId R
    first = http.post(events_url, params={"conferenceDataVersion": 1}, headers=auth(token), json=meet_event("R")).json()
    # When a retry inserts again with the same requestId
    second = http.post(
        events_url, params={"conferenceDataVersion": 1}, headers=auth(token), json=meet_event("R")
    ).json()
    # Then the conference is the same one
    assert second["conferenceData"]["conferenceId"] == first["conferenceData"]["conferenceId"]
    assert second["hangoutLink"] == first["hangoutLink"]
    # And a different requestId gets a different conference
    third = http.post(events_url, params={"conferenceDataVersion": 1}, headers=auth(token), json=meet_event("S")).json()
    assert third["conferenceData"]["conferenceId"] != first["conferenceData"]["conferenceId"]


def test_conference_data_version_zero_ignores_conference_data(google, http, token, events_url):
    # When conferenceDataVersion is left at its default (0)
    ev = http.post(events_url, headers=auth(token), json=meet_event()).json()
    # Then no conference is created
    assert "conferenceData" not in ev
    assert "hangoutLink" not in ev


def test_pending_knob_returns_pending_then_success_on_get(google, http, token, events_url):
    # Given conference creation is slow
    google.configure(conference_mode="pending")
    # When the event is inserted
    ev = http.post(events_url, params={"conferenceDataVersion": 1}, headers=auth(token), json=meet_event()).json()
    # Then the create request is pending, without entry points
    assert ev["conferenceData"]["createRequest"]["status"]["statusCode"] == "pending"
    assert "entryPoints" not in ev["conferenceData"]
    # When the client polls the event
    got = http.get(f"{events_url}/{ev['id']}", headers=auth(token)).json()
    # Then it has succeeded
    assert got["conferenceData"]["createRequest"]["status"]["statusCode"] == "success"
    assert got["hangoutLink"].startswith("https://meet.google.com/")
    # And with one extra pending poll configured, the first get is still pending
    google.configure(conference_pending_polls=1)
    ev2 = http.post(
        events_url, params={"conferenceDataVersion": 1}, headers=auth(token), json=meet_event("other")
    ).json()
    polls = [http.get(f"{events_url}/{ev2['id']}", headers=auth(token)).json() for _ in range(2)]
    assert [p["conferenceData"]["createRequest"]["status"]["statusCode"] for p in polls] == ["pending", "success"]


def test_patch_moves_event_and_keeps_conference(google, http, token, events_url):
    # Given an event with a Meet link
    ev = http.post(events_url, params={"conferenceDataVersion": 1}, headers=auth(token), json=meet_event()).json()
    # When it is moved with a patch that does not mention conferenceData
    patched = http.patch(
        f"{events_url}/{ev['id']}",
        params={"sendUpdates": "all"},
        headers=auth(token),
        json={
            "start": {"dateTime": "2030-03-05T10:00:00+01:00"},
            "end": {"dateTime": "2030-03-05T11:00:00+01:00"},
        },
    )
    # Then the time changes, the Meet link stays, the sequence is bumped
    assert patched.status_code == 200
    body = patched.json()
    assert body["start"]["dateTime"] == "2030-03-05T10:00:00+01:00"
    assert body["hangoutLink"] == ev["hangoutLink"]
    assert body["conferenceData"]["conferenceId"] == ev["conferenceData"]["conferenceId"]
    assert body["sequence"] == ev["sequence"] + 1
    assert body["etag"] != ev["etag"]


def test_delete_then_delete_again_is_gone_and_unknown_is_not_found(google, http, token, events_url):
    # Given an event
    ev = http.post(events_url, headers=auth(token), json=meet_event()).json()
    # When it is deleted
    first = http.delete(f"{events_url}/{ev['id']}", headers=auth(token))
    # Then 204, and a second delete is 410 "Resource has been deleted"
    assert first.status_code == 204
    assert first.content == b""
    second = http.delete(f"{events_url}/{ev['id']}", headers=auth(token))
    assert second.status_code == 410
    assert second.json()["error"]["message"] == "Resource has been deleted"
    assert second.json()["error"]["errors"][0]["reason"] == "deleted"
    # And get still returns the event, cancelled (Event.status: "The get method always returns them")
    assert http.get(f"{events_url}/{ev['id']}", headers=auth(token)).json()["status"] == "cancelled"
    # And an unknown id is 404 notFound
    missing = http.delete(f"{events_url}/doesnotexist00", headers=auth(token))
    assert missing.status_code == 404
    assert missing.json()["error"]["errors"][0]["reason"] == "notFound"


def test_insert_validation_errors(google, http, token, events_url):
    # When end is before start
    bad = http.post(
        events_url,
        headers=auth(token),
        json={"start": {"dateTime": "2030-01-01T11:00:00Z"}, "end": {"dateTime": "2030-01-01T10:00:00Z"}},
    )
    # Then timeRangeEmpty
    assert bad.status_code == 400
    assert bad.json()["error"]["errors"][0]["reason"] == "timeRangeEmpty"
    # When a naive dateTime has no timeZone
    naive = http.post(
        events_url,
        headers=auth(token),
        json={"start": {"dateTime": "2030-01-01T10:00:00"}, "end": {"dateTime": "2030-01-01T11:00:00"}},
    )
    assert naive.status_code == 400
    assert "time zone" in naive.json()["error"]["message"]
    # When a client-chosen id repeats
    body = {"id": "session00042", "start": {"date": "2030-01-02"}, "end": {"date": "2030-01-03"}}
    assert http.post(events_url, headers=auth(token), json=body).status_code == 200
    dup = http.post(events_url, headers=auth(token), json=body)
    assert dup.status_code == 409
    assert dup.json()["error"]["errors"][0]["reason"] == "duplicate"


def test_freebusy_reflects_events(google, http, token, events_url):
    # Given: an opaque event, a transparent one, a cancelled one, and an overlapping one
    h = auth(token)
    http.post(
        events_url,
        headers=h,
        json={"start": {"dateTime": "2030-05-01T09:00:00Z"}, "end": {"dateTime": "2030-05-01T10:00:00Z"}},
    )
    http.post(
        events_url,
        headers=h,
        json={"start": {"dateTime": "2030-05-01T09:30:00Z"}, "end": {"dateTime": "2030-05-01T10:30:00Z"}},
    )
    http.post(
        events_url,
        headers=h,
        json={
            "transparency": "transparent",
            "start": {"dateTime": "2030-05-01T12:00:00Z"},
            "end": {"dateTime": "2030-05-01T13:00:00Z"},
        },
    )
    gone = http.post(
        events_url,
        headers=h,
        json={"start": {"dateTime": "2030-05-01T15:00:00Z"}, "end": {"dateTime": "2030-05-01T16:00:00Z"}},
    ).json()
    http.delete(f"{events_url}/{gone['id']}", headers=h)
    # And an event the mentor added in Google Calendar themselves, recurring daily 3 times
    google.seed_event(
        "mentor@example.com",
        {
            "summary": "Dentist",
            "start": {"dateTime": "2030-05-01T18:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-05-01T19:00:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"],
        },
    )
    # When free/busy is queried for the day, plus an unknown calendar
    resp = http.post(
        google.calendar_base + "/freeBusy",
        headers=h,
        json={
            "timeMin": "2030-05-01T00:00:00Z",
            "timeMax": "2030-05-02T00:00:00Z",
            "items": [{"id": "primary"}, {"id": "stranger@example.com"}],
        },
    )
    # Then busy blocks are merged, transparent and cancelled events ignored
    assert resp.status_code == 200
    body = resp.json()
    assert body["kind"] == "calendar#freeBusy"
    assert body["timeMin"] == "2030-05-01T00:00:00.000Z"
    assert body["calendars"]["primary"]["busy"] == [
        {"start": "2030-05-01T09:00:00Z", "end": "2030-05-01T10:30:00Z"},
        {"start": "2030-05-01T16:00:00Z", "end": "2030-05-01T17:00:00Z"},
    ]
    # And the unknown calendar reports notFound
    assert body["calendars"]["stranger@example.com"] == {
        "busy": [],
        "errors": [{"domain": "global", "reason": "notFound"}],
    }
    # And a time zone in the request shapes the output
    berlin = http.post(
        google.calendar_base + "/freeBusy",
        headers=h,
        json={
            "timeMin": "2030-05-02T00:00:00Z",
            "timeMax": "2030-05-03T00:00:00Z",
            "timeZone": "Europe/Berlin",
            "items": [{"id": "primary"}],
        },
    ).json()
    assert berlin["calendars"]["primary"]["busy"] == [
        {"start": "2030-05-02T18:00:00+02:00", "end": "2030-05-02T19:00:00+02:00"}
    ]


def test_freebusy_rejects_empty_and_too_long_ranges(google, http, token):
    h = auth(token)
    url = google.calendar_base + "/freeBusy"
    # When timeMax equals timeMin
    empty = http.post(
        url, headers=h, json={"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-01T00:00:00Z", "items": []}
    )
    # Then timeRangeEmpty (Google's documented 400 example)
    assert empty.status_code == 400
    assert empty.json()["error"]["errors"][0] == {
        "message": "The specified time range is empty.",
        "domain": "calendar",
        "reason": "timeRangeEmpty",
        "location": "timeMax",
        "locationType": "parameter",
    }
    # When the range exceeds the configured maximum
    long = http.post(
        url, headers=h, json={"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-06-01T00:00:00Z", "items": []}
    )
    assert long.status_code == 400
    assert long.json()["error"]["errors"][0]["reason"] == "timeRangeTooLong"


def test_watch_and_change_deliver_push_notifications(google, http, token, events_url, push_receiver):
    # Given a channel watching the primary calendar
    resp = http.post(
        f"{events_url}/watch",
        headers=auth(token),
        json={"id": "chan-1", "type": "web_hook", "address": push_receiver.url, "token": "conn=abc"},
    )
    assert resp.status_code == 200
    channel = resp.json()
    assert channel["kind"] == "api#channel"
    assert channel["id"] == "chan-1"
    assert channel["resourceId"]
    assert channel["token"] == "conn=abc"
    assert channel["expiration"].isdigit()
    # Then a "sync" message arrives first
    first = push_receiver.wait_for(1)
    assert first[0]["headers"]["x-goog-resource-state"] == "sync"
    assert first[0]["headers"]["x-goog-message-number"] == "1"
    # When an event changes on the calendar
    http.post(events_url, headers=auth(token), json={"start": {"date": "2030-01-02"}, "end": {"date": "2030-01-03"}})
    # Then an "exists" notification arrives with the real headers
    got = push_receiver.wait_for(2)
    assert len(got) == 2
    h = got[1]["headers"]
    assert h["x-goog-channel-id"] == "chan-1"
    assert h["x-goog-channel-token"] == "conn=abc"
    assert h["x-goog-resource-id"] == channel["resourceId"]
    assert h["x-goog-resource-state"] == "exists"
    assert h["x-goog-resource-uri"] == channel["resourceUri"]
    assert int(h["x-goog-message-number"]) > 1
    assert h["x-goog-channel-expiration"].endswith("GMT")
    assert got[1]["body"] == b""
    # When the channel is stopped and the calendar changes again
    stop = http.post(
        google.calendar_base + "/channels/stop",
        headers=auth(token),
        json={"id": "chan-1", "resourceId": channel["resourceId"]},
    )
    assert stop.status_code == 204
    google.seed_event("mentor@example.com", {"start": {"date": "2030-01-05"}, "end": {"date": "2030-01-06"}})
    google.flush_pushes()
    # Then nothing more is delivered
    assert len(push_receiver.wait_for(3, timeout=0.3)) == 2


def test_watch_rejects_duplicate_channel_id(google, http, token, events_url, push_receiver):
    body = {"id": "dup", "type": "web_hook", "address": push_receiver.url}
    assert http.post(f"{events_url}/watch", headers=auth(token), json=body).status_code == 200
    again = http.post(f"{events_url}/watch", headers=auth(token), json=body)
    assert again.status_code == 400
    assert again.json()["error"]["errors"][0]["reason"] == "channelIdNotUnique"


def test_update_replaces_the_event_but_keeps_its_conference(google, http, token, events_url):
    # Given an event with a Meet link and a description
    ev = http.post(
        events_url, params={"conferenceDataVersion": 1}, headers=auth(token), json=meet_event(description="old")
    ).json()
    # When it is replaced with PUT (events.update) without a description
    put = http.put(
        f"{events_url}/{ev['id']}",
        headers=auth(token),
        json={"summary": "New", "start": {"date": "2030-03-06"}, "end": {"date": "2030-03-07"}},
    )
    # Then the description is gone, the conference stays
    assert put.status_code == 200
    body = put.json()
    assert body["summary"] == "New"
    assert "description" not in body
    assert body["hangoutLink"] == ev["hangoutLink"]
