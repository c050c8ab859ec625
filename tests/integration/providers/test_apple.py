"""Apple (iCloud CalDAV) credential checks and discovery against a real CalDAV server."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from devstack.radicale import RadicaleServer
from shared.providers.apple import caldav as apple


@pytest.fixture
def apple_user(radicale: RadicaleServer) -> tuple[str, str]:
    user = f"mentor-{uuid.uuid4().hex[:8]}@icloud.com"
    password = "abcd-efgh-ijkl-mnop"
    radicale.add_user(user, password)
    return user, password


def test_discovery_finds_principal_and_calendars(radicale: RadicaleServer, apple_user: tuple[str, str]) -> None:
    import caldav.davclient

    # Given an Apple ID with two calendars on the CalDAV server
    user, password = apple_user
    principal = caldav.DAVClient(url=radicale.url, username=user, password=password, require_tls=False).principal()
    principal.make_calendar(name="Work")
    principal.make_calendar(name="Home")
    # When discovery runs
    account = apple.discover(radicale.url, user, SecretStr(password))
    # Then it finds the principal and both calendars
    assert account.principal_url.endswith("/")
    assert sorted(c.name or "" for c in account.calendars) == ["Home", "Work"]


def test_wrong_password_maps_401_to_the_three_causes(radicale: RadicaleServer, apple_user: tuple[str, str]) -> None:
    # Given a well-formed but wrong app-specific password
    user, _ = apple_user
    # When discovery runs / Then the 401 becomes the three-cause message, without the password
    with pytest.raises(apple.AppleAuthError) as caught:
        apple.discover(radicale.url, user, SecretStr("wxyz-wxyz-wxyz-wxyz"))
    message = str(caught.value)
    assert caught.value.code == "apple_auth_failed"
    for cause in ("app-specific password", "two-factor", "revoked"):
        assert cause in message
    assert "wxyz-wxyz-wxyz-wxyz" not in message


def test_revoked_password_is_a_401(radicale: RadicaleServer, apple_user: tuple[str, str]) -> None:
    # Given a password that worked, then was revoked
    user, password = apple_user
    apple.discover(radicale.url, user, SecretStr(password))
    radicale.remove_user(user)
    # Then it is refused with the same mapped error
    with pytest.raises(apple.AppleAuthError):
        apple.discover(radicale.url, user, SecretStr(password))


@pytest.mark.parametrize(
    ("apple_id", "password", "code"),
    [
        ("ada@icloud.com", "MyRealPassword1!", "invalid_app_specific_password"),
        ("ada@icloud.com", "ABCD-EFGH-IJKL-MNOP", "invalid_app_specific_password"),
        ("ada@icloud.com", "abcd-efgh-ijkl", "invalid_app_specific_password"),
        ("ada@icloud.com", "abcd-efgh-ijkl-mnop ", "invalid_app_specific_password"),
        ("not-an-email", "abcd-efgh-ijkl-mnop", "invalid_apple_id"),
    ],
)
def test_bad_format_is_rejected_before_any_network_call(
    monkeypatch: pytest.MonkeyPatch, apple_id: str, password: str, code: str
) -> None:
    import caldav.davclient

    # Given a CalDAV client that must never be built
    def no_network(*_: object, **__: object) -> None:
        raise AssertionError("a network client was created")

    monkeypatch.setattr(caldav.davclient, "DAVClient", no_network)
    # When the credentials are malformed / Then the format error comes first
    with pytest.raises(apple.AppleFormatError) as caught:
        apple.discover("https://caldav.icloud.com", apple_id, SecretStr(password))
    assert caught.value.code == code
    assert password not in str(caught.value)


def test_unreachable_server_is_unavailable_not_a_crash() -> None:
    # Given a port nothing listens on / Then a clear, retryable error
    with pytest.raises(apple.AppleUnavailableError):
        apple.discover("http://127.0.0.1:9", "ada@icloud.com", SecretStr("abcd-efgh-ijkl-mnop"), timeout_s=2)
