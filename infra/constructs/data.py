"""Data: the single DynamoDB table (built from ``shared.store.schema``) and its two KMS keys.

* ``vault_key`` wraps the token vault's branch keys (``shared.vault``); functions may use it only
  under the vault's encryption context (``infra.constructs.function.vault_statement``).
* ``table_key`` encrypts the table at rest (customer-managed, rotating); functions may use it only
  through DynamoDB (``kms:ViaService``). Two keys, so that neither grant widens the other.

The table is on-demand, with point-in-time recovery, TTL on ``ttl``, and — outside ``dev`` —
deletion protection and retention on stack deletion.
"""

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
    """The table every function shares, its encryption key and the key that wraps vault keys."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, retain: bool = True) -> None:
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
        self.vault_key.add_alias(f"alias/mentor-connections/{stage}")
        self.table_key = kms.Key(
            self,
            "TableKey",
            description="mentor-connections: encrypts the DynamoDB table at rest",
            enable_key_rotation=True,
            rotation_period=Duration.days(365),
            removal_policy=policy,
        )
        self.table = dynamodb.TableV2(
            self,
            "Table",
            **_keys(schema.KEY_SCHEMA),
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(index_name=gsi["IndexName"], **_keys(gsi["KeySchema"]))
                for gsi in schema.GLOBAL_SECONDARY_INDEXES
            ],
            time_to_live_attribute=schema.TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(self.table_key),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=retain,
            removal_policy=policy,
        )
