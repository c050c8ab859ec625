"""SQS → Lambda event source mappings, locally: one polling thread per (queue, worker function).

A :class:`QueuePump` does what Lambda's poller does: ReceiveMessage (long poll, up to 10
messages, every attribute), the exact Lambda SQS event, one invocation per batch, then

* the function returned ``{"batchItemFailures": [{"itemIdentifier": id}, ...]}`` → delete only
  the others (ReportBatchItemFailures; an identifier that is empty or not in the batch fails the
  whole batch, as in Lambda);
* the function raised (or returned something malformed) → the whole batch failed;
* failed messages become visible again after ``retry_delay_s`` (short, so local retries are
  quick; in AWS they wait for the queue's visibility timeout).

The dead-letter queue is the queue's own RedrivePolicy: moto moves a message to the DLQ on the
receive after its ``maxReceiveCount``-th failure, exactly like SQS (verified by the tests), so
the pump does not implement redrive itself.

:meth:`Pumps.drain` waits until every pumped queue is empty and nothing is in flight.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from devstack.aws import boto_client
from devstack.routes import (
    ACCOUNT_ID,
    DEFAULT_REGION,
    FunctionNotFoundError,
    LambdaContext,
    QueueWorker,
    function_exists,
    load_handler,
)

log = logging.getLogger(__name__)

_COUNT_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def _lambda_message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """SQS message attributes in the shape Lambda delivers them (camelCase, binary as base64)."""

    def b64(value: bytes | str) -> str:
        return value if isinstance(value, str) else base64.b64encode(value).decode("ascii")

    shaped: dict[str, Any] = {}
    for name, attr in attributes.items():
        item: dict[str, Any] = {}
        if "StringValue" in attr:
            item["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            item["binaryValue"] = b64(attr["BinaryValue"])
        item["stringListValues"] = list(attr.get("StringListValues", []))
        item["binaryListValues"] = [b64(v) for v in attr.get("BinaryListValues", [])]
        item["dataType"] = attr["DataType"]
        shaped[name] = item
    return shaped


def sqs_event(messages: Sequence[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping sends for a batch of received ``messages``."""
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            # ApproximateReceiveCount, SentTimestamp, SenderId, ApproximateFirstReceiveTimestamp,
            # and for FIFO queues SequenceNumber, MessageGroupId, MessageDeduplicationId.
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes", {})),
            "md5OfBody": message.get("MD5OfBody", ""),
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
        records.append(record)
    return {"Records": records}


def _failed_ids(result: Any, batch_ids: set[str]) -> set[str]:
    """Message ids the function reported as failed; the whole batch if the report is invalid."""
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    failures = result["batchItemFailures"]
    if not isinstance(failures, list):
        log.error("batchItemFailures is not a list: the whole batch failed")
        return set(batch_ids)
    ids: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            log.error("invalid itemIdentifier %r: the whole batch failed", identifier)
            return set(batch_ids)
        ids.add(identifier)
    return ids


