"""SQS pumps: the Lambda SQS event, partial batch failures, whole-batch failures and the DLQ."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import devstack_probe_handlers as probe
import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from devstack.aws import QueueEndpoints, create_queue_with_dlq
from devstack.pumps import QueuePump
from devstack.routes import QueueWorker
from devstack.stack import LocalStack


@dataclass
class ProbeQueue:
    """A fresh queue + DLQ on the session's moto, pumped into the probe function on demand."""

    stack: LocalStack
    queue: QueueEndpoints
    sqs: Any
    pump: QueuePump | None = None
    ids: list[str] = field(default_factory=list)

    def send(self, mode: str, **attributes: dict[str, Any]) -> str:
        item = f"{self.queue.name}-{len(self.ids)}-{mode}"
        self.ids.append(item)
        self.sqs.send_message(
            QueueUrl=self.queue.url,
            MessageBody=json.dumps({"id": item, "mode": mode}),
            MessageAttributes=attributes,
        )
        return item

    def start(self) -> QueuePump:
        worker = QueueWorker(self.queue.name, "probe", module="devstack_probe_handlers")
        self.pump = self.stack.pumps.add(worker, queue_url=self.queue.url, queue_arn=self.queue.arn, retry_delay_s=0)
        return self.pump

    def drain(self, timeout: float = 15.0) -> None:
        assert self.pump is not None
        self.stack.pumps.drain(timeout, pumps=[self.pump])

    def records(self) -> list[dict[str, Any]]:
        """Every record the probe received from this queue, in order."""
        return [
            r for call in probe.calls("sqs") for r in call["event"]["Records"] if r["eventSourceARN"] == self.queue.arn
        ]

    def invocations(self) -> list[list[str]]:
        """Each invocation's batch, as the ids of its messages."""
        return [
            [json.loads(r["body"])["id"] for r in call["event"]["Records"]]
            for call in probe.calls("sqs")
            if call["event"]["Records"][0]["eventSourceARN"] == self.queue.arn
        ]


@pytest.fixture
def probe_queue(local_stack: LocalStack) -> Iterator[ProbeQueue]:
    sqs = local_stack.client("sqs")
    queue = create_queue_with_dlq(sqs, f"probe-{uuid.uuid4().hex[:8]}")
    probe_queue = ProbeQueue(local_stack, queue, sqs)
    yield probe_queue
    if probe_queue.pump is not None:
        local_stack.pumps.remove(probe_queue.pump)


def test_event_has_lambda_sqs_shape(probe_queue: ProbeQueue) -> None:
    # Given a message with a string and a binary message attribute
    probe_queue.send(
        "ok",
        kind={"DataType": "String", "StringValue": "create"},
        blob={"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    )
    # When the pump delivers it
    probe_queue.start()
    probe_queue.drain()
    # Then the function got Lambda's SQS event
    (record,) = probe_queue.records()
    SqsModel.model_validate({"Records": [record]})
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == probe_queue.queue.arn
    assert record["awsRegion"] == "us-east-1"
    assert json.loads(record["body"])["mode"] == "ok"
    assert record["md5OfBody"]
    assert record["receiptHandle"]
    assert set(record["attributes"]) >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "create",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\xff").decode()
    assert probe_queue.pump is not None
    assert probe_queue.pump.last_latency_s is not None


def test_partial_batch_failure_deletes_only_successes(probe_queue: ProbeQueue) -> None:
    # Given three messages in one batch, the middle one failing once
    ok1 = probe_queue.send("ok")
    flaky = probe_queue.send("fail_once")
    ok2 = probe_queue.send("ok")
    # When the pump runs until the queue is empty
    probe_queue.start()
    probe_queue.drain()
    # Then the first batch had all three, only the failure was redelivered, and it succeeded
    invocations = probe_queue.invocations()
    assert sorted(invocations[0]) == sorted([ok1, flaky, ok2])
    assert invocations[1:] == [[flaky]]
    last = probe_queue.records()[-1]
    assert last["attributes"]["ApproximateReceiveCount"] == "2"
    assert probe.ATTEMPTS[ok1] == probe.ATTEMPTS[ok2] == 1
    assert probe_queue.sqs.receive_message(QueueUrl=probe_queue.queue.dlq_url).get("Messages") is None


def test_exception_fails_the_whole_batch(probe_queue: ProbeQueue) -> None:
    # Given two messages in one batch whose first invocation raises
    boom = probe_queue.send("raise_once")
    bystander = probe_queue.send("ok")
    # When the pump runs until the queue is empty
    probe_queue.start()
    probe_queue.drain()
    # Then both were redelivered together and processed on the second receive
    invocations = probe_queue.invocations()
    assert len(invocations) == 2
    assert all(sorted(batch) == sorted([boom, bystander]) for batch in invocations)
    assert {r["attributes"]["ApproximateReceiveCount"] for r in probe_queue.records()[2:]} == {"2"}


def test_message_failing_five_times_ends_in_the_dlq(probe_queue: ProbeQueue) -> None:
    # Given a message that always fails (the queue's RedrivePolicy has maxReceiveCount 5)
    poison = probe_queue.send("always_fail")
    # When the pump runs until the queue is empty
    probe_queue.start()
    probe_queue.drain()
    # Then the function saw it exactly five times and SQS moved it to the dead-letter queue
    assert probe.ATTEMPTS[poison] == 5
    assert [r["attributes"]["ApproximateReceiveCount"] for r in probe_queue.records()] == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    dead = probe_queue.sqs.receive_message(QueueUrl=probe_queue.queue.dlq_url, WaitTimeSeconds=1)["Messages"]
    assert [json.loads(m["Body"])["id"] for m in dead] == [poison]


def test_running_pump_picks_up_new_messages_quickly(probe_queue: ProbeQueue) -> None:
    # Given a pump already polling an empty queue
    probe_queue.start()
    time.sleep(0.2)
    # When a message is sent
    sent = time.monotonic()
    item = probe_queue.send("ok")
    # Then the function gets it well within a second
    while probe.ATTEMPTS[item] == 0:
        assert time.monotonic() - sent < 2.0, "not delivered"
        time.sleep(0.005)
    assert time.monotonic() - sent < 1.0


def test_drain_times_out_while_work_is_left(local_stack: LocalStack) -> None:
    # Given a pumped queue whose message cannot be delivered yet (delayed)
    sqs = local_stack.client("sqs")
    queue = create_queue_with_dlq(sqs, f"probe-{uuid.uuid4().hex[:8]}")
    sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"id": "late", "mode": "ok"}), DelaySeconds=5)
    pump = local_stack.pumps.add(
        QueueWorker(queue.name, "probe", module="devstack_probe_handlers"), queue_url=queue.url, queue_arn=queue.arn
    )
    try:
        # When draining with a short timeout
        # Then drain reports what is left
        with pytest.raises(TimeoutError, match=queue.name):
            local_stack.pumps.drain(0.3, pumps=[pump])
    finally:
        local_stack.pumps.remove(pump)
