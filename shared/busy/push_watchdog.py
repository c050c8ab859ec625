"""What the safety resync catches (PRODUCT.md §2.7): a push channel the provider dropped silently.

Google tells nobody when it drops a watch channel on its side. The periodic safety resync
(:mod:`.push_first`) is the witness: it reads the calendar anyway, so the ``busy_sync`` worker
(:class:`shared.busy.sync.BusySync`, its ``missed_push`` collaborator, :class:`MissedPushCheck`)
compares what it just read with the busy set stored before this sync. Push should have brought
every change since the last sync, so a difference means a change reached the calendar that no push
brought: the channel is **presumed dead** and flagged (:meth:`ChannelStore.flag_suspect`). From then
on the poll no longer finds it live, so the connection is polled every 5 minutes at once, and the
next renewal pass (``calendar_poll``'s maintenance) replaces it with a new channel; push-first covers
the connection again once Google's handshake confirms the new one (the usual rules).

**Rules**

* Only a ``RESYNC`` job that names its ``channel`` is checked: the fan-out names it only when the
  channel already had a safety resync (its first resync, after a connect, calendar switch or
  renewal, catches changes made while no channel watched: a difference there is expected).
* Only the overlap of the stored window and the new one is compared (the window slides: blocks that
  ended since the last sync, or that entered the far end, are no change). A stored set that is
  missing or incomplete, whose windows do not overlap, or whose last attempt failed (``error`` on its
  head: the set may lack a change for that reason, and push-first polls such a connection anyway)
  is not compared.
* **A push in flight is no missed push**: the flag is written only if the channel's link item shows
  no push sync due (``sync_due_ms``, recorded by the webhook when a push queues its sync
  ``GOOGLE_PUSH_COALESCE_S`` ahead) later than :data:`QUIET_S` seconds before this sync started —
  i.e. no notification in the seconds before the resync and none whose sync is still queued. That
  condition is part of the flag's own transaction, so it costs no read. (With the coalescing window
  set to 0 nothing is recorded, and a change pushed seconds before a resync may be flagged: the
  cost of such a false alarm is one channel replacement and a few polls.)
* It never fails the sync: any error is logged and the sync goes on.

**Cost**: one consistent Query of the connection's busy items (its head and chunks only) per checked
``RESYNC`` job (at most one every ``GOOGLE_SAFETY_RESYNC_H`` per connection), plus one
``TransactWriteItems`` when it flags. Nothing on other jobs, nothing on a poll. Microsoft
subscriptions are checked the same way (``MICROSOFT_SAFETY_RESYNC_H``), and their renewal re-subscribes a flagged one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.platform.observability import logger
from shared.queues.busy import SyncJob, SyncReason
from shared.store.busy import Block, BusyStore, merge
from shared.store.channels import ChannelStore

#: A push sync due less than this long before the resync started means the change may be in flight.
QUIET_S: Final = 30


def clip(blocks: Iterable[Block], start: datetime, end: datetime) -> list[Block]:
    """``blocks`` cut to ``[start, end)``, merged."""
    return merge(Block(max(b.start, start), min(b.end, end)) for b in blocks if b.end > start and b.start < end)


@dataclass
class MissedPushCheck:
    """The ``busy_sync`` worker's check of a safety resync against the stored busy set (module docstring)."""

    busy: BusyStore
    channels: ChannelStore
    quiet_s: float = QUIET_S

    def __call__(self, job: SyncJob, blocks: Sequence[Block], window: tuple[datetime, datetime], now: datetime) -> bool:
        """Before the sync stores ``blocks`` (read over ``window`` at ``now``): ``True`` if the channel was flagged.

        Never raises.
        """
        if job.reason is not SyncReason.RESYNC or not job.channel:
            return False
        try:
            if not self._changed(job, blocks, window):
                return False
            return self._flag(job, now)
        except Exception:
            logger.exception("missed-push check failed; the sync goes on", extra={"channel_id": job.channel})
            return False

    def _changed(self, job: SyncJob, blocks: Sequence[Block], window: tuple[datetime, datetime]) -> bool:
        stored = self.busy.read(job.mentor_id, provider=job.provider).get(job.provider)  # the one extra read
        if stored is None or not stored.complete or stored.head.error:
            return False
        if stored.head.window_start is None or stored.head.window_end is None:
            return False
        start, end = max(stored.head.window_start, window[0]), min(stored.head.window_end, window[1])
        if end <= start:
            return False
        return clip(stored.blocks, start, end) != clip(blocks, start, end)

    def _flag(self, job: SyncJob, now: datetime) -> bool:
        assert job.channel is not None
        now_ms = int(now.timestamp() * 1000)
        quiet_since_ms = now_ms - int(self.quiet_s * 1000)
        extra = {"channel_id": job.channel, "provider": job.provider.value}
        flagged = self.channels.flag_suspect(
            job.channel, job.mentor_id, job.provider.value, now_ms=now_ms, quiet_since_ms=quiet_since_ms
        )
        if flagged:
            logger.warning("push channel missed a change; back to polling and renewing", extra=extra)
        else:
            logger.info("safety resync found a change a recent push covers (or the channel is gone)", extra=extra)
        return flagged
