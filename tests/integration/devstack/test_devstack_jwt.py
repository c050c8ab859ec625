"""The local JWT issuer: persisted RS256 keys, issue() and verify()."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt as pyjwt
import pytest

from devstack import jwt as devjwt
from devstack.jwt import AUDIENCE, ISSUER, LocalIssuer, TokenError


def test_issued_token_verifies_with_standard_claims(tmp_path: Path) -> None:
    # Given an issuer with a fresh key directory
    issuer = LocalIssuer(tmp_path)
    # When a token is issued for a mentor with an extra claim
    token = issuer.issue("mentor-1", ttl_s=120, plan="pro")
    # Then it verifies and carries sub, iss, aud, exp and the extra claim
    claims = issuer.verify(token)
    assert claims["sub"] == "mentor-1"
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["plan"] == "pro"
    assert 115 <= claims["exp"] - time.time() <= 121
    assert pyjwt.get_unverified_header(token) == {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}


def test_key_pair_is_persisted_and_shared(tmp_path: Path) -> None:
    # Given a token from one issuer
    token = LocalIssuer(tmp_path).issue("mentor-1")
    # When another issuer (another process, later) loads the same directory
    again = LocalIssuer(tmp_path)
    # Then it has the same key and accepts the token; the key file is private
    assert again.verify(token)["sub"] == "mentor-1"
    key_file = tmp_path / devjwt.PRIVATE_KEY_FILE
    assert key_file.stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == [devjwt.PRIVATE_KEY_FILE]


@pytest.mark.parametrize(
    ("claims", "ttl_s"),
    [
        ({}, -30),  # expired
        ({"aud": "another-api"}, 3600),
        ({"iss": "https://accounts.example.com"}, 3600),
        ({"nbf": int(time.time()) + 600}, 3600),  # not valid yet
    ],
)
def test_verify_rejects_bad_claims(tmp_path: Path, claims: dict[str, object], ttl_s: int) -> None:
    issuer = LocalIssuer(tmp_path)
    with pytest.raises(TokenError):
        issuer.verify(issuer.issue("mentor-1", ttl_s=ttl_s, **claims))


def test_verify_rejects_tampering_and_foreign_keys(tmp_path: Path) -> None:
    # Given a token and a second issuer with its own key
    issuer = LocalIssuer(tmp_path / "a")
    token = issuer.issue("mentor-1")
    header, payload, signature = token.split(".")
    forged_payload = pyjwt.utils.base64url_encode(
        json.dumps({**issuer.verify(token), "sub": "mentor-2"}).encode()
    ).decode()
    # Then a changed payload, a changed signature and another key's token are all refused
    for bad in (
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{signature[::-1]}",
        LocalIssuer(tmp_path / "b").issue("mentor-1"),
        "not.a.jwt",
    ):
        with pytest.raises(TokenError):
            issuer.verify(bad)


def test_module_level_helpers_use_devstack_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given DEVSTACK_DIR pointing somewhere
    monkeypatch.setenv("DEVSTACK_DIR", str(tmp_path))
    # When the module-level helpers issue and verify
    token = devjwt.issue("mentor-3", scope="a b")
    # Then the key lives there and the token verifies
    assert devjwt.verify(token)["scope"] == "a b"
    assert (tmp_path / devjwt.PRIVATE_KEY_FILE).exists()
    assert devjwt.jwks()["keys"][0]["kid"] == devjwt.default_issuer().kid
