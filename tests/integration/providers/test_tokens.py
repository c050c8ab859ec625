"""The credential accessor against moto (table, KMS, SES) and the real Google / Zoom emulators.

Refresh ahead of expiry, Zoom's rotated refresh token persisted, one refresh per credential under
concurrency (DynamoDB lease), ``invalid_grant`` → ``needs_reconnect`` + one e-mail, no token in logs.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from devstack.emulators import GoogleEmulator, ZoomEmulator
from devstack.emulators import google as g
from devstack.emulators import zoom as z
from devstack.providers import provider_settings
from shared.notify.emails import reconnect_notifier, reconnect_subject
from shared.platform import aws
from shared.providers.credentials import (
    LEASE_OWNER,
    LEASE_UNTIL,
    ConnectionUnavailable,
    CredentialAccessor,
)
from shared.providers.fresh_token import with_fresh_token
from shared.providers.oauth import (
    OAuthClient,
    ProviderUnavailableError,
    TokenSet,
    new_code_verifier,
    new_state,
    oauth_app,
)
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.repository import connection_sk, mentor_pk
from shared.vault import OAuthCredential, Vault
from shared.vault.branch_store import DynamoBranchStore
from shared.vault.keys import KeyCache

MENTOR = "mentor-tokens-1"
MENTOR_EMAIL = "ada@example.com"
SENDER = "noreply@mentor-connections.local"


@pytest.fixture(scope="module")
def emulators() -> Iterator[tuple[GoogleEmulator, ZoomEmulator]]:
    google, zoom = GoogleEmulator().start(), ZoomEmulator().start()
    yield google, zoom
    google.stop()
    zoom.stop()


@pytest.fixture
def emus(emulators: tuple[GoogleEmulator, ZoomEmulator]) -> tuple[GoogleEmulator, ZoomEmulator]:
    google, zoom = emulators
    google.reset()
    zoom.reset()
    return google, zoom


@pytest.fixture
def clients(emus: tuple[GoogleEmulator, ZoomEmulator]) -> dict[Provider, OAuthClient]:
    google, zoom = emus
    cfg = provider_settings(google, zoom)
    return {
        Provider.GOOGLE: OAuthClient(
            oauth_app(Provider.GOOGLE, cfg), redirect_uri=g.DEFAULT_REDIRECT_URI, sleep=lambda _: None
        ),
        Provider.ZOOM: OAuthClient(
            oauth_app(Provider.ZOOM, cfg), redirect_uri=z.DEFAULT_REDIRECT_URI, sleep=lambda _: None
        ),
    }


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
    """Verify the sender in (moto) SES and return a reader of the messages SES v2 sent."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    aws.client("sesv2").create_email_identity(EmailIdentity=SENDER)
    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]  # moto's SES v2 records sends in the v1 backend
    return lambda: list(backend.sent_messages)


def _consent_and_exchange(client: OAuthClient) -> TokenSet:
    """Drive the emulator's consent like a browser and exchange the code."""
    state, verifier = new_state(), new_code_verifier()
    resp = httpx.get(client.authorization_url(state=state, code_verifier=verifier), follow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    back = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["location"]).query).items()}
    return client.exchange_code(code=back["code"], code_verifier=verifier)


def _connect(
    store: Store, vault: Vault, client: OAuthClient, *, expires_in: timedelta, mentor_id: str = MENTOR
) -> TokenSet:
    """A real grant at the emulator, stored sealed with ``expires_at = now + expires_in``."""
    provider = client.app.provider
    tokens = _consent_and_exchange(client)
    cred = OAuthCredential(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=datetime.now(UTC) + expires_in,
        scope=tokens.scope,
    )
    blob = vault.seal_credential(cred, mentor_id=mentor_id, provider=provider.value)
    store.save_connection(
        Connection(mentor_id=mentor_id, provider=provider, credential=blob, account_label="Connected as Ada"),
        expected_version=None,
    )
    return tokens


def _stored(store: Store, vault: Vault, provider: Provider, mentor_id: str = MENTOR) -> OAuthCredential:
    conn = store.get_connection(mentor_id, provider)
    assert conn is not None
    assert conn.credential is not None
    cred = vault.open_credential(conn.credential, mentor_id=mentor_id, provider=provider.value)
    assert isinstance(cred, OAuthCredential)
    return cred


