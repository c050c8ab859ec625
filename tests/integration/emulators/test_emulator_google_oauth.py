"""Google OAuth emulator: authorization code + PKCE, refresh, revoke, consent knobs, userinfo."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack.emulators import google as g

CAL = "/calendar/v3"


def q(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def exchange(http: Any, google: Any, code: str, verifier: str, **over: str) -> Any:
    data = {
        "code": code,
        "client_id": g.DEFAULT_CLIENT_ID,
        "client_secret": g.DEFAULT_CLIENT_SECRET,
        "redirect_uri": g.DEFAULT_REDIRECT_URI,
        "grant_type": "authorization_code",
        "code_verifier": verifier,
    }
    data.update(over)
    return http.post(google.token_url, data=data)


def test_full_code_pkce_flow_issues_google_shaped_tokens(google, http, google_authorize):
    # Given a registered client and the default seeded user
    # When the browser hits the authorize endpoint with PKCE S256, offline access and consent
    resp, pkce = google_authorize(state="abc123")
    # Then it is redirected to the exact redirect_uri with code, state and granted scope
    assert resp.status_code == 302
    location = resp.headers["location"]
    assert location.startswith(g.DEFAULT_REDIRECT_URI + "?")
    params = q(location)
    assert params["state"] == "abc123"
    assert params["code"].startswith("4/0")
    assert g.SCOPE_EVENTS in params["scope"].split()
    # When the code is exchanged with the verifier (client_secret_post)
    tok = exchange(http, google, params["code"], pkce.verifier)
    # Then Google-shaped tokens come back
    assert tok.status_code == 200
    body = tok.json()
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//")
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) >= {g.SCOPE_EVENTS, g.SCOPE_READONLY}
    # And the PKCE challenge was recorded with the code
    code = google.snapshot()["codes"][0]
    assert code["code_challenge"] == pkce.challenge
    assert code["code_challenge_method"] == "S256"
    assert google.token_calls("authorization_code") == 1


def test_client_secret_basic_is_accepted(google, http, google_authorize):
    # Given a fresh code
    resp, pkce = google_authorize()
    code = q(resp.headers["location"])["code"]
    # When the client authenticates with HTTP Basic instead of form fields
    tok = http.post(
        google.token_url,
        auth=(g.DEFAULT_CLIENT_ID, g.DEFAULT_CLIENT_SECRET),
        data={
            "code": code,
            "redirect_uri": g.DEFAULT_REDIRECT_URI,
            "grant_type": "authorization_code",
            "code_verifier": pkce.verifier,
        },
    )
    # Then the exchange succeeds
    assert tok.status_code == 200, tok.text


def test_wrong_verifier_redirect_mismatch_and_code_reuse_are_rejected(google, http, google_authorize):
    # Given a fresh code
    resp, pkce = google_authorize()
    code = q(resp.headers["location"])["code"]
    # When the verifier is wrong
    bad = exchange(http, google, code, "x" * 50)
    # Then invalid_grant
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}
    # When the redirect_uri differs from the one used at authorize
    mismatch = exchange(http, google, code, pkce.verifier, redirect_uri="http://127.0.0.1:9/other")
    # Then Google's redirect_uri_mismatch
    assert mismatch.status_code == 400
    assert mismatch.json()["error"] == "redirect_uri_mismatch"
    # When the code is finally used correctly, then a second time
    assert exchange(http, google, code, pkce.verifier).status_code == 200
    reuse = exchange(http, google, code, pkce.verifier)
    # Then the reuse gets invalid_grant
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"


def test_authorize_rejects_unregistered_redirect_uri_without_redirecting(google, google_authorize):
    # When the redirect_uri is not an exact match of a registered one
    resp, _ = google_authorize(redirect_uri=g.DEFAULT_REDIRECT_URI + "/")
    # Then there is no redirect (the error is shown to the user)
    assert resp.status_code == 400
    assert resp.json()["error"] == "redirect_uri_mismatch"
    # And an unknown client gets invalid_client
    resp2, _ = google_authorize(client_id="nope.apps.googleusercontent.com")
    assert resp2.status_code == 401
    assert resp2.json()["error"] == "invalid_client"


def test_deny_knob_redirects_with_access_denied_and_state(google, google_authorize):
    # Given the admin says the next consent is denied
    google.deny_next_consent()
    # When the user goes through authorize
    resp, _ = google_authorize(state="keep-me")
    # Then the app gets error=access_denied with its state
    assert resp.status_code == 302
    assert q(resp.headers["location"]) == {"state": "keep-me", "error": "access_denied"}
    # And the following consent works again
    resp2, _ = google_authorize()
    assert "code" in q(resp2.headers["location"])


def test_consenting_user_follows_admin_choice_then_login_hint(google, http, google_tokens):
    # Given two seeded users and the admin choosing the second one for the next consent
    google.add_user("second@example.com", "Second Mentor")
    google.set_next_consent("second@example.com")
    # When the flow runs
    tok = google_tokens()
    # Then the tokens belong to that user
    info = http.get(google.userinfo_url, headers=auth(tok["access_token"])).json()
    assert info["email"] == "second@example.com"
    assert info["email_verified"] is True
    assert info["sub"]
    # When the app passes login_hint instead
    tok2 = google_tokens(login_hint="hinted@example.com")
    # Then that account consents (created on the fly)
    assert http.get(google.userinfo_url, headers=auth(tok2["access_token"])).json()["email"] == "hinted@example.com"


def test_refresh_returns_new_access_token_without_new_refresh_token(google, http, google_tokens):
    # Given tokens from a consent
    tok = google_tokens()
    # When the refresh token is used
    r = http.post(
        google.token_url,
        data={
            "client_id": g.DEFAULT_CLIENT_ID,
            "client_secret": g.DEFAULT_CLIENT_SECRET,
            "refresh_token": tok["refresh_token"],
            "grant_type": "refresh_token",
        },
    )
    # Then a new access token, and no refresh token (Google keeps the same one)
    assert r.status_code == 200
    body = r.json()
    assert body["access_token"] != tok["access_token"]
    assert "refresh_token" not in body
    assert google.token_calls("refresh_token") == 1


def test_revoke_then_refresh_gets_invalid_grant(google, http, google_tokens):
    # Given tokens
    tok = google_tokens()
    # When the access token is revoked (POST /revoke?token=)
    rv = http.post(google.revoke_url, params={"token": tok["access_token"]})
    # Then 200 {} and its refresh token is revoked too
    assert rv.status_code == 200
    assert rv.json() == {}
    r = http.post(
        google.token_url,
        data={
            "client_id": g.DEFAULT_CLIENT_ID,
            "client_secret": g.DEFAULT_CLIENT_SECRET,
            "refresh_token": tok["refresh_token"],
            "grant_type": "refresh_token",
        },
    )
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    # And revoking again (form body) says invalid_token
    again = http.post(google.revoke_url, data={"token": tok["access_token"]})
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_token", "error_description": "Token expired or revoked"}
    # And the API refuses the revoked access token with the authError envelope
    api = http.get(google.calendar_base + "/users/me/calendarList", headers=auth(tok["access_token"]))
    assert api.status_code == 401
    assert api.json()["error"]["errors"][0]["reason"] == "authError"
    assert api.json()["error"]["status"] == "UNAUTHENTICATED"
    calls = google.snapshot()["revoke_calls"]
    assert [c["ok"] for c in calls] == [True, False]


def test_server_side_revoke_knob(google, http, google_tokens):
    # Given tokens, when the admin revokes the grant server-side over the admin API
    tok = google_tokens()
    r = http.post(f"{google.base_url}/_admin/tokens/revoke", json={"email": "mentor@example.com"})
    assert r.json()["revoked"] >= 1
    # Then refresh fails with invalid_grant
    resp = http.post(
        google.token_url,
        data={
            "client_id": g.DEFAULT_CLIENT_ID,
            "client_secret": g.DEFAULT_CLIENT_SECRET,
            "refresh_token": tok["refresh_token"],
            "grant_type": "refresh_token",
        },
    )
    assert resp.json()["error"] == "invalid_grant"


def test_refresh_token_only_on_first_consent_unless_prompt_consent(google, google_tokens):
    # Given a first offline consent without prompt=consent
    first = google_tokens(prompt=None)
    assert "refresh_token" in first
    # When the same user consents again without prompt=consent
    second = google_tokens(prompt=None)
    # Then Google does not issue another refresh token
    assert "refresh_token" not in second
    # And with prompt=consent it does
    assert "refresh_token" in google_tokens(prompt="consent")


def test_access_token_expires_with_the_emulator_clock(google, http, google_tokens):
    # Given a valid token
    tok = google_tokens()
    url = google.calendar_base + "/users/me/calendarList"
    assert http.get(url, headers=auth(tok["access_token"])).status_code == 200
    # When an hour passes on the emulator clock
    google.advance_clock(3600)
    # Then the API answers 401 authError
    resp = http.get(url, headers=auth(tok["access_token"]))
    assert resp.status_code == 401
    assert resp.json()["error"]["errors"][0]["reason"] == "authError"
    assert "invalid_token" in resp.headers["WWW-Authenticate"]


def test_scope_enforcement_follows_the_discovery_document(google, http, google_tokens):
    # Given a token with calendar.events only (which cannot read free/busy or the calendar list)
    tok = google_tokens(scope=g.SCOPE_EVENTS)
    h = auth(tok["access_token"])
    # When freeBusy and calendarList are called
    fb = http.post(
        google.calendar_base + "/freeBusy",
        headers=h,
        json={"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-02T00:00:00Z", "items": [{"id": "primary"}]},
    )
    cl = http.get(google.calendar_base + "/users/me/calendarList", headers=h)
    # Then both are 403 insufficientPermissions / ACCESS_TOKEN_SCOPE_INSUFFICIENT
    for resp in (fb, cl):
        assert resp.status_code == 403
        err = resp.json()["error"]
        assert err["errors"][0]["reason"] == "insufficientPermissions"
        assert err["status"] == "PERMISSION_DENIED"
        assert err["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert fb.json()["error"]["details"][0]["metadata"]["method"] == "calendar.v3.Freebusy.Query"
    # And events.insert is allowed
    ins = http.post(
        google.calendar_base + "/calendars/primary/events",
        headers=h,
        json={"start": {"dateTime": "2030-01-01T10:00:00Z"}, "end": {"dateTime": "2030-01-01T11:00:00Z"}},
    )
    assert ins.status_code == 200


def test_missing_credentials_get_login_required(google, http):
    # When no Authorization header is sent
    resp = http.get(google.calendar_base + "/users/me/calendarList")
    # Then 401 with reason "required"
    assert resp.status_code == 401
    assert resp.json()["error"]["errors"][0]["reason"] == "required"


def test_partial_consent_knob_grants_fewer_scopes(google, google_tokens):
    # Given the user will only tick calendar.events on the consent screen
    google.set_next_consent(scopes=[g.SCOPE_EVENTS])
    # When the app asks for events + readonly
    tok = google_tokens()
    # Then the token response shows only what was granted
    assert g.SCOPE_READONLY not in tok["scope"].split()
    assert g.SCOPE_EVENTS in tok["scope"].split()


def test_testing_mode_refresh_tokens_expire(google, http, google_tokens):
    # Given refresh tokens that live 7 days (a consent screen in "Testing" mode)
    google.configure(refresh_token_ttl_seconds=7 * 86400)
    tok = google_tokens()
    assert tok["refresh_token_expires_in"] == 7 * 86400
    # When 7 days pass
    google.advance_clock(7 * 86400)
    resp = http.post(
        google.token_url,
        data={
            "client_id": g.DEFAULT_CLIENT_ID,
            "client_secret": g.DEFAULT_CLIENT_SECRET,
            "refresh_token": tok["refresh_token"],
            "grant_type": "refresh_token",
        },
    )
    # Then the refresh is refused like a revoked one
    assert resp.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
