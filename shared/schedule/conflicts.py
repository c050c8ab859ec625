"""The ``calendar_conflict`` warning of ``POST /classes`` and session moves (PRODUCT.md §2.10).

A class is created (or a session moved) as the mentor asked; the answer then names the sessions
that overlap

* a **calendar busy block** of any connected source (the last synced set of each, as
  ``GET /mentors/me/busy`` shows it — our own events are not in it: busy sync skips them), or
* a **held or booked private session** (its span in the mentor's timeline, :mod:`shared.store.timeline`),

so the mentor can decide. Both are read **after** the write, the private spans strongly
consistently: a private-session write that committed before the class is always named, and one that
comes after has seen the class (the timeline head's version) and was refused — so a private session
and an overlapping class session never both exist without this warning having been given.

Work: one Query for the busy sets, one for the private spans between the first and last session,
then one sweep over sessions and blocks sorted by start (a heap of blocks still open), so a
99-session class against 50,000 blocks stays well under a millisecond per session. At most
:data:`MAX_LISTED` conflicts are listed per session.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

from shared.schedule.class_models import WARNINGS, ConflictView, SessionConflictView, WarningView
from shared.store import ScheduleStore, Session, SessionStatus
from shared.store.busy import BusyStore

MAX_LISTED: Final = 5


@dataclass(frozen=True, order=True)
class _Block:
    start: datetime
    end: datetime
    kind: str
    label: str  # the source (calendar) or the private session's id


def _blocks(
    schedule: ScheduleStore, busy: BusyStore | None, mentor_id: str, lo: datetime, hi: datetime
) -> list[_Block]:
    found: list[_Block] = []
    if busy is not None:
        for provider, busy_set in busy.read(mentor_id).items():
            found += [
                _Block(b.start, b.end, "calendar", provider.value)
                for b in busy_set.blocks
                if b.start < hi and b.end > lo
            ]
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    for span in schedule.timeline.spans_between(mentor_id, lo_s, hi_s, consistent=True):
        start, end = datetime.fromtimestamp(span.start, UTC), datetime.fromtimestamp(span.end, UTC)
        found.append(_Block(start, end, "private_session", span.session_id))
    return sorted(found)


def find_conflicts(
    schedule: ScheduleStore, busy: BusyStore | None, mentor_id: str, sessions: Iterable[Session], tz: ZoneInfo
) -> list[SessionConflictView]:
    """The scheduled ``sessions`` that overlap a busy block or a private session, each with what it overlaps."""
    ordered = sorted((s for s in sessions if s.status is SessionStatus.SCHEDULED), key=lambda s: (s.start, s.end))
    if not ordered:
        return []
    blocks = _blocks(schedule, busy, mentor_id, ordered[0].start, max(s.end for s in ordered))
    found: list[SessionConflictView] = []
    open_blocks: list[tuple[datetime, int, _Block]] = []  # (end, index, block): a heap by end
    nxt = 0
    for session in ordered:
        while nxt < len(blocks) and blocks[nxt].start < session.end:
            heapq.heappush(open_blocks, (blocks[nxt].end, nxt, blocks[nxt]))
            nxt += 1
        while open_blocks and open_blocks[0][0] <= session.start:
            heapq.heappop(open_blocks)  # ends before this session, so before every later one
        hits = sorted(b for _, _, b in open_blocks if b.start < session.end and b.label != session.session_id)[
            :MAX_LISTED
        ]
        if hits:
            found.append(
                SessionConflictView(
                    session_id=session.session_id,
                    start=session.start.astimezone(tz).isoformat(),
                    end=session.end.astimezone(tz).isoformat(),
                    conflicts=[
                        ConflictView(
                            kind=b.kind,
                            start=b.start.astimezone(tz).isoformat(),
                            end=b.end.astimezone(tz).isoformat(),
                            source=b.label if b.kind == "calendar" else None,
                            session_id=b.label if b.kind == "private_session" else None,
                        )
                        for b in hits
                    ],
                )
            )
    return found


def conflict_warning(found: list[SessionConflictView]) -> list[WarningView]:
    """The ``calendar_conflict`` warning naming ``found`` (none when nothing overlaps)."""
    if not found:
        return []
    return [WarningView(code="calendar_conflict", message=WARNINGS["calendar_conflict"], sessions=found)]
