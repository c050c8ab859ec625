"""shared.platform.auth: a mentor JWT checked like API Gateway's JWT authorizer checks it, against a JWKS that
is cached per container (TTL) and refetched, rate-limited, when an unknown key id shows up."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.jwt import LocalIssuer
from shared.platform.auth import (
    MAX_LEEWAY_S,
    MIN_REFETCH_S,
    AuthError,
    JwksUnavailable,
    JwtVerifier,
    _http_fetch,
    bearer_token,
    is_platform,
    token_scopes,
)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer(tmp_path_factory.mktemp("verifier-keys"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Jwks:
    """A JWKS endpoint stand-in that counts fetches and can switch keys."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuers = [issuer]
        self.fetches = 0

    def __call__(self, url: str, timeout_s: float) -> dict[str, Any]:
        self.fetches += 1
        return {"keys": [k for i in self.issuers for k in i.jwks()["keys"]]}


def _verifier(issuer: LocalIssuer, fetch: Any, clock: Clock | None = None, **kw: Any) -> JwtVerifier:
    return JwtVerifier(
        issuer=issuer.issuer,
        audience=issuer.audience,
        jwks_url="https://issuer.example/.well-known/jwks.json",
        fetch=fetch,
        clock=clock or Clock(),
        **kw,
    )


def test_a_good_token_passes_and_the_jwks_is_cached(issuer: LocalIssuer) -> None:
    jwks, clock = Jwks(issuer), Clock()
    verifier = _verifier(issuer, jwks, clock, ttl_s=600)
    for _ in range(5):
        assert verifier.verify(issuer.issue("mentor-1"))["sub"] == "mentor-1"
    assert jwks.fetches == 1
    # After the TTL the key set is fetched again
    clock.now += 601
    verifier.verify(issuer.issue("mentor-1"))
    assert jwks.fetches == 2


def test_a_rotated_key_is_picked_up_once_and_unknown_kids_cannot_storm(issuer: LocalIssuer, tmp_path: Path) -> None:
    jwks, clock = Jwks(issuer), Clock()
    verifier = _verifier(issuer, jwks, clock)
    verifier.verify(issuer.issue("m"))
    rotated = LocalIssuer(tmp_path, issuer=issuer.issuer, audience=issuer.audience)
    # Given the issuer starts signing with a new key the cache does not know
    jwks.issuers.append(rotated)
    # When a token with it arrives within MIN_REFETCH_S of the last fetch / Then it is refused without a fetch
    with pytest.raises(AuthError):
        verifier.verify(rotated.issue("m"))
    assert jwks.fetches == 1
    # When it arrives later / Then one refetch finds the key
    clock.now += MIN_REFETCH_S
    assert verifier.verify(rotated.issue("m"))["sub"] == "m"
    assert jwks.fetches == 2
    # And a burst of garbage key ids causes no further fetch
    for _ in range(20):
        with pytest.raises(AuthError):
            verifier.verify(_resign_header(issuer.issue("m"), kid="nope"))
    assert jwks.fetches == 2


def _resign_header(token: str, **header: Any) -> str:
    """``token`` with its header changed (the signature no longer matches)."""
    head, payload, sig = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(head + "=="))
    decoded.update(header)
    new_head = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{new_head}.{payload}.{sig}"


@pytest.mark.parametrize(
    "case",
    ["expired", "audience", "issuer", "not before", "no exp", "no sub", "alg none", "alg HS256", "garbage", "tampered"],
)
def test_bad_tokens_are_refused(issuer: LocalIssuer, case: str) -> None:
    verifier = _verifier(issuer, Jwks(issuer), leeway_s=5)
    makers: dict[str, Callable[[], str]] = {
        "expired": lambda: issuer.issue("m", ttl_s=-60),
        "audience": lambda: issuer.issue("m", aud="other-api"),
        "issuer": lambda: issuer.issue("m", iss="https://evil.example"),
        "not before": lambda: issuer.issue("m", nbf=int(time.time()) + 600),
        "no exp": lambda: issuer.issue("m", exp=None),
        "no sub": lambda: issuer.issue(""),
        "alg none": lambda: _resign_header(issuer.issue("m"), alg="none"),
        "alg HS256": lambda: _resign_header(issuer.issue("m"), alg="HS256"),
        "garbage": lambda: "not-a-jwt",
        "tampered": lambda: issuer.issue("m")[:-6] + "AAAAAA",
    }
    token = makers[case]()
    with pytest.raises(AuthError) as err:
        verifier.verify(token)
    assert token not in str(err.value)


