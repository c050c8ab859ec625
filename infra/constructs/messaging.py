"""Messaging: the work queues, each with a dead-letter queue after 5 receives (PRODUCT.md §2.6)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

MAX_RECEIVES = 5


class WorkQueue(Construct):
    """An encrypted SQS queue with its DLQ; both refuse non-TLS access."""

    def __init__(self, scope: Construct, construct_id: str, *, visibility_timeout: Duration) -> None:
        super().__init__(scope, construct_id)
        self.dlq = sqs.Queue(
            self,
            "Dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=MAX_RECEIVES),
        )


class Messaging(Construct):
    """The meetings queue (mint / move / cancel jobs) and the busy-sync queue."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.meetings = WorkQueue(self, "Meetings", visibility_timeout=Duration.seconds(180))
        self.busy_sync = WorkQueue(self, "BusySync", visibility_timeout=Duration.seconds(180))