class QueuePump:
    """Polls one queue and invokes one worker function with its batches."""

    def __init__(
        self,
        worker: QueueWorker,
        *,
        queue_url: str,
        queue_arn: str,
        endpoint_url: str,
        region: str = DEFAULT_REGION,
        wait_s: int = 1,
        retry_delay_s: int = 1,
    ) -> None:
        self.worker = worker
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.wait_s = wait_s
        self.retry_delay_s = retry_delay_s
        self._sqs = boto_client("sqs", endpoint_url, region)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._in_flight = 0
        self._missing_logged = False
        self.invocations = 0
        self.last_latency_s: float | None = None  # SentTimestamp → handler start, last batch

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def active(self) -> bool:
        """Whether the worker function exists (a pump for a missing function leaves the queue)."""
        return function_exists(self.worker.handler_module)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"devstack-pump-{self.worker.queue}", daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.active:
                if not self._missing_logged:
                    log.info("queue %s: %s not written yet, not polling", self.worker.queue, self.worker.function)
                    self._missing_logged = True
                self._stop.wait(1.0)
                continue
            try:
                self.poll_once()
            except Exception:
                log.exception("queue %s: poll failed", self.worker.queue)
                self._stop.wait(1.0)

    def poll_once(self, wait_s: int | None = None) -> int:
        """Receive one batch and process it; the number of messages received.

        Received messages are invisible (counted by :meth:`pending`) until the in-flight counter
        takes over, so :meth:`Pumps.drain` never misses a batch.
        """
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.worker.batch_size,
            WaitTimeSeconds=self.wait_s if wait_s is None else wait_s,
            VisibilityTimeout=max(1, int(self.worker.timeout_s)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if messages:
            with self._lock:
                self._in_flight += 1
            try:
                self._process(messages)
            finally:
                with self._lock:
                    self._in_flight -= 1
        return len(messages)

    def _process(self, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, queue_arn=self.queue_arn, region=self.region)
        batch_ids = {m["MessageId"] for m in messages}
        sent = min(int(m.get("Attributes", {}).get("SentTimestamp", "0")) for m in messages)
        self.last_latency_s = max(0.0, time.time() - sent / 1000) if sent else None
        self.invocations += 1
        try:
            handler = load_handler(self.worker.handler_module)
            context = LambdaContext(self.worker.function, timeout_s=self.worker.timeout_s, region=self.region)
            result = handler(event, context)
            failed = _failed_ids(result, batch_ids)
        except FunctionNotFoundError:
            failed = set(batch_ids)
        except Exception:
            log.exception("queue %s: %s raised; the whole batch failed", self.worker.queue, self.worker.function)
            failed = set(batch_ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if retry:
            log.info("queue %s: %d of %d messages failed", self.worker.queue, len(retry), len(messages))
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay_s}
                    for i, m in enumerate(retry)
                ],
            )

    def pending(self) -> int:
        """Messages in the queue, visible, in flight or delayed."""
        attributes = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=_COUNT_ATTRIBUTES)[
            "Attributes"
        ]
        return sum(int(attributes.get(name, "0")) for name in _COUNT_ATTRIBUTES)


class Pumps:
    """Every queue pump of the stack."""

    name = "pumps"

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        wait_s: int = 1,
        retry_delay_s: int = 1,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.account_id = account_id
        self.wait_s = wait_s
        self.retry_delay_s = retry_delay_s
        self.pumps: list[QueuePump] = []
        self._started = False

    def add(
        self,
        worker: QueueWorker,
        *,
        queue_url: str,
        queue_arn: str | None = None,
        retry_delay_s: int | None = None,
    ) -> QueuePump:
        """Pump ``queue_url`` into ``worker`` (started at once if the pumps are running)."""
        if queue_arn is None:
            name = queue_url.rstrip("/").rsplit("/", 1)[-1]
            queue_arn = f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"
        pump = QueuePump(
            worker,
            queue_url=queue_url,
            queue_arn=queue_arn,
            endpoint_url=self.endpoint_url,
            region=self.region,
            wait_s=self.wait_s,
            retry_delay_s=self.retry_delay_s if retry_delay_s is None else retry_delay_s,
        )
        self.pumps.append(pump)
        if self._started:
            pump.start()
        return pump

    def remove(self, pump: QueuePump) -> None:
        pump.stop()
        self.pumps.remove(pump)

    def start(self) -> None:
        self._started = True
        for pump in self.pumps:
            pump.start()

    def stop(self) -> None:
        self._started = False
        for pump in self.pumps:
            pump.signal_stop()
        for pump in self.pumps:
            pump.stop()

    def endpoints(self) -> dict[str, str]:
        return {}

    def environment(self) -> dict[str, str]:
        return {}

    def drain(self, timeout: float = 10.0, *, pumps: Sequence[QueuePump] | None = None) -> None:
        """Wait until every active pump's queue is empty and no batch is in flight.

        Checks twice in a row (a worker may enqueue for another pump); raises ``TimeoutError``
        with what is left after ``timeout`` seconds. Pumps whose function does not exist yet are
        ignored (nothing would ever empty their queue).
        """
        deadline = time.monotonic() + timeout
        quiet = 0
        left: dict[str, int] = {}
        while True:
            selected = [p for p in (self.pumps if pumps is None else pumps) if p.active]
            left = {p.worker.queue: p.in_flight + p.pending() for p in selected}
            left = {k: v for k, v in left.items() if v}
            quiet = 0 if left else quiet + 1
            if quiet >= 2:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"queues not drained after {timeout} s: {left}")
            time.sleep(0.05)
