"""Fixtures for the vault tests: in-process moto (KMS + DynamoDB), a KMS call counter, a fake clock."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from vault_fakes import REGION, TABLE, FakeClock, FakeNow

from shared.store.schema import create_table
from shared.vault import DynamoBranchStore, KeyCache, Vault


@pytest.fixture(scope="session", autouse=True)
def _fake_aws_env() -> Iterator[None]:
    # Given fake credentials, so that nothing can ever reach a real AWS account.
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # In-process moto only: a running local stack (session fixture) exports AWS_ENDPOINT_URL,
    # which boto3 honours and mock_aws does not intercept.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def kms(aws: None) -> Any:
    return boto3.client("kms", region_name=REGION)


@pytest.fixture
def ddb(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, TABLE)
    return client


@pytest.fixture
def key_arn(kms: Any) -> str:
    arn: str = kms.create_key(Description="vault test key")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/mentor-connections", TargetKeyId=arn)
    return arn


@pytest.fixture
def store(ddb: Any) -> DynamoBranchStore:
    return DynamoBranchStore(ddb, TABLE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def now() -> FakeNow:
    return FakeNow()


@pytest.fixture
def make_vault(
    kms: Any, store: DynamoBranchStore, key_arn: str, clock: FakeClock, now: FakeNow
) -> Callable[..., Vault]:
    """A factory of vaults sharing KMS and the table; each call is a new "process" (its own cache)."""

    def make(*, kms_key_id: str | None = None, cache: KeyCache | None = None, **kwargs: Any) -> Vault:
        return Vault(
            kms=kwargs.pop("kms", kms),
            store=kwargs.pop("store", store),
            kms_key_id=kms_key_id or key_arn,
            period=kwargs.pop("period", "month"),
            cache=cache if cache is not None else KeyCache(clock=clock),
            now=kwargs.pop("now", now),
        )

    return make


@pytest.fixture
def vault(make_vault: Callable[..., Vault]) -> Vault:
    return make_vault()


@pytest.fixture
def kms_calls(kms: Any) -> Counter[str]:
    """Counts every KMS API call made through ``kms`` by operation name (botocore event hook)."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    kms.meta.events.register("before-call.kms", count)
    return calls