def _zoom_me(zoom: ZoomEmulator, token: SecretStr) -> int:
    headers = {"authorization": f"Bearer {token.get_secret_value()}"}
    return httpx.get(f"{zoom.base_url}/v2/users/me", headers=headers, timeout=5).status_code


def _accessor(store: Store, vault: Vault, clients: dict[Provider, OAuthClient], **kw: Any) -> CredentialAccessor:
    kw.setdefault("on_reconnect", reconnect_notifier(store))
    return CredentialAccessor(store, vault, clients, **kw)


@pytest.mark.parametrize("provider", [Provider.GOOGLE, Provider.ZOOM])
def test_fresh_token_is_returned_without_calling_the_token_endpoint(
    provider: Provider,
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
) -> None:
    # Given a credential valid for another hour
    emu = emus[0] if provider is Provider.GOOGLE else emus[1]
    tokens = _connect(store, vault, clients[provider], expires_in=timedelta(hours=1))
    # When a worker asks for the access token
    token = _accessor(store, vault, clients).access_token(MENTOR, provider)
    # Then it gets the stored one and nobody called the refresh grant
    assert token.get_secret_value() == tokens.access_token.get_secret_value()
    assert emu.token_calls("refresh_token") == 0


@pytest.mark.parametrize("provider", [Provider.GOOGLE, Provider.ZOOM])
def test_expiring_token_is_refreshed_once_and_the_rotated_refresh_token_stored(
    provider: Provider,
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
) -> None:
    # Given a credential that expired a minute ago (and one expiring within refresh_ahead_s would do too)
    emu = emus[0] if provider is Provider.GOOGLE else emus[1]
    tokens = _connect(store, vault, clients[provider], expires_in=timedelta(minutes=-1))
    before = store.get_connection(MENTOR, provider)
    assert before is not None
    accessor = _accessor(store, vault, clients)
    # When the token is asked for twice
    first = accessor.access_token(MENTOR, provider)
    second = accessor.access_token(MENTOR, provider)
    # Then one refresh happened, and the second call reused its result
    assert emu.token_calls("refresh_token") == 1
    assert first.get_secret_value() != tokens.access_token.get_secret_value()
    assert second.get_secret_value() == first.get_secret_value()
    # And what is stored is the new credential (Zoom: the rotated refresh token; Google: the same one)
    stored = _stored(store, vault, provider)
    assert stored.access_token.get_secret_value() == first.get_secret_value()
    assert stored.expires_at > datetime.now(UTC) + timedelta(minutes=30)
    assert stored.refresh_token is not None
    assert tokens.refresh_token is not None
    rotated = stored.refresh_token.get_secret_value() != tokens.refresh_token.get_secret_value()
    assert rotated is (provider is Provider.ZOOM)
    if provider is Provider.ZOOM:
        assert emus[1].state.refresh_tokens[tokens.refresh_token.get_secret_value()].replaced_by == (
            stored.refresh_token.get_secret_value()
        )
        assert _zoom_me(emus[1], first) == 200
    # And the write bumped the version and left no lease behind
    after = store.table.get(mentor_pk(MENTOR), connection_sk(provider))
    assert after is not None
    assert int(after["version"]) == before.version + 1
    assert LEASE_UNTIL not in after
    assert LEASE_OWNER not in after


def test_fifty_concurrent_callers_share_one_zoom_refresh(
    atomic_dynamodb: None,
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
) -> None:
    _, zoom = emus
    # Given an expired Zoom credential
    tokens = _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(minutes=-5))
    assert tokens.refresh_token is not None
    accessor = _accessor(store, vault, clients, poll_s=0.02, wait_s=10)
    start = threading.Barrier(50)

    def ask(_: int) -> str:
        start.wait()
        return accessor.access_token(MENTOR, Provider.ZOOM).get_secret_value()

    # When 50 threads ask for its access token at the same moment
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(ask, range(50)))
    elapsed = time.perf_counter() - began
    print(f"\n50 concurrent callers: {elapsed:.3f}s, refresh grants: {zoom.token_calls('refresh_token')}")
    # Then the token endpoint saw exactly one refresh
    assert zoom.token_calls("refresh_token") == 1
    # And all 50 got the same, working token
    assert len(set(results)) == 1
    assert _zoom_me(zoom, SecretStr(results[0])) == 200
    # And the stored refresh token is the newest one (the old one was rotated into it)
    stored = _stored(store, vault, Provider.ZOOM)
    assert stored.access_token.get_secret_value() == results[0]
    assert stored.refresh_token is not None
    newest = stored.refresh_token.get_secret_value()
    assert zoom.state.refresh_tokens[tokens.refresh_token.get_secret_value()].replaced_by == newest
    assert zoom.state.refresh_tokens[newest].used_at is None
    assert elapsed < 10


