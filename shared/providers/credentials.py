"""Access tokens for Google and Zoom: refresh ahead of expiry, one refresh per credential at a time.

:class:`CredentialAccessor` is what every worker calls before talking to a provider::

    accessor = CredentialAccessor(store, vault, {Provider.ZOOM: zoom_oauth, Provider.GOOGLE: google_oauth},
                                  on_reconnect=reconnect_notifier(store))
    token = accessor.access_token(mentor_id, Provider.ZOOM)      # SecretStr

How a refresh is coordinated across threads, processes and Lambda instances (PRODUCT.md §2.3):

1. The connection item is read consistently. Not connected / ``needs_reconnect`` raises
   :class:`ConnectionUnavailable`. A credential valid for more than ``refresh_ahead_s`` is returned.
2. Otherwise the caller tries to take a **lease** on the item: a conditional ``UpdateItem`` setting
   ``refresh_lease_until`` (epoch seconds) and ``refresh_lease_owner``, which only succeeds while the
   connection is connected, still holds the sealed credential that was read (compare-and-swap on
   the blob) and carries no unexpired lease.
3. The lease holder refreshes at the token endpoint, seals the new credential (Zoom rotates the
   refresh token on every refresh; the old one is dead from then on) and **persists it and clears
   the lease in one conditional write before the new access token is handed out**. The write is
   conditional on the stored credential still being the one refreshed from, so it can never
   overwrite a newer credential (a reconnect, or another refresh) and bumps ``version`` like every
   connection write.
4. Everybody else polls the item (every ``poll_s``, up to ``wait_s``) until the credential changes,
   then uses the stored one. They never call the token endpoint while a lease is held; if the
   holder gave up (lease released or expired, credential unchanged) the next poller takes over.

5. A provider 401 on a token we believed valid (revoked or expired early at the provider): the
   worker calls :func:`with_fresh_token`, which asks ``access_token(..., reject=token)`` once. That
   refreshes under the same lease only while the stored access token is still the rejected one
   (otherwise the newer stored token is returned), so 50 callers that saw the same 401 make one
   refresh; the provider call is retried once and a second 401 is the caller's, as before.

``invalid_grant`` marks the connection ``needs_reconnect`` (``Store.mark_needs_reconnect`` lets only
the first caller win, so exactly one ``on_reconnect`` call — in production the reconnect e-mail) and
raises :class:`ConnectionUnavailable`; the waiters see the new status on their next poll, so the
token endpoint is called once, not once per waiter. A provider outage releases the lease and
raises :class:`~shared.providers.oauth.ProviderUnavailableError` (retryable).

No exception or log line produced here carries a token.
"""

from __future__ import annotations

import contextlib
import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import NoReturn

from pydantic import SecretStr

from shared.platform.observability import logger
from shared.providers.oauth import InvalidGrantError, OAuthClient, ProviderUnavailableError, TokenSet
from shared.store.errors import ConflictError
from shared.store.models import ConnectionStatus, Provider
from shared.store.repository import Store, connection_sk, mentor_pk
from shared.vault.credentials import OAuthCredential
from shared.vault.vault import Vault

#: Item attributes of the refresh lease (not part of :class:`shared.store.Connection`).
LEASE_UNTIL = "refresh_lease_until"
LEASE_OWNER = "refresh_lease_owner"
#: Added to the OAuth client's worst-case refresh time to get the default lease length.
LEASE_MARGIN_S = 5.0

ReconnectCallback = Callable[[str, Provider], None]


class ConnectionUnavailable(Exception):
    """The provider cannot be used for this mentor until they (re)connect it.

    ``status`` is the connection's status (``not_connected`` or ``needs_reconnect``) and ``reason``
    a short machine-readable cause (``not_connected``, ``invalid_grant`` …). Never holds a secret.
    """

    def __init__(self, status: ConnectionStatus, reason: str | None, *, provider: Provider | None = None) -> None:
        self.status = ConnectionStatus(status)
        self.reason = reason
        self.provider = provider
        where = f"{provider.value} " if provider is not None else ""
        super().__init__(f"{where}connection {self.status.value}" + (f" ({reason})" if reason else ""))


