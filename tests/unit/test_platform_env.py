"""shared.platform.env: settings read from the environment, one variable per field (what pydantic-settings did)."""

from __future__ import annotations

import pytest
from pydantic import Field, SecretStr, ValidationError

from shared.platform.config import BaseFunctionSettings, ProviderSettings, StripeSettings
from shared.platform.env import EnvSettings


class _Tuning(EnvSettings):
    retry_delay_s: float = Field(default=1.5, gt=0)
    max_attempts: int = 3
    enabled: bool = False
    label: str = "default"
    token: SecretStr = SecretStr("")
    endpoint: str | None = Field(default=None, alias="SOME_ENDPOINT_URL")


def test_defaults_without_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RETRY_DELAY_S", "MAX_ATTEMPTS", "ENABLED", "LABEL", "TOKEN", "SOME_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    tuning = _Tuning()
    assert (tuning.retry_delay_s, tuning.max_attempts, tuning.enabled, tuning.label) == (1.5, 3, False, "default")
    assert tuning.endpoint is None


def test_each_field_reads_its_upper_cased_variable_in_lax_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_DELAY_S", "0.25")
    monkeypatch.setenv("MAX_ATTEMPTS", "7")
    monkeypatch.setenv("ENABLED", "true")
    monkeypatch.setenv("TOKEN", "s3cret")
    monkeypatch.setenv("SOME_ENDPOINT_URL", "http://127.0.0.1:5000")
    tuning = _Tuning()
    assert (tuning.retry_delay_s, tuning.max_attempts, tuning.enabled) == (0.25, 7, True)
    assert tuning.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(tuning)
    assert tuning.endpoint == "http://127.0.0.1:5000"  # the alias names the variable


def test_variable_names_match_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("label", "lower")
    assert _Tuning().label == "lower"


def test_a_keyword_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_ATTEMPTS", "7")
    monkeypatch.setenv("SOME_ENDPOINT_URL", "http://from-env")
    assert _Tuning(max_attempts=2).max_attempts == 2
    assert _Tuning(SOME_ENDPOINT_URL="http://given").endpoint == "http://given"
    assert _Tuning(endpoint="http://by-name").endpoint == "http://by-name"


def test_a_bad_value_is_refused_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_DELAY_S", "-1")
    with pytest.raises(ValidationError, match="retry_delay_s"):
        _Tuning()
    monkeypatch.setenv("RETRY_DELAY_S", "soon")
    with pytest.raises(ValidationError, match="retry_delay_s"):
        _Tuning()


def test_unknown_variables_are_ignored_and_instances_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOT_A_FIELD", "x")
    tuning = _Tuning()
    assert not hasattr(tuning, "not_a_field")
    with pytest.raises(ValidationError):
        tuning.label = "changed"  # type: ignore[misc]


def test_a_field_that_would_need_json_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="JSON"):

        class _Bad(EnvSettings):
            hosts: list[str] = []


def test_the_project_settings_read_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "t-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("VAULT_CACHE_MAX_USES", "12")
    base = BaseFunctionSettings()
    assert (base.table_name, base.aws_region, base.vault_cache_max_uses) == ("t-1", "eu-west-1", 12)
    monkeypatch.setenv("VAULT_BRANCH_PERIOD", "week")  # the pattern allows day | month | year
    with pytest.raises(ValidationError, match="vault_branch_period"):
        BaseFunctionSettings()
    monkeypatch.setenv("GOOGLE_CLIENT_ID", "cid")
    assert ProviderSettings().google_client_id == "cid"  # a defer_build class builds on first use
    monkeypatch.setenv("STRIPE_SIGNATURE_TOLERANCE_S", "60")
    assert StripeSettings().stripe_signature_tolerance_s == 60
