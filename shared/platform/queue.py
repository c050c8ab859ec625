"""SQS for every queue of the system: a typed sender and one way a worker runs a received record.

Sending (:class:`Queue`): a message is anything with ``body()`` (its JSON) and ``attributes()``
(SQS message attributes, may be empty). :meth:`Queue.send_many` sends ten per
``SendMessageBatch`` call, and every queue follows one batch-failure policy: entries SQS refuses
are sent again one by one, and a second refusal raises — so a caller either knows every message
is queued or gets an exception (and, following the ``job_pending`` pattern, retries).

Receiving (:func:`run_record`): a worker's attempt at one record either returns an outcome
(acknowledged), or raises. On a raise that is *not* the record's last receive, ``retry_delay``
may name a delay: the record's visibility is stretched to it (SQS caps it at 12 h) so the
redelivery comes then, not at the queue's default. On the last receive (``receive_count`` ≥
``max_receives``, the queue's ``maxReceiveCount``) ``on_last`` runs first: it records why the
work gave up and returns an outcome to acknowledge the record instead (busy sync: "the next poll
tries again"), or ``None`` to let the error propagate to the dead-letter queue (meetings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from shared.platform.aws import delay_message

#: SQS's SendMessageBatch takes at most ten entries.
BATCH_SIZE = 10


class Message(Protocol):
    """What a :class:`Queue` sends."""

    def body(self) -> str: ...

    def attributes(self) -> Mapping[str, Any]: ...


M = TypeVar("M", bound=Message)


class Queue(Generic[M]):
    """Sends messages of one type to one SQS queue through an injected client."""

    #: The setting that names the queue (error messages).
    setting = "QUEUE_URL"

    def __init__(self, sqs: Any, queue_url: str) -> None:
        if not queue_url:
            raise ValueError(f"{self.setting} is not configured")
        self.sqs = sqs
        self.queue_url = queue_url

    def send(self, message: M, *, delay_s: int = 0) -> None:
        """Queue one message, visible after ``delay_s`` seconds (boto3's standard retries apply)."""
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": message.body()}
        attributes = message.attributes()
        if attributes:
            kwargs["MessageAttributes"] = dict(attributes)
        if delay_s:
            kwargs["DelaySeconds"] = delay_s
        self.sqs.send_message(**kwargs)

    def send_many(self, messages: Sequence[M]) -> int:
        """Queue every message (ten per call); refused entries are sent once more one by one.

        Returns how many were queued (all of them); raises if SQS refuses one twice.
        """
        for start in range(0, len(messages), BATCH_SIZE):
            chunk = messages[start : start + BATCH_SIZE]
            resp = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=list(_entries(chunk)))
            for failed in resp.get("Failed") or []:
                self.send(chunk[int(failed["Id"])])
        return len(messages)


def _entries(chunk: Sequence[Message]) -> Iterable[dict[str, Any]]:
    for n, message in enumerate(chunk):
        entry: dict[str, Any] = {"Id": str(n), "MessageBody": message.body()}
        attributes = message.attributes()
        if attributes:
            entry["MessageAttributes"] = dict(attributes)
        yield entry


@dataclass(frozen=True)
class Received:
    """One received record: what :func:`run_record` needs of it."""

    queue_url: str
    receipt_handle: str | None
    receive_count: int
    max_receives: int

    @property
    def last(self) -> bool:
        """Whether a failure now sends the record to the dead-letter queue."""
        return self.receive_count >= self.max_receives


def run_record(
    received: Received,
    work: Callable[[], str],
    *,
    retry_delay: Callable[[Exception], float | None],
    on_last: Callable[[Exception], str | None],
) -> str:
    """Run ``work`` for one record with the delay / give-up policy of the module docstring."""
    try:
        return work()
    except Exception as exc:
        if received.last:
            outcome = on_last(exc)
            if outcome is not None:
                return outcome
            raise
        delay = retry_delay(exc)
        if delay is not None and received.receipt_handle:
            delay_message(received.queue_url, received.receipt_handle, delay)
        raise
