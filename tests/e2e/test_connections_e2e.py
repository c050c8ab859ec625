"""Connections end to end through the local gateway (real HTTP): Google, Zoom and Apple connect,
list, calendar choice, disconnect (with and without revoke), and every way a connect can fail.

Providers are the project's emulators and Radicale (tests/e2e/conftest.py); the functions run
in-process behind the gateway, so the tests read the table and the emulators' state directly.
"""

from __future__ import annotations

import hashlib
import io
import logging
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from e2e_support import APP_URL, Providers, Recorder

from devstack import flows
from shared import wiring
from shared.store import ConnectionStatus, Store
from shared.store.table import from_item

PASSWORD = "abcd-efgh-ijkl-mnop"
CONNECTIONS_PAGE = f"{APP_URL}/mentor/settings/connections"


@pytest.fixture
def log_sink() -> Iterator[io.StringIO]:
    """Every line the functions log during the test, rendered by their (masking) formatter."""
    from shared.platform.observability import logger as fn_logger

    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(fn_logger.registered_formatter)
    std = logging.getLogger(fn_logger.name)
    std.addHandler(handler)
    yield sink
    std.removeHandler(handler)


# --- helpers ---------------------------------------------------------------------------------------


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _google_user(providers: Providers) -> str:
    return flows.seed_google_account(providers.google, f"ada-{uuid.uuid4().hex[:8]}@example.com")


def _zoom_user(providers: Providers, plan: int = 1) -> str:
    return flows.seed_zoom_account(providers.zoom, f"ada-{uuid.uuid4().hex[:8]}@example.com", plan=plan)


def _apple_user(providers: Providers) -> str:
    apple_id = f"ada-{uuid.uuid4().hex[:8]}@icloud.com"
    providers.caldav.add_user(apple_id, PASSWORD)
    return apple_id


