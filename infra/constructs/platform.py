"""What every capability construct shares: the deploy config, the table and keys, packaging, secrets,
e-mail, monitoring, the queues created so far and the API's URL. Not a construct: a plain holder
the stack fills in order and hands to each capability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import DeployConfig
from infra.constructs.function import AppFunction, FunctionSpec
from shared.platform.config import ProviderSettings

if TYPE_CHECKING:
    from infra.constructs.email import Email
    from infra.constructs.messaging import WorkQueue
    from infra.constructs.monitoring import Monitoring
    from infra.constructs.secrets import Secrets

#: ProviderSettings fields that are endpoints (``*_url`` / ``*_api_base``): their defaults are the
#: real providers; ``-c providerEndpoints='{"GOOGLE_API_BASE": "…"}'`` overrides one.
PROVIDER_ENDPOINTS = tuple(
    name.upper() for name in ProviderSettings.model_fields if name.endswith("_url") or name.endswith("_api_base")
)


@dataclass
class Platform:
    """Shared resources (see module docstring)."""

    config: DeployConfig
    table: dynamodb.TableV2
    table_key: kms.IKey
    vault_key: kms.IKey
    code: lambda_.Code
    layers: Callable[[str], list[lambda_.ILayerVersion]]  # function name → its layers (Packaging.layers_for)
    secrets: Secrets
    email: Email
    monitoring: Monitoring
    api_url: str = ""
    queues: dict[str, WorkQueue] = field(default_factory=dict)
    functions: dict[str, AppFunction] = field(default_factory=dict)

    def queue(self, name: str) -> WorkQueue:
        """A queue by its local name (``devstack.routes.QUEUE_WORKERS``: ``meetings``, ``busy-sync``)."""
        try:
            return self.queues[name]
        except KeyError:
            raise KeyError(f"queue {name!r} is not created yet (stack order) or unknown") from None

    def function(self, scope: Construct, spec: FunctionSpec) -> AppFunction:
        """Create ``spec`` under ``scope`` (construct id: the function's name) and register it."""
        if spec.name in self.functions:
            raise ValueError(f"function {spec.name!r} declared twice")
        created = AppFunction(scope, _construct_id(spec.name), spec=spec, platform=self)
        self.functions[spec.name] = created
        return created

    def provider_environment(self) -> dict[str, str]:
        """Provider endpoints (real by default, see :data:`PROVIDER_ENDPOINTS`) and OAuth client ids."""
        unknown = set(self.config.provider_endpoints) - set(PROVIDER_ENDPOINTS)
        if unknown:
            raise ValueError(f"providerEndpoints: unknown settings {sorted(unknown)}; known: {PROVIDER_ENDPOINTS}")
        env = {name: str(ProviderSettings.model_fields[name.lower()].default) for name in PROVIDER_ENDPOINTS}
        env.update(self.config.provider_endpoints)
        env["GOOGLE_CLIENT_ID"] = self.config.google_client_id
        env["ZOOM_CLIENT_ID"] = self.config.zoom_client_id
        env["MICROSOFT_CLIENT_ID"] = self.config.microsoft_client_id
        return env


def _construct_id(name: str) -> str:
    """``mint_meeting`` → ``MintMeeting``."""
    return "".join(part.capitalize() for part in name.split("_"))
