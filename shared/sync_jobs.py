"""Messages on the busy-sync queue: "re-read this connection's busy times now".

Producers: the scheduled fan-out (``calendar_poll``, one message per calendar connection), Google
push notifications (``POST /webhooks/google``) and a fresh connect. The consumer is the
``busy_sync`` worker. A message names only the connection; the worker reads the current
connection and replaces its busy blocks, so duplicates and reordering are harmless.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.store.models import Provider


class SyncReason(StrEnum):
    """Why a sync was asked for (logs and metrics only; every reason does the same work)."""

    SCHEDULE = "schedule"
    PUSH = "push"
    CONNECT = "connect"


class SyncJob(BaseModel):
    """One busy-sync message (JSON body)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    mentor_id: str = Field(alias="mentorId", min_length=1)
    provider: Provider
    reason: SyncReason = SyncReason.SCHEDULE

    def body(self) -> str:
        """The SQS message body."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)


class SyncQueue:
    """Sends :class:`SyncJob` messages to the busy-sync queue through an injected SQS client."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        if not queue_url:
            raise ValueError("BUSY_SYNC_QUEUE_URL is not configured")
        self.sqs = sqs
        self.queue_url = queue_url

    def send(self, job: SyncJob) -> None:
        """Queue one sync."""
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=job.body())

    def send_many(self, jobs: list[SyncJob]) -> int:
        """Queue many syncs, ten per SendMessageBatch call; returns how many were queued.

        Entries SQS refuses are retried once one by one; a second refusal raises.
        """
        sent = 0
        for start in range(0, len(jobs), 10):
            chunk = jobs[start : start + 10]
            resp = self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "MessageBody": job.body()} for n, job in enumerate(chunk)],
            )
            for failed in resp.get("Failed") or []:
                self.send(chunk[int(failed["Id"])])
            sent += len(chunk)
        return sent


_default: SyncQueue | None = None


def default_sync_queue() -> SyncQueue:
    """The busy-sync queue from settings, built once per container."""
    global _default
    if _default is None:
        from shared.aws import client
        from shared.config import QueueSettings, settings

        _default = SyncQueue(client("sqs"), settings(QueueSettings).busy_sync_queue_url)
    return _default


def reset_default_sync_queue() -> None:
    """Forget the container's queue (the environment changed)."""
    global _default
    _default = None
