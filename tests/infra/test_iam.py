"""Least privilege, function by function: what each role may do is exactly what its code needs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_support import Synth, actions, function_names, refs, resources, role_of, statements

from infra.constructs.function import VAULT_CONTEXT_KEYS

# The expected grants, written out again on purpose: widening a function's access must change
# this table too. (table actions, GSI1 actions, vault, SES, secrets read, queues written)
EXPECTED: dict[str, dict[str, Any]] = {
    "connections_api": {
        "table": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
        "index": set(),
        "vault": True,
        "email": True,
        "secrets": {"GoogleClientSecret", "ZoomClientSecret", "MicrosoftClientSecret"},
        "queues": {"Meetings", "Sync"},
    },
    # busy, availability (conditional Put), slots (Get / Query: no BatchGetItem, no index), the feed token
    # (transactions of Put / Update / Delete parts, sealed with the vault); no provider, secret, queue or e-mail
    "mentors_api": {
        "table": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
        "index": set(),
        "vault": True,
        "email": False,
        "secrets": set(),
        "queues": set(),
    },
    "oauth_callback": {
        "table": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
        "index": set(),
        "vault": True,
        "email": False,
        "secrets": {"GoogleClientSecret", "ZoomClientSecret", "MicrosoftClientSecret"},
        "queues": set(),
    },
    "classes_api": {
        "table": {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"},
        "index": {"Query"},
        "vault": False,
        "email": False,
        "secrets": set(),
        "queues": {"Meetings"},
    },
    "stripe_webhook": {
        "table": {"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"},
        "index": set(),
        "vault": False,
        "email": False,
        "secrets": {"StripeWebhookSecret"},
        "queues": {"Meetings"},
    },
    "provider_webhooks": {
        "table": {"GetItem", "PutItem", "UpdateItem", "DeleteItem"},
        "index": {"Query"},
        "vault": False,
        "email": False,
        "secrets": {"ZoomWebhookSecretToken"},
        "queues": {"Sync", "Meetings"},  # drift repair: Zoom meeting events and Google pushes queue checks
    },
    "calendar_feed": {
        "table": {"GetItem", "Query"},
        "index": {"Query"},
        "vault": False,
        "email": False,
        "secrets": set(),
        "queues": set(),
    },
    "mint_meeting": {
        "table": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
        "index": {"Query"},
        "vault": True,
        "email": True,
        "secrets": {"GoogleClientSecret", "ZoomClientSecret", "MicrosoftClientSecret"},
        "queues": set(),
    },
    "calendar_poll": {
        "table": {"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"},
        "index": {"Query"},
        "vault": True,
        "email": True,
        "secrets": {"GoogleClientSecret", "MicrosoftClientSecret"},
        "queues": {"Sync", "Meetings"},  # the pre-flight queues meeting checks
    },
    "busy_sync": {
        "table": {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"},
        "index": set(),
        "vault": True,
        "email": True,
        "secrets": {"GoogleClientSecret", "MicrosoftClientSecret"},
        "queues": set(),
    },
}


def _table_id(synth: Synth) -> str:
    (table_id,) = synth.of_type("AWS::DynamoDB::GlobalTable")
    return table_id


def _key_id(synth: Synth, name: str) -> str:
    return next(k for k in synth.of_type("AWS::KMS::Key") if name in k)


def _role_statements(synth: Synth, name: str) -> list[dict[str, Any]]:
    return statements(synth, role_of(synth, function_names(synth)[name]))


def test_expected_table_covers_every_function(synth: Synth) -> None:
    assert set(EXPECTED) == set(function_names(synth))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dynamodb_actions_are_exactly_those_the_code_uses(synth: Synth, name: str) -> None:
    table_id = _table_id(synth)
    on_table: set[str] = set()
    on_index: set[str] = set()
    for st in _role_statements(synth, name):
        for action in actions(st):
            if not action.startswith("dynamodb:"):
                continue
            assert "*" not in action
            for resource in resources(st):
                text = str(resource)
                assert refs(resource) == {table_id}
                (on_index if "/index/GSI1" in text else on_table).add(action.removeprefix("dynamodb:"))
                assert "/index/*" not in text
    assert on_table == EXPECTED[name]["table"]
    assert on_index == EXPECTED[name]["index"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vault_key_only_under_the_vault_encryption_context(synth: Synth, name: str) -> None:
    vault_key = _key_id(synth, "VaultKey")
    vault = [st for st in _role_statements(synth, name) if vault_key in refs(st["Resource"])]
    if not EXPECTED[name]["vault"]:
        assert vault == []
        return
    (st,) = vault
    assert sorted(actions(st)) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert st["Condition"] == {
        "StringEquals": {
            "kms:EncryptionContext:app": "mentor-connections",
            "kms:EncryptionContext:purpose": "vault-branch-key",
        },
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(VAULT_CONTEXT_KEYS)},
        "Null": {"kms:EncryptionContext:branch": "false"},
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_kms_permission_is_conditioned(synth: Synth, name: str) -> None:
    table_key = _key_id(synth, "TableKey")
    for st in _role_statements(synth, name):
        if any(a.startswith("kms:") for a in actions(st)):
            assert st.get("Condition"), st
            if table_key in refs(st["Resource"]):
                (via,) = st["Condition"]["StringEquals"].values()
                assert via.startswith("dynamodb.")
                assert via.endswith(".amazonaws.com")
                writes = bool(EXPECTED[name]["table"] - {"GetItem", "Query"})
                assert ("kms:GenerateDataKey" in actions(st)) == writes


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ses_send_only_from_the_sender_through_the_identity(synth: Synth, name: str) -> None:
    ses = [st for st in _role_statements(synth, name) if any(a.startswith("ses:") for a in actions(st))]
    if not EXPECTED[name]["email"]:
        assert ses == []
        return
    (st,) = ses
    assert sorted(actions(st)) == ["ses:SendEmail", "ses:SendRawEmail"]
    assert st["Condition"] == {"StringEquals": {"ses:FromAddress": "bookings@mentors.test"}}
    (resource,) = resources(st)
    assert json.dumps(resource).endswith(':identity/mentors.test"]]}')


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_secrets_read_only_those_the_function_uses(synth: Synth, name: str) -> None:
    read: set[str] = set()
    for st in _role_statements(synth, name):
        if any(a.startswith("secretsmanager:") for a in actions(st)):
            assert actions(st) == ["secretsmanager:GetSecretValue"]
            read |= {r for r in refs(st["Resource"])}
    assert {r.removeprefix("Secrets")[:-8] for r in read} == EXPECTED[name]["secrets"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sends_only_to_the_queues_it_writes(synth: Synth, name: str) -> None:
    sent: set[str] = set()
    for st in _role_statements(synth, name):
        if "sqs:SendMessage" in actions(st):
            assert actions(st) == ["sqs:SendMessage"]
            sent |= refs(st["Resource"])
    assert {s.removesuffix("Queue")[: s.index("Queue")] for s in sent} == EXPECTED[name]["queues"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_wildcard_resource_except_xray(synth: Synth, name: str) -> None:
    for st in _role_statements(synth, name):
        if "*" in resources(st):
            assert sorted(actions(st)) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], st
        assert st["Effect"] == "Allow"
        assert not any(a.endswith(":*") or a == "*" for a in actions(st)), st


def test_roles_carry_no_managed_policies(synth: Synth) -> None:
    for role in synth.of_type("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]