@pytest.mark.parametrize("provider", [Provider.ZOOM, Provider.GOOGLE])
def test_revoked_refresh_token_flags_needs_reconnect_and_sends_one_email(
    provider: Provider,
    atomic_dynamodb: None,
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
    ses_sent: Callable[[], list[Any]],
) -> None:
    emu = emus[0] if provider is Provider.GOOGLE else emus[1]
    # Given a mentor with an e-mail address and an expired credential whose grant the user revoked
    store.upsert_mentor(MENTOR, email=MENTOR_EMAIL)
    tokens = _connect(store, vault, clients[provider], expires_in=timedelta(minutes=-1))
    assert tokens.refresh_token is not None
    assert emu.revoke_token(tokens.refresh_token.get_secret_value())
    accessor = _accessor(store, vault, clients, poll_s=0.02)
    start = threading.Barrier(10)

    def ask(_: int) -> BaseException | None:
        start.wait()
        try:
            accessor.access_token(MENTOR, provider)
        except BaseException as exc:
            return exc
        return None

    # When 10 workers ask for a token at once
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(ask, range(10)))
    # Then every one of them gets ConnectionUnavailable(needs_reconnect), without a secret in it
    assert all(isinstance(o, ConnectionUnavailable) for o in outcomes), outcomes
    assert {(o.status, o.reason) for o in outcomes if isinstance(o, ConnectionUnavailable)} == {
        (ConnectionStatus.NEEDS_RECONNECT, "invalid_grant")
    }
    assert all(tokens.refresh_token.get_secret_value() not in str(o) for o in outcomes)
    # And the token endpoint was called once (no retry storm)
    assert emu.token_calls("refresh_token") == 1
    # And the connection needs reconnecting, its credential gone
    conn = store.get_connection(MENTOR, provider)
    assert conn is not None
    assert (conn.status, conn.status_reason, conn.credential) == (
        ConnectionStatus.NEEDS_RECONNECT,
        "invalid_grant",
        None,
    )
    # And exactly one e-mail went to the mentor, with the reconnect link
    sent = ses_sent()
    assert len(sent) == 1
    assert sent[0].destinations == {"ToAddresses": [MENTOR_EMAIL]}
    assert sent[0].subject == reconnect_subject(provider)
    assert "http://localhost:3000/mentor/settings/connections" in sent[0].body
    # And a later call fails fast without calling the provider or e-mailing again
    with pytest.raises(ConnectionUnavailable):
        accessor.access_token(MENTOR, provider)
    assert emu.token_calls("refresh_token") == 1
    assert len(ses_sent()) == 1


def test_mentor_without_email_is_flagged_and_the_email_skipped(
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
    ses_sent: Callable[[], list[Any]],
) -> None:
    # Given no mentor profile (so no e-mail address) and a revoked Zoom grant
    tokens = _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(minutes=-1))
    assert tokens.refresh_token is not None
    emus[1].revoke_token(tokens.refresh_token.get_secret_value())
    # When the token is asked for / Then needs_reconnect, and nothing sent
    with pytest.raises(ConnectionUnavailable) as caught:
        _accessor(store, vault, clients).access_token(MENTOR, Provider.ZOOM)
    assert caught.value.status is ConnectionStatus.NEEDS_RECONNECT
    assert ses_sent() == []


def test_on_reconnect_is_called_once_with_a_custom_callback(
    store: Store, vault: Vault, clients: dict[Provider, OAuthClient], emus: tuple[GoogleEmulator, ZoomEmulator]
) -> None:
    # Given a revoked Zoom grant and a recording callback
    calls: list[tuple[str, Provider]] = []
    tokens = _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(minutes=-1))
    assert tokens.refresh_token is not None
    emus[1].revoke_user_tokens(z.DEFAULT_USER_EMAIL)
    accessor = _accessor(store, vault, clients, on_reconnect=lambda m, p: calls.append((m, p)))
    # When asked twice / Then the callback ran once
    for _ in range(2):
        with pytest.raises(ConnectionUnavailable):
            accessor.access_token(MENTOR, Provider.ZOOM)
    assert calls == [(MENTOR, Provider.ZOOM)]


