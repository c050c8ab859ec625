"""KMS key rotation: records carry their key ARN, stay readable, and can be re-sealed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from vault_fakes import TABLE

from shared.vault import Vault, VaultError


def test_reseal_after_switching_to_a_new_kms_key(
    make_vault: Callable[..., Vault], kms: Any, ddb: Any, key_arn: str, kms_calls: Counter[str]
) -> None:
    # Given a credential sealed under KMS key A
    old_process = make_vault(kms_key_id=key_arn)
    old_blob = old_process.seal(b"refresh-token-value", mentor_id="m-1", provider="zoom")
    # And the configuration switched to a new KMS key B (same period)
    new_arn: str = kms.create_key(Description="key B")["KeyMetadata"]["Arn"]
    new_process = make_vault(kms_key_id=new_arn)
    # When the new process opens the old blob
    # Then it still opens (the blob names key A and carries its wrapped branch key)
    assert new_process.open(old_blob, mentor_id="m-1", provider="zoom") == b"refresh-token-value"
    assert new_process.inspect(old_blob).key_arn == key_arn
    # When it re-seals the old blob
    resealed = new_process.reseal(old_blob, mentor_id="m-1", provider="zoom")
    # Then the new blob is under key B, opens to the same plaintext, and is current
    assert resealed is not None
    assert new_process.inspect(resealed).key_arn == new_arn
    assert new_process.inspect(resealed).branch_id == new_process.inspect(old_blob).branch_id
    assert new_process.open(resealed, mentor_id="m-1", provider="zoom") == b"refresh-token-value"
    assert new_process.is_current(resealed)
    assert not new_process.is_current(old_blob)
    # And re-sealing again does nothing
    assert new_process.reseal(resealed, mentor_id="m-1", provider="zoom") is None
    # And the period's single branch item now names key B
    (item,) = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "VAULT"}},
    )["Items"]
    assert item["key_arn"] == {"S": new_arn}
    # And the blob re-sealed under B still opens in the old process (records are self-contained)
    assert old_process.open(resealed, mentor_id="m-1", provider="zoom") == b"refresh-token-value"
    # (one key per configuration and period: two GenerateDataKey calls in all)
    assert kms_calls["GenerateDataKey"] == 2


def test_reseal_of_a_current_blob_returns_none(vault: Vault) -> None:
    # Given a blob sealed under the current branch / When re-sealed / Then nothing to do
    blob = vault.seal(b"x", mentor_id="m", provider="google")
    assert vault.reseal(blob, mentor_id="m", provider="google") is None


def test_reseal_authenticates_first(vault: Vault) -> None:
    # Given a current blob copied to another mentor's row
    blob = vault.seal(b"x", mentor_id="m", provider="google")
    # When it is re-sealed there / Then it fails closed instead of answering "already current"
    with pytest.raises(VaultError):
        vault.reseal(blob, mentor_id="other", provider="google")


def test_old_records_stay_readable_after_the_old_key_is_no_longer_configured(
    make_vault: Callable[..., Vault], kms: Any, key_arn: str
) -> None:
    # Given blobs sealed under key A by many mentors
    blobs = {f"m-{i}": make_vault().seal(f"v{i}".encode(), mentor_id=f"m-{i}", provider="google") for i in range(5)}
    # And a process configured with key B only
    reader = make_vault(kms_key_id=kms.create_key()["KeyMetadata"]["Arn"])
    # When it opens them / Then every one opens (KMS Decrypt uses the ARN in each blob)
    assert {m: reader.open(b, mentor_id=m, provider="google") for m, b in blobs.items()} == {
        f"m-{i}": f"v{i}".encode() for i in range(5)
    }
