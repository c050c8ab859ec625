"""The CDK app synthesises, uses the shared table definition, and passes cdk-nag's AWS Solutions checks."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk.assertions import Annotations, Match
from infra_support import Synth, refs

from shared.store import schema


def test_synth_is_fast_enough_to_run_in_every_test_session(synth: Synth) -> None:
    # Given the session's single synth (cdk-nag included) / Then it stays well inside the test budget
    assert synth.seconds < 45, f"synth took {synth.seconds:.1f}s"


def test_table_is_built_from_the_shared_schema(synth: Synth) -> None:
    # Given the synthesised template / Then the table has exactly the schema the local stack uses
    synth.template.has_resource_properties(
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


def test_table_is_protected_and_encrypted_with_its_own_rotating_key(synth: Synth) -> None:
    ((_table_id, table),) = synth.of_type("AWS::DynamoDB::GlobalTable").items()
    props = table["Properties"]
    # Then: customer-managed KMS encryption, PITR and deletion protection, retained with the stack
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    (replica,) = props["Replicas"]
    (key_id,) = refs(replica["SSESpecification"]["KMSMasterKeyId"])
    assert synth.resources[key_id]["Properties"]["EnableKeyRotation"] is True
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert replica["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    # And the table key is not the vault key (neither grant widens the other)
    vault_key = next(k for k, v in synth.of_type("AWS::KMS::Key").items() if "VaultKey" in k)
    assert key_id != vault_key


def test_vault_key_rotates_and_queues_dead_letter_after_five(synth: Synth) -> None:
    template = synth.template
    keys = synth.of_type("AWS::KMS::Key")
    assert keys
    assert all(k["Properties"]["EnableKeyRotation"] is True for k in keys.values())
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/mentor-connections/prod"})
    template.resource_properties_count_is(
        "AWS::SQS::Queue", Match.object_like({"RedrivePolicy": Match.object_like({"maxReceiveCount": 5})}), 2
    )


def test_cdk_nag_finds_no_errors(synth: Synth) -> None:
    # Given AwsSolutionsChecks applied to the app / Then no error annotations remain
    errors = Annotations.from_stack(synth.stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == [], "\n".join(str(e.entry.data) for e in errors)


def test_every_nag_suppression_says_why(synth: Synth) -> None:
    # Given every cdk-nag suppression in the template / Then each has a real reason
    found = 0
    for res in synth.resources.values():
        for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            found += 1
            assert rule["id"].startswith("AwsSolutions-")
            assert len(rule["reason"]) >= 40, rule
            assert " " in rule["reason"], f"unreadable (cdk-nag base64-encodes non-ASCII reasons): {rule}"
    assert found > 0


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


def test_outputs_name_what_an_operator_needs(synth: Synth) -> None:
    outputs = set(synth.outputs)
    assert {"ApiUrl", "TableName", "VaultKeyArn", "MeetingsQueueUrl", "BusySyncQueueUrl", "AlarmTopicArn"} <= outputs
    assert sum(1 for o in outputs if o.startswith("Secret")) == 5  # one per entry of infra.constructs.secrets.SECRETS
