"""The token vault: AES-256-GCM envelope encryption of credentials under KMS-wrapped branch keys.

See :mod:`shared.vault.envelope` for the sealed format and :mod:`shared.vault.keys` for the key
hierarchy and cache. Most callers need only :func:`shared.wiring.vault` and the credential types.
"""

from shared.vault.branch_store import BranchRecord, BranchStore, DynamoBranchStore, InMemoryBranchStore
from shared.vault.credentials import AppleCredential, Credential, OAuthCredential
from shared.vault.envelope import Header, SealContext
from shared.vault.errors import VaultError, VaultIntegrityError, VaultUnavailableError
from shared.vault.keys import BranchKeyring, KeyCache, KmsApi, Period
from shared.vault.vault import Vault

__all__ = [
    "AppleCredential",
    "BranchKeyring",
    "BranchRecord",
    "BranchStore",
    "Credential",
    "DynamoBranchStore",
    "Header",
    "InMemoryBranchStore",
    "KeyCache",
    "KmsApi",
    "OAuthCredential",
    "Period",
    "SealContext",
    "Vault",
    "VaultError",
    "VaultIntegrityError",
    "VaultUnavailableError",
]
