"""The whole system as one stack, composed of one construct per capability.

Order matters only where one capability uses another's output: data, monitoring, packaging,
secrets and e-mail first (every function uses them), then the API (its URL goes into every
function's environment), the meetings and sync capabilities (their queues are written by API
functions), the feed, and last the API's own functions and routes (they need every function).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.config import DeployConfig
from infra.constructs.api import Api
from infra.constructs.data import Data
from infra.constructs.email import Email
from infra.constructs.feed import FUNCTION as FEED_FUNCTION
from infra.constructs.feed import Feed
from infra.constructs.meetings import Meetings
from infra.constructs.monitoring import Monitoring
from infra.constructs.packaging import PLACEHOLDER_NOTE, Packaging
from infra.constructs.platform import Platform
from infra.constructs.secrets import Secrets
from infra.constructs.sync import Sync
from infra.nag import suppress_stack_findings


class MentorConnectionsStack(Stack):
    """mentor-connections: data, API, meetings, busy-time sync, feed, e-mail, monitoring."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig, **kwargs: Any) -> None:
        description = f"mentor-connections ({config.stage})"
        if config.layer == "placeholder":
            description += f" — {PLACEHOLDER_NOTE}"
        super().__init__(scope, construct_id, description=description, **kwargs)
        self.config = config
        self.data = Data(self, "Data", stage=config.stage, retain=not config.is_dev)
        self.monitoring = Monitoring(self, "Monitoring", config=config)
        self.packaging = Packaging(self, "Packaging", config=config)
        self.secrets = Secrets(self, "Secrets", config=config)
        self.email = Email(self, "Email", config=config)
        self.platform = Platform(
            config=config,
            table=self.data.table,
            table_key=self.data.table_key,
            vault_key=self.data.vault_key,
            code=self.packaging.code,
            layers=self.packaging.layers_for,
            secrets=self.secrets,
            email=self.email,
            monitoring=self.monitoring,
        )
        self.api = Api(self, "Api", platform=self.platform)
        self.platform.api_url = self.api.url
        self.meetings = Meetings(self, "Meetings", platform=self.platform)
        self.sync = Sync(self, "Sync", platform=self.platform)
        self.feed = Feed(self, "Feed", platform=self.platform)
        self.api.add_handlers({FEED_FUNCTION: self.feed.function.function})

        CfnOutput(self, "ApiUrl", value=self.api.url)
        CfnOutput(self, "TableName", value=self.data.table.table_name)
        CfnOutput(self, "VaultKeyArn", value=self.data.vault_key.key_arn)
        CfnOutput(self, "MeetingsQueueUrl", value=self.meetings.queue.queue.queue_url)
        CfnOutput(self, "BusySyncQueueUrl", value=self.sync.queue.queue.queue_url)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        for setting, secret in self.secrets.all.items():
            CfnOutput(self, f"Secret{secret.node.id}", value=secret.secret_name, description=f"put {setting} here")
        suppress_stack_findings(self)