def _views(api: httpx.Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    resp = api.get("/connections", headers=headers)
    assert resp.status_code == 200, resp.text
    return {c["provider"]: c for c in resp.json()["connections"]}


def _raw_items(store: Store, mentor: str) -> list[dict[str, Any]]:
    return list(store.table.query(f"MENTOR#{mentor}"))


def _state_item(store: Store, state: str) -> dict[str, Any] | None:
    return store.table.get("OAUTH#" + hashlib.sha256(state.encode()).hexdigest(), "STATE")


def _pending_item(store: Store, handle: str) -> dict[str, Any] | None:
    return store.table.get("OAUTHPENDING#" + hashlib.sha256(handle.encode()).hexdigest(), "PENDING")


# --- connect ---------------------------------------------------------------------------------------


def test_connect_google_lists_connected_with_email_and_primary(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a Google account with a primary and two more calendars
    email = _google_user(providers)
    # When the mentor asks for the consent URL
    url = flows.authorize(api, headers, "google")
    # Then it carries PKCE S256, offline consent, both calendar scopes and our callback
    q = _query(url)
    assert (q["code_challenge_method"], q["access_type"], q["prompt"]) == ("S256", "offline", "consent")
    assert set(q["scope"].split()) == {
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/calendar.events",
    }
    assert q["redirect_uri"].endswith("/oauth/google/callback")
    # And a state item bound to the mentor, with a TTL, keyed by the state's hash only
    held = _state_item(stack_store, q["state"])
    assert held is not None
    assert (held["mentor_id"], held["provider"]) == (mentor, "google")
    assert 590 <= int(held["ttl"]) - int(datetime.now(UTC).timestamp()) <= 600
    # When the mentor consents and the browser comes back
    landed = flows.callback(api, flows.consent(url))
    # Then the app gets ?provider=google&pending=<handle>; the state is gone; nothing is connected yet
    pending = _query(landed)
    assert landed.startswith(f"{CONNECTIONS_PAGE}?")
    assert set(pending) == {"provider", "pending"}
    assert pending["provider"] == "google"
    assert _state_item(stack_store, q["state"]) is None
    assert _views(api, headers)["google"]["status"] == "not_connected"
    # And the parked item is keyed by the handle's hash, bound to the mentor, with a 10-minute TTL,
    # and holds no token in the clear
    parked = _pending_item(stack_store, pending["pending"])
    assert parked is not None
    assert (parked["mentor_id"], parked["provider"]) == (mentor, "google")
    assert 590 <= int(parked["ttl"]) - int(datetime.now(UTC).timestamp()) <= 600
    for token in flows.google_tokens(providers.google, email):
        assert token.encode() not in bytes(parked["credential"])
        assert token not in str({k: v for k, v in parked.items() if k != "credential"})
    # When the mentor app completes it with the mentor's JWT
    resp = api.post("/connections/google/complete", headers=headers, json={"pending": pending["pending"]})
    # Then 200 with the connection view; the handle is used up; the list shows the account
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "connected"
    assert resp.json()["accountLabel"] == f"Connected as {email}"
    assert _pending_item(stack_store, pending["pending"]) is None
    google = _views(api, headers)["google"]
    assert google["status"] == "connected"
    assert google["accountLabel"] == f"Connected as {email}"
    assert google["selectedCalendar"] == "primary"
    conn = stack_store.get_connection(mentor, "google")
    assert conn is not None
    assert conn.credential
    assert conn.account_id == email


def test_connect_zoom_records_display_name_and_plan(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a Basic (free) Zoom user
    email = _zoom_user(providers, plan=1)
    # When the mentor connects Zoom
    completed = flows.connect_oauth(api, headers, "zoom")
    # Then the list shows "Connected as <display name>" and the plan type
    assert (completed["status"], completed["planType"]) == ("connected", 1)
    zoom = _views(api, headers)["zoom"]
    assert (zoom["status"], zoom["accountLabel"], zoom["planType"]) == ("connected", "Connected as Ada Lovelace", 1)
    assert zoom["selectedCalendar"] is None
    # And the item is findable by Zoom user id (for Zoom's app_deauthorized webhook)
    zoom_user = providers.zoom.state.user_by_email(email)
    assert zoom_user is not None
    item = stack_store.table.get(f"MENTOR#{mentor}", "CONN#zoom")
    assert item is not None
    assert (item["account_id"], item["GSI1PK"]) == (zoom_user.id, f"ZOOMUSER#{zoom_user.id}")


def test_connect_apple_then_list_all_three(
    api: httpx.Client, headers: dict[str, str], providers: Providers, recorder: Recorder
) -> None:
    # Given Google and Zoom connected, and an Apple ID with an app-specific password
    _google_user(providers)
    flows.connect_oauth(api, headers, "google")
    _zoom_user(providers)
    flows.connect_oauth(api, headers, "zoom")
    apple_id = _apple_user(providers)
    # When the mentor posts the Apple credentials
    resp = api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": PASSWORD})
    # Then 201 with the connection view; the password is never echoed
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "connected"
    assert resp.json()["accountLabel"] == f"Connected as {apple_id}"
    # And the list shows all three connected with "Connected as" labels (Microsoft, not connected, last)
    views = _views(api, headers)
    assert {p: v["status"] for p, v in views.items()} == {
        **dict.fromkeys(("google", "zoom", "apple"), "connected"),
        "microsoft": "not_connected",
    }
    assert all(views[p]["accountLabel"].startswith("Connected as ") for p in ("google", "zoom", "apple"))
    assert not any(PASSWORD in seen for seen in recorder.seen)


def test_reconnect_replaces_the_connection(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given Zoom connected as one account
    _zoom_user(providers)
    flows.connect_oauth(api, headers, "zoom")
    first = stack_store.get_connection(mentor, "zoom")
    # When the mentor connects again as another account (Licensed)
    other = f"grace-{uuid.uuid4().hex[:6]}@example.com"
    providers.zoom.add_user(other, first_name="Grace", last_name="Hopper", type=2)
    providers.zoom.set_next_consent(other)
    assert flows.connect_oauth(api, headers, "zoom")["accountLabel"] == "Connected as Grace Hopper"
    # Then the one connection item is replaced (optimistic locking: version bumped)
    second = stack_store.get_connection(mentor, "zoom")
    assert first is not None
    assert second is not None
    assert second.version == first.version + 1
    assert (second.account_label, second.plan_type) == ("Connected as Grace Hopper", 2)


# --- Google calendars ------------------------------------------------------------------------------


def test_switch_google_calendar(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given Google connected
    email = _google_user(providers)
    flows.connect_oauth(api, headers, "google")
    # When the mentor lists the calendars
    resp = api.get("/connections/google/calendars", headers=headers)
    # Then the primary comes first and is selected
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["selectedCalendar"] == "primary"
    assert body["calendars"][0]["summary"] == email
    assert [c["id"] for c in body["calendars"] if c["selected"]] == [email]
    # When the mentor chooses the Teaching calendar
    teaching = f"teaching-{email}"
    resp = api.put("/connections/google/calendar", headers=headers, json={"calendarId": teaching})
    # Then it is selected, in the list and in the table
    assert resp.status_code == 200, resp.text
    assert resp.json()["selectedCalendar"] == teaching
    assert _views(api, headers)["google"]["selectedCalendar"] == teaching
    listed = api.get("/connections/google/calendars", headers=headers).json()
    assert [c["id"] for c in listed["calendars"] if c["selected"]] == [teaching]
    # And a calendar not in the list, or a read-only one, is refused and changes nothing
    version = stack_store.get_connection(mentor, "google").version  # type: ignore[union-attr]
    bad = api.put("/connections/google/calendar", headers=headers, json={"calendarId": "someone-else@example.com"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "unknown_calendar")
    ro = api.put("/connections/google/calendar", headers=headers, json={"calendarId": f"holidays-{email}"})
    assert (ro.status_code, ro.json()["error"]["code"]) == (400, "calendar_not_writable")
    assert stack_store.get_connection(mentor, "google").version == version  # type: ignore[union-attr]


def test_calendars_without_google_is_not_connected(api: httpx.Client, headers: dict[str, str]) -> None:
    # Given no Google connection / When listing or choosing calendars / Then 404 not_connected
    listed = api.get("/connections/google/calendars", headers=headers)
    chosen = api.put("/connections/google/calendar", headers=headers, json={"calendarId": "primary"})
    assert (listed.status_code, listed.json()["error"]["code"]) == (404, "not_connected")
    assert (chosen.status_code, chosen.json()["error"]["code"]) == (404, "not_connected")


# --- disconnect ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["google", "zoom"])
def test_disconnect_with_revoke(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    mentor: str,
    provider: str,
) -> None:
    # Given the provider connected
    emu = providers.google if provider == "google" else providers.zoom
    _google_user(providers) if provider == "google" else _zoom_user(providers)
    flows.connect_oauth(api, headers, provider)
    before = len(emu.state.revoke_calls)
    # When the mentor disconnects with ?revoke=true
    resp = api.delete(f"/connections/{provider}", headers=headers, params={"revoke": "true"})
    # Then 204; the item (and its sealed credential) is gone; the provider saw one successful revoke
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert stack_store.get_connection(mentor, provider) is None
    assert not [i for i in _raw_items(stack_store, mentor) if i["SK"] == f"CONN#{provider}"]
    calls = emu.state.revoke_calls[before:]
    assert [c["ok"] for c in calls] == [True]
    assert _views(api, headers)[provider]["status"] == "not_connected"
    # And disconnecting again is 404 not_connected
    again = api.delete(f"/connections/{provider}", headers=headers)
    assert (again.status_code, again.json()["error"]["code"]) == (404, "not_connected")


def test_disconnect_without_revoke_leaves_the_grant(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given Google and Apple connected
    _google_user(providers)
    flows.connect_oauth(api, headers, "google")
    apple_id = _apple_user(providers)
    api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": PASSWORD})
    before = len(providers.google.state.revoke_calls)
    # When both are disconnected without revoke
    assert api.delete("/connections/google", headers=headers).status_code == 204
    assert api.delete("/connections/apple", headers=headers, params={"revoke": "true"}).status_code == 204
    # Then the items are gone and Google saw no revoke call
    assert _raw_items(stack_store, mentor) == []
    assert len(providers.google.state.revoke_calls) == before


def test_failed_revoke_still_deletes(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given Zoom connected, and the Zoom revoke endpoint failing
    _zoom_user(providers)
    flows.connect_oauth(api, headers, "zoom")
    providers.zoom.set_faults(forced=[{"status": 503, "count": 10, "path_prefix": "/oauth/revoke"}])
    try:
        # When the mentor disconnects with revoke / Then the connection is deleted anyway
        resp = api.delete("/connections/zoom", headers=headers, params={"revoke": "true"})
    finally:
        providers.zoom.clear_faults()
    assert resp.status_code == 204
    assert stack_store.get_connection(mentor, "zoom") is None


def test_unknown_provider_is_400(api: httpx.Client, headers: dict[str, str]) -> None:
    # Given / When an unknown or non-OAuth provider is named / Then 400 with a clear code
    deleted = api.delete("/connections/myspace", headers=headers)
    assert (deleted.status_code, deleted.json()["error"]["code"]) == (400, "unknown_provider")
    authorized = api.post("/connections/apple/authorize", headers=headers)
    assert (authorized.status_code, authorized.json()["error"]["code"]) == (400, "unsupported_provider")
    bad_flag = api.delete("/connections/google", headers=headers, params={"revoke": "maybe"})
    assert (bad_flag.status_code, bad_flag.json()["error"]["code"]) == (400, "invalid_request")


# --- negative OAuth callbacks ------------------------------------------------------------------------


def test_bad_state_redirects_with_invalid_state(
    api: httpx.Client, providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a state nobody issued (and a missing one) / When the browser lands / Then ?error=invalid_state
    assert (
        flows.callback(api, "/oauth/google/callback?code=abc&state=forged") == f"{CONNECTIONS_PAGE}?error=invalid_state"
    )
    assert flows.callback(api, "/oauth/zoom/callback?code=abc") == f"{CONNECTIONS_PAGE}?error=invalid_state"
    assert (
        flows.callback(api, "/oauth/myspace/callback?code=abc&state=x") == f"{CONNECTIONS_PAGE}?error=unknown_provider"
    )
    assert _raw_items(stack_store, mentor) == []


def test_replayed_state_is_refused_and_changes_nothing(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a completed Google connect
    _google_user(providers)
    back = flows.consent(flows.authorize(api, headers, "google"))
    assert flows.complete(api, headers, flows.callback(api, back))["status"] == "connected"
    first = stack_store.get_connection(mentor, "google")
    # When the same callback URL is replayed
    replay = flows.callback(api, back)
    # Then it is refused and the stored connection is untouched
    assert replay == f"{CONNECTIONS_PAGE}?error=invalid_state"
    assert stack_store.get_connection(mentor, "google") == first


def test_expired_state_is_refused(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a consent whose state expired before the browser came back
    _zoom_user(providers)
    url = flows.authorize(api, headers, "zoom")
    key = "OAUTH#" + hashlib.sha256(_query(url)["state"].encode()).hexdigest()
    stack_store.table.update(
        key,
        "STATE",
        expression="SET expires_at = :past",
        values={":past": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()},
    )
    back = flows.consent(url)
    # When it lands / Then ?error=expired_state and nothing is stored (the state is burnt too)
    assert flows.callback(api, back) == f"{CONNECTIONS_PAGE}?error=expired_state"
    assert _raw_items(stack_store, mentor) == []
    assert stack_store.table.get(key, "STATE") is None


@pytest.mark.parametrize("provider", ["google", "zoom"])
def test_consent_denied(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    mentor: str,
    provider: str,
) -> None:
    # Given the mentor clicks "Cancel" on the provider's consent screen
    emu = providers.google if provider == "google" else providers.zoom
    emu.deny_next_consent()
    url = flows.authorize(api, headers, provider)
    back = flows.consent(url)
    assert _query(back)["error"] == "access_denied"
    # When the browser lands / Then ?error=consent_denied, nothing stored, the state burnt
    assert flows.callback(api, back) == f"{CONNECTIONS_PAGE}?error=consent_denied"
    assert _raw_items(stack_store, mentor) == []
    assert _state_item(stack_store, _query(url)["state"]) is None


def test_foreign_provider_state_is_refused(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a Google state (with a real Google code)
    _google_user(providers)
    back = flows.consent(flows.authorize(api, headers, "google"))
    q = _query(back)
    # When it is presented at the Zoom callback / Then ?error=invalid_state and nothing is stored
    landed = flows.callback(api, f"/oauth/zoom/callback?code={q['code']}&state={q['state']}")
    assert landed == f"{CONNECTIONS_PAGE}?error=invalid_state"
    assert _raw_items(stack_store, mentor) == []
    # And the state is burnt: the Google callback cannot use it afterwards either
    assert flows.callback(api, back) == f"{CONNECTIONS_PAGE}?error=invalid_state"
    assert _raw_items(stack_store, mentor) == []


def test_failed_code_exchange(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a valid state but a code the provider does not know
    state = _query(flows.authorize(api, headers, "google"))["state"]
    # When the browser lands / Then ?error=exchange_failed and nothing is stored
    landed = flows.callback(api, f"/oauth/google/callback?code=4/0forged&state={state}")
    assert landed == f"{CONNECTIONS_PAGE}?error=exchange_failed"
    assert _raw_items(stack_store, mentor) == []


# --- completing a pending connection ------------------------------------------------------------------


def test_pending_handle_is_single_use(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a Zoom consent the callback parked, completed once by its mentor
    _zoom_user(providers)
    landed = flows.callback(api, flows.consent(flows.authorize(api, headers, "zoom")))
    assert flows.complete(api, headers, landed)["status"] == "connected"
    first = stack_store.get_connection(mentor, "zoom")
    # When the same handle is presented again / Then 400 invalid_pending and the connection is untouched
    again = flows.complete_response(api, headers, landed)
    assert (again.status_code, again.json()["error"]["code"]) == (400, "invalid_pending")
    assert stack_store.get_connection(mentor, "zoom") == first


def test_expired_pending_is_refused_and_stores_nothing(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a parked Google connection whose 10 minutes are over (DynamoDB's TTL has not run yet)
    _google_user(providers)
    landed = flows.callback(api, flows.consent(flows.authorize(api, headers, "google")))
    handle = flows.pending_of(landed)[1]
    stack_store.table.update(
        "OAUTHPENDING#" + hashlib.sha256(handle.encode()).hexdigest(),
        "PENDING",
        expression="SET expires_at = :past",
        values={":past": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()},
    )
    # When its mentor completes it / Then 400 expired_pending, nothing stored, the handle burnt
    resp = flows.complete_response(api, headers, landed)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "expired_pending")
    assert _raw_items(stack_store, mentor) == []
    assert _pending_item(stack_store, handle) is None


def test_pending_of_another_provider_or_unknown_is_refused(
    api: httpx.Client, headers: dict[str, str], providers: Providers, stack_store: Store, mentor: str
) -> None:
    # Given a parked Google connection
    _google_user(providers)
    handle = flows.pending_of(flows.callback(api, flows.consent(flows.authorize(api, headers, "google"))))[1]
    # When it is presented to the Zoom completion / Then 400 invalid_pending and it is burnt
    zoom = api.post("/connections/zoom/complete", headers=headers, json={"pending": handle})
    assert (zoom.status_code, zoom.json()["error"]["code"]) == (400, "invalid_pending")
    google = api.post("/connections/google/complete", headers=headers, json={"pending": handle})
    assert (google.status_code, google.json()["error"]["code"]) == (400, "invalid_pending")
    assert _raw_items(stack_store, mentor) == []
    # And a made-up handle, a bad body, Apple, or no JWT are refused too
    made_up = api.post("/connections/google/complete", headers=headers, json={"pending": "x" * 43})
    assert (made_up.status_code, made_up.json()["error"]["code"]) == (400, "invalid_pending")
    for body in ({}, {"pending": ""}, {"pending": handle, "extra": 1}):
        bad = api.post("/connections/google/complete", headers=headers, json=body)
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_request")
    apple = api.post("/connections/apple/complete", headers=headers, json={"pending": handle})
    assert (apple.status_code, apple.json()["error"]["code"]) == (400, "unsupported_provider")
    assert api.post("/connections/google/complete", json={"pending": handle}).status_code == 401


# --- negative Apple ----------------------------------------------------------------------------------


def test_apple_wrong_password_format_makes_no_network_call(
    api: httpx.Client,
    headers: dict[str, str],
    provider_env: pytest.MonkeyPatch,
    stack_store: Store,
    mentor: str,
    recorder: Recorder,
) -> None:
    # Given a CalDAV "server" that only records connection attempts

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.3)
        provider_env.setenv("APPLE_CALDAV_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
        wiring.reset()
        # When the mentor posts their real Apple ID password
        resp = api.post(
            "/connections/apple", headers=headers, json={"appleId": "ada@icloud.com", "appSpecificPassword": "Secret1!"}
        )
        # Then 400 with the format code, and nobody connected to the server
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "invalid_app_specific_password"
        with pytest.raises(TimeoutError):
            listener.accept()
    assert _raw_items(stack_store, mentor) == []
    assert not any("Secret1!" in seen for seen in recorder.seen)
    # And a malformed Apple ID or a missing field is a 400 too
    bad_id = api.post("/connections/apple", headers=headers, json={"appleId": "ada", "appSpecificPassword": PASSWORD})
    assert (bad_id.status_code, bad_id.json()["error"]["code"]) == (400, "invalid_apple_id")
    missing = api.post("/connections/apple", headers=headers, json={"appleId": "ada@icloud.com"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "invalid_request")


def test_apple_wrong_password_maps_the_401(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    mentor: str,
    recorder: Recorder,
) -> None:
    # Given an Apple ID and a well-formed but wrong app-specific password
    apple_id = _apple_user(providers)
    wrong = "wxyz-wxyz-wxyz-wxyz"
    # When it is posted
    resp = api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": wrong})
    # Then 400 apple_auth_failed naming the three causes, never the password; nothing stored
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "apple_auth_failed"
    for cause in ("app-specific password", "two-factor", "revoked"):
        assert cause in error["message"]
    assert not any(wrong in seen for seen in recorder.seen)
    assert _raw_items(stack_store, mentor) == []


def test_apple_unreachable_is_502(
    api: httpx.Client, headers: dict[str, str], provider_env: pytest.MonkeyPatch, stack_store: Store, mentor: str
) -> None:

    # Given iCloud cannot be reached (nothing listens on the port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider_env.setenv("APPLE_CALDAV_URL", f"http://127.0.0.1:{port}")
    wiring.reset()
    # When the mentor connects / Then 502 apple_unavailable, nothing stored
    resp = api.post(
        "/connections/apple", headers=headers, json={"appleId": "ada@icloud.com", "appSpecificPassword": PASSWORD}
    )
    assert (resp.status_code, resp.json()["error"]["code"]) == (502, "apple_unavailable")
    assert _raw_items(stack_store, mentor) == []


# --- canary --------------------------------------------------------------------------------------------


def test_tokens_appear_in_no_response_and_no_stored_attribute(
    api: httpx.Client,
    headers: dict[str, str],
    providers: Providers,
    stack_store: Store,
    mentor: str,
    recorder: Recorder,
    log_sink: io.StringIO,
) -> None:
    # Given Google, Zoom and Apple connected, calendars listed and one chosen
    google_email = _google_user(providers)
    flows.connect_oauth(api, headers, "google")
    zoom_email = _zoom_user(providers)
    flows.connect_oauth(api, headers, "zoom")
    apple_id = _apple_user(providers)
    api.post("/connections/apple", headers=headers, json={"appleId": apple_id, "appSpecificPassword": PASSWORD})
    api.get("/connections/google/calendars", headers=headers)
    api.put("/connections/google/calendar", headers=headers, json={"calendarId": f"teaching-{google_email}"})
    api.get("/connections", headers=headers)
    # When we collect every token the emulators issued to these accounts
    zoom_user = providers.zoom.state.user_by_email(zoom_email)
    assert zoom_user is not None
    secrets = flows.google_tokens(providers.google, google_email) + flows.zoom_tokens(providers.zoom, zoom_user.id)
    assert len(secrets) >= 4
    secrets.append(PASSWORD)
    # (and the push channels' tokens, which only Google and the channel's SHA-256 may know)
    with providers.google.state.lock:
        channel_tokens = [c.token for c in providers.google.state.channels.values() if c.email == google_email]
    assert len(channel_tokens) == 2  # primary, then the chosen calendar
    secrets += [t for t in channel_tokens if t]
    # Then none appears in any API response (status, headers, body) …
    assert recorder.seen
    for seen in recorder.seen:
        for secret in secrets:
            assert secret not in seen
    # … nor in any stored attribute (the sealed credential included), nor in a log line
    raw = stack_store.table.client.query(
        TableName=stack_store.table.name,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"MENTOR#{mentor}"}},
    )["Items"]
    connections = [from_item(item) for item in raw if item["SK"]["S"].startswith("CONN#")]
    assert len(connections) == 3
    assert {c["status"] for c in connections} == {ConnectionStatus.CONNECTED.value}
    for item in raw:  # the connections and whatever else the mentor owns (e.g. the push channel link)
        plain = from_item(item)
        for value in plain.values():
            blob = value if isinstance(value, bytes) else str(value).encode()
            for secret in secrets:
                assert secret.encode() not in blob
    logs = log_sink.getvalue()
    assert "oauth connection saved" in logs  # the sink does see the functions' log lines
    for secret in secrets:
        assert secret not in logs
