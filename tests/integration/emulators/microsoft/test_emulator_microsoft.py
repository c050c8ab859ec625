"""Microsoft emulator: identity platform OAuth (PKCE, refresh rotation, AADSTS errors), /me,
calendars, events with Teams links and transactionId idempotency, getSchedule's 62-day limit,
subscriptions (handshake, clientState, expiration cap, change and lifecycle notifications),
throttling, and conformance of every route and answer to the Graph OpenAPI cut."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from devstack.emulators import microsoft as ms
from devstack.emulators.microsoft import MicrosoftEmulator
from tests.integration.emulators.microsoft.support import (
    START,
    authorize,
    bearer,
    query_of,
    redeem,
    refresh,
    tokens,
    when,
)

CLASS = {
    "subject": "Morning yoga",
    "body": {"contentType": "HTML", "content": "Join the class"},
    "start": when(START, "W. Europe Standard Time"),
    "end": when(START + timedelta(hours=1), "W. Europe Standard Time"),
    "isOnlineMeeting": True,
    "onlineMeetingProvider": "teamsForBusiness",
}


def aadsts(resp: httpx.Response) -> tuple[str, int]:
    body = resp.json()
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    return body["error"], body["error_codes"][0]


# ---- identity platform ------------------------------------------------------------------------


def test_pkce_code_flow_and_refresh_rotation(emu: MicrosoftEmulator, http: httpx.Client) -> None:
    # Given the app registration, when the browser authorizes with PKCE S256 on /common
    resp, verifier = authorize(http, emu, state="st-1")
    # Then it comes back to the exact redirect URI with a code and the state
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(ms.DEFAULT_REDIRECT_URI + "?")
    params = query_of(resp.headers["location"])
    assert params["state"] == "st-1"
    # When the code is redeemed with the verifier
    tok = redeem(http, emu, params["code"], verifier)
    # Then Bearer tokens, a refresh token (offline_access was asked) and an id_token (openid)
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert set(body["scope"].split()) == {"Calendars.ReadWrite", "User.Read", "openid"}
    assert body["refresh_token"]
    assert body["id_token"].count(".") == 2
    # When refreshed twice, each answer carries a new refresh token
    first = refresh(http, emu, body["refresh_token"])
    assert first.status_code == 200, first.text
    second = refresh(http, emu, first.json()["refresh_token"])
    assert len({body["refresh_token"], first.json()["refresh_token"], second.json()["refresh_token"]}) == 3
    # And, as Microsoft, a used refresh token still works ...
    assert refresh(http, emu, body["refresh_token"]).status_code == 200
    # ... unless the emulator is told to revoke used ones (clients must keep the newest)
    emu.configure(revoke_used_refresh_tokens=True)
    assert aadsts(refresh(http, emu, body["refresh_token"])) == ("invalid_grant", 70000)
    # And without offline_access there is no refresh token at all
    assert "refresh_token" not in tokens(http, emu, scope="User.Read Calendars.Read")


def test_oauth_errors_are_aadsts_coded(emu: MicrosoftEmulator, http: httpx.Client) -> None:
    # A wrong PKCE verifier, then the same code again
    resp, _ = authorize(http, emu)
    code = query_of(resp.headers["location"])["code"]
    bad = redeem(http, emu, code, "not-the-verifier-" + "x" * 40)
    assert bad.status_code == 400
    assert aadsts(bad) == ("invalid_grant", 50148)
    resp, verifier = authorize(http, emu)
    code = query_of(resp.headers["location"])["code"]
    assert redeem(http, emu, code, verifier).status_code == 200
    assert aadsts(redeem(http, emu, code, verifier)) == ("invalid_grant", 54005)
    # A wrong client secret is 401 invalid_client; an unknown app is unauthorized_client
    resp, verifier = authorize(http, emu)
    code = query_of(resp.headers["location"])["code"]
    wrong = redeem(http, emu, code, verifier, client_secret="nope")
    assert wrong.status_code == 401
    assert aadsts(wrong) == ("invalid_client", 7000215)
    assert aadsts(redeem(http, emu, code, verifier, client_id="00000000-0000-0000-0000-000000000000")) == (
        "unauthorized_client",
        700016,
    )
    # An expired code
    resp, verifier = authorize(http, emu)
    emu.advance_clock(ms.CODE_TTL + 1)
    assert aadsts(redeem(http, emu, query_of(resp.headers["location"])["code"], verifier)) == ("invalid_grant", 70008)
    # An unknown scope and a refused consent come back on the redirect
    resp, _ = authorize(http, emu, scope="offline_access Mail.Send")
    assert query_of(resp.headers["location"])["error"] == "invalid_scope"
    assert query_of(resp.headers["location"])["error_description"].startswith("AADSTS70011:")
    emu.set_next_consent(deny=True)
    resp, _ = authorize(http, emu)
    assert query_of(resp.headers["location"])["error"] == "access_denied"
    assert query_of(resp.headers["location"])["error_description"].startswith("AADSTS65004:")
    # A redirect URI that is not registered is answered in place (no redirect); so is an unknown tenant
    resp, _ = authorize(http, emu, redirect_uri="https://evil.example/cb")
    assert resp.status_code == 400
    assert aadsts(resp) == ("invalid_request", 50011)
    assert aadsts(http.get(emu.base_url + "/not_a_tenant/oauth2/v2.0/authorize")) == ("invalid_request", 90002)
    # A revoked grant (e.g. an admin reset the password) refuses the refresh with AADSTS50173
    grant = tokens(http, emu)
    assert emu.revoke_user_tokens(ms.DEFAULT_USER_EMAIL) > 0
    assert aadsts(refresh(http, emu, grant["refresh_token"])) == ("invalid_grant", 50173)


def test_consents_as_default_user_when_none_is_seeded(http: httpx.Client) -> None:
    # Given an emulator with no users at all
    with MicrosoftEmulator(users=[]) as bare:
        # When someone consents and calls /me
        me = http.get(bare.api_base + "/me", headers=bearer(tokens(http, bare)["access_token"]))
        # Then it is the default test user
        assert me.status_code == 200
        assert me.json()["mail"] == me.json()["userPrincipalName"] == ms.DEFAULT_USER_EMAIL


# ---- /me and calendars ------------------------------------------------------------------------


def test_me_and_calendars_with_can_edit(emu: MicrosoftEmulator, http: httpx.Client) -> None:
    # Given a work account without a mail attribute and a calendar shared read-only with it
    emu.add_user(
        "ada@contoso.onmicrosoft.com",
        "Ada Lovelace",
        has_mail=False,
        calendars=[{"name": "Team (read-only)", "can_edit": False}],
    )
    emu.set_next_consent("ada@contoso.onmicrosoft.com")
    headers = bearer(tokens(http, emu)["access_token"])
    # When /me is read: mail is null, userPrincipalName names the account
    me = http.get(emu.api_base + "/me", headers=headers).json()
    assert me["mail"] is None
    assert me["userPrincipalName"] == "ada@contoso.onmicrosoft.com"
    assert me["displayName"] == "Ada Lovelace"
    assert me["id"]
    # And the calendars carry canEdit; the default one can hold Teams meetings
    cals = http.get(emu.api_base + "/me/calendars", headers=headers).json()["value"]
    assert [(c["name"], c["canEdit"], c["isDefaultCalendar"]) for c in cals] == [
        ("Calendar", True, True),
        ("Team (read-only)", False, False),
    ]
    assert cals[0]["defaultOnlineMeetingProvider"] == "teamsForBusiness"
    one = http.get(f"{emu.api_base}/me/calendars/{cals[1]['id']}", headers=headers)
    assert one.status_code == 200
    assert one.json()["canEdit"] is False
    # Writing to the read-only calendar is refused
    refused = http.post(f"{emu.api_base}/me/calendars/{cals[1]['id']}/events", headers=headers, json=CLASS)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ErrorAccessDenied"
    # Unknown calendar, missing / expired token, missing permission
    assert http.get(emu.api_base + "/me/calendars/nope", headers=headers).json()["error"]["code"] == "ErrorItemNotFound"
    empty = http.get(emu.api_base + "/me")
    assert empty.status_code == 401
    assert empty.json()["error"]["message"] == "Access token is empty."
    narrow = bearer(tokens(http, emu, scope="offline_access User.Read")["access_token"])
    assert http.get(emu.api_base + "/me/calendars", headers=narrow).status_code == 403
    emu.expire_access_tokens()
    expired = http.get(emu.api_base + "/me", headers=headers)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "InvalidAuthenticationToken"


# ---- events -----------------------------------------------------------------------------------


def test_teams_event_create_move_cancel(emu: MicrosoftEmulator, http: httpx.Client, token: str) -> None:
    headers = bearer(token)
    cal = emu.default_calendar_id(ms.DEFAULT_USER_EMAIL)
    # When a Teams class is created on the chosen calendar
    created = http.post(f"{emu.api_base}/me/calendars/{cal}/events", headers=headers, json=CLASS)
    # Then 201 with a Teams join URL, times shown in UTC (10:00 Berlin in March = 09:00 UTC)
    assert created.status_code == 201, created.text
    event = created.json()
    join = event["onlineMeeting"]["joinUrl"]
    assert join.startswith("https://teams.microsoft.com/l/meetup-join/")
    assert event["isOnlineMeeting"] is True
    assert event["onlineMeetingProvider"] == "teamsForBusiness"
    assert event["start"] == {"dateTime": "2030-03-04T09:00:00.0000000", "timeZone": "UTC"}
    # When it is read in the class's zone through Prefer: outlook.timezone
    prefer = {**headers, "Prefer": 'outlook.timezone="W. Europe Standard Time"'}
    got = http.get(f"{emu.api_base}/me/events/{event['id']}", headers=prefer)
    assert got.json()["start"]["dateTime"].startswith("2030-03-04T10:00:00")
    assert got.headers["Preference-Applied"] == 'outlook.timezone="W. Europe Standard Time"'
    # When it moves an hour later, the link stays
    moved = http.patch(
        f"{emu.api_base}/me/events/{event['id']}",
        headers=headers,
        json={"start": when(START + timedelta(hours=1)), "end": when(START + timedelta(hours=2))},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["onlineMeeting"]["joinUrl"] == join
    assert moved.json()["start"]["dateTime"].startswith("2030-03-04T11:00:00")
    # An online event cannot go back offline
    back = http.patch(f"{emu.api_base}/me/events/{event['id']}", headers=headers, json={"isOnlineMeeting": False})
    assert back.status_code == 400
    # When it is cancelled it is gone
    assert http.delete(f"{emu.api_base}/me/events/{event['id']}", headers=headers).status_code == 204
    gone = http.get(f"{emu.api_base}/me/events/{event['id']}", headers=headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "ErrorItemNotFound"
    # Unknown properties and unknown zones are refused as Graph's reader does
    unknown = http.post(f"{emu.api_base}/me/events", headers=headers, json={**CLASS, "meetingLink": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "RequestBodyRead"
    zone = http.post(f"{emu.api_base}/me/events", headers=headers, json={**CLASS, "start": when(START, "Mars/Base")})
    assert zone.json()["error"]["code"] == "TimeZoneNotSupportedException"


def test_calendar_without_teams_creates_the_event_offline(emu: MicrosoftEmulator, http: httpx.Client) -> None:
    emu.add_user("solo@outlook.example", online_meetings=False)
    emu.set_next_consent("solo@outlook.example")
    created = http.post(f"{emu.api_base}/me/events", headers=bearer(tokens(http, emu)["access_token"]), json=CLASS)
    assert created.status_code == 201
    assert created.json()["isOnlineMeeting"] is False
    assert created.json()["onlineMeeting"] is None


def test_transaction_id_makes_a_retried_create_idempotent(
    emu: MicrosoftEmulator, http: httpx.Client, token: str
) -> None:
    headers = bearer(token)
    body = {**CLASS, "transactionId": "7E163156-7762-4BEB-A1C6-729EA81755A7"}
    # Given the answer of the first create is lost after Graph made the event
    emu.set_faults(forced=[{"status": 504, "path_prefix": "/v1.0/me/events", "method": "POST", "after": True}])
    lost = http.post(f"{emu.api_base}/me/events", headers=headers, json=body)
    assert lost.status_code == 504
    # When the client retries with the same transactionId
    retried = http.post(f"{emu.api_base}/me/events", headers=headers, json=body)
    again = http.post(f"{emu.api_base}/me/events", headers=headers, json=body)
    # Then it gets the one event, with one Teams link
    assert retried.status_code == again.status_code == 201
    assert retried.json()["id"] == again.json()["id"]
    assert retried.json()["transactionId"] == body["transactionId"]
    assert len(emu.events(ms.DEFAULT_USER_EMAIL)) == 1
    # And a changed transactionId cannot be written later
    patch = http.patch(f"{emu.api_base}/me/events/{retried.json()['id']}", headers=headers, json={"transactionId": "y"})
    assert patch.status_code == 400
    # Whereas a blind retry without transactionId duplicates the event
    http.post(f"{emu.api_base}/me/events", headers=headers, json=CLASS)
    http.post(f"{emu.api_base}/me/events", headers=headers, json=CLASS)
    assert len(emu.events(ms.DEFAULT_USER_EMAIL)) == 3


# ---- getSchedule ------------------------------------------------------------------------------


def schedule_body(start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    return {"schedules": [ms.DEFAULT_USER_EMAIL], "startTime": when(start), "endTime": when(end), **extra}


def test_get_schedule_busy_view_and_62_day_limit(emu: MicrosoftEmulator, http: httpx.Client, token: str) -> None:
    headers = bearer(token)
    http.post(
        f"{emu.api_base}/me/events",
        headers=headers,
        json={**CLASS, "start": when(START), "end": when(START + timedelta(hours=1))},
    )
    emu.seed_event(
        emu.default_calendar_id(ms.DEFAULT_USER_EMAIL),
        {
            "subject": "Lunch",
            "start": when(START + timedelta(hours=2)),
            "end": when(START + timedelta(hours=3)),
            "showAs": "tentative",
        },
    )
    day = START.replace(hour=8)
    # When the schedule of 08:00-14:00 is asked hour by hour (camelCase, as the docs send it)
    resp = http.post(
        f"{emu.api_base}/me/calendar/getSchedule",
        headers=headers,
        json=schedule_body(day, day + timedelta(hours=6), availabilityViewInterval=60),
    )
    # Then busy at 10, tentative at 12, and the two items
    assert resp.status_code == 200, resp.text
    info = resp.json()["value"][0]
    assert info["availabilityView"] == "002010"
    assert [(i["status"], i["start"]["dateTime"][:16]) for i in info["scheduleItems"]] == [
        ("busy", "2030-03-04T10:00"),
        ("tentative", "2030-03-04T12:00"),
    ]
    # The cut's path form and PascalCase parameters are accepted too; an unknown address gets an error entry
    pascal = {"Schedules": ["nobody@example.com"], "StartTime": when(day), "EndTime": when(day + timedelta(days=1))}
    other = http.post(f"{emu.api_base}/me/calendar/microsoft.graph.getSchedule", headers=headers, json=pascal)
    assert other.status_code == 200
    assert other.json()["value"][0]["error"]["responseCode"] == "ErrorMailRecipientNotFound"
    # Just under 62 days is fine; 62 days is refused
    ok = http.post(
        f"{emu.api_base}/me/calendar/getSchedule",
        headers=headers,
        json=schedule_body(day, day + timedelta(days=62, seconds=-1)),
    )
    assert ok.status_code == 200
    too_long = http.post(
        f"{emu.api_base}/me/calendar/getSchedule", headers=headers, json=schedule_body(day, day + timedelta(days=62))
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "ErrorTimeIntervalTooBig"
    assert "allowed limit = 62 days" in too_long.json()["error"]["message"]
    # And the slot length must be 5-1440 minutes
    tiny = schedule_body(day, day + timedelta(hours=1), availabilityViewInterval=4)
    assert http.post(f"{emu.api_base}/me/calendar/getSchedule", headers=headers, json=tiny).status_code == 400
