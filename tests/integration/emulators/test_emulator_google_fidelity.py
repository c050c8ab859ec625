"""Google emulator against Google's documented answers (../shared/specs/NOTES.md §6): ``events.watch``
refuses non-HTTPS addresses (400 ``push.webhookUrlNotHttps``) unless the local stack allows http on
loopback, and events honour ``If-Match`` (stale: 412 ``conditionNotMet``) and ``If-None-Match``
(current: 304 on get) as the "Versioning resources" guide describes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.emulators import GoogleEmulator
from devstack.emulators import google as g
from devstack.emulators.common import pkce_s256


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


EVENT = {
    "summary": "Morning yoga",
    "start": {"dateTime": "2030-03-04T10:00:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2030-03-04T11:00:00", "timeZone": "Europe/Berlin"},
}


@pytest.fixture
def token(google_tokens: Any) -> str:
    return str(google_tokens()["access_token"])


@pytest.fixture
def events_url(google: GoogleEmulator) -> str:
    return str(google.calendar_base) + "/calendars/primary/events"


@pytest.fixture(scope="module")
def strict_google() -> Iterator[GoogleEmulator]:
    """An emulator built as a test would build it, with no knob: Google's own rules."""
    emu = GoogleEmulator().start()
    yield emu
    emu.stop()


def _token_for(emu: GoogleEmulator, http: httpx.Client) -> str:
    verifier = "v" * 64
    resp = http.get(
        emu.authorize_url,
        params={
            "client_id": g.DEFAULT_CLIENT_ID,
            "redirect_uri": g.DEFAULT_REDIRECT_URI,
            "response_type": "code",
            "scope": f"openid email {g.SCOPE_EVENTS} {g.SCOPE_READONLY}",
            "state": "s",
            "code_challenge": pkce_s256(verifier),
            "code_challenge_method": "S256",
        },
    )
    code = httpx.URL(resp.headers["location"]).params["code"]
    tok = http.post(
        emu.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": g.DEFAULT_CLIENT_ID,
            "client_secret": g.DEFAULT_CLIENT_SECRET,
            "redirect_uri": g.DEFAULT_REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    return str(tok.json()["access_token"])


def _watch(http: httpx.Client, emu: GoogleEmulator, token: str, cid: str, address: str) -> httpx.Response:
    return http.post(
        f"{emu.calendar_base}/calendars/primary/events/watch",
        headers=auth(token),
        json={"id": cid, "type": "web_hook", "address": address},
    )


def test_watch_refuses_a_non_https_address_by_default(strict_google: GoogleEmulator, http: httpx.Client) -> None:
    # Given an emulator with Google's defaults
    strict_google.reset()
    token = _token_for(strict_google, http)
    # When a channel is opened to an http address, even on loopback
    for cid, address in [("c-http", "http://127.0.0.1:9/webhooks/google"), ("c-ext", "http://example.com/hook")]:
        resp = _watch(http, strict_google, token, cid, address)
        # Then Google's 400 push.webhookUrlNotHttps
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert error["code"] == 400
        assert error["errors"][0]["reason"] == "push.webhookUrlNotHttps"
        assert error["message"] == f"WebHook callback must be HTTPS: {address}"
    # And an https address is taken
    assert _watch(http, strict_google, token, "c-https", "https://api.example.test/webhooks/google").status_code == 200


def test_the_loopback_knob_allows_http_on_loopback_only(google: GoogleEmulator, http: httpx.Client, token: str) -> None:
    # Given the local stack's knob (the session emulator is built with allow_http_loopback_push; the
    # fixture's reset kept it)
    assert google.state.allow_http_loopback_push is True
    # Then http on loopback is taken, http elsewhere still refused
    assert _watch(http, google, token, "loop", "http://127.0.0.1:9/webhooks/google").status_code == 200
    assert _watch(http, google, token, "local", "http://localhost:9/webhooks/google").status_code == 200
    other = _watch(http, google, token, "ext", "http://example.com/hook")
    assert other.json()["error"]["errors"][0]["reason"] == "push.webhookUrlNotHttps"
    # And with require_https_push off (per-test setting), any http address is taken
    google.configure(require_https_push=False)
    assert _watch(http, google, token, "ext2", "http://example.com/hook").status_code == 200


def _created(http: httpx.Client, events_url: str, token: str) -> dict[str, Any]:
    resp = http.post(events_url, headers=auth(token), json=EVENT)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


def _assert_precondition_failed(resp: httpx.Response, header: str) -> None:
    assert resp.status_code == 412
    error = resp.json()["error"]
    assert (error["code"], error["message"]) == (412, "Precondition Failed")
    assert error["errors"][0]["reason"] == "conditionNotMet"
    assert (error["errors"][0]["location"], error["errors"][0]["locationType"]) == (header, "header")


def test_if_none_match_on_get(http: httpx.Client, events_url: str, token: str) -> None:
    ev = _created(http, events_url, token)
    url = f"{events_url}/{ev['id']}"
    # When the etag held is current / Then 304 with no body
    same = http.get(url, headers={**auth(token), "If-None-Match": ev["etag"]})
    assert same.status_code == 304
    assert same.content == b""
    # When the event changed since / Then 200 with the new etag
    patched = http.patch(url, headers=auth(token), json={"summary": "Evening yoga"}).json()
    fresh = http.get(url, headers={**auth(token), "If-None-Match": ev["etag"]})
    assert fresh.status_code == 200
    assert fresh.json()["etag"] == patched["etag"] != ev["etag"]


def test_if_match_on_patch_update_and_delete(http: httpx.Client, events_url: str, token: str) -> None:
    ev = _created(http, events_url, token)
    url = f"{events_url}/{ev['id']}"
    # Given the event changed after the etag was read
    current = http.patch(url, headers=auth(token), json={"summary": "Changed elsewhere"}).json()
    stale = {**auth(token), "If-Match": ev["etag"]}
    # When patch / update / delete carry the stale etag / Then 412 and nothing changes
    _assert_precondition_failed(http.patch(url, headers=stale, json={"summary": "Lost update"}), "If-Match")
    _assert_precondition_failed(http.put(url, headers=stale, json={**EVENT, "summary": "Lost update"}), "If-Match")
    _assert_precondition_failed(http.delete(url, headers=stale), "If-Match")
    after = http.get(url, headers=auth(token)).json()
    assert (after["summary"], after["etag"], after["status"]) == ("Changed elsewhere", current["etag"], "confirmed")
    # When they carry the current etag / Then they apply
    patched = http.patch(url, headers={**auth(token), "If-Match": current["etag"]}, json={"summary": "Mine"})
    assert patched.status_code == 200
    updated = http.put(url, headers={**auth(token), "If-Match": patched.json()["etag"]}, json=EVENT)
    assert updated.status_code == 200
    deleted = http.delete(url, headers={**auth(token), "If-Match": updated.json()["etag"]})
    assert deleted.status_code == 204
    # And a stale If-Match on get is refused too; If-None-Match with the current etag on a write is 412
    ev2 = _created(http, events_url, token)
    url2 = f"{events_url}/{ev2['id']}"
    _assert_precondition_failed(http.get(url2, headers={**auth(token), "If-Match": '"0"'}), "If-Match")
    _assert_precondition_failed(
        http.patch(url2, headers={**auth(token), "If-None-Match": ev2["etag"]}, json={"summary": "x"}), "If-None-Match"
    )
    assert http.get(url2, headers={**auth(token), "If-Match": ev2["etag"]}).status_code == 200
