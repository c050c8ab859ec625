"""The whole system as one stack, composed of capability constructs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.constructs.data import Data
from infra.constructs.messaging import Messaging


class MentorConnectionsStack(Stack):
    """mentor-connections: data, queues (functions and the API are added by later issues)."""

    def __init__(self, scope: Construct, construct_id: str, *, retain_data: bool = True, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.data = Data(self, "Data", retain=retain_data)
        self.messaging = Messaging(self, "Messaging")
        CfnOutput(self, "TableName", value=self.data.table.table_name)
        CfnOutput(self, "VaultKeyArn", value=self.data.vault_key.key_arn)
        CfnOutput(self, "MeetingsQueueUrl", value=self.messaging.meetings.queue.queue_url)
        CfnOutput(self, "BusySyncQueueUrl", value=self.messaging.busy_sync.queue.queue_url)
