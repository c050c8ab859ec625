"""What we send to Zoom and how we read its answers, against the documented / captured shapes
(../shared/specs/NOTES.md §6): no ``scope`` on the authorize URL nor in the refresh body, and the daily
create cap recognised from the real answer, which carries only the message."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr

from shared.platform.config import ProviderSettings
from shared.providers.oauth import OAuthClient, new_code_verifier, new_state, oauth_app
from shared.providers.zoom.errors import zoom_meeting_error, zoom_retryable
from shared.store.models import Provider

TOKEN = SecretStr("tok-unit-zoom")
DAILY = "You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this user."


def _client(provider: Provider, transport: httpx.BaseTransport | None = None) -> OAuthClient:
    return OAuthClient(
        oauth_app(provider, ProviderSettings()),
        redirect_uri="https://api.example.test/oauth/cb",
        transport=transport,
        sleep=lambda _: None,
    )


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_zoom_authorize_url_has_no_scope_and_google_keeps_it() -> None:
    zoom = _query(_client(Provider.ZOOM).authorization_url(state=new_state(), code_verifier=new_code_verifier()))
    assert "scope" not in zoom
    assert set(zoom) == {
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
    google = _query(_client(Provider.GOOGLE).authorization_url(state=new_state(), code_verifier=new_code_verifier()))
    assert "scope" in google


def _refresh_body(provider: Provider) -> dict[str, list[str]]:
    sent: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.read())
        return httpx.Response(
            200, json={"access_token": "a2", "refresh_token": "r2", "token_type": "bearer", "expires_in": 3599}
        )

    _client(provider, httpx.MockTransport(handler)).refresh(SecretStr("r1"))
    (body,) = sent
    return parse_qs(body.decode())


def test_zoom_refresh_body_has_no_scope() -> None:
    assert _refresh_body(Provider.ZOOM) == {"grant_type": ["refresh_token"], "refresh_token": ["r1"]}


def test_the_real_daily_cap_answer_is_recognised_and_not_retried_in_process() -> None:
    # Given the real answer: 429, Zoom's body, no X-RateLimit-Type and no Retry-After
    real = httpx.Response(429, json={"code": 429, "message": DAILY})
    # Then it is not retried in-process, and it is the daily cap with the wait until 00:00 UTC
    assert zoom_retryable(real) is False
    err = zoom_meeting_error(real, TOKEN)
    assert (err.code, err.retryable) == ("daily_cap", True)
    assert err.retry_after_s is not None
    assert 0 < err.retry_after_s <= 86400


def test_a_per_second_429_is_still_retried() -> None:
    qps = httpx.Response(
        429,
        headers={"X-RateLimit-Type": "QPS", "Retry-After": "1"},
        json={"code": 4001, "message": "You have reached the maximum per-second rate limit for this API."},
    )
    assert zoom_retryable(qps) is True
    assert zoom_meeting_error(qps, TOKEN).code != "daily_cap"
