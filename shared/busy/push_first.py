"""Push-first Google sync (PRODUCT.md §2.7, "nothing changed → (almost) nothing sent").

A Google connection whose push channel is live and healthy is **not** polled on the 5-minute
schedule: its changes arrive through ``POST /webhooks/google`` (:mod:`.push_webhook`). The scheduled
fan-out (:mod:`.poll`) asks :class:`PushFirst` about each Google connection it reads from the sync
index and gets one of three answers: ``POLL`` (queue the usual sync), ``SKIP`` (covered by push,
nothing sent), ``RESYNC`` (covered, but its safety resync is due: queue one sync, reason ``RESYNC``).

**Healthy** means all of (read once per poll: one paged Query of the live channels on GSI1
``CHANNELS`` plus one of the pending watch retries, whatever the number of connections):

* the channel is active (Google gave its ``resourceId``) and expires more than
  ``GOOGLE_PUSH_LIVE_MARGIN_S`` (15 min) from now — an expired channel, or one the renewal could
  not replace in time, is polled;
* Google's ``sync`` handshake reached our webhook (``confirmed_ms``): deliveries do arrive at the
  address we gave (a wrong ``API_URL`` or a blocked webhook keeps the connection on the poll);
* no safety resync found a change it missed (``suspect_ms``, below);
* no renewal of it has failed (``renew_failures`` 0) and the mentor has no pending watch retry
  (a failed watch after a calendar switch may leave an old channel on the old calendar);
* it watches the connection's selected calendar on the same Google account;
* the connection's last sync did not fail (``push_sync_failed_ms`` absent on the connection item,
  which the sync index projects, so this costs no read): a failed push sync means the busy set may
  miss a change, so the connection is polled until a sync succeeds again.

A channel we stop (disconnect, calendar switch, renewal) is deleted, so it is no longer found, and
its replacement must pass the same checks — a new channel is polled until its handshake arrives.

**Safety resync**: each healthy channel carries ``resync_due_ms``; a new channel has none, so the
first poll after a connect, a calendar switch or a renewal queues one sync (catching anything that
changed while no channel was watching), and after that at most one every
``GOOGLE_SAFETY_RESYNC_H`` hours (default 6). The due time is moved forward with a conditional
update *before* the message is queued, so two overlapping polls cannot both queue it.
``GOOGLE_SAFETY_RESYNC_H=0`` turns push-first off (every Google connection is polled).

**Microsoft** (:mod:`.microsoft_push`): the same rule for a Microsoft connection and its Graph
subscription (a :class:`PushChannel` of provider ``microsoft``; confirmed when made, since Graph
creates it only after our webhook answered the handshake), with its own safety resync
(``MICROSOFT_SAFETY_RESYNC_H``, default 24 h: Graph tells us of lost notifications with ``missed``).

**What the safety resync catches** (:mod:`.push_watchdog`): Google tells nobody when it drops a
channel on its own side (no message, no API to ask), so such a channel looks healthy. The fan-out
queues each safety resync with reason ``RESYNC`` and, after the channel's first one, the channel's
id; the ``busy_sync`` worker compares what that resync read with the busy set stored before it. A
difference is a change no push brought — unless a push is in flight (a push sync queued or due in the
last ``QUIET_S`` = 30 s, see there) — so the channel is flagged (``suspect_ms``): the very next poll
polls the connection, and that poll's renewal replaces the channel; push covers the connection again
once the new channel's handshake arrives. A silent drop is therefore detected at the first safety
resync after a change, at most ``GOOGLE_SAFETY_RESYNC_H`` after it, and the connection is then
polled until a new channel is live. (A drop followed by no change costs nothing: nothing was
missed.) Every stop we can observe — expiry, failed renewal or watch, our own stop, a failed sync,
no handshake — puts the connection back on the very next poll.

**Why freeBusy and not ``events.list`` + ``syncToken`` for a push** (measured by
``bench/bench_idle.py``, see ``bench/README.md``): both cost one request per push; ``freeBusy`` gives
exactly the busy intervals (Google expands recurrences, drops transparent, cancelled and declined
events), so no per-event cache has to be kept and merged, and its answer is small (a few bytes per
busy block, against ~1 KB per event resource). An incremental ``events.list`` would save bytes only
on calendars with hundreds of events in the window and would need a full re-list on ``410 Gone``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from shared.platform.observability import logger
from shared.store.channels import ChannelStore, PushChannel
from shared.store.errors import ConflictError
from shared.store.repository import connection_sk, mentor_pk
from shared.store.table import Table

if TYPE_CHECKING:
    from shared.store import Connection

#: Attribute on the connection item: a sync of this push-covered connection failed (ms).
SYNC_FAILED_ATTR: Final = "push_sync_failed_ms"
#: Far enough in the future to list every watch retry, whenever due.
_ALL_RETRIES_MS: Final = 10**13 - 1


class Decision(StrEnum):
    POLL = "poll"
    SKIP = "skip"
    RESYNC = "resync"


@dataclass
class Coverage:
    """One poll's view of the live channels: healthy channels by mentor, mentors with a pending retry."""

    channels: dict[str, list[PushChannel]] = field(default_factory=dict)
    retrying: frozenset[str] = frozenset()
    others_retrying: frozenset[str] = frozenset()  # "<provider>#<mentorId>" of other providers' retries
    counts: dict[str, int] = field(default_factory=dict)
    #: "<provider>#<mentorId>" → the channel a periodic safety resync of this poll checks (``SyncJob.channel``).
    checks: dict[str, str] = field(default_factory=dict)

    def count(self, decision: Decision, provider: str = "google") -> None:
        key = decision.value if provider == "google" else f"{provider}_{decision.value}"
        self.counts[key] = self.counts.get(key, 0) + 1