def test_not_connected_and_needs_reconnect_raise_without_provider_calls(
    store: Store, vault: Vault, clients: dict[Provider, OAuthClient], emus: tuple[GoogleEmulator, ZoomEmulator]
) -> None:
    accessor = _accessor(store, vault, clients, on_reconnect=lambda m, p: None)
    # Given no connection / When asked / Then not_connected
    with pytest.raises(ConnectionUnavailable) as caught:
        accessor.access_token(MENTOR, Provider.GOOGLE)
    assert caught.value.status is ConnectionStatus.NOT_CONNECTED
    # Given a connection flagged needs_reconnect / Then needs_reconnect with its reason
    _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(hours=1))
    assert store.mark_needs_reconnect(MENTOR, Provider.ZOOM, "invalid_grant")
    with pytest.raises(ConnectionUnavailable) as caught:
        accessor.access_token(MENTOR, Provider.ZOOM)
    assert (caught.value.status, caught.value.reason) == (ConnectionStatus.NEEDS_RECONNECT, "invalid_grant")
    assert emus[1].token_calls("refresh_token") == 0


def test_provider_outage_releases_the_lease_and_is_retryable(
    store: Store, vault: Vault, clients: dict[Provider, OAuthClient], emus: tuple[GoogleEmulator, ZoomEmulator]
) -> None:
    _, zoom = emus
    # Given an expired Zoom credential and a token endpoint answering 503
    tokens = _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(minutes=-1))
    zoom.set_faults(forced=[{"status": 503, "count": 4, "path_prefix": "/oauth/token"}])
    accessor = _accessor(store, vault, clients, on_reconnect=lambda m, p: None)
    # When asked / Then ProviderUnavailableError, the connection still connected and no lease held
    with pytest.raises(ProviderUnavailableError):
        accessor.access_token(MENTOR, Provider.ZOOM)
    item = store.table.get(mentor_pk(MENTOR), connection_sk(Provider.ZOOM))
    assert item is not None
    assert item["status"] == "connected"
    assert LEASE_UNTIL not in item
    assert LEASE_OWNER not in item
    # And once the provider is back, the next call refreshes at once
    zoom.clear_faults()
    token = accessor.access_token(MENTOR, Provider.ZOOM)
    assert token.get_secret_value() != tokens.access_token.get_secret_value()
    assert _zoom_me(zoom, token) == 200


def test_waiter_takes_over_an_expired_lease(
    store: Store, vault: Vault, clients: dict[Provider, OAuthClient], emus: tuple[GoogleEmulator, ZoomEmulator]
) -> None:
    _, zoom = emus
    # Given an expired credential whose lease was left by a worker that died 1 s before it expired
    _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(minutes=-1))
    store.table.update(
        mentor_pk(MENTOR),
        connection_sk(Provider.ZOOM),
        expression="SET #lu = :u, #lo = :o",
        names={"#lu": LEASE_UNTIL, "#lo": LEASE_OWNER},
        values={":u": int(time.time()) + 1, ":o": "dead-worker"},
    )
    accessor = _accessor(store, vault, clients, poll_s=0.05, wait_s=5, on_reconnect=lambda m, p: None)
    # When a worker asks / Then it waits out the lease, refreshes once and gets a working token
    token = accessor.access_token(MENTOR, Provider.ZOOM)
    assert zoom.token_calls("refresh_token") == 1
    assert _zoom_me(zoom, token) == 200


def test_no_token_appears_in_logs(
    captured_logs: io.StringIO,
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
    ses_sent: Callable[[], list[Any]],
) -> None:
    _, zoom = emus
    # Given a Zoom credential to refresh and then a revoked one
    store.upsert_mentor(MENTOR, email=MENTOR_EMAIL)
    tokens = _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(minutes=-1))
    accessor = _accessor(store, vault, clients)
    # When it is refreshed, then revoked and asked for again
    fresh = accessor.access_token(MENTOR, Provider.ZOOM)
    stored = _stored(store, vault, Provider.ZOOM)
    zoom.revoke_token(fresh.get_secret_value())
    store.table.update(  # force another refresh: the stored access token "expires" now
        mentor_pk(MENTOR),
        connection_sk(Provider.ZOOM),
        expression="SET credential = :c",
        values={
            ":c": vault.seal_credential(
                stored.model_copy(update={"expires_at": datetime.now(UTC)}), mentor_id=MENTOR, provider="zoom"
            )
        },
    )
    with pytest.raises(ConnectionUnavailable):
        accessor.access_token(MENTOR, Provider.ZOOM)
    # Then the logs talk about it but carry no token value
    text = captured_logs.getvalue()
    assert "access token refreshed" in text
    assert "connection needs reconnect" in text
    assert stored.refresh_token is not None
    assert tokens.refresh_token is not None
    for secret in (tokens.access_token, tokens.refresh_token, fresh, stored.refresh_token):
        assert secret.get_secret_value() not in text


