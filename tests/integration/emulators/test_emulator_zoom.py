"""Zoom emulator: OAuth with refresh-token rotation, users/me, meetings CRUD, scopes, daily cap."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devstack.emulators import zoom as z

CLIENT = (z.DEFAULT_CLIENT_ID, z.DEFAULT_CLIENT_SECRET)


def q(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refresh(http: Any, zoom: Any, refresh_token: str) -> Any:
    return http.post(zoom.token_url, auth=CLIENT, data={"grant_type": "refresh_token", "refresh_token": refresh_token})


MEETING = {
    "topic": "Morning yoga",
    "type": 2,
    "start_time": "2030-03-04T10:00:00",
    "duration": 60,
    "timezone": "Europe/Berlin",
    "settings": {"join_before_host": True, "waiting_room": False},
}


@pytest.fixture
def token(zoom_tokens) -> str:
    return str(zoom_tokens()["access_token"])


def test_full_code_pkce_flow(zoom, http, zoom_authorize):
    # Given the registered client
    # When the browser authorizes with PKCE S256
    resp, pkce = zoom_authorize(state="s-1")
    # Then a redirect to the exact redirect_uri with code and state
    assert resp.status_code == 302
    params = q(resp.headers["location"])
    assert resp.headers["location"].startswith(z.DEFAULT_REDIRECT_URI + "?")
    assert params["state"] == "s-1"
    # When the code is exchanged with Basic client auth and the verifier
    tok = http.post(
        zoom.token_url,
        auth=CLIENT,
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": z.DEFAULT_REDIRECT_URI,
            "code_verifier": pkce.verifier,
        },
    )
    # Then Zoom-shaped tokens with the app's granular scopes
    assert tok.status_code == 200
    body = tok.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3599
    assert body["access_token"].startswith("eyJ")
    assert body["refresh_token"] != body["access_token"]
    assert set(body["scope"].split()) == set(z.DEFAULT_SCOPES)
    assert body["api_url"] == zoom.base_url


def test_wrong_verifier_redirect_mismatch_code_reuse(zoom, http, zoom_authorize):
    resp, pkce = zoom_authorize()
    code = q(resp.headers["location"])["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": z.DEFAULT_REDIRECT_URI}
    # When the verifier is wrong
    bad = http.post(zoom.token_url, auth=CLIENT, data={**data, "code_verifier": "nope" * 12})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    # When the redirect_uri differs
    mismatch = http.post(
        zoom.token_url,
        auth=CLIENT,
        data={**data, "redirect_uri": "http://127.0.0.1:1/x", "code_verifier": pkce.verifier},
    )
    assert mismatch.status_code == 400
    assert mismatch.json() == {"reason": "Redirect URI mismatch.", "error": "invalid_grant"}
    # When the code is used, then reused
    assert http.post(zoom.token_url, auth=CLIENT, data={**data, "code_verifier": pkce.verifier}).status_code == 200
    reuse = http.post(zoom.token_url, auth=CLIENT, data={**data, "code_verifier": pkce.verifier})
    # Then invalid_grant
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # And wrong client credentials are 400 invalid_client (Zoom's answer, NOTES.md §6; not 401)
    unknown = http.post(zoom.token_url, auth=("x", "y"), data=data)
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_client")
    wrong_secret = http.post(zoom.token_url, auth=(z.DEFAULT_CLIENT_ID, "not-the-secret"), data=data)
    assert wrong_secret.status_code == 400
    assert wrong_secret.json() == {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}


def test_authorize_refuses_a_scope_parameter(zoom, zoom_authorize):
    """Zoom documents no ``scope`` on the authorize URL and has answered "Invalid scopes" to one."""
    # When the authorize URL carries scope (even the app's own scopes)
    resp, _ = zoom_authorize(scope=" ".join(z.DEFAULT_SCOPES))
    # Then no code: Zoom's "Invalid scopes"
    assert resp.status_code == 400
    assert resp.json() == {"reason": "Invalid scopes", "error": "invalid_scope"}
    # And without it, the app's scopes are granted
    ok, _ = zoom_authorize()
    assert ok.status_code == 302
    assert "code" in q(ok.headers["location"])


def test_refresh_body_parameters_are_recorded_by_name(zoom, http, zoom_tokens):
    """The token endpoint logs each call's parameter names (never values), so clients' bodies can be checked."""
    first = zoom_tokens()
    assert refresh(http, zoom, first["refresh_token"]).status_code == 200
    (call,) = zoom.token_requests("refresh_token")
    assert call["param_names"] == ["grant_type", "refresh_token"]
    assert first["refresh_token"] not in json.dumps(zoom.token_requests())


def test_authorize_redirect_uri_must_match_exactly_and_deny_knob(zoom, zoom_authorize):
    resp, _ = zoom_authorize(redirect_uri=z.DEFAULT_REDIRECT_URI + "?x=1")
    assert resp.status_code == 400
    # Given the deny knob
    zoom.deny_next_consent()
    denied, _ = zoom_authorize(state="st")
    # Then access_denied with state
    assert q(denied.headers["location"]) == {"error": "access_denied", "state": "st"}


def test_refresh_token_rotation(zoom, http, zoom_tokens):
    # Given tokens
    first = zoom_tokens()
    # When the refresh token is used
    r1 = refresh(http, zoom, first["refresh_token"])
    # Then a new access token AND a new refresh token
    assert r1.status_code == 200
    second = r1.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # When the old refresh token is used again
    old = refresh(http, zoom, first["refresh_token"])
    # Then Zoom's invalid_grant body
    assert old.status_code == 400
    assert old.json() == {"reason": "Invalid Token!", "error": "invalid_grant"}
    # And the new one works (once)
    assert refresh(http, zoom, second["refresh_token"]).status_code == 200
    assert zoom.token_calls("refresh_token") == 3


def test_lost_refresh_answer_rotates_then_answers_5xx(zoom, http, zoom_tokens):
    # Given tokens and one refresh answer to lose
    first = zoom_tokens()
    zoom.lose_refresh_answers(1)
    # When the refresh token is used
    lost = refresh(http, zoom, first["refresh_token"])
    # Then the client gets a 5xx, not the new tokens
    assert lost.status_code == 502
    assert "access_token" not in lost.json()
    # But Zoom rotated: the old refresh token is dead (only the latest works, and nobody holds it)
    again = refresh(http, zoom, first["refresh_token"])
    assert again.json() == {"reason": "Invalid Token!", "error": "invalid_grant"}
    assert [(c["status"], c["outcome"]) for c in zoom.token_requests("refresh_token")] == [
        (502, "rotated_answer_lost"),
        (400, "invalid_grant"),
    ]
    # And the knob is used up: the next grant refreshes normally
    assert refresh(http, zoom, zoom_tokens()["refresh_token"]).status_code == 200


def test_revoke_kills_the_grant(zoom, http, zoom_tokens):
    tok = zoom_tokens()
    # When the access token is revoked with Basic auth and a form body
    rv = http.post(zoom.revoke_url, auth=CLIENT, data={"token": tok["access_token"]})
    # Then {"status":"success"}, the API refuses it and the refresh token is dead
    assert rv.status_code == 200
    assert rv.json() == {"status": "success"}
    me = http.get(zoom.api_base + "/users/me", headers=auth(tok["access_token"]))
    assert me.status_code == 401
    assert me.json() == {"code": 124, "message": "Invalid access token."}
    assert refresh(http, zoom, tok["refresh_token"]).json()["error"] == "invalid_grant"


def test_token_in_query_string_is_rejected(zoom, http, token):
    # When the access token is sent as a query parameter (rejected since Feb 2023)
    resp = http.get(zoom.api_base + "/users/me", params={"access_token": token})
    # Then code 124
    assert resp.status_code == 401
    assert resp.json() == {"code": 124, "message": "Invalid access token."}


def test_expired_access_token(zoom, http, token):
    zoom.advance_clock(3601)
    resp = http.get(zoom.api_base + "/users/me", headers=auth(token))
    assert resp.status_code == 401
    assert resp.json()["code"] == 124


def test_users_me(zoom, http, zoom_tokens):
    # Given a Basic (free) plan user consents
    zoom.add_user(
        "free@example.com", first_name="Fred", last_name="Free", type=z.PLAN_BASIC, timezone="America/New_York"
    )
    zoom.set_next_consent("free@example.com")
    tok = zoom_tokens()["access_token"]
    # When users/me is read
    me = http.get(zoom.api_base + "/users/me", headers=auth(tok)).json()
    # Then the plan type and display name are there
    assert me["email"] == "free@example.com"
    assert me["type"] == 1
    assert me["display_name"] == "Fred Free"
    assert me["timezone"] == "America/New_York"
    assert me["account_id"]
    # And another user id is not found
    other = http.get(zoom.api_base + "/users/someone-else", headers=auth(tok))
    assert other.status_code == 404
    assert other.json()["code"] == 1001


def test_meeting_create_get_patch_delete(zoom, http, token):
    h = auth(token)
    # When a scheduled meeting is created for "me"
    created = http.post(zoom.api_base + "/users/me/meetings", headers=h, json=MEETING)
    # Then 201 with an int64 id, links and the settings echoed
    assert created.status_code == 201
    m = created.json()
    assert isinstance(m["id"], int)
    assert m["id"] >= 10**10
    assert m["join_url"].startswith(f"https://zoom.us/j/{m['id']}?pwd=")
    assert m["start_url"].startswith(f"https://zoom.us/s/{m['id']}")
    assert m["password"]
    assert m["start_time"] == "2030-03-04T09:00:00Z"
    assert m["timezone"] == "Europe/Berlin"
    assert m["settings"]["join_before_host"] is True
    assert m["settings"]["waiting_room"] is False
    url = f"{zoom.api_base}/meetings/{m['id']}"
    # When it is read back
    assert http.get(url, headers=h).json()["join_url"] == m["join_url"]
    # When it is moved
    patched = http.patch(url, headers=h, json={"start_time": "2030-03-05T10:00:00Z", "duration": 45})
    # Then 204 and the change is visible; the link stays
    assert patched.status_code == 204
    again = http.get(url, headers=h).json()
    assert again["start_time"] == "2030-03-05T10:00:00Z"
    assert again["duration"] == 45
    assert again["join_url"] == m["join_url"]
    # When it is deleted
    assert http.delete(url, headers=h).status_code == 204
    # Then get and a second delete answer 404 code 3001
    for resp in (http.get(url, headers=h), http.delete(url, headers=h)):
        assert resp.status_code == 404
        assert resp.json() == {"code": 3001, "message": f"Meeting does not exist: {m['id']}."}


def test_request_body_is_validated_against_the_openapi_schema(zoom, http, token):
    # When the type is not one of the documented enum values and duration is a string
    resp = http.post(
        zoom.api_base + "/users/me/meetings", headers=auth(token), json={**MEETING, "type": 7, "duration": "60"}
    )
    # Then Zoom's validation error
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == 300
    assert {e["field"] for e in body["errors"]} == {"type", "duration"}
    # And an undocumented field is recorded for the conformance report
    http.post(zoom.api_base + "/users/me/meetings", headers=auth(token), json={**MEETING, "colour": "blue"})
    findings = zoom.snapshot()["request_findings"]
    assert any("$.colour: unknown field" in f for entry in findings for f in entry["findings"])


def test_granular_scopes_from_openapi_are_enforced(zoom, http, zoom_tokens):
    # Given an app whose token lacks meeting:delete:meeting
    zoom.add_client(
        z.DEFAULT_CLIENT_ID,
        z.DEFAULT_CLIENT_SECRET,
        [z.DEFAULT_REDIRECT_URI],
        scopes=["meeting:write:meeting", "meeting:read:meeting"],
    )
    tok = zoom_tokens()["access_token"]
    m = http.post(zoom.api_base + "/users/me/meetings", headers=auth(tok), json=MEETING).json()
    # When it deletes a meeting or updates it
    delete = http.delete(f"{zoom.api_base}/meetings/{m['id']}", headers=auth(tok))
    patch = http.patch(f"{zoom.api_base}/meetings/{m['id']}", headers=auth(tok), json={"duration": 30})
    # Then Zoom's "does not contain scopes" error naming the granular scopes
    assert delete.status_code == 400
    assert delete.json() == {
        "code": 4711,
        "message": "Invalid access token, does not contain scopes:"
        "[meeting:delete:meeting, meeting:delete:meeting:admin].",
    }
    assert "meeting:update:meeting" in patch.json()["message"]
    # And users/me needs user:read:user
    assert http.get(zoom.api_base + "/users/me", headers=auth(tok)).json()["code"] == 4711


def test_daily_meeting_cap_returns_429_with_only_the_message(zoom, http, token, zoom_tokens):
    # Given a cap of 3 creates per user per day
    zoom.configure(meeting_daily_cap=3)
    h = auth(token)
    for _ in range(3):
        assert http.post(zoom.api_base + "/users/me/meetings", headers=h, json=MEETING).status_code == 201
    # When a 4th meeting is created the same UTC day
    resp = http.post(zoom.api_base + "/users/me/meetings", headers=h, json=MEETING)
    # Then 429 with Zoom's daily-limit body and, as the real capture (NOTES.md §6), only the message:
    # no X-RateLimit-Type and no Retry-After
    assert resp.status_code == 429
    assert resp.json()["code"] == 429
    assert resp.json()["message"].startswith(
        "You have exceeded the daily rate limit (3) of Meeting Create/Update API requests"
    )
    assert "X-RateLimit-Type" not in resp.headers
    assert "Retry-After" not in resp.headers
    # And updates count against the same cap
    m = zoom.meetings()[0]
    assert http.patch(f"{zoom.api_base}/meetings/{m['id']}", headers=h, json={"duration": 30}).status_code == 429
    # When the rate-limit docs' headers are switched on: the type header and an ISO Retry-After at 00:00 UTC
    zoom.configure(daily_cap_type_header=True, daily_cap_retry_after="iso")
    documented = http.post(zoom.api_base + "/users/me/meetings", headers=h, json=MEETING)
    assert documented.headers["X-RateLimit-Type"] == "Daily-limit"
    assert documented.headers["Retry-After"].endswith("T00:00:00Z")
    # When the seconds format is chosen
    zoom.configure(daily_cap_retry_after="seconds")
    secs = http.post(zoom.api_base + "/users/me/meetings", headers=h, json=MEETING).headers["Retry-After"]
    assert 0 < int(secs) <= 86400
    # And the next UTC day the cap is fresh again
    zoom.advance_clock(86400)
    fresh = auth(zoom_tokens()["access_token"])  # the old access token expired meanwhile
    assert http.post(zoom.api_base + "/users/me/meetings", headers=fresh, json=MEETING).status_code == 201


def test_deauthorization_webhook_is_signed(zoom, http):
    # Given a loopback receiver standing in for POST /webhooks/zoom
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, raw))
            body = json.loads(raw)
            answer = b"{}"
            if body["event"] == "endpoint.url_validation":
                plain = body["payload"]["plainToken"]
                enc = hmac.new(b"zoom-emulator-webhook-secret", plain.encode(), hashlib.sha256).hexdigest()
                answer = json.dumps({"plainToken": plain, "encryptedToken": enc}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks/zoom"
    try:
        # When Zoom validates the endpoint
        val = http.post(f"{zoom.base_url}/_admin/webhooks/url_validation", json={"url": url}).json()
        # Then the receiver's answer is judged correct
        assert val["valid_answer"] is True
        # When the user removes the app
        rec = zoom.send_deauthorization(url, "mentor@example.com")
        assert rec["status"] == 200
        headers, raw = got[-1]
        # Then the event is signed v0=HMAC(secret, "v0:{ts}:{body}")
        message = f"v0:{headers['x-zm-request-timestamp']}:".encode() + raw
        expected = "v0=" + hmac.new(b"zoom-emulator-webhook-secret", message, hashlib.sha256).hexdigest()
        assert headers["x-zm-signature"] == expected
        payload = json.loads(raw)
        assert payload["event"] == "app_deauthorized"
        assert payload["payload"]["client_id"] == z.DEFAULT_CLIENT_ID
    finally:
        server.shutdown()
        server.server_close()
