"""The Google push webhook (PRODUCT.md §2.7, ``POST /webhooks/google``): verify, then queue a sync.

The channel id names the channel item (one consistent GetItem); the token's hash must match
(constant-time) and so must the resource id. Unknown channel → 404 ``channel_not_found``; wrong
token / resource → 401 ``invalid_channel_token`` (both logged); missing header → 400. ``sync`` (the
handshake after a watch) → 200, nothing queued. ``exists`` / ``not_exists`` → 200 and one sync
queued — unless the connection is no longer connected or the channel watches a calendar that is no
longer selected (200, ignored). Bursts are coalesced: a push queues its sync
``GOOGLE_PUSH_COALESCE_S`` (default 2 s) ahead (SQS ``DelaySeconds``) and records that due time on
the channel's link item (in no index, so a push costs no GSI write); a push arriving more than 1 s
before that due time queues nothing, because that sync reads the calendar after the change. No
provider call, no KMS, no heavy import. A push that queued a sync also calls ``on_calendar_change``
(mentor id, the same delay), set by the composition root: drift repair checks the mentor's Google
meetings (best effort: the pre-flight check backs it up).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from shared.busy.push_settings import (
    CHANNEL_ID_HEADER,
    CHANNEL_TOKEN_HEADER,
    COALESCE_MARGIN_MS,
    MAX_CHANNEL_ID,
    MESSAGE_NUMBER_HEADER,
    RESOURCE_ID_HEADER,
    RESOURCE_STATE_HEADER,
    PushHeaders,
    PushSettings,
    token_matches,
)
from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.queues.busy import SyncJob, SyncQueue, SyncReason
from shared.store import ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel


class PushWebhook:
    """The webhook half of :class:`shared.busy.push.GooglePush` (which provides these attributes)."""

    store: Store
    channels: ChannelStore
    config: PushSettings
    queue: SyncQueue
    clock: Callable[[], float]
    on_calendar_change: Callable[[str, int], None] | None = None

    def _calendar_changed(self, mentor_id: str, delay_s: int) -> None:
        if self.on_calendar_change is None:
            return
        try:
            self.on_calendar_change(mentor_id, delay_s)
        except Exception:
            logger.exception("google push: queueing the meetings check failed")

    def handle_push(self, headers: PushHeaders) -> dict[str, Any]:
        """Verify one notification and queue a sync for a change (module docstring); raises ApiError."""
        channel_id = (headers.get(CHANNEL_ID_HEADER) or "").strip()
        state = (headers.get(RESOURCE_STATE_HEADER) or "").strip().lower()
        if not channel_id or not state:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_request",
                f"{CHANNEL_ID_HEADER} and {RESOURCE_STATE_HEADER} headers are required.",
            )
        channel = self.channels.get(channel_id) if len(channel_id) <= MAX_CHANNEL_ID else None
        if channel is None:
            logger.warning("google push for an unknown channel", extra={"channel_id": channel_id[:80]})
            raise ApiError(HTTPStatus.NOT_FOUND, "channel_not_found", "No such notification channel.")
        resource = (headers.get(RESOURCE_ID_HEADER) or "").strip()
        if not token_matches(headers.get(CHANNEL_TOKEN_HEADER), channel.token_hash) or (
            channel.resource_id and not hmac.compare_digest(resource.encode(), channel.resource_id.encode())
        ):
            logger.warning("google push with a bad channel token or resource", extra={"channel_id": channel_id})
            raise ApiError(HTTPStatus.UNAUTHORIZED, "invalid_channel_token", "The channel token does not match.")
        extra = {"channel_id": channel_id, "state": state, "message_number": headers.get(MESSAGE_NUMBER_HEADER)}
        if state == "sync":
            # Proof that deliveries reach us: only a confirmed channel lets the poll skip (push_first).
            self.channels.confirm(channel.channel_id, now_ms=int(self.clock() * 1000))
            logger.info("google push channel handshake", extra=extra)
            return {"received": True, "queued": False}
        if state not in ("exists", "not_exists"):
            logger.info("google push state ignored", extra=extra)
            return {"received": True, "queued": False}
        conn = self.store.get_connection(channel.mentor_id, Provider.GOOGLE)
        if conn is None or conn.status is not ConnectionStatus.CONNECTED or conn.credential is None:
            logger.info("google push for a connection that does not sync", extra=extra)
            return {"received": True, "queued": False}
        if (conn.selected_calendar or "primary") != channel.calendar_id:
            logger.info("google push for a calendar no longer selected", extra=extra)
            return {"received": True, "queued": False}
        return {"received": True, "queued": self._queue_sync(channel, extra)}

    def _queue_sync(self, channel: PushChannel, extra: dict[str, Any]) -> bool:
        window_s = self.config.google_push_coalesce_s
        job = SyncJob(mentor_id=channel.mentor_id, provider=Provider.GOOGLE, reason=SyncReason.PUSH)
        if window_s <= 0:
            self.queue.send(job)
            self._calendar_changed(channel.mentor_id, 0)
            logger.info("google push queued a sync", extra=extra)
            return True
        now_ms = int(self.clock() * 1000)
        window_ms = window_s * 1000
        if not self.channels.claim_push_sync(channel, now_ms=now_ms, window_ms=window_ms, margin_ms=COALESCE_MARGIN_MS):
            logger.info("google push covered by a queued sync", extra=extra)
            return False
        try:
            self.queue.send(job, delay_s=window_s)
        except Exception:
            self.channels.release_push_sync(channel, due_ms=now_ms + window_ms)
            raise
        self._calendar_changed(channel.mentor_id, int(window_s))
        logger.info("google push queued a sync", extra={**extra, "delay_s": window_s})
        return True


def process_google_push(service: PushWebhook, headers: PushHeaders) -> dict[str, Any]:
    """``POST /webhooks/google``: verify the notification and queue a sync (raises :class:`ApiError`)."""
    return service.handle_push(headers)
