"""LocalStack in-process: bootstrap, environment, components, and a real function behind the gateway."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import httpx

from devstack.stack import Component, LocalStack


def test_bootstrap_creates_what_infra_creates(local_stack: LocalStack) -> None:
    # Given the running stack
    aws = local_stack.aws
    # Then the table, the KMS alias, both queues with 5-receive DLQs and the SES sender exist
    table = local_stack.client("dynamodb").describe_table(TableName=aws.table_name)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
    kms = local_stack.client("kms")
    key = kms.describe_key(KeyId="alias/mentor-connections")["KeyMetadata"]
    assert (key["KeyId"], key["KeySpec"], key["Enabled"]) == (aws.kms_key_id, "SYMMETRIC_DEFAULT", True)
    sealed = kms.encrypt(KeyId="alias/mentor-connections", Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"x"
    sqs = local_stack.client("sqs")
    for queue in (aws.meetings, aws.busy_sync):
        attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == queue.dlq_arn
        assert int(redrive["maxReceiveCount"]) == 5
    assert {aws.meetings.name, aws.busy_sync.name} == {"meetings", "busy-sync"}
    sent = local_stack.client("sesv2").send_email(
        FromEmailAddress=aws.sender_email,
        Destination={"ToAddresses": ["student@example.com"]},
        Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}},
    )
    assert sent["MessageId"]


def test_environment_points_functions_at_the_stack(local_stack: LocalStack) -> None:
    from shared.platform.config import QueueSettings, settings

    # Given the running stack
    # Then the functions' settings read the local endpoints
    base = settings()
    assert base.aws_endpoint_url == local_stack.aws.endpoint_url
    assert base.table_name == local_stack.aws.table_name
    assert base.kms_key_id == "alias/mentor-connections"
    assert base.api_url == local_stack.api_url
    queues = settings(QueueSettings)
    assert queues.meetings_queue_url == local_stack.aws.meetings.url
    assert queues.busy_sync_queue_url == local_stack.aws.busy_sync.url
    assert os.environ["POWERTOOLS_TRACE_DISABLED"] == "1"
    endpoints = local_stack.endpoints()
    assert endpoints["api"] == local_stack.api_url
    assert endpoints["aws"] == local_stack.aws.endpoint_url


def test_mentor_route_reaches_the_real_function(
    api: httpx.Client, mentor_headers: Callable[..., dict[str, str]]
) -> None:
    # Given a mentor token
    # When GET /connections is called with and without it
    authorised = api.get("/connections", headers=mentor_headers("mentor-stack-1"))
    anonymous = api.get("/connections")
    # Then the authorizer let the first through to connections_api and refused the second
    assert authorised.status_code != 401
    assert anonymous.status_code == 401
    assert anonymous.json() == {"message": "Unauthorized"}


class _FakeEmulator:
    name = "fake"

    def __init__(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def endpoints(self) -> dict[str, str]:
        return {"fake": "http://127.0.0.1:1"}

    def environment(self) -> dict[str, str]:
        return {"FAKE_API_BASE": "http://127.0.0.1:1/v1"}


def test_components_start_publish_and_stop_and_env_is_restored(tmp_path) -> None:
    from devstack.jwt import LocalIssuer

    # Given a second, minimal stack with a component
    fake = _FakeEmulator()
    assert isinstance(fake, Component)
    before = dict(os.environ)
    stack = LocalStack(issuer=LocalIssuer(tmp_path), queue_workers=(), components=[fake], scheduler_autorun=False)
    # When it runs
    with stack:
        # Then the component started, its endpoints and environment are published
        assert fake.running
        assert stack.endpoints()["fake"] == "http://127.0.0.1:1"
        assert os.environ["FAKE_API_BASE"] == "http://127.0.0.1:1/v1"
    # And after it stops, the component stopped and the environment is as it was
    assert not fake.running
    assert dict(os.environ) == before
