"""Messages on the busy-sync queue: "re-read this connection's busy times now".

Producers: the scheduled fan-out (``calendar_poll``, one message per calendar connection not covered
by push, and a push-covered one's safety resync), Google push notifications (``POST /webhooks/google``)
and a fresh connect. The consumer is the ``busy_sync`` worker. A message names only the connection
(a periodic safety resync also the push channel it checks); the worker reads the current connection
and replaces its busy blocks, so duplicates and reordering are harmless.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.platform.queue import Queue
from shared.store.models import Provider


class SyncReason(StrEnum):
    """Why a sync was asked for. Every reason reads and stores the same busy set; besides,
    ``RESYNC`` (a push-covered connection's safety resync, :mod:`shared.busy.push_first`) with a
    ``channel`` checks that push missed nothing (:mod:`shared.busy.push_watchdog`), and ``SCHEDULE``
    and ``RESYNC`` are skipped right after another sync (``BUSY_MIN_INTERVAL_S``)."""

    SCHEDULE = "schedule"
    PUSH = "push"
    CONNECT = "connect"
    RESYNC = "resync"


class SyncJob(BaseModel):
    """One busy-sync message (JSON body)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    mentor_id: str = Field(alias="mentorId", min_length=1)
    provider: Provider
    reason: SyncReason = SyncReason.SCHEDULE
    #: A Microsoft lifecycle event to act on before the sync (``shared.busy.microsoft_push``):
    #: ``renew`` the subscriptions (``reauthorizationRequired``) or ``recreate`` one (``subscriptionRemoved``);
    #: ``delete`` the stray subscription named by ``channel`` at Graph (no sync follows).
    subscription: Literal["renew", "recreate", "delete"] | None = None
    #: A periodic safety resync (``RESYNC``): the push channel (Google channel id, Graph subscription
    #: id) that covered the connection since the last resync, flagged if the calendar changed unseen.
    #: A ``delete`` job: the stray Graph subscription to delete.
    channel: str | None = Field(default=None, alias="channelId", max_length=200)

    def body(self) -> str:
        """The SQS message body."""
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)

    def attributes(self) -> dict[str, Any]:
        """No message attributes: every sync does the same work."""
        return {}


class SyncQueue(Queue[SyncJob]):
    """The busy-sync queue (:class:`shared.platform.queue.Queue` of :class:`SyncJob`)."""

    setting = "BUSY_SYNC_QUEUE_URL"