def test_default_lease_outlasts_the_clients_worst_case_refresh() -> None:
    """Given OAuth clients with 4 attempts of 10 s, when no lease is given, then the lease covers them all."""
    from shared.providers.credentials import LEASE_MARGIN_S, CredentialAccessor
    from shared.providers.oauth import OAuthApp, OAuthClient

    app = OAuthApp(
        provider=Provider.ZOOM,
        client_id="id",
        client_secret=SecretStr("secret"),
        authorize_url="http://127.0.0.1:9/authorize",
        token_url="http://127.0.0.1:9/token",
        revoke_url="http://127.0.0.1:9/revoke",
        scopes=("user:read:user",),
        token_auth="client_secret_basic",
    )
    slow = OAuthClient(app, redirect_uri="http://127.0.0.1:9/cb", timeout_s=10.0, attempts=4, backoff_cap_s=8.0)
    accessor = CredentialAccessor(object(), object(), {Provider.ZOOM: slow}, on_reconnect=lambda *_: None)  # type: ignore[arg-type]
    assert slow.worst_case_s == 4 * 10.0 + 3 * 8.0
    assert accessor.lease_s == slow.worst_case_s + LEASE_MARGIN_S


def test_lost_zoom_refresh_answer_after_rotation_flags_needs_reconnect_at_once(
    atomic_dynamodb: None,
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
    ses_sent: Callable[[], list[Any]],
) -> None:
    """Given an expired Zoom credential, and Zoom rotating the refresh token but the answer being lost
    (a 502 after the rotation: Zoom keeps only the latest refresh token, which never reached us)
    When 10 workers ask for a token at once
    Then the best achievable outcome: the grant is unrecoverable, so the connection is needs_reconnect
    at once (one retry of the 5xx meets invalid_grant), the mentor gets exactly one clear reconnect
    e-mail, and there is no retry storm - two refresh calls in all, none later."""
    _, zoom = emus
    store.upsert_mentor(MENTOR, email=MENTOR_EMAIL)
    tokens = _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(minutes=-1))
    assert tokens.refresh_token is not None
    zoom.lose_refresh_answers(1)
    accessor = _accessor(store, vault, clients, poll_s=0.02)
    start = threading.Barrier(10)

    def ask(_: int) -> BaseException | None:
        start.wait()
        try:
            accessor.access_token(MENTOR, Provider.ZOOM)
        except BaseException as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(ask, range(10)))

    # Every worker learns the connection needs reconnecting (none gets a token or loops)
    assert all(isinstance(o, ConnectionUnavailable) for o in outcomes), outcomes
    assert {(o.status, o.reason) for o in outcomes if isinstance(o, ConnectionUnavailable)} == {
        (ConnectionStatus.NEEDS_RECONNECT, "invalid_grant")
    }
    # Zoom saw the rotation whose answer was lost, then the retry with the now-dead token: two calls
    refreshes = zoom.token_requests("refresh_token")
    assert [(c["status"], c["outcome"]) for c in refreshes] == [(502, "rotated_answer_lost"), (400, "invalid_grant")]
    conn = store.get_connection(MENTOR, Provider.ZOOM)
    assert conn is not None
    assert (conn.status, conn.status_reason, conn.credential) == (
        ConnectionStatus.NEEDS_RECONNECT,
        "invalid_grant",
        None,
    )
    # Exactly one reconnect e-mail, with the link
    sent = ses_sent()
    assert len(sent) == 1
    assert sent[0].subject == reconnect_subject(Provider.ZOOM)
    assert "http://localhost:3000/mentor/settings/connections" in sent[0].body
    # And later calls fail fast: no provider call, no second e-mail
    with pytest.raises(ConnectionUnavailable):
        accessor.access_token(MENTOR, Provider.ZOOM)
    assert zoom.token_calls("refresh_token") == 2
    assert len(ses_sent()) == 1


# -- a 401 on a token we believed valid: one forced refresh (compare-and-swap on the rejected token) --


