"""Secrets: the provider secrets, in Secrets Manager — never in environment variables.

The stack creates each secret with a random placeholder value; after the first deploy the operator
puts the real value (README, Deploying). Functions get only the secret's ARN, in
``<SETTING>_PARAM`` (e.g. ``STRIPE_WEBHOOK_SECRET_PARAM``), read it through Powertools Parameters
(``shared.platform.secrets.resolve_secret``, cached) and hold ``secretsmanager:GetSecretValue`` on just the
secrets they use.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.config import DeployConfig

#: Setting name (``shared.platform.config``; upper-cased env name) → what it is.
SECRETS: Final[dict[str, str]] = {
    "GOOGLE_CLIENT_SECRET": "Google OAuth client secret (Google Cloud console → Credentials)",
    "ZOOM_CLIENT_SECRET": "Zoom OAuth app client secret (Zoom App Marketplace → App Credentials)",
    "MICROSOFT_CLIENT_SECRET": "Microsoft Entra app registration client secret (Certificates & secrets)",
    "ZOOM_WEBHOOK_SECRET_TOKEN": "Zoom app's webhook secret token (Features → Access → Secret Token)",
    "STRIPE_WEBHOOK_SECRET": "Stripe webhook endpoint signing secret (whsec_…)",
}


def secret_name(stage: str, setting: str) -> str:
    """``mentor-connections/<stage>/stripe-webhook-secret``."""
    return f"mentor-connections/{stage}/{setting.lower().replace('_', '-')}"


class Secrets(Construct):
    """One Secrets Manager secret per entry of :data:`SECRETS`."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self._secrets: dict[str, secretsmanager.Secret] = {}
        for setting, description in SECRETS.items():
            self._secrets[setting] = secretsmanager.Secret(
                self,
                "".join(p.capitalize() for p in setting.split("_")),
                secret_name=secret_name(config.stage, setting),
                description=f"mentor-connections: {description}. Created with a random placeholder: put the real one.",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=48
                ),
                removal_policy=RemovalPolicy.DESTROY if config.is_dev else RemovalPolicy.RETAIN,
            )
        NagSuppressions.add_resource_suppressions(
            self,
            [
                {
                    "id": "AwsSolutions-SMG4",
                    "reason": "issued by third parties (Google, Zoom, Stripe): a Secrets Manager rotation Lambda "
                    "cannot mint new ones; they are rotated in the provider's console and put here (README, "
                    "Deploying: rotating secrets)",
                }
            ],
            apply_to_children=True,
        )

    def secret(self, setting: str) -> secretsmanager.Secret:
        """The secret holding ``setting`` (a key of :data:`SECRETS`)."""
        try:
            return self._secrets[setting]
        except KeyError:
            raise KeyError(f"unknown secret {setting!r}; known: {sorted(self._secrets)}") from None

    @property
    def all(self) -> dict[str, secretsmanager.Secret]:
        return dict(self._secrets)