def test_small_clock_skew_is_tolerated(issuer: LocalIssuer) -> None:
    verifier = _verifier(issuer, Jwks(issuer), leeway_s=5)
    assert verifier.verify(issuer.issue("m", ttl_s=-2))["sub"] == "m"


def test_the_leeway_is_at_most_five_seconds_by_default_and_by_setting(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the default verifier / When a token expired 25 s ago (or 8 s ago) is presented / Then refused
    verifier = _verifier(issuer, Jwks(issuer))
    assert verifier.leeway_s == MAX_LEEWAY_S == 5
    for ago in (25, 8):
        with pytest.raises(AuthError):
            verifier.verify(issuer.issue("m", ttl_s=-ago))
    # And a leeway over 5 s is refused, by the verifier and by the setting (JWT_LEEWAY_S)
    with pytest.raises(AuthError, match="leeway"):
        _verifier(issuer, Jwks(issuer), leeway_s=30)
    from pydantic import ValidationError

    from shared.platform.config import AuthSettings

    monkeypatch.setenv("JWT_LEEWAY_S", "30")
    with pytest.raises(ValidationError):
        AuthSettings()
    monkeypatch.setenv("JWT_LEEWAY_S", "2")
    assert AuthSettings().jwt_leeway_s == 2
    monkeypatch.delenv("JWT_LEEWAY_S")
    assert AuthSettings().jwt_leeway_s == 5


def test_every_configured_audience_is_accepted_and_client_id_stands_in_for_a_missing_aud(
    issuer: LocalIssuer,
) -> None:
    # Given the audiences of the mentor app and of the platform's client (API Gateway's list)
    verifier = JwtVerifier(
        issuer=issuer.issuer,
        audience=f"{issuer.audience}, platform-client",
        jwks_url="https://issuer.example/.well-known/jwks.json",
        fetch=Jwks(issuer),
    )
    # Then either aud passes, and a Cognito-style access token (no aud) passes on its client_id
    assert verifier.verify(issuer.issue("m"))["sub"] == "m"
    assert verifier.verify(issuer.issue("p", aud="platform-client"))["sub"] == "p"
    assert verifier.verify(issuer.issue("p", aud=None, client_id="platform-client"))["sub"] == "p"
    # And another audience, or no aud with a foreign client_id, is refused
    for token in (issuer.issue("x", aud="else"), issuer.issue("x", aud=None, client_id="else")):
        with pytest.raises(AuthError):
            verifier.verify(token)


def test_scopes_are_read_as_api_gateway_reads_them() -> None:
    assert token_scopes({"scope": "platform  read"}) == {"platform", "read"}
    assert token_scopes({"scp": ["platform"]}) == {"platform"}
    assert token_scopes({"scp": "[a platform]"}) == {"a", "platform"}  # as API Gateway flattens a list
    assert token_scopes({"sub": "m"}) == frozenset()
    assert is_platform({"scope": "openid platform"})
    assert not is_platform({"scope": "platformer"})
    assert is_platform({"scope": "https://api.example/platform"}, "https://api.example/platform")


def test_configuration_and_fetch_failures() -> None:
    with pytest.raises(AuthError, match="not configured"):
        JwtVerifier(issuer="", audience="a", jwks_url="u")
    # Nothing listens on this port: the fetch fails fast with JwksUnavailable
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(JwksUnavailable):
        _http_fetch(f"http://127.0.0.1:{port}/.well-known/jwks.json", 1.0)
    assert time.monotonic() - started < 3


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    for value in (None, "", "Bearer", "Bearer ", "Basic abc", "abc"):
        assert bearer_token(value) is None
