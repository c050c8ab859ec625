"""The provider components of the local stack: Google and Zoom emulators and Radicale (PRODUCT.md §4)."""

from __future__ import annotations

import os
import secrets
from urllib.parse import parse_qs, urlsplit

import caldav
import httpx
import pytest

from devstack.emulators import pkce_s256
from devstack.providers import CalDavProvider, GoogleProvider, ZoomProvider
from devstack.stack import Component, LocalStack


def test_stack_publishes_provider_endpoints_and_environment(local_stack: LocalStack) -> None:
    # Given the running stack (providers are on by default)
    google, zoom, caldav_ = (local_stack.component(n) for n in ("google", "zoom", "caldav"))
    assert isinstance(google, GoogleProvider)
    assert isinstance(zoom, ZoomProvider)
    assert isinstance(caldav_, CalDavProvider)
    assert all(isinstance(c, Component) for c in (google, zoom, caldav_))
    g, z, c = google.emulator.base_url, zoom.emulator.base_url, caldav_.server.url
    # Then endpoints list them
    endpoints = local_stack.endpoints()
    assert (endpoints["google"], endpoints["zoom"], endpoints["caldav"]) == (g, z, c)
    # And the functions' provider settings point at them
    from shared.platform.config import ProviderSettings, settings

    cfg = settings(ProviderSettings)
    assert cfg.google_auth_url == f"{g}/o/oauth2/v2/auth"
    assert cfg.google_token_url == f"{g}/token"
    assert cfg.google_revoke_url == f"{g}/revoke"
    assert cfg.google_userinfo_url == f"{g}/v1/userinfo"
    assert cfg.google_api_base == f"{g}/calendar/v3"
    assert cfg.google_client_id == google.client.client_id
    assert cfg.google_client_secret.get_secret_value() == google.client.client_secret
    assert cfg.zoom_auth_url == f"{z}/oauth/authorize"
    assert cfg.zoom_token_url == f"{z}/oauth/token"
    assert cfg.zoom_revoke_url == f"{z}/oauth/revoke"
    assert cfg.zoom_api_base == f"{z}/v2"
    assert cfg.zoom_client_id == zoom.client.client_id
    assert cfg.zoom_client_secret.get_secret_value() == zoom.client.client_secret
    assert cfg.zoom_webhook_secret_token.get_secret_value() == zoom.client.webhook_secret_token
    assert cfg.apple_caldav_url == c
    assert os.environ["APPLE_CALDAV_URL"] == c


def _authorize(authorize_url: str, client_id: str, redirect_uri: str, **extra: str) -> httpx.Response:
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": "st-1",
        "code_challenge": pkce_s256(verifier),
        "code_challenge_method": "S256",
        **extra,
    }
    return httpx.get(authorize_url, params=params, follow_redirects=False, timeout=10)


@pytest.mark.parametrize("provider", ["google", "zoom"])
def test_emulator_clients_accept_the_gateway_callback(local_stack: LocalStack, provider: str) -> None:
    # Given the stack's emulator and its OAuth client
    component = local_stack.component(provider)
    env = local_stack.environment()
    auth_url = env[f"{provider.upper()}_AUTH_URL"]
    client_id = env[f"{provider.upper()}_CLIENT_ID"]
    extra = {"scope": "openid email https://www.googleapis.com/auth/calendar.events"} if provider == "google" else {}
    callback = f"{local_stack.api_url}/oauth/{provider}/callback"
    # When the browser is sent to authorize with <API_URL>/oauth/<provider>/callback
    resp = _authorize(auth_url, client_id, callback, **extra)
    # Then the emulator consents and redirects back there with a code and the state
    assert resp.status_code in (302, 303), resp.text
    location = resp.headers["location"]
    assert location.startswith(callback + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    assert query["code"]
    # And a foreign redirect URI is still refused
    foreign = _authorize(auth_url, client_id, "http://127.0.0.1:1/evil", **extra)
    assert foreign.status_code == 400 or "redirect_uri_mismatch" in foreign.headers.get("location", foreign.text)
    # And the registration survives an emulator reset (tests reset emulators between cases)
    component.emulator.reset()
    again = _authorize(auth_url, client_id, callback, **extra)
    assert again.headers["location"].startswith(callback + "?")


def test_radicale_component_serves_caldav(local_stack: LocalStack) -> None:
    # Given an Apple-ID-like user on the stack's Radicale
    server = local_stack.component("caldav").server
    server.add_user("ada@icloud.example", "abcd-efgh-ijkl-mnop")
    url = local_stack.environment()["APPLE_CALDAV_URL"]
    # When a CalDAV client discovers the principal at APPLE_CALDAV_URL
    with caldav.DAVClient(url=url, username="ada@icloud.example", password="abcd-efgh-ijkl-mnop") as client:
        principal = client.principal()
    # Then it is found (and a wrong password is a 401)
    assert principal is not None
    wrong = httpx.request("PROPFIND", url + "/", auth=("ada@icloud.example", "wxyz-wxyz-wxyz-wxyz"), timeout=10)
    assert wrong.status_code == 401


def test_stack_without_providers_has_none(tmp_path) -> None:
    from devstack.jwt import LocalIssuer

    stack = LocalStack(issuer=LocalIssuer(tmp_path), providers=False, queue_workers=(), scheduler_autorun=False)
    assert stack.components == []
    with pytest.raises(KeyError):
        stack.component("zoom")
