"""What the provider webhooks hand drift repair (:mod:`shared.meetings.repair`): checks to queue.

The webhooks belong to other capabilities (Zoom's to ``connections``, Google push to ``busy``); the
composition root passes them these functions as callables, so neither imports this capability.

* :func:`zoom_meeting_changed` — a verified Zoom ``meeting.deleted`` / ``meeting.updated``: if the
  meeting id is one of ours (one GetItem on the meeting index), queue a ``meeting.check`` job for its
  session; otherwise nothing (Zoom reports every meeting of the account's users, not only ours).
* :func:`calendar_changed` — a Google push that queued a busy sync: queue one ``calendar.changed``
  job for the mentor with the same delay, so one burst of pushes costs one check.

Both queue only: the worker reads the provider, compares with the ledger and acts, so a delivery
that repeats, or that reports our own write, costs one check and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.platform.observability import logger
from shared.queues.meetings import JobKind, JobQueue, MeetingJob
from shared.store.meeting_index import MeetingIndex
from shared.store.models import MeetingProvider
from shared.store.schedule_keys import class_id_of
from shared.store.table import Table

#: The Zoom events that lead to a check.
ZOOM_MEETING_EVENTS: Final = frozenset({"meeting.deleted", "meeting.updated"})
#: Zoom meeting ids are 64-bit integers: at most 20 digits.
_MAX_ID_DIGITS: Final = 20


def zoom_meeting_id(payload: Mapping[str, Any]) -> str | None:
    """``payload.object.id`` as a string of digits, or ``None`` if it is not a Zoom meeting id."""
    obj = payload.get("object")
    raw = obj.get("id") if isinstance(obj, Mapping) else None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    text = str(raw).strip()
    return text if text.isdigit() and len(text) <= _MAX_ID_DIGITS else None


def zoom_meeting_changed(table: Table, queue: JobQueue, event: str, payload: Mapping[str, Any]) -> bool:
    """Queue a check of the session whose Zoom meeting ``event`` is about; ``True`` if one was queued."""
    if event not in ZOOM_MEETING_EVENTS:
        return False
    meeting_id = zoom_meeting_id(payload)
    found = MeetingIndex(table).lookup(MeetingProvider.ZOOM, meeting_id) if meeting_id else None
    class_id = class_id_of(found.session_id) if found else None
    if found is None or class_id is None:
        logger.info("zoom meeting event for a meeting that is not ours", extra={"zoom_event": event})
        return False
    job = MeetingJob(
        kind=JobKind.MEETING_CHECK,
        mentor_id=found.mentor_id,
        class_id=class_id,
        session_id=found.session_id,
        cause=f"zoom:{event}",
    )
    queue.send(job)
    logger.info("zoom meeting event queued a check", extra={"zoom_event": event, "session_id": found.session_id})
    return True


def calendar_changed(queue: JobQueue, mentor_id: str, delay_s: int = 0) -> None:
    """Queue the check of a mentor's recently changed Google events (after a push)."""
    job = MeetingJob(
        kind=JobKind.CALENDAR_CHANGED, mentor_id=mentor_id, class_id="", session_id="", cause="google:push"
    )
    queue.send(job, delay_s=max(0, min(int(delay_s), 900)))
