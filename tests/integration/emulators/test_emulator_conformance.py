"""Spec conformance of what the emulators return, the spec checkers themselves, and the fault knobs."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.emulators import spec
from devstack.emulators.spec import (
    assert_request_conforms,
    check_discovery,
    check_openapi,
    request_findings,
    unknown_discovery_paths,
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the checkers ---------------------------------------------------------------------------


def test_discovery_checker_finds_unknown_fields_through_refs_items_and_maps():
    # Given an Event with undocumented fields at several depths
    value = {
        "summary": "x",
        "bogus": 1,
        "start": {"dateTime": "2030-01-01T10:00:00Z", "zone": "UTC"},
        "attendees": [{"email": "a@b.c", "rsvp": True}],
        "extendedProperties": {"private": {"anything": "goes"}},
    }
    # When it is walked against the discovery schema
    unknown = unknown_discovery_paths(value, "Event")
    # Then exactly those are reported ($ref, items, additionalProperties all followed)
    assert sorted(unknown) == ["$.attendees[0].rsvp", "$.bogus", "$.start.zone"]


def test_discovery_checker_knows_int64_is_a_string_on_the_wire():
    # Channel.expiration is "format: int64": Google sends it as a JSON string
    assert check_discovery({"expiration": "1700000000000"}, "Channel") == []
    problems = check_discovery({"expiration": 1700000000000}, "Channel")
    assert [p.path for p in problems] == ["$.expiration"]


def test_openapi_checker_resolves_refs_and_allof():
    # Given the users document (GET /users/{userId} 200 is an allOf of three parts)
    doc = spec.zoom_users_openapi()
    schema = spec.openapi_response_schema(doc, "/users/{userId}", "get", 200)
    assert schema is not None
    # When a body mixes fields from the three parts plus one unknown field
    findings = check_openapi({"id": "x", "email": "a@b.c", "account_id": "acc", "wat": 1}, schema, doc)
    # Then only the unknown one is reported
    assert [(f.path, f.problem) for f in findings] == [("$.wat", spec.UNKNOWN)]
    # And $ref to components is followed (ErrorResponse)
    err = spec.openapi_operation(doc, "/users/{userId}", "get")["responses"]["default"]
    assert spec._json_content_schema(err, doc) is not None
    err_schema = spec._json_content_schema(err, doc)
    assert err_schema is not None
    assert check_openapi({"code": 124, "message": "Invalid access token."}, err_schema, doc) == []


def test_assert_request_conforms_for_client_request_bodies():
    # Given what our Google client should send to events.insert
    good = {
        "summary": "Yoga",
        "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "Europe/Berlin"},
        "conferenceData": {"createRequest": {"requestId": "r1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}},
    }
    # Then it conforms, including its query parameters
    assert_request_conforms(
        good, google_method="calendar.events.insert", query={"conferenceDataVersion": "1", "sendUpdates": "all"}
    )
    # And a typo'd field or a bad query value is caught
    with pytest.raises(AssertionError, match="conferenceDatta"):
        assert_request_conforms({**good, "conferenceDatta": {}}, google_method="calendar.events.insert")
    with pytest.raises(AssertionError, match="sendUpdates"):
        assert_request_conforms(good, google_method="calendar.events.insert", query={"sendUpdates": "everyone"})
    # And the Zoom create body from PRODUCT §2.6 conforms; a wrong type does not
    zoom_body = {
        "topic": "Yoga",
        "type": 2,
        "start_time": "2030-01-01T10:00:00Z",
        "duration": 60,
        "timezone": "Europe/Berlin",
        "settings": {"join_before_host": True, "waiting_room": False},
    }
    assert_request_conforms(zoom_body, zoom_operation=("POST", "/users/{userId}/meetings"))
    problems = request_findings({**zoom_body, "duration": 2000}, zoom_operation=("POST", "/users/{userId}/meetings"))
    assert [str(p) for p in problems] == ["$.duration: above maximum 1440"]


def test_specs_dir_honours_env_override(monkeypatch, tmp_path):
    # Given MC_SHARED_DIR pointing at a directory with a specs/ folder
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / spec.GOOGLE_DISCOVERY).write_text("{}")
    monkeypatch.setenv(spec.ENV_SHARED_DIR, str(tmp_path))
    # Then it wins over the default location
    assert spec.specs_dir() == tmp_path / "specs"


# ---- what the emulators return ---------------------------------------------------------------


def test_google_responses_conform_to_the_discovery_document(google, http, google_tokens, push_receiver):
    tok = google_tokens()["access_token"]
    h = auth(tok)
    base = google.calendar_base
    # Given an extra calendar and an event with a Meet link
    google.add_user("mentor@example.com", calendars=[{"id": "team@group.calendar.google.com", "access_role": "writer"}])
    ev = http.post(
        f"{base}/calendars/primary/events",
        params={"conferenceDataVersion": 1},
        headers=h,
        json={
            "summary": "Yoga",
            "description": "Bring a mat",
            "location": "Online",
            "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "Europe/Berlin"},
            "attendees": [{"email": "student@example.com", "displayName": "Stu"}],
            "extendedProperties": {"private": {"sessionId": "s1"}},
            "conferenceData": {"createRequest": {"requestId": "r", "conferenceSolutionKey": {"type": "hangoutsMeet"}}},
        },
    ).json()
    patched = http.patch(f"{base}/calendars/primary/events/{ev['id']}", headers=h, json={"summary": "Yoga 2"}).json()
    got = http.get(f"{base}/calendars/primary/events/{ev['id']}", headers=h).json()
    listed = http.get(f"{base}/calendars/primary/events", headers=h).json()
    cal_list = http.get(f"{base}/users/me/calendarList", headers=h).json()
    fb = http.post(
        f"{base}/freeBusy",
        headers=h,
        json={
            "timeMin": "2030-01-01T00:00:00Z",
            "timeMax": "2030-01-02T00:00:00Z",
            "items": [{"id": "primary"}, {"id": "nobody"}],
        },
    ).json()
    channel = http.post(
        f"{base}/calendars/primary/events/watch",
        headers=h,
        json={"id": "c1", "type": "web_hook", "address": push_receiver.url, "token": "t"},
    ).json()
    error = http.delete(f"{base}/calendars/primary/events/unknown000", headers=h).json()
    # Then every field exists in the discovery schema, with the right JSON types
    for value, schema in [
        (ev, "Event"),
        (patched, "Event"),
        (got, "Event"),
        (listed, "Events"),
        (cal_list, "CalendarList"),
        (fb, "FreeBusyResponse"),
        (channel, "Channel"),
    ]:
        assert check_discovery(value, schema) == [], schema
    # And the error envelope's errors[] entries fit the discovery Error schema (domain, reason)
    # plus message/location which the envelope adds
    assert set(error["error"]["errors"][0]) <= {"domain", "reason", "message", "location", "locationType"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/users/{userId}/meetings", 201),
        ("GET", "/meetings/{meetingId}", 200),
        ("GET", "/users/{userId}", 200),
    ],
)
def test_zoom_responses_conform_to_the_openapi_documents(zoom, http, zoom_tokens, method, path, status):
    tok = zoom_tokens()["access_token"]
    h = auth(tok)
    created = http.post(
        zoom.api_base + "/users/me/meetings",
        headers=h,
        json={
            "topic": "Yoga",
            "type": 2,
            "start_time": "2030-01-01T10:00:00Z",
            "duration": 60,
            "settings": {"join_before_host": True},
        },
    )
    bodies: dict[str, Any] = {
        "/users/{userId}/meetings": created.json(),
        "/meetings/{meetingId}": http.get(f"{zoom.api_base}/meetings/{created.json()['id']}", headers=h).json(),
        "/users/{userId}": http.get(zoom.api_base + "/users/me", headers=h).json(),
    }
    # Then every returned field is declared by the operation's response schema
    findings = spec.response_findings(bodies[path], zoom_operation=(method, path, status))
    assert findings == []


def test_emulators_record_no_findings_for_conforming_requests(google, zoom, http, google_tokens, zoom_tokens):
    # When well-formed requests go through both emulators
    gt = google_tokens()["access_token"]
    http.post(
        google.calendar_base + "/calendars/primary/events",
        params={"conferenceDataVersion": 1, "sendUpdates": "none"},
        headers=auth(gt),
        json={"start": {"date": "2030-01-01"}, "end": {"date": "2030-01-02"}},
    )
    zt = zoom_tokens()["access_token"]
    http.post(zoom.api_base + "/users/me/meetings", headers=auth(zt), json={"topic": "t", "type": 2, "duration": 30})
    # Then neither emulator recorded a conformance finding
    assert google.snapshot()["request_findings"] == []
    assert zoom.snapshot()["request_findings"] == []


# ---- fault knobs ----------------------------------------------------------------------------


def test_injected_500s_fail_roughly_the_configured_fraction(google, http, google_tokens):
    tok = google_tokens()["access_token"]
    url = google.calendar_base + "/users/me/calendarList"
    # Given 30 % injected 500s with a fixed seed
    google.set_faults(rate_500=0.3, seed=1234)
    # When 300 requests are made
    statuses = [http.get(url, headers=auth(tok)).status_code for _ in range(300)]
    # Then roughly 30 % fail, the rest succeed
    failures = statuses.count(500)
    assert 60 <= failures <= 120, failures
    assert statuses.count(200) == 300 - failures
    # And the same seed reproduces the same sequence
    google.set_faults(rate_500=0.3, seed=1234)
    assert [http.get(url, headers=auth(tok)).status_code for _ in range(300)] == statuses
    # And admin routes are never faulted
    google.set_faults(rate_500=1.0, seed=1)
    assert all(http.get(f"{google.base_url}/_admin/health").status_code == 200 for _ in range(20))
    # And an invalid fault setting is refused without changing the current one
    bad = http.post(f"{google.base_url}/_admin/faults", json={"rate_500": 2})
    assert bad.status_code == 400
    assert http.get(f"{google.base_url}/_admin/faults").json()["rate_500"] == 1.0


def test_injected_429_carries_retry_after_and_provider_bodies(google, zoom, http, google_tokens, zoom_tokens):
    gt = google_tokens()["access_token"]
    zt = zoom_tokens()["access_token"]
    # Given every API request is rate limited
    google.set_faults(rate_429=1.0, retry_after=7, seed=3)
    zoom.set_faults(rate_429=1.0, retry_after=2, seed=3)
    # When each emulator is called
    g_resp = http.get(google.calendar_base + "/users/me/calendarList", headers=auth(gt))
    z_resp = http.get(zoom.api_base + "/users/me", headers=auth(zt))
    # Then 429 with Retry-After and the provider's error shape
    assert g_resp.status_code == 429
    assert g_resp.headers["Retry-After"] == "7"
    assert g_resp.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert z_resp.status_code == 429
    assert z_resp.headers["Retry-After"] == "2"
    assert z_resp.json()["message"].startswith("You have reached the maximum per-second rate limit")


def test_a_forced_fault_after_handling_makes_the_change_and_loses_the_answer(zoom, http, zoom_tokens):
    tok = zoom_tokens()["access_token"]
    # Given the next meeting create is handled, then answered with a 500 instead
    zoom.set_faults(forced=[{"status": 500, "count": 1, "path_prefix": "/v2/users/me/meetings", "after": True}])
    url = zoom.api_base + "/users/me/meetings"
    # When two creates are made
    statuses = [http.post(url, headers=auth(tok), json={"topic": "t", "type": 2}).status_code for _ in range(2)]
    # Then the first answered 500 but made its meeting, like the second
    assert statuses == [500, 201]
    assert len(zoom.meetings()) == 2
    log = zoom.requests_log(path_prefix="/v2/users/me/meetings")
    assert [(e["status"], e["injected"]) for e in log] == [(500, True), (201, False)]
    assert zoom.snapshot()["faults_injected"] == [
        {"method": "POST", "path": "/v2/users/me/meetings", "status": 500, "after": True}
    ]


def test_a_forced_fault_on_an_exact_path_spares_the_paths_below_it(zoom, http, zoom_tokens):
    tok = zoom_tokens()["access_token"]
    # Given the next GET of exactly /v2/users/me fails with 503
    zoom.set_faults(forced=[{"status": 503, "count": 1, "path": "/v2/users/me", "method": "GET"}])
    # When the user's meetings are listed, then the user is read
    listed = http.get(zoom.api_base + "/users/me/meetings", headers=auth(tok)).status_code
    me = http.get(zoom.api_base + "/users/me", headers=auth(tok)).status_code
    # Then only the exact path met the fault (a path_prefix would have matched the list first)
    assert (listed, me) == (200, 503)
    assert zoom.snapshot()["faults_injected"] == [{"method": "GET", "path": "/v2/users/me", "status": 503}]


def test_forced_faults_latency_and_request_log(zoom, http, zoom_tokens):
    tok = zoom_tokens()["access_token"]
    # Given the next two meeting creates fail with 503, and 50 ms latency
    zoom.set_faults(latency_ms=50, forced=[{"status": 503, "count": 2, "path_prefix": "/v2/users/me/meetings"}])
    body = {"topic": "t", "type": 2}
    url = zoom.api_base + "/users/me/meetings"
    # When three creates are made
    statuses = [http.post(url, headers=auth(tok), json=body).status_code for _ in range(3)]
    # Then two fail, the third succeeds, and each was delayed
    assert statuses == [503, 503, 201]
    log = zoom.requests_log(path_prefix="/v2/users/me/meetings")
    assert [e["status"] for e in log] == [503, 503, 201]
    assert [e["injected"] for e in log] == [True, True, False]
    assert all(e["elapsed_ms"] >= 45 for e in log)
    assert log[-1]["json"] == body
    assert log[-1]["method"] == "POST"
    # And the admin API exposes the same log and state over HTTP
    remote = http.get(f"{zoom.base_url}/_admin/requests", params={"path_prefix": "/v2/users/me/meetings"}).json()
    assert [e["status"] for e in remote] == [503, 503, 201]
    state = http.get(f"{zoom.base_url}/_admin/state").json()
    assert state["token_calls_by_grant_type"] == {"authorization_code": 1}
    assert len(state["meetings"]) == 1
