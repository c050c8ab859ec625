"""Typed configuration, read from the environment once per container.

Every function reads the same base settings (table, KMS key, AWS endpoint override) and adds what
it needs. Provider base URLs are settings too, so the same code talks to the real Google / Zoom /
iCloud endpoints in AWS and to the project's emulators and Radicale on a laptop.

Environment variable names are the field names upper-cased (``TABLE_NAME``, ``KMS_KEY_ID`` …).

Settings classes that some function never reads (:class:`AuthSettings`, :class:`ProviderSettings`:
not the Stripe webhook) are ``defer_build``: their validator is built when :func:`settings` first
reads them, so a function that imports this module for its own settings does not build them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ConfigDict, Field, SecretStr, model_validator

from shared.platform.env import EnvSettings
from shared.platform.once import once_per
from shared.platform.secrets import fill_secret_params


class BaseFunctionSettings(EnvSettings):
    """Settings every function shares."""

    table_name: str = Field(default="mentor-connections", description="The single DynamoDB table.")
    kms_key_id: str = Field(
        default="alias/mentor-connections",
        description="KMS key (id, ARN or alias) that wraps the vault's branch keys.",
    )
    aws_region: str = Field(default="us-east-1", alias="AWS_REGION")
    aws_endpoint_url: str | None = Field(
        default=None,
        alias="AWS_ENDPOINT_URL",
        description="Override for every AWS service endpoint (the local moto server); unset in AWS.",
    )
    app_url: str = Field(default="http://localhost:3000", description="The mentor web app's origin.")
    api_url: str = Field(default="http://localhost:8080", description="This API's public origin.")
    # Vault tuning (see shared/vault): branch key period and in-memory key cache bounds.
    vault_branch_period: str = Field(default="month", pattern="^(day|month|year)$")
    vault_cache_max_age_s: float = Field(default=300.0, gt=0)
    vault_cache_max_uses: int = Field(default=1000, gt=0)
    http_timeout_s: float = Field(default=10.0, gt=0)


class QueueSettings(EnvSettings):
    """Queue URLs, for functions that enqueue work."""

    meetings_queue_url: str = ""
    busy_sync_queue_url: str = ""


class AuthSettings(EnvSettings):
    """How a function verifies a mentor's bearer JWT itself (routes without API Gateway's authorizer).

    The same issuer and audience API Gateway's JWT authorizer is configured with; the signing keys
    come from ``JWT_JWKS_URL`` (cached per container for ``JWT_JWKS_TTL_S``).
    """

    model_config = ConfigDict(defer_build=True)

    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_jwks_url: str = ""
    jwt_jwks_ttl_s: float = Field(default=600.0, gt=0)
    jwt_jwks_timeout_s: float = Field(default=3.0, gt=0)
    #: Clock skew tolerated on exp / nbf / iat by every JWT check (the functions' own and the local
    #: gateway's authorizer). At most 5 s: API Gateway's authorizer tolerates none, so a token it has
    #: started refusing must not stay good for long on the routes that check it themselves.
    jwt_leeway_s: int = Field(default=5, ge=0, le=5, description="Clock skew tolerated on exp / nbf / iat.")
    #: The scope a platform (client-credentials) token carries; with Cognito a custom scope is
    #: ``<resource server>/<name>``, so it is a setting (infra's ``platformScope``).
    jwt_platform_scope: str = Field(default="platform", min_length=1, pattern=r"^\S+$")


class ProviderSettings(EnvSettings):
    """Provider endpoints and client credentials. Base URLs default to the real providers."""

    model_config = ConfigDict(defer_build=True)

    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    google_userinfo_url: str = "https://openidconnect.googleapis.com/v1/userinfo"
    google_api_base: str = "https://www.googleapis.com/calendar/v3"
    google_client_id: str = ""
    google_client_secret: SecretStr = SecretStr("")

    zoom_auth_url: str = "https://zoom.us/oauth/authorize"
    zoom_token_url: str = "https://zoom.us/oauth/token"
    zoom_revoke_url: str = "https://zoom.us/oauth/revoke"
    zoom_api_base: str = "https://api.zoom.us/v2"
    zoom_client_id: str = ""
    zoom_client_secret: SecretStr = SecretStr("")
    zoom_webhook_secret_token: SecretStr = SecretStr("")

    # Microsoft identity platform (multi-tenant ``common`` endpoints) and Graph; no revocation endpoint.
    microsoft_auth_url: str = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    microsoft_token_url: str = "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    microsoft_api_base: str = "https://graph.microsoft.com/v1.0"
    microsoft_client_id: str = ""
    microsoft_client_secret: SecretStr = SecretStr("")

    apple_caldav_url: str = "https://caldav.icloud.com"

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_parameters(cls, data: Any) -> Any:
        """In AWS, ``<FIELD>_PARAM`` names the Secrets Manager secret / SSM parameter (shared.platform.secrets)."""
        return fill_secret_params(cls, data)


class StripeSettings(EnvSettings):
    """The Stripe webhook endpoint (``POST /webhooks/stripe``, see :mod:`shared.schedule.payments`)."""

    stripe_webhook_secret: SecretStr = Field(
        default=SecretStr(""), description="The endpoint's signing secret (whsec_…); unset refuses every event."
    )
    stripe_signature_tolerance_s: int = Field(default=300, gt=0, description="Oldest accepted signature age.")
    stripe_event_ttl_s: int = Field(
        default=7 * 24 * 3600,
        gt=3 * 24 * 3600,
        description="How long a processed event id is remembered (longer than Stripe's 3-day retries).",
    )

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_parameters(cls, data: Any) -> Any:
        """In AWS, ``<FIELD>_PARAM`` names the Secrets Manager secret / SSM parameter (shared.platform.secrets)."""
        return fill_secret_params(cls, data)


S = TypeVar("S", bound=EnvSettings)


@once_per
def _load(cls: type[EnvSettings]) -> EnvSettings:
    return cls()


def settings(cls: type[S] = BaseFunctionSettings) -> S:  # type: ignore[assignment]
    """The settings of ``cls``, read from the environment once per container."""
    return _load(cls)  # type: ignore[return-value]
