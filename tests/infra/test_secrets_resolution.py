"""shared.platform.secrets: in AWS a secret is read by reference (Secrets Manager / SSM); locally from the env."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from shared import wiring
from shared.platform import secrets
from shared.platform.config import ProviderSettings, StripeSettings


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "STRIPE_WEBHOOK_SECRET", "ZOOM_WEBHOOK_SECRET_TOKEN", "GOOGLE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        yield
        parameters.clear_caches()
    wiring.reset()


def test_secrets_manager_reference_wins_over_a_stray_plain_value(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="mc/stripe", SecretString="whsec_real")["ARN"]
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET_PARAM", arn)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "stale")
    assert secrets.resolve_secret("STRIPE_WEBHOOK_SECRET").get_secret_value() == "whsec_real"
    assert StripeSettings().stripe_webhook_secret.get_secret_value() == "whsec_real"


def test_ssm_securestring_by_name_or_arn(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("ssm").put_parameter(Name="/mc/zoom/webhook", Value="zoom-token", Type="SecureString")
    monkeypatch.setenv("ZOOM_WEBHOOK_SECRET_TOKEN_PARAM", "/mc/zoom/webhook")
    settings = ProviderSettings()
    assert settings.zoom_webhook_secret_token.get_secret_value() == "zoom-token"
    assert settings.google_client_secret.get_secret_value() == ""  # no reference, no value: empty
    assert secrets.is_ssm_name("arn:aws:ssm:us-east-1:123456789012:parameter/mc/zoom/webhook")
    assert not secrets.is_ssm_name("arn:aws:secretsmanager:us-east-1:123456789012:secret:mc/x-AbCdEf")


def test_without_a_reference_the_plain_variable_is_used(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET", "local-secret")
    assert secrets.resolve_secret("GOOGLE_CLIENT_SECRET").get_secret_value() == "local-secret"
    assert ProviderSettings().google_client_secret.get_secret_value() == "local-secret"


def test_values_are_cached_by_powertools(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="mc/google", SecretString="v1")["ARN"]
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET_PARAM", arn)
    assert secrets.resolve_secret("GOOGLE_CLIENT_SECRET").get_secret_value() == "v1"
    client.put_secret_value(SecretId=arn, SecretString="v2")
    assert secrets.resolve_secret("GOOGLE_CLIENT_SECRET").get_secret_value() == "v1"  # within max age


def test_a_missing_secret_fails_loudly_naming_the_reference_only(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET_PARAM", "mc/does-not-exist")
    with pytest.raises(secrets.SecretUnavailableError, match="mc/does-not-exist"):
        secrets.resolve_secret("STRIPE_WEBHOOK_SECRET")


def test_secret_fields_are_the_settings_secretstr_fields() -> None:
    assert set(secrets.secret_fields(ProviderSettings)) == {
        "google_client_secret",
        "zoom_client_secret",
        "zoom_webhook_secret_token",
        "microsoft_client_secret",
    }
    assert secrets.secret_fields(StripeSettings) == ["stripe_webhook_secret"]


def test_infra_creates_a_secret_for_every_secret_setting() -> None:
    from infra.constructs.secrets import SECRETS

    fields = secrets.secret_fields(ProviderSettings) + secrets.secret_fields(StripeSettings)
    assert set(SECRETS) == {f.upper() for f in fields}
