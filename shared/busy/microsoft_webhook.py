"""The Microsoft Graph webhook (PRODUCT.md §2.7, ``POST /webhooks/microsoft``).

* **Handshake** — ``?validationToken=<token>``: answered 200 ``text/plain`` with the (decoded) token,
  nothing else done (at most :data:`MAX_VALIDATION_TOKEN` characters, else 400).
* **Notifications** — a JSON body ``{"value": [...]}`` (at most :data:`MAX_NOTIFICATIONS` read,
  :data:`MAX_BODY` bytes). Each names its ``subscriptionId`` and echoes the ``clientState``: the
  subscription is looked up (one consistent GetItem) and the clientState's SHA-256 compared in
  constant time. An unknown subscription, one of another provider or a wrong clientState is
  ignored and logged, never trusted (the answer is still 202: a forger learns nothing).
* **Strays** — only for an unknown subscription id: the clientState's hash is looked up among the
  pending states (:mod:`shared.store.subscription_states`, one consistent GetItem, compared in
  constant time). A match is one of ours whose create answer was lost: one job marked
  ``subscription="delete"`` with the subscription id (``channelId``) is queued for the ``busy_sync``
  worker, ``MICROSOFT_STRAY_DELETE_DELAY_S`` ahead (a create still in flight records its channel
  first; the worker never deletes a recorded one), and claimed on the state item (one conditional
  UpdateItem) so a burst queues one delete. The notification itself is not trusted (no sync); no
  match: ignored as above. Either way 202.
* A change (``created`` / ``updated`` / ``deleted``) queues one busy sync of the mentor's Microsoft
  connection, coalesced like Google's pushes: the sync is queued ``MICROSOFT_PUSH_COALESCE_S`` ahead
  and its due time claimed on the subscription's link item, so a burst queues one sync.
* Lifecycle events: ``missed`` → one sync (as a change); ``reauthorizationRequired`` → a sync job
  marked ``subscription="renew"`` queued now: the ``busy_sync`` worker (which holds the tokens)
  renews the subscription (``PATCH``), then syncs; ``subscriptionRemoved`` → the subscription's items
  are forgotten and a job marked ``"recreate"`` makes a new one, then syncs (catching the gap). The
  webhook itself calls no provider and opens no credential (no KMS, no heavy import).
* A notification for a connection that no longer syncs, or a calendar no longer selected, is
  acknowledged and ignored. Answer: 202 ``{"received", "queued"}``; a body that is not such JSON → 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final, Literal

from shared.busy.push_settings import COALESCE_MARGIN_MS, MAX_CHANNEL_ID, token_hash, token_matches
from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.queues.busy import SyncJob, SyncQueue, SyncReason
from shared.store import ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel
from shared.store.subscription_states import PendingState, SubscriptionStateStore

MAX_VALIDATION_TOKEN: Final = 1024
MAX_NOTIFICATIONS: Final = 100
MAX_BODY: Final = 512 * 1024
CHANGES: Final = frozenset({"created", "updated", "deleted"})
LIFECYCLE: Final = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
#: A stray's notifications queue no second delete this long after its delete is due.
STRAY_WINDOW_S: Final = 300
#: The longest subscription id a delete job can carry (``SyncJob.channel``).
MAX_STRAY_ID: Final = 200


def validation_answer(token: str) -> str:
    """The handshake's body: the token as Graph sent it (decoded by the gateway), bounded."""
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "validationToken is empty or too long.")
    return token


def _notifications(body: bytes) -> list[dict[str, Any]]:
    if len(body) > MAX_BODY:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "The notification body is too large.")
    try:
        parsed = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "The body is not JSON.") from None
    value = parsed.get("value") if isinstance(parsed, dict) else None
    if not isinstance(value, list):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", 'The body has no "value" list.')
    return [n for n in value[:MAX_NOTIFICATIONS] if isinstance(n, dict)]