@pytest.mark.parametrize("provider", [Provider.ZOOM, Provider.GOOGLE])
def test_fifty_callers_rejecting_the_same_token_make_one_forced_refresh(
    provider: Provider,
    atomic_dynamodb: None,
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
) -> None:
    emu = emus[0] if provider is Provider.GOOGLE else emus[1]
    # Given a credential we believe valid for another hour, which the provider invalidated early
    tokens = _connect(store, vault, clients[provider], expires_in=timedelta(hours=1))
    assert emu.expire_access_tokens(token=tokens.access_token.get_secret_value()) == 1
    accessor = _accessor(store, vault, clients, poll_s=0.02, wait_s=10)
    # (warm the vault's key cache first: moto does not isolate 50 concurrent cold key reads)
    assert accessor.access_token(MENTOR, provider).get_secret_value() == tokens.access_token.get_secret_value()
    start = threading.Barrier(50)

    def reject(_: int) -> str:
        start.wait()
        return accessor.access_token(MENTOR, provider, reject=tokens.access_token).get_secret_value()

    # When 50 workers that all saw the same 401 ask for a fresh token at once
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(reject, range(50)))
    refreshes = emu.token_calls("refresh_token")
    print(f"\n50 callers rejecting one {provider.value} token: refresh grants: {refreshes}")
    # Then the token endpoint saw exactly one refresh and everybody got its (new, stored) token
    assert refreshes == 1
    assert len(set(results)) == 1
    assert results[0] != tokens.access_token.get_secret_value()
    assert _stored(store, vault, provider).access_token.get_secret_value() == results[0]
    if provider is Provider.ZOOM:
        assert _zoom_me(emus[1], SecretStr(results[0])) == 200
    # And a late caller rejecting the old token again reuses the new one (no second refresh)
    assert accessor.access_token(MENTOR, provider, reject=tokens.access_token).get_secret_value() == results[0]
    assert emu.token_calls("refresh_token") == 1
    conn = store.get_connection(MENTOR, provider)
    assert conn is not None
    assert conn.status is ConnectionStatus.CONNECTED


def test_forced_refresh_of_a_dead_grant_flags_needs_reconnect(
    store: Store,
    vault: Vault,
    clients: dict[Provider, OAuthClient],
    emus: tuple[GoogleEmulator, ZoomEmulator],
) -> None:
    _, zoom = emus
    # Given a credential valid for an hour whose whole grant was revoked at Zoom
    tokens = _connect(store, vault, clients[Provider.ZOOM], expires_in=timedelta(hours=1))
    assert tokens.refresh_token is not None
    zoom.revoke_token(tokens.refresh_token.get_secret_value())
    notified: list[tuple[str, Provider]] = []
    accessor = _accessor(store, vault, clients, on_reconnect=lambda m, p: notified.append((m, p)))
    # When a worker rejects the access token / Then one refresh, needs_reconnect, one notification
    with pytest.raises(ConnectionUnavailable) as err:
        accessor.access_token(MENTOR, Provider.ZOOM, reject=tokens.access_token)
    assert err.value.status is ConnectionStatus.NEEDS_RECONNECT
    assert zoom.token_calls("refresh_token") == 1
    assert notified == [(MENTOR, Provider.ZOOM)]


def test_with_fresh_token_retries_once_after_one_forced_refresh() -> None:
    class Refused(Exception):
        pass

    seen: list[str] = []
    refreshed: list[str] = []

    def call(token: SecretStr) -> str:
        seen.append(token.get_secret_value())
        if token.get_secret_value() == "old":
            raise Refused
        return "ok"

    def refresh(rejected: SecretStr) -> SecretStr:
        refreshed.append(rejected.get_secret_value())
        return SecretStr("new")

    # A 401 → one forced refresh of the rejected token → one retry with the new one
    assert with_fresh_token(SecretStr("old"), call, refresh, auth_error=Refused) == "ok"
    assert (seen, refreshed) == (["old", "new"], ["old"])
    # A second 401 propagates (the caller handles it as before): no third call, no second refresh
    seen.clear()
    refreshed.clear()
    with pytest.raises(Refused):
        with_fresh_token(SecretStr("old"), call, lambda _: SecretStr("old"), auth_error=Refused)
    assert seen == ["old", "old"]
    # A valid token: one call, no refresh
    seen.clear()
    assert with_fresh_token(SecretStr("good"), call, refresh, auth_error=Refused) == "ok"
    assert (seen, refreshed) == (["good"], [])
