"""wiring.vault(): built lazily, once per container, from settings and the shared boto3 clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from vault_fakes import REGION, TABLE

from shared import wiring
from shared.vault import AppleCredential


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, aws: None) -> Iterator[str]:
    # Given a container configured by environment variables, with its key and table in (moto) AWS
    import boto3

    from shared.store.schema import create_table

    kms = boto3.client("kms", region_name=REGION)
    arn: str = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/vault-default-test", TargetKeyId=arn)
    create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    for name, value in {
        "TABLE_NAME": TABLE,
        "KMS_KEY_ID": "alias/vault-default-test",
        "AWS_REGION": REGION,
        "VAULT_BRANCH_PERIOD": "day",
        "VAULT_CACHE_MAX_AGE_S": "60",
        "VAULT_CACHE_MAX_USES": "7",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    wiring.reset()
    yield arn
    wiring.reset()


def test_default_vault_is_built_once_from_settings(configured: str) -> None:
    # When the vault is asked for twice
    vault = wiring.vault()
    # Then it is the same object, tuned by the settings
    assert wiring.vault() is vault
    assert (vault.cache.max_age_s, vault.cache.max_uses) == (60.0, 7)
    assert vault.keyring.kms_key_id == "alias/vault-default-test"
    assert vault.keyring.period == "day"
    assert "alias/vault-default-test" in repr(vault)


def test_default_vault_seals_under_the_aliased_key(configured: str, aws: Any) -> None:
    # Given the default vault / When a credential is sealed and opened
    vault = wiring.vault()
    cred = AppleCredential(apple_id="m@icloud.com", app_specific_password="abcd-efgh-ijkl-mnop")
    blob = vault.seal_credential(cred, mentor_id="m-1", provider="apple")
    # Then the blob names the key's ARN (not the alias) and a daily branch, and opens back
    header = vault.inspect(blob)
    assert header.key_arn == configured
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", header.branch_id)
    assert vault.open_credential(blob, mentor_id="m-1", provider="apple") == cred
