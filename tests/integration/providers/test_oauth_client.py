"""The authlib-based OAuth client against the Google and Zoom emulators (real HTTP on loopback)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from devstack.emulators import GoogleEmulator, ZoomEmulator
from devstack.emulators import google as g
from devstack.emulators import zoom as z
from devstack.providers import provider_settings
from shared.providers.oauth import (
    InvalidGrantError,
    OAuthClient,
    OAuthError,
    ProviderUnavailableError,
    new_code_verifier,
    new_state,
    oauth_app,
)
from shared.store import Provider


@pytest.fixture(scope="module")
def emulators() -> Iterator[tuple[GoogleEmulator, ZoomEmulator]]:
    google, zoom = GoogleEmulator().start(), ZoomEmulator().start()
    yield google, zoom
    google.stop()
    zoom.stop()


@pytest.fixture(params=[Provider.GOOGLE, Provider.ZOOM])
def client(request: pytest.FixtureRequest, emulators: tuple[GoogleEmulator, ZoomEmulator]) -> OAuthClient:
    google, zoom = emulators
    google.reset()
    zoom.reset()
    provider: Provider = request.param
    redirect = g.DEFAULT_REDIRECT_URI if provider is Provider.GOOGLE else z.DEFAULT_REDIRECT_URI
    return OAuthClient(
        oauth_app(provider, provider_settings(google, zoom)), redirect_uri=redirect, sleep=lambda _: None
    )


def _consent(client: OAuthClient) -> tuple[str, str, dict[str, str]]:
    """Follow the authorize URL like a browser whose user consents; return (code, verifier, query)."""
    state, verifier = new_state(), new_code_verifier()
    url = client.authorization_url(state=state, code_verifier=verifier)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    resp = httpx.get(url, follow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    back = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["location"]).query).items()}
    assert back["state"] == state
    return back["code"], verifier, query


#: What each provider documents on its authorize URL (Zoom: no ``scope``, NOTES.md §6).
DOCUMENTED_AUTHORIZE_PARAMS = {
    Provider.GOOGLE: {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "access_type",
        "prompt",
        "include_granted_scopes",
        "login_hint",
    },
    Provider.ZOOM: {"response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"},
}


def test_authorize_url_carries_pkce_state_and_scopes(client: OAuthClient) -> None:
    # Given / When the authorize URL is built
    _, _, query = _consent(client)
    # Then it has PKCE S256, the redirect and only parameters the provider documents
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == client.redirect_uri
    assert set(query) <= DOCUMENTED_AUTHORIZE_PARAMS[client.app.provider]
    if client.app.provider is Provider.GOOGLE:
        # Google: the scopes asked for, and offline consent
        assert set(query["scope"].split()) == set(client.app.scopes)
        assert (query["access_type"], query["prompt"]) == ("offline", "consent")
    else:
        # Zoom: no scope at all (the app's scopes are set in the Marketplace)
        assert "scope" not in query


def test_zoom_token_requests_carry_no_scope(emulators: tuple[GoogleEmulator, ZoomEmulator]) -> None:
    """Given a Zoom connection / When the code is exchanged and the token refreshed
    Then neither body carries ``scope`` (authlib adds it when the client is built with one)."""
    google, zoom = emulators
    zoom.reset()
    client = OAuthClient(
        oauth_app(Provider.ZOOM, provider_settings(google, zoom)),
        redirect_uri=z.DEFAULT_REDIRECT_URI,
        sleep=lambda _: None,
    )
    code, verifier, _ = _consent(client)
    tokens = client.exchange_code(code=code, code_verifier=verifier)
    assert tokens.refresh_token is not None
    client.refresh(tokens.refresh_token)
    (exchange,) = zoom.token_requests("authorization_code")
    (refresh,) = zoom.token_requests("refresh_token")
    assert exchange["status"] == refresh["status"] == 200
    assert exchange["param_names"] == ["code", "code_verifier", "grant_type", "redirect_uri"]
    assert refresh["param_names"] == ["grant_type", "refresh_token"]


def test_zoom_wrong_client_secret_is_invalid_client_not_invalid_grant(
    emulators: tuple[GoogleEmulator, ZoomEmulator],
) -> None:
    """Given a wrong Zoom client secret / When a code is exchanged
    Then an OAuthError 'invalid_client' (Zoom answers 400), not a reconnect-worthy invalid_grant."""
    google, zoom = emulators
    zoom.reset()
    good = oauth_app(Provider.ZOOM, provider_settings(google, zoom))
    client = OAuthClient(good, redirect_uri=z.DEFAULT_REDIRECT_URI, sleep=lambda _: None)
    code, verifier, _ = _consent(client)
    bad = OAuthClient(
        dataclasses.replace(good, client_secret=SecretStr("not-the-secret")),
        redirect_uri=z.DEFAULT_REDIRECT_URI,
        sleep=lambda _: None,
    )
    with pytest.raises(OAuthError) as caught:
        bad.exchange_code(code=code, code_verifier=verifier)
    assert caught.value.code == "invalid_client"
    assert not isinstance(caught.value, InvalidGrantError)
    assert [c["status"] for c in zoom.token_requests("authorization_code")] == [400]


def test_code_exchange_refresh_and_revoke(client: OAuthClient) -> None:
    # Given a consented code
    code, verifier, _ = _consent(client)
    # When it is exchanged and the refresh token used
    tokens = client.exchange_code(code=code, code_verifier=verifier)
    assert tokens.refresh_token is not None
    refreshed = client.refresh(tokens.refresh_token)
    # Then new access tokens arrive; Zoom rotates the refresh token, Google keeps it
    assert refreshed.access_token.get_secret_value() != tokens.access_token.get_secret_value()
    assert refreshed.refresh_token is not None
    rotated = refreshed.refresh_token.get_secret_value() != tokens.refresh_token.get_secret_value()
    assert rotated is (client.app.provider is Provider.ZOOM)
    # And a replayed code is invalid_grant
    with pytest.raises(InvalidGrantError):
        client.exchange_code(code=code, code_verifier=verifier)
    # And after revoking, refreshing is invalid_grant (the mentor must reconnect)
    client.revoke(refreshed.access_token if client.app.provider is Provider.ZOOM else refreshed.refresh_token)
    if client.app.provider is Provider.GOOGLE:
        with pytest.raises(InvalidGrantError):
            client.refresh(refreshed.refresh_token)


def test_zoom_old_refresh_token_is_dead_after_rotation(emulators: tuple[GoogleEmulator, ZoomEmulator]) -> None:
    google, zoom = emulators
    zoom.reset()
    client = OAuthClient(
        oauth_app(Provider.ZOOM, provider_settings(google, zoom)),
        redirect_uri=z.DEFAULT_REDIRECT_URI,
        sleep=lambda _: None,
    )
    code, verifier, _ = _consent(client)
    first = client.exchange_code(code=code, code_verifier=verifier)
    assert first.refresh_token is not None
    client.refresh(first.refresh_token)
    with pytest.raises(InvalidGrantError) as caught:
        client.refresh(first.refresh_token)
    assert first.refresh_token.get_secret_value() not in str(caught.value)


def test_token_endpoint_429_is_retried_then_succeeds(
    client: OAuthClient, emulators: tuple[GoogleEmulator, ZoomEmulator]
) -> None:
    google, zoom = emulators
    emu = google if client.app.provider is Provider.GOOGLE else zoom
    code, verifier, _ = _consent(client)
    # Given the token endpoint answers 429 twice
    emu.set_faults(forced=[{"status": 429, "count": 2, "path_prefix": client.app.token_url.split(emu.base_url)[1]}])
    # When exchanging / Then the client backs off and gets the tokens on the third try
    tokens = client.exchange_code(code=code, code_verifier=verifier)
    assert tokens.access_token.get_secret_value()


def test_persistent_5xx_becomes_provider_unavailable(
    client: OAuthClient, emulators: tuple[GoogleEmulator, ZoomEmulator]
) -> None:
    google, zoom = emulators
    emu = google if client.app.provider is Provider.GOOGLE else zoom
    code, verifier, _ = _consent(client)
    emu.set_faults(forced=[{"status": 503, "count": 10, "path_prefix": client.app.token_url.split(emu.base_url)[1]}])
    with pytest.raises(ProviderUnavailableError):
        client.exchange_code(code=code, code_verifier=verifier)
    emu.clear_faults()
