"""The CDK app synthesises, uses the shared table definition, and passes cdk-nag's AWS Solutions checks."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

from aws_cdk import Stack
from aws_cdk.assertions import Annotations, Match, Template

from infra.app import build_app
from shared.store import schema


@pytest.fixture(scope="module")
def stack() -> Stack:
    app = build_app(nag=True)
    (stack,) = [c for c in app.node.children if isinstance(c, Stack)]
    app.synth()
    return stack


def test_table_is_built_from_the_shared_schema(stack: Stack) -> None:
    # Given the synthesised template / Then the table has exactly the schema the local stack uses
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": schema.KEY_SCHEMA,
            "AttributeDefinitions": Match.array_with(schema.ATTRIBUTE_DEFINITIONS),
            "GlobalSecondaryIndexes": [
                Match.object_like({"IndexName": g["IndexName"], "KeySchema": g["KeySchema"]})
                for g in schema.GLOBAL_SECONDARY_INDEXES
            ],
            "TimeToLiveSpecification": {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True},
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def test_vault_key_rotates_and_queues_dead_letter_after_five(stack: Stack) -> None:
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/mentor-connections"})
    template.resource_properties_count_is(
        "AWS::SQS::Queue", Match.object_like({"RedrivePolicy": Match.object_like({"maxReceiveCount": 5})}), 2
    )


def test_cdk_nag_finds_no_errors(stack: Stack) -> None:
    # Given AwsSolutionsChecks applied to the app / Then no error annotations remain
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == [], "\n".join(str(e.entry.data) for e in errors)


def test_cdk_nag_is_live() -> None:
    # Given a deliberately weak queue (no DLQ, no TLS enforcement) under the same checks
    from aws_cdk import App, Aspects
    from aws_cdk import aws_sqs as sqs
    from cdk_nag import AwsSolutionsChecks

    app = App()
    weak = Stack(app, "Weak")
    sqs.Queue(weak, "Q")
    Aspects.of(app).add(AwsSolutionsChecks())
    # Then cdk-nag reports it, so the clean result above is not vacuous
    rules = {str(e.entry.data).split(":")[0] for e in Annotations.from_stack(weak).find_error("*", Match.any_value())}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules
