"""Messaging: a work queue with its dead-letter queue (after 5 receives, PRODUCT.md §2.6) and a DLQ alarm.

The capability that owns a worker creates its queue (meetings → ``Meetings``, busy sync → ``Sync``)
with a visibility timeout of at least six times the worker's timeout, as AWS advises for SQS event
sources, so a message is not redelivered while a slow batch is still running.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.monitoring import Monitoring

MAX_RECEIVES: Final = 5
VISIBILITY_FACTOR: Final = 6


class WorkQueue(Construct):
    """An encrypted SQS queue with its DLQ; both refuse non-TLS access; the DLQ's depth is alarmed."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        worker_timeout: Duration,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
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
            visibility_timeout=Duration.seconds(worker_timeout.to_seconds() * VISIBILITY_FACTOR),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=MAX_RECEIVES),
        )
        self.dlq_alarm = monitoring.dlq_alarm(self, self.dlq, name)
