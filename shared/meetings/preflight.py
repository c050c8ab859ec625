"""Pre-flight (PRODUCT.md §2.6): the meetings of sessions starting within 24 hours are verified once.

A maintenance task of the scheduled poll (``wiring.maintenance_tasks``). One run reads the meeting
index's ``PREFLIGHT#<UTC day>`` partitions of today and tomorrow on GSI1, only the meetings starting
in ``[now, now + horizon)`` (:meth:`~shared.store.meeting_index.MeetingIndex.starting_between`), and
for each one not yet verified claims it (a conditional write: two overlapping runs verify once) and
queues one ``meeting.check`` job. The meetings worker then makes **one provider GET** for it and
repairs it if it is gone or moved (:mod:`shared.meetings.repair`). Cost per run is bounded:
``max_per_run`` meetings at most, each read once from the index, queued in batches of ten, each
checked with one GET — and each meeting is checked once, not once per run (a meeting moved by the
platform is re-indexed and so checked again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.store.meeting_index import IndexedMeeting, MeetingIndex
from shared.store.schedule_keys import class_id_of
from shared.store.table import Table


@dataclass
class PreflightResult:
    """What one run did: meetings due in the horizon, already verified, and checks queued."""

    due: int = 0
    verified_before: int = 0
    queued: int = 0


@dataclass
class Preflight:
    """Queues one check per meeting starting soon (module docstring)."""

    index: MeetingIndex
    queue: JobQueue
    clock: Callable[[], float] = time.time
    horizon: timedelta = field(default=timedelta(hours=24))
    max_per_run: int = 5000

    def run(self) -> PreflightResult:
        now = datetime.fromtimestamp(self.clock(), UTC)
        result = PreflightResult()
        claimed: list[tuple[IndexedMeeting, MeetingJob]] = []
        for found in self.index.starting_between(now, now + self.horizon, limit=self.max_per_run):
            result.due += 1
            class_id = class_id_of(found.session_id)
            if found.checked or class_id is None or not self.index.claim_preflight(found, self.clock()):
                result.verified_before += 1
                continue
            job = MeetingJob(
                kind=JobKind.MEETING_CHECK,
                mentor_id=found.mentor_id,
                class_id=class_id,
                session_id=found.session_id,
                cause="preflight",
            )
            claimed.append((found, job))
            if len(claimed) == 10:
                result.queued += self._send(claimed)
                claimed = []
        if claimed:
            result.queued += self._send(claimed)
        logger.info("pre-flight checks queued", extra={"due": result.due, "queued": result.queued})
        return result

    def _send(self, claimed: list[tuple[IndexedMeeting, MeetingJob]]) -> int:
        try:
            return self.queue.send_many([job for _, job in claimed])
        except Exception:
            for found, _ in claimed:  # nothing certain was queued: the next run checks them
                self.index.release_preflight(found)
            raise


def run_preflight(table: Table, queue: JobQueue) -> PreflightResult:
    """One pre-flight run over the table's meeting index (the scheduled poll's maintenance task)."""
    return Preflight(MeetingIndex(table), queue).run()
