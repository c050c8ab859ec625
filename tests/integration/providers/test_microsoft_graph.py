"""shared.providers.microsoft against the Microsoft emulator: "Connected as <mail or UPN>",
calendars (default first, writable only), subscription delete on disconnect, and Graph's errors
(401, throttling with Retry-After, 5xx retries) without the token in any message."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from devstack.emulators.microsoft import MicrosoftEmulator
from shared.providers.microsoft.errors import MicrosoftApiError, MicrosoftAuthError, MicrosoftRateLimited
from shared.providers.microsoft.graph import MicrosoftClient, writable
from tests.integration.emulators.microsoft.support import iso_in, serve_receiver, tokens


@pytest.fixture(scope="module")
def graph_emu() -> Iterator[MicrosoftEmulator]:
    emu = MicrosoftEmulator(allow_http_loopback_notifications=True).start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(graph_emu: MicrosoftEmulator) -> MicrosoftEmulator:
    graph_emu.reset()
    return graph_emu


def client(emu: MicrosoftEmulator, sleeps: list[float] | None = None) -> MicrosoftClient:
    return MicrosoftClient(api_base=emu.api_base, sleep=(sleeps.append if sleeps is not None else lambda _: None))


def token_of(emu: MicrosoftEmulator, email: str | None = None) -> SecretStr:
    if email:
        emu.set_next_consent(email)
    with httpx.Client() as http:
        return SecretStr(str(tokens(http, emu)["access_token"]))


def test_connected_as_mail_or_user_principal_name(emu: MicrosoftEmulator) -> None:
    # A mailbox user is shown by mail
    account = client(emu).account(token_of(emu))
    assert account.connected_as == "mentor@example.com"
    # An account without a mail attribute by its userPrincipalName
    emu.add_user("ops@contoso.onmicrosoft.com", "Ops Desk", has_mail=False)
    upn_only = client(emu).account(token_of(emu, "ops@contoso.onmicrosoft.com"))
    assert upn_only.mail is None
    assert upn_only.connected_as == "ops@contoso.onmicrosoft.com"
    assert upn_only.display_name == "Ops Desk"


def test_calendars_default_first_and_writable_only(emu: MicrosoftEmulator) -> None:
    emu.add_user(
        "ada@example.com",
        calendars=[{"name": "Shared team", "can_edit": False}, {"name": "Classes", "can_edit": True}],
    )
    calendars = client(emu).calendars(token_of(emu, "ada@example.com"))
    assert [(c.name, c.is_default, c.can_edit) for c in calendars] == [
        ("Calendar", True, True),
        ("Shared team", False, False),
        ("Classes", False, True),
    ]
    assert [c.name for c in writable(calendars)] == ["Calendar", "Classes"]


def test_delete_subscription_is_idempotent(emu: MicrosoftEmulator) -> None:
    token = token_of(emu)
    receiver_gen = serve_receiver()
    receiver = next(receiver_gen)
    try:
        with httpx.Client() as http:
            sub = http.post(
                f"{emu.api_base}/subscriptions",
                headers={"Authorization": f"Bearer {token.get_secret_value()}"},
                json={
                    "changeType": "created,updated,deleted",
                    "notificationUrl": receiver.url,
                    "resource": "me/events",
                    "expirationDateTime": iso_in(emu, 600),
                    "clientState": "cs",
                },
            ).json()
        # Deleting answers True once, then False (already gone) - never an error
        assert client(emu).delete_subscription(token, sub["id"]) is True
        assert client(emu).delete_subscription(token, sub["id"]) is False
        assert emu.subscriptions() == []
    finally:
        receiver_gen.close()


def test_errors_retries_and_throttling_never_carry_the_token(emu: MicrosoftEmulator) -> None:
    token = token_of(emu)
    # 5xx then 429 are retried in-process (honouring a short Retry-After)
    sleeps: list[float] = []
    emu.set_faults(
        forced=[
            {"status": 503, "path_prefix": "/v1.0/me"},
            {"status": 429, "path_prefix": "/v1.0/me", "retry_after": 2},
        ]
    )
    assert client(emu, sleeps).account(token).connected_as == "mentor@example.com"
    assert len(sleeps) == 2
    assert sleeps[1] >= 2
    # Throttling that outlasts the retries tells the caller how long to wait
    emu.set_faults(forced=[{"status": 429, "path_prefix": "/v1.0/me", "retry_after": 30, "count": 10}])
    with pytest.raises(MicrosoftRateLimited) as throttled:
        client(emu).calendars(token)
    assert throttled.value.retry_after_s == 30
    assert throttled.value.code == "TooManyRequests"
    emu.clear_faults()
    # A revoked token is an auth error; a missing calendar an API error with Graph's code
    emu.expire_access_tokens()
    with pytest.raises(MicrosoftAuthError) as refused:
        client(emu).account(token)
    assert refused.value.code == "InvalidAuthenticationToken"
    fresh = token_of(emu)
    emu.set_faults(forced=[{"status": 400, "path_prefix": "/v1.0/me/calendars"}])
    with pytest.raises(MicrosoftApiError) as failed:
        client(emu).calendars(fresh)
    for err in (throttled.value, refused.value, failed.value):
        assert token.get_secret_value() not in str(err)
        assert fresh.get_secret_value() not in str(err)
    # An unreachable Graph is an API error without a status
    with pytest.raises(MicrosoftApiError) as down:
        MicrosoftClient(api_base="http://127.0.0.1:9/v1.0", attempts=1).account(fresh)
    assert down.value.status is None
