"""Data: the single DynamoDB table (built from ``shared.store.schema``) and the vault's KMS key."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from shared.store import schema

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER, "B": dynamodb.AttributeType.BINARY}


def _attribute(name: str) -> dynamodb.Attribute:
    types = {a["AttributeName"]: a["AttributeType"] for a in schema.ATTRIBUTE_DEFINITIONS}
    return dynamodb.Attribute(name=name, type=_TYPES[types[name]])


def _keys(key_schema: list[dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in key_schema:
        role = "partition_key" if key["KeyType"] == "HASH" else "sort_key"
        out[role] = _attribute(key["AttributeName"])
    return out


class Data(Construct):
    """The table every function shares and the customer-managed KMS key that wraps vault keys."""

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool = True) -> None:
        super().__init__(scope, construct_id)
        policy = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.vault_key = kms.Key(
            self,
            "VaultKey",
            description="mentor-connections: wraps the token vault's branch keys",
            enable_key_rotation=True,
            rotation_period=Duration.days(365),
            removal_policy=policy,
        )
        self.vault_key.add_alias("alias/mentor-connections")
        self.table = dynamodb.TableV2(
            self,
            "Table",
            **_keys(schema.KEY_SCHEMA),
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(index_name=gsi["IndexName"], **_keys(gsi["KeySchema"]))
                for gsi in schema.GLOBAL_SECONDARY_INDEXES
            ],
            time_to_live_attribute=schema.TTL_ATTRIBUTE,
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=retain,
            removal_policy=policy,
        )
