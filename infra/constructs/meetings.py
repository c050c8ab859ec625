"""Meetings: the meetings queue (+ DLQ) and the ``mint_meeting`` worker (PRODUCT.md §2.6).

Producers (``classes_api``, ``stripe_webhook``) get ``sqs:SendMessage`` through their own
:class:`~infra.constructs.function.Access`; the worker consumes with partial batch responses.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from devstack.routes import QUEUE_WORKERS, QueueWorker
from infra.constructs.function import DELETE, GET, PUT, QUERY, UPDATE, Access, FunctionSpec
from infra.constructs.messaging import MAX_RECEIVES, WorkQueue
from infra.constructs.platform import Platform

QUEUE: Final = "meetings"
#: The local wiring's entry for this queue (batch size is shared with the local SQS pump).
WORKER: Final[QueueWorker] = next(w for w in QUEUE_WORKERS if w.queue == QUEUE)
#: A batch of provider calls (each up to the HTTP timeout, with backoff on 429/5xx) plus SES.
WORKER_TIMEOUT: Final = Duration.seconds(max(int(WORKER.timeout_s), 120))

#: mint_meeting (shared/meetings/worker.py, shared/store/meetings.py, shared/providers/credentials.py):
#: reads session / class / booking / connection / mentor (GetItem), a class's sessions (Query) and
#: a session's bookings (Query on GSI1); writes the meeting ledger, bookings' meeting refs, e-mail
#: claims (UpdateItem) and refreshed tokens + the vault's branch key (PutItem / UpdateItem); opens
#: and seals credentials (vault); e-mails students and, on invalid_grant, the mentor (SES); refreshes
#: Google, Zoom and Microsoft tokens (their client secrets). Extends a message's visibility on RetryLater
#: (sqs:ChangeMessageVisibility, part of the event source's consume grant).
ACCESS: Final = Access(
    table=(GET, QUERY, PUT, UPDATE, DELETE),  # DELETE: a booking's waiting-for-reconnect marker (meetings/resume.py)
    index=(QUERY,),
    vault=True,
    email=True,
    secrets=("GOOGLE_CLIENT_SECRET", "ZOOM_CLIENT_SECRET", "MICROSOFT_CLIENT_SECRET"),
    providers=True,
)


class Meetings(Construct):
    """The meetings queue and its worker."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        self.queue = WorkQueue(self, "Queue", name=QUEUE, worker_timeout=WORKER_TIMEOUT, monitoring=platform.monitoring)
        platform.queues[QUEUE] = self.queue
        self.worker = platform.function(
            self,
            FunctionSpec(
                name=WORKER.function,
                description="creates / moves / cancels meetings and e-mails (meetings queue)",
                access=ACCESS,
                timeout=WORKER_TIMEOUT,
                memory_mb=1024,
                # The worker records why a job failed on its last receive, before the DLQ takes it.
                environment={
                    "MEETINGS_QUEUE_URL": self.queue.queue.queue_url,
                    "MEETINGS_MAX_RECEIVES": str(MAX_RECEIVES),
                },
            ),
        )
        self.worker.function.add_event_source(
            sources.SqsEventSource(
                self.queue.queue,
                batch_size=WORKER.batch_size,
                report_batch_item_failures=True,
                max_concurrency=platform.config.meetings_max_concurrency,
            )
        )
