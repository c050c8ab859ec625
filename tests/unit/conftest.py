"""Unit-test fixtures: AWS mocked in-process with moto, settings and clients reset around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from shared import aws, config
from shared.store import Store, Table
from shared.store.schema import create_table

TABLE = "mentor-connections-test"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Moto-backed AWS with the project's table and KMS key; env as a deployed function sees it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_NAME": TABLE,
        "KMS_KEY_ID": "alias/mentor-connections",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_SERVICE_NAME": "tests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    config.reset_settings()
    aws.reset_clients()
    with mock_aws():
        create_table(aws.client("dynamodb"), TABLE)
        kms = aws.client("kms")
        key = kms.create_key(Description="mentor-connections vault")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/mentor-connections", TargetKeyId=key)
        yield
    config.reset_settings()
    aws.reset_clients()
    from shared.store import default_store

    default_store.cache_clear()


@pytest.fixture
def store(aws_env: None) -> Store:
    """A repository over the mocked table."""
    return Store(Table(aws.client("dynamodb"), TABLE))
