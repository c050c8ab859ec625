"""The vault: seal and open credentials bound to a mentor and a provider.

Errors: :class:`VaultError` (base), :class:`VaultIntegrityError`, :class:`VaultUnavailableError`.

Usage::

    vault = wiring.vault()
    blob = vault.seal_credential(cred, mentor_id="m-1", provider="google")   # store as a Binary
    cred = vault.open_credential(blob, mentor_id="m-1", provider="google")
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from shared.platform.observability import register_secret
from shared.vault.branch_store import BranchStore
from shared.vault.credentials import (
    AppleCredential,
    OAuthCredential,
    credential_from_plaintext,
    credential_to_plaintext,
)
from shared.vault.envelope import Header, SealContext, open_sealed, parse, seal
from shared.vault.errors import VaultIntegrityError
from shared.vault.keys import BranchKeyring, KeyCache, KmsApi, Period


class Vault:
    """Seals and opens secrets with AES-256-GCM under per-period branch keys wrapped by KMS."""

    def __init__(
        self,
        *,
        kms: KmsApi,
        store: BranchStore,
        kms_key_id: str,
        period: Period = "month",
        cache: KeyCache | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """``kms`` is a boto3 KMS client (or anything with its two methods); ``store`` shares branch keys."""
        self.keyring = BranchKeyring(kms=kms, store=store, kms_key_id=kms_key_id, period=period, cache=cache, now=now)

    def __repr__(self) -> str:
        return f"Vault(kms_key_id={self.keyring.kms_key_id!r}, period={self.keyring.period!r})"

    @property
    def cache(self) -> KeyCache:
        """The in-memory cache of plaintext branch keys."""
        return self.keyring.cache

    def seal(self, plaintext: bytes, *, mentor_id: str, provider: str) -> bytes:
        """Seal ``plaintext`` for ``(mentor_id, provider)`` under the current branch key.

        Raises ``ValueError`` for an empty mentor id or provider, :class:`VaultUnavailableError`
        when KMS or the table cannot be reached.
        """
        context = SealContext(mentor_id, provider)
        branch = self.keyring.current()
        record = branch.record
        return seal(
            plaintext,
            context=context,
            key_arn=record.key_arn,
            branch_id=record.branch_id,
            wrapped_key=record.wrapped_key,
            branch_key=branch.key,
        )

    def open(self, sealed: bytes, *, mentor_id: str, provider: str) -> bytes:
        """The plaintext of ``sealed``.

        Raises :class:`VaultIntegrityError` if it is not exactly what was sealed for
        ``(mentor_id, provider)`` (tampered, truncated, copied from another row, unknown format) and
        :class:`VaultUnavailableError` when KMS cannot be reached; both are :class:`VaultError`.
        """
        return open_sealed(sealed, context=SealContext(mentor_id, provider), unwrap=self.keyring.unwrap)

    def inspect(self, sealed: bytes) -> Header:
        """The (unauthenticated) header of ``sealed``: format version, KMS key ARN, branch id."""
        return parse(sealed)[0]

    def is_current(self, sealed: bytes) -> bool:
        """Whether ``sealed`` is under the current branch key (cheap: no KMS call, no authentication)."""
        header = self.inspect(sealed)
        current = self.keyring.current_record()
        return (header.key_arn, header.branch_id, header.wrapped_key) == (
            current.key_arn,
            current.branch_id,
            current.wrapped_key,
        )

    def reseal(self, sealed: bytes, *, mentor_id: str, provider: str) -> bytes | None:
        """A new blob under the current branch key and KMS key, or None if ``sealed`` already is.

        ``sealed`` is opened (authenticated) first either way, so a damaged record fails here.
        """
        plaintext = self.open(sealed, mentor_id=mentor_id, provider=provider)
        if self.is_current(sealed):
            return None
        return self.seal(plaintext, mentor_id=mentor_id, provider=provider)

    def seal_credential(self, credential: OAuthCredential | AppleCredential, *, mentor_id: str, provider: str) -> bytes:
        """Seal a typed credential (its secrets are registered for log masking)."""
        for secret in credential.secrets():
            register_secret(secret)
        return self.seal(credential_to_plaintext(credential), mentor_id=mentor_id, provider=provider)

    def open_credential(self, sealed: bytes, *, mentor_id: str, provider: str) -> OAuthCredential | AppleCredential:
        """Open a sealed credential; every secret value handed out is registered for log masking."""
        plaintext = self.open(sealed, mentor_id=mentor_id, provider=provider)
        try:
            credential = credential_from_plaintext(plaintext)
        except ValidationError:
            raise VaultIntegrityError("sealed record is not a credential") from None
        for secret in credential.secrets():
            register_secret(secret)
        return credential