class MicrosoftWebhook:
    """Verifies notifications and acts on them (module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        queue: SyncQueue,
        coalesce_s: int,
        clock: Callable[[], float],
        stray_delay_s: int = 180,
    ) -> None:
        self.store = store
        self.channels = ChannelStore(store.table)
        self.states = SubscriptionStateStore(store.table)
        self.queue = queue
        self.coalesce_s = coalesce_s
        self.clock = clock
        self.stray_delay_s = stray_delay_s

    def handle(self, body: bytes) -> dict[str, Any]:
        received, queued = 0, 0
        mentors: set[str] = set()
        strays: dict[str, PendingState] = {}
        for note in _notifications(body):
            channel = self._verified(note, strays)
            if channel is None:
                continue
            received += 1
            event = str(note.get("lifecycleEvent") or "")
            change = str(note.get("changeType") or "")
            extra = {"subscription_id": channel.channel_id, "event": event or change}
            if event in ("reauthorizationRequired", "subscriptionRemoved"):
                if event == "subscriptionRemoved":
                    self.channels.delete(channel)  # Graph removed it: a new one takes its place
                queued += self._lifecycle(channel, "renew" if event == "reauthorizationRequired" else "recreate", extra)
                continue
            if event not in ("", "missed") or (not event and change not in CHANGES):
                logger.info("microsoft notification ignored", extra=extra)
                continue
            if channel.mentor_id in mentors or not self._syncs(channel, extra):
                continue
            mentors.add(channel.mentor_id)
            queued += int(self._queue_sync(channel, extra))
        queued += sum(self._queue_delete(sub_id, state) for sub_id, state in strays.items())
        return {"received": received, "queued": queued}

    def _verified(self, note: dict[str, Any], strays: dict[str, PendingState]) -> PushChannel | None:
        """The note's recorded subscription if its clientState matches; a stray of ours goes to ``strays``."""
        sub_id = str(note.get("subscriptionId") or "").strip()
        channel = self.channels.get(sub_id) if 0 < len(sub_id) <= MAX_CHANNEL_ID else None
        if channel is None and sub_id in strays:
            return None  # this body's notes of the same stray: its delete is queued once
        if channel is None and 0 < len(sub_id) <= MAX_STRAY_ID and (state := self._pending(note)) is not None:
            strays[sub_id] = state
            return None
        if channel is None or channel.provider != Provider.MICROSOFT.value:
            logger.warning("microsoft notification for an unknown subscription", extra={"subscription_id": sub_id[:80]})
            return None
        state = note.get("clientState")
        if not isinstance(state, str) or not token_matches(state, channel.token_hash):
            logger.warning("microsoft notification with a wrong clientState", extra={"subscription_id": sub_id})
            return None
        return channel

    def _pending(self, note: dict[str, Any]) -> PendingState | None:
        """The pending state the note's clientState was made as (a stray of ours), or ``None``."""
        state = note.get("clientState")
        if not isinstance(state, str) or not state or len(state) > MAX_CHANNEL_ID:
            return None
        pending = self.states.get(token_hash(state))
        if pending is None or pending.provider != Provider.MICROSOFT.value:
            return None
        return pending if token_matches(state, pending.state_hash) else None

    def _queue_delete(self, sub_id: str, state: PendingState) -> int:
        extra = {"mentor_id": state.mentor_id, "subscription_id": sub_id[:8]}
        now_ms, delay_s = int(self.clock() * 1000), self.stray_delay_s
        window_ms = (delay_s + STRAY_WINDOW_S) * 1000
        if not self.states.claim_stray(state.state_hash, sub_id, now_ms=now_ms, window_ms=window_ms):
            logger.info("microsoft stray subscription: delete already queued", extra=extra)
            return 0
        job = SyncJob(
            mentor_id=state.mentor_id,
            provider=Provider.MICROSOFT,
            reason=SyncReason.PUSH,
            subscription="delete",
            channel=sub_id,
        )
        self.queue.send(job, delay_s=delay_s)
        logger.warning("microsoft stray subscription: delete queued", extra={**extra, "delay_s": delay_s})
        return 1

    def _syncs(self, channel: PushChannel, extra: dict[str, Any]) -> bool:
        conn = self.store.get_connection(channel.mentor_id, Provider.MICROSOFT)
        if conn is None or conn.status is not ConnectionStatus.CONNECTED or conn.credential is None:
            logger.info("microsoft notification for a connection that does not sync", extra=extra)
            return False
        if (conn.selected_calendar or "primary") != channel.calendar_id:
            logger.info("microsoft notification for a calendar no longer selected", extra=extra)
            return False
        return True

    def _lifecycle(self, channel: PushChannel, action: Literal["renew", "recreate"], extra: dict[str, Any]) -> int:
        job = SyncJob(
            mentor_id=channel.mentor_id, provider=Provider.MICROSOFT, reason=SyncReason.PUSH, subscription=action
        )
        self.queue.send(job)
        logger.info("microsoft lifecycle event queued", extra={**extra, "action": action})
        return 1

    def _queue_sync(self, channel: PushChannel, extra: dict[str, Any]) -> bool:
        job = SyncJob(mentor_id=channel.mentor_id, provider=Provider.MICROSOFT, reason=SyncReason.PUSH)
        if self.coalesce_s <= 0:
            self.queue.send(job)
            logger.info("microsoft notification queued a sync", extra=extra)
            return True
        now_ms, window_ms = int(self.clock() * 1000), self.coalesce_s * 1000
        if not self.channels.claim_push_sync(channel, now_ms=now_ms, window_ms=window_ms, margin_ms=COALESCE_MARGIN_MS):
            logger.info("microsoft notification covered by a queued sync", extra=extra)
            return False
        try:
            self.queue.send(job, delay_s=self.coalesce_s)
        except Exception:
            self.channels.release_push_sync(channel, due_ms=now_ms + window_ms)
            raise
        logger.info("microsoft notification queued a sync", extra={**extra, "delay_s": self.coalesce_s})
        return True