class RefreshTimeoutError(ProviderUnavailableError):
    """Another worker held the refresh lease for longer than ``wait_s``; retry later."""


@dataclass(frozen=True)
class _Snapshot:
    """What one consistent read of the connection item told us."""

    status: ConnectionStatus
    reason: str | None
    blob: bytes | None
    lease_until: float | None


class CredentialAccessor:
    """Hands out valid access tokens for a mentor's Google / Zoom connection (see the module doc).

    ``oauth_clients`` maps each OAuth provider to its :class:`OAuthClient`. ``refresh_ahead_s``:
    refresh when the access token expires within this many seconds. ``lease_s``: how long a refresh
    lease lasts; by default the slowest client's worst-case refresh time (every attempt timing out,
    every backoff at its cap) plus a margin, so a slow but live refresh never loses its lease to a
    second refresher (which, for Zoom, would burn the rotated refresh token). ``wait_s`` / ``poll_s``:
    how long and how often a caller that lost the lease re-reads the item. ``clock`` returns epoch
    seconds and ``sleep`` waits (both injectable for tests). ``on_reconnect(mentor_id, provider)`` is
    called once when a connection flips to ``needs_reconnect`` (the composition root passes
    :func:`shared.notify.emails.reconnect_notifier`, which e-mails the mentor).
    """

    def __init__(
        self,
        store: Store,
        vault: Vault,
        oauth_clients: Mapping[Provider, OAuthClient],
        *,
        refresh_ahead_s: float = 300.0,
        lease_s: float | None = None,
        wait_s: float = 10.0,
        poll_s: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_reconnect: ReconnectCallback,
    ) -> None:
        if lease_s is None:
            lease_s = max((c.worst_case_s for c in oauth_clients.values()), default=30.0) + LEASE_MARGIN_S
        if lease_s <= 0 or wait_s < 0 or poll_s <= 0 or refresh_ahead_s < 0:
            raise ValueError("lease_s and poll_s must be > 0; wait_s and refresh_ahead_s >= 0")
        self.store = store
        self.vault = vault
        self.oauth_clients = dict(oauth_clients)
        self.refresh_ahead_s = refresh_ahead_s
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        self.on_reconnect = on_reconnect

    # -- public -------------------------------------------------------------------------------
    def access_token(self, mentor_id: str, provider: Provider | str, *, reject: SecretStr | None = None) -> SecretStr:
        """A valid access token for ``mentor_id``'s ``provider`` connection, refreshed if needed.

        ``reject``: an access token the provider just refused (401) although we believed it valid.
        If the stored access token is still that one it is refreshed now, under the same lease as a
        refresh ahead of expiry (compare-and-swap on the stored token: 50 callers that saw the same
        401 make one refresh and all use its token); if it already changed, the stored one is returned.

        Raises :class:`ConnectionUnavailable` (not connected, ``needs_reconnect``, revoked now),
        :class:`~shared.providers.oauth.ProviderUnavailableError` (token endpoint down, or
        :class:`RefreshTimeoutError` when another refresh took too long: both retryable),
        :class:`~shared.providers.oauth.OAuthError` for other refusals (e.g. a misconfigured client)
        and :class:`~shared.vault.VaultError` when the credential cannot be opened.
        """
        provider = Provider(provider)
        client = self.oauth_clients.get(provider)
        if client is None:
            raise ValueError(f"no OAuth client configured for {provider.value}")
        deadline = self._clock() + self.wait_s
        first_blob: bytes | None = None
        opened: tuple[bytes, OAuthCredential] | None = None
        while True:
            snap = self._read(mentor_id, provider)
            if snap.status is not ConnectionStatus.CONNECTED or snap.blob is None:
                raise ConnectionUnavailable(snap.status, snap.reason, provider=provider)
            if opened is None or opened[0] != snap.blob:
                opened = (snap.blob, self._open(snap.blob, mentor_id, provider))
            credential = opened[1]
            now = self._clock()
            if first_blob is None:
                first_blob = snap.blob
            expires = credential.expires_at.timestamp()
            rejected = reject is not None and _same(credential.access_token, reject)
            if expires > now + self.refresh_ahead_s and not rejected:
                return credential.access_token
            if snap.blob != first_blob and expires > now and not rejected:
                # Someone refreshed while we waited: use their (still valid) token, whatever its lifetime.
                return credential.access_token
            if snap.lease_until is None or snap.lease_until < now:
                owner = self._take_lease(mentor_id, provider, snap.blob, now)
                if owner is not None:
                    token = self._refresh(mentor_id, provider, client, credential, snap.blob, owner)
                    if token is not None:
                        return token
                    continue  # our write lost to a newer credential: re-read and use that
            if self._clock() >= deadline:
                raise RefreshTimeoutError(
                    "refresh_pending", f"{provider.value} credential refresh by another worker did not finish in time"
                )
            self._sleep(self.poll_s)

    # -- steps --------------------------------------------------------------------------------
    def _read(self, mentor_id: str, provider: Provider) -> _Snapshot:
        item = self.store.table.get(mentor_pk(mentor_id), connection_sk(provider), consistent=True)
        if item is None:
            return _Snapshot(ConnectionStatus.NOT_CONNECTED, "not_connected", None, None)
        status = ConnectionStatus(item.get("status", ConnectionStatus.NOT_CONNECTED.value))
        blob = item.get("credential")
        lease = item.get(LEASE_UNTIL)
        reason = item.get("status_reason")
        if status is ConnectionStatus.CONNECTED and blob is None:
            status, reason = ConnectionStatus.NEEDS_RECONNECT, reason or "no_credential"
        return _Snapshot(
            status=status,
            reason=str(reason) if reason is not None else status.value,
            blob=bytes(blob) if blob is not None else None,
            lease_until=float(lease) if lease is not None else None,
        )

    def _open(self, blob: bytes, mentor_id: str, provider: Provider) -> OAuthCredential:
        credential = self.vault.open_credential(blob, mentor_id=mentor_id, provider=provider.value)
        if not isinstance(credential, OAuthCredential):
            raise TypeError(f"{provider.value} connection holds a non-OAuth credential")
        return credential

    def _take_lease(self, mentor_id: str, provider: Provider, blob: bytes, now: float) -> str | None:
        """The lease owner id if we got the lease on the item still holding ``blob``; else ``None``."""
        owner = uuid.uuid4().hex
        try:
            self.store.table.update(
                mentor_pk(mentor_id),
                connection_sk(provider),
                expression="SET #lu = :until, #lo = :owner",
                condition=(
                    "attribute_exists(PK) AND #s = :connected AND #c = :blob "
                    "AND (attribute_not_exists(#lu) OR #lu < :now)"
                ),
                names={"#lu": LEASE_UNTIL, "#lo": LEASE_OWNER, "#s": "status", "#c": "credential"},
                values={
                    ":until": _epoch(now + self.lease_s),
                    ":owner": owner,
                    ":connected": ConnectionStatus.CONNECTED.value,
                    ":blob": blob,
                    ":now": _epoch(now),
                },
            )
        except ConflictError:
            return None
        logger.debug("refresh lease taken", extra={"mentor_id": mentor_id, "provider": provider.value})
        return owner

    def _release_lease(self, mentor_id: str, provider: Provider, owner: str) -> None:
        """Drop our lease (no-op if it is no longer ours)."""
        with contextlib.suppress(ConflictError):
            self.store.table.update(
                mentor_pk(mentor_id),
                connection_sk(provider),
                expression="REMOVE #lu, #lo",
                condition="#lo = :owner",
                names={"#lu": LEASE_UNTIL, "#lo": LEASE_OWNER},
                values={":owner": owner},
            )

    def _refresh(
        self,
        mentor_id: str,
        provider: Provider,
        client: OAuthClient,
        credential: OAuthCredential,
        blob: bytes,
        owner: str,
    ) -> SecretStr | None:
        """Refresh under our lease and persist; the new access token, or ``None`` if a newer credential won."""
        if credential.refresh_token is None:
            self._needs_reconnect(mentor_id, provider, "no_refresh_token", owner)
        try:
            tokens = client.refresh(credential.refresh_token)
        except InvalidGrantError:
            if self._credential_changed(mentor_id, provider, blob):
                self._release_lease(mentor_id, provider, owner)
                return None  # a concurrent refresh (after our lease expired) used the token first
            self._needs_reconnect(mentor_id, provider, "invalid_grant", owner)
        except BaseException:
            self._release_lease(mentor_id, provider, owner)
            logger.warning(
                "token refresh failed; lease released",
                extra={"mentor_id": mentor_id, "provider": provider.value},
            )
            raise
        new = _merge(credential, tokens)
        new_blob = self.vault.seal_credential(new, mentor_id=mentor_id, provider=provider.value)
        try:
            self._persist(mentor_id, provider, blob, new_blob)
        except ConflictError:
            # Reconnected, disconnected or refreshed by someone else meanwhile: never overwrite that.
            logger.warning(
                "refreshed credential not stored: the connection changed meanwhile",
                extra={"mentor_id": mentor_id, "provider": provider.value},
            )
            self._release_lease(mentor_id, provider, owner)
            return None
        logger.info(
            "access token refreshed",
            extra={
                "mentor_id": mentor_id,
                "provider": provider.value,
                "expires_at": new.expires_at.isoformat(),
                "refresh_token_rotated": tokens.refresh_token is not None
                and credential.refresh_token.get_secret_value() != tokens.refresh_token.get_secret_value(),
            },
        )
        return new.access_token

    def _persist(self, mentor_id: str, provider: Provider, old_blob: bytes, new_blob: bytes) -> None:
        """Store ``new_blob`` and clear the lease in one write, if ``old_blob`` is still stored."""
        self.store.table.update(
            mentor_pk(mentor_id),
            connection_sk(provider),
            expression="SET #c = :new, #v = #v + :one, #u = :u REMOVE #lu, #lo",
            condition="attribute_exists(PK) AND #s = :connected AND #c = :old",
            names={
                "#c": "credential",
                "#v": "version",
                "#u": "updated_at",
                "#s": "status",
                "#lu": LEASE_UNTIL,
                "#lo": LEASE_OWNER,
            },
            values={
                ":new": new_blob,
                ":old": old_blob,
                ":one": 1,
                ":u": datetime.now(UTC).isoformat(),
                ":connected": ConnectionStatus.CONNECTED.value,
            },
        )

    def _credential_changed(self, mentor_id: str, provider: Provider, blob: bytes) -> bool:
        snap = self._read(mentor_id, provider)
        return snap.status is ConnectionStatus.CONNECTED and snap.blob is not None and snap.blob != blob

    def _needs_reconnect(self, mentor_id: str, provider: Provider, reason: str, owner: str) -> NoReturn:
        """Flag the connection, drop our lease, notify the mentor if we were first, raise ConnectionUnavailable.

        The flag is written while we still hold the lease, so no waiter can take over in between
        and try the dead refresh token again.
        """
        try:
            first = self.store.mark_needs_reconnect(mentor_id, provider, reason)
        finally:
            self._release_lease(mentor_id, provider, owner)
        logger.warning(
            "connection needs reconnect",
            extra={"mentor_id": mentor_id, "provider": provider.value, "reason": reason, "first": first},
        )
        if first:
            try:
                self.on_reconnect(mentor_id, provider)
            except Exception:  # the status change stands; a failed e-mail must not hide it
                logger.exception(
                    "reconnect notification failed", extra={"mentor_id": mentor_id, "provider": provider.value}
                )
        raise ConnectionUnavailable(ConnectionStatus.NEEDS_RECONNECT, reason, provider=provider)


def _same(a: SecretStr, b: SecretStr) -> bool:
    return hmac.compare_digest(a.get_secret_value().encode(), b.get_secret_value().encode())


def _merge(old: OAuthCredential, tokens: TokenSet) -> OAuthCredential:
    """The credential after a refresh (Google keeps its refresh token; Zoom's is the rotated one)."""
    return OAuthCredential(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token or old.refresh_token,
        expires_at=tokens.expires_at,
        scope=tokens.scope or old.scope,
        token_type=tokens.token_type or old.token_type,
    )


def _epoch(value: float) -> Decimal:
    """Epoch seconds as DynamoDB wants numbers (``Decimal``; millisecond precision)."""
    return Decimal(str(round(value, 3)))