@dataclass
class PushFirst:
    """Decides, per Google connection of one poll, whether push covers it (module docstring)."""

    table: Table
    safety_resync_s: float = 6 * 3600.0
    live_margin_s: float = 900.0
    clock: Callable[[], float] = time.time
    #: The poller holds at most this many channels (~0.5 KB each); beyond it the rest are polled.
    max_channels: int = 100_000
    #: Microsoft subscriptions' safety resync (``MICROSOFT_SAFETY_RESYNC_H``; 0: Microsoft always polled).
    microsoft_resync_s: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.safety_resync_s > 0 or self.microsoft_resync_s > 0

    def resync_s(self, provider: str) -> float:
        return self.microsoft_resync_s if provider == "microsoft" else self.safety_resync_s

    def coverage(self) -> Coverage:
        """Read the live, confirmed, never-failed channels and the pending retries (two paged Queries)."""
        if not self.enabled:
            return Coverage()
        channels = ChannelStore(self.table)
        now_ms = int(self.clock() * 1000)
        healthy: dict[str, list[PushChannel]] = {}
        for n, channel in enumerate(channels.live(now_ms + int(self.live_margin_s * 1000))):
            if n >= self.max_channels:
                logger.warning("too many push channels to hold; the rest are polled", extra={"max": n})
                break
            if channel.resource_id and channel.confirmed_ms and not channel.renew_failures and not channel.suspect_ms:
                healthy.setdefault(channel.mentor_id, []).append(channel)
        retries = list(channels.retries_due(_ALL_RETRIES_MS))
        retrying = frozenset(r.mentor_id for r in retries if r.provider == "google")
        others = frozenset(f"{r.provider}#{r.mentor_id}" for r in retries if r.provider != "google")
        return Coverage(channels=healthy, retrying=retrying, others_retrying=others)

    def decide(self, coverage: Coverage, item: Mapping[str, Any], provider: str = "google") -> Decision:
        """``item`` is a Google (or ``provider``'s) connection as the sync index holds it."""
        decision = self._decide(coverage, item, provider) if self.resync_s(provider) > 0 else Decision.POLL
        coverage.count(decision, provider)
        return decision

    def _decide(self, coverage: Coverage, item: Mapping[str, Any], provider: str) -> Decision:
        mentor_id = str(item.get("mentor_id") or item.get("GSI1SK") or "")
        candidates = [c for c in coverage.channels.get(mentor_id, ()) if c.provider == provider]
        google = provider == "google"
        retrying = (mentor_id if google else f"{provider}#{mentor_id}") in (
            coverage.retrying if google else coverage.others_retrying
        )
        if not candidates or retrying or item.get(SYNC_FAILED_ATTR):
            return Decision.POLL
        calendar = item.get("selected_calendar") or "primary"
        account = item.get("account_id")
        matching = [c for c in candidates if c.calendar_id == calendar and c.account_id == account]
        if not matching:
            return Decision.POLL
        channel = matching[-1]
        now_ms = int(self.clock() * 1000)
        if channel.resync_due_ms > now_ms:
            return Decision.SKIP
        next_ms = now_ms + int(self.resync_s(provider) * 1000)
        try:
            claimed = ChannelStore(self.table).claim_resync(channel.channel_id, now_ms=now_ms, next_ms=next_ms)
        except Exception:  # cannot record it: poll rather than risk skipping for good
            logger.exception("safety resync could not be claimed", extra={"channel_id": channel.channel_id})
            return Decision.POLL
        if claimed and channel.resync_due_ms:  # not its first resync: push covered it since the last one
            coverage.checks[f"{provider}#{mentor_id}"] = channel.channel_id
        return Decision.RESYNC if claimed else Decision.SKIP


def record_sync_failure(table: Table, mentor_id: str, *, now_ms: int, provider: str = "google") -> None:
    """A Google sync failed: the connection is polled until a sync succeeds (one UpdateItem).

    The connection gone meanwhile (disconnected) is fine: nothing to poll.
    """
    with contextlib.suppress(ConflictError):
        table.update(
            mentor_pk(mentor_id),
            connection_sk(provider),
            expression="SET #f = :now",
            condition="attribute_exists(PK)",
            names={"#f": SYNC_FAILED_ATTR},
            values={":now": now_ms},
        )


def clear_sync_failure(table: Table, mentor_id: str, provider: str = "google") -> None:
    """A Google sync succeeded after a failure: push covers the connection again (one UpdateItem)."""
    with contextlib.suppress(ConflictError):
        table.update(
            mentor_pk(mentor_id),
            connection_sk(provider),
            expression="REMOVE #f",
            condition="attribute_exists(PK)",
            names={"#f": SYNC_FAILED_ATTR},
        )


def push_first_outcome(table: Table, conn: Connection, *, failed: bool, was_failing: bool, now: datetime) -> None:
    """After a Google sync (the ``busy_sync`` worker): flag a failure, or lift the flag after a success.

    Never raises: the sync's own outcome stands (a missed flag only means one more or one fewer
    poll until the next sync).
    """
    from shared.store import Provider

    if conn.provider not in (Provider.GOOGLE, Provider.MICROSOFT) or not (failed or was_failing):
        return
    try:
        if failed:
            record_sync_failure(table, conn.mentor_id, now_ms=int(now.timestamp() * 1000), provider=conn.provider.value)
        else:
            clear_sync_failure(table, conn.mentor_id, conn.provider.value)
    except Exception:
        logger.exception("push-first flag not written", extra={"mentor_id": conn.mentor_id, "failed": failed})
