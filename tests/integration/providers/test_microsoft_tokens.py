"""Microsoft's OAuth app and token lifecycle against the Microsoft emulator and moto (PRODUCT.md §2.2, §2.3).

The authorize URL (PKCE S256, the three delegated scopes), the code exchange (``scope`` sent, as the
identity platform requires), no revocation endpoint; the credential accessor's refresh under the
lease with Microsoft's rotated refresh token stored; a dead grant → ``needs_reconnect`` and one
e-mail; a Graph 401 → one forced refresh through :func:`with_fresh_token`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack.emulators import microsoft as ms
from devstack.emulators.microsoft import MicrosoftEmulator
from shared.notify.emails import reconnect_notifier, reconnect_subject
from shared.platform import aws
from shared.platform.config import ProviderSettings
from shared.providers.credentials import ConnectionUnavailable, CredentialAccessor
from shared.providers.fresh_token import with_fresh_token
from shared.providers.microsoft.errors import MicrosoftAuthError
from shared.providers.microsoft.graph import MicrosoftClient
from shared.providers.oauth import OAuthClient, OAuthError, TokenSet, new_code_verifier, new_state, oauth_app
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.vault import OAuthCredential, Vault
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache

MENTOR = "mentor-ms-1"
MENTOR_EMAIL = "ada@example.com"
SENDER = "noreply@mentor-connections.local"


@pytest.fixture(scope="module")
def graph_emu() -> Iterator[MicrosoftEmulator]:
    emu = MicrosoftEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(graph_emu: MicrosoftEmulator) -> MicrosoftEmulator:
    graph_emu.reset()
    return graph_emu


@pytest.fixture
def oauth(emu: MicrosoftEmulator) -> OAuthClient:
    cfg = ProviderSettings.model_validate({k.lower(): v for k, v in emu.environment().items()})
    return OAuthClient(oauth_app(Provider.MICROSOFT, cfg), redirect_uri=ms.DEFAULT_REDIRECT_URI, sleep=lambda _: None)


@pytest.fixture
def vault(store: Store) -> Vault:
    return Vault(
        kms=aws.client("kms"),
        store=DynamoBranchStore(aws.client("dynamodb"), store.table.name),
        kms_key_id="alias/mentor-connections",
        cache=KeyCache(),
    )


@pytest.fixture
def ses_sent(aws_env: None) -> Callable[[], list[Any]]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    aws.client("sesv2").create_email_identity(EmailIdentity=SENDER)
    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return lambda: list(backend.sent_messages)


def _grant(oauth: OAuthClient) -> TokenSet:
    state, verifier = new_state(), new_code_verifier()
    url = oauth.authorization_url(state=state, code_verifier=verifier)
    resp = httpx.get(url, follow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    back = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["location"]).query).items()}
    assert back["state"] == state
    return oauth.exchange_code(code=back["code"], code_verifier=verifier)


def _connect(store: Store, vault: Vault, oauth: OAuthClient, *, expires_in: timedelta) -> TokenSet:
    tokens = _grant(oauth)
    cred = OAuthCredential(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=datetime.now(UTC) + expires_in,
        scope=tokens.scope,
    )
    blob = vault.seal_credential(cred, mentor_id=MENTOR, provider=Provider.MICROSOFT.value)
    store.save_connection(
        Connection(mentor_id=MENTOR, provider=Provider.MICROSOFT, credential=blob, account_label="Connected as Ada"),
        expected_version=None,
    )
    return tokens


def _accessor(store: Store, vault: Vault, oauth: OAuthClient, **kw: Any) -> CredentialAccessor:
    kw.setdefault("on_reconnect", reconnect_notifier(store))
    return CredentialAccessor(store, vault, {Provider.MICROSOFT: oauth}, **kw)


def test_authorize_url_exchange_and_no_revocation(oauth: OAuthClient) -> None:
    # Given Microsoft's OAuth app / When the consent URL is built
    query = parse_qs(urlsplit(oauth.authorization_url(state="s" * 43, code_verifier="v" * 64)).query)
    # Then it asks for the three delegated scopes with PKCE S256 and the client's redirect URI
    assert query["scope"] == ["offline_access Calendars.ReadWrite User.Read"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [ms.DEFAULT_REDIRECT_URI]
    assert "code_verifier" not in query
    # And the code exchange (scope sent, client_secret_post) gives a refresh token and Graph scopes
    tokens = _grant(oauth)
    assert tokens.refresh_token is not None
    assert "Calendars.ReadWrite" in tokens.scope
    # And a refresh rotates the refresh token (Microsoft answers a new one each time)
    refreshed = oauth.refresh(tokens.refresh_token)
    assert refreshed.refresh_token is not None
    assert refreshed.refresh_token.get_secret_value() != tokens.refresh_token.get_secret_value()
    # And there is nothing to revoke at Microsoft: a clear refusal, no call, no secret in it
    with pytest.raises(OAuthError) as err:
        oauth.revoke(tokens.access_token)
    assert err.value.code == "revoke_unsupported"
    assert tokens.access_token.get_secret_value() not in str(err.value)


def test_expired_token_refreshed_once_and_each_rotated_refresh_token_stored(
    emu: MicrosoftEmulator, store: Store, vault: Vault, oauth: OAuthClient
) -> None:
    # Given a used refresh token is dead at once (proves the rotated one is what we keep)
    emu.configure(revoke_used_refresh_tokens=True)
    _connect(store, vault, oauth, expires_in=timedelta(minutes=-1))
    accessor = _accessor(store, vault, oauth)
    # When the token is asked for twice, then once more after it expired again
    first = accessor.access_token(MENTOR, Provider.MICROSOFT)
    assert accessor.access_token(MENTOR, Provider.MICROSOFT).get_secret_value() == first.get_secret_value()
    conn = store.get_connection(MENTOR, Provider.MICROSOFT)
    assert conn is not None
    assert conn.credential is not None
    cred = vault.open_credential(conn.credential, mentor_id=MENTOR, provider="microsoft")
    assert isinstance(cred, OAuthCredential)
    stale = OAuthCredential(
        access_token=cred.access_token, refresh_token=cred.refresh_token, expires_at=datetime.now(UTC), scope=cred.scope
    )
    store.update_connection(
        MENTOR,
        Provider.MICROSOFT,
        expected_version=conn.version,
        credential=vault.seal_credential(stale, mentor_id=MENTOR, provider="microsoft"),
    )
    second = accessor.access_token(MENTOR, Provider.MICROSOFT)
    # Then two refresh grants in all, both accepted (the second used the stored, rotated token)
    assert emu.token_calls("refresh_token") == 2
    assert second.get_secret_value() != first.get_secret_value()
    assert MicrosoftClient(api_base=emu.api_base).account(second).connected_as == "mentor@example.com"
    after = store.get_connection(MENTOR, Provider.MICROSOFT)
    assert after is not None
    assert after.status is ConnectionStatus.CONNECTED


def test_dead_grant_flags_needs_reconnect_once_with_one_email(
    atomic_dynamodb: None,
    emu: MicrosoftEmulator,
    store: Store,
    vault: Vault,
    oauth: OAuthClient,
    ses_sent: Callable[[], list[Any]],
) -> None:
    # Given an expired credential whose grant the user revoked at Microsoft
    store.upsert_mentor(MENTOR, email=MENTOR_EMAIL)
    tokens = _connect(store, vault, oauth, expires_in=timedelta(minutes=-1))
    assert tokens.refresh_token is not None
    assert emu.revoke_token(tokens.refresh_token.get_secret_value())
    accessor = _accessor(store, vault, oauth, poll_s=0.02)
    start = threading.Barrier(8)

    def ask(_: int) -> BaseException | None:
        start.wait()
        try:
            accessor.access_token(MENTOR, Provider.MICROSOFT)
        except BaseException as exc:
            return exc
        return None

    # When 8 workers ask at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(ask, range(8)))
    # Then all get needs_reconnect (invalid_grant), one token call, one e-mail, no secret anywhere
    assert {(o.status, o.reason) for o in outcomes if isinstance(o, ConnectionUnavailable)} == {
        (ConnectionStatus.NEEDS_RECONNECT, "invalid_grant")
    }
    assert all(isinstance(o, ConnectionUnavailable) for o in outcomes)
    assert all(tokens.refresh_token.get_secret_value() not in str(o) for o in outcomes)
    assert emu.token_calls("refresh_token") == 1
    conn = store.get_connection(MENTOR, Provider.MICROSOFT)
    assert conn is not None
    assert (conn.status, conn.credential) == (ConnectionStatus.NEEDS_RECONNECT, None)
    sent = ses_sent()
    assert len(sent) == 1
    assert sent[0].subject == reconnect_subject(Provider.MICROSOFT) == "Reconnect your Microsoft 365 account"
    assert all(tokens.refresh_token.get_secret_value() not in str(m.body) for m in sent)


def test_graph_401_forces_one_refresh_then_succeeds(
    emu: MicrosoftEmulator, store: Store, vault: Vault, oauth: OAuthClient
) -> None:
    # Given a credential we believe valid for an hour that Microsoft invalidated early
    tokens = _connect(store, vault, oauth, expires_in=timedelta(hours=1))
    assert emu.expire_access_tokens(token=tokens.access_token.get_secret_value()) == 1
    accessor = _accessor(store, vault, oauth)
    graph = MicrosoftClient(api_base=emu.api_base, sleep=lambda _: None)
    # When a Graph read goes through the shared forced-refresh path
    token = accessor.access_token(MENTOR, Provider.MICROSOFT)
    account = with_fresh_token(
        token,
        graph.account,
        lambda rejected: accessor.access_token(MENTOR, Provider.MICROSOFT, reject=rejected),
        auth_error=MicrosoftAuthError,
    )
    # Then one refresh happened and the read succeeded with the new token
    assert account.connected_as == "mentor@example.com"
    assert emu.token_calls("refresh_token") == 1
