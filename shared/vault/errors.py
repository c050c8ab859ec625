"""Vault errors. Their messages are fixed strings: never key material, plaintext or ciphertext."""

from __future__ import annotations


class VaultError(Exception):
    """A sealed credential could not be sealed or opened.

    The message names what went wrong in general terms (``"sealed blob failed authentication"``)
    and never carries key material, plaintext or the sealed bytes, so it is safe to log.
    """


class VaultIntegrityError(VaultError):
    """The sealed blob is malformed, tampered with, or belongs to another mentor/provider.

    Retrying cannot help: the record is unusable (the mentor must reconnect).
    """


class VaultUnavailableError(VaultError):
    """KMS or DynamoDB failed for a reason unrelated to the blob (throttling, network, permissions).

    The record may well be fine: retry later.
    """
