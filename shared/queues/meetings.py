"""Jobs on the meetings queue: what the API and the Stripe webhook hand to ``mint_meeting``.

A job names *what happened* (a booking confirmed or cancelled, a session moved or cancelled); the
worker reads the current state from the table and converges the provider to it, so a duplicate,
late or reordered job is harmless (PRODUCT.md §1: SQS delivers at least once, out of order).

Producers that change state and then queue follow one pattern so no job is lost: the state change
records ``job_pending`` on the booking in the same write, the job is sent, then ``job_pending`` is
cleared (:meth:`shared.store.ScheduleStore.clear_pending_job`). A retry that finds the transition
already made but ``job_pending`` still set sends the job again.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.platform.queue import Queue


class JobKind(StrEnum):
    """What the meetings worker is asked to converge."""

    BOOKING_CONFIRMED = "booking.confirmed"
    BOOKING_CANCELLED = "booking.cancelled"
    SESSION_MOVED = "session.moved"
    SESSION_CANCELLED = "session.cancelled"
    MEETING_CHECK = "meeting.check"  # drift repair: verify the session's meeting at its provider
    CALENDAR_CHANGED = "calendar.changed"  # drift repair: a Google push; check the mentor's changed events


class MeetingJob(BaseModel):
    """One message on the meetings queue (JSON body)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    kind: JobKind
    mentor_id: str = Field(alias="mentorId")
    class_id: str = Field(alias="classId")
    session_id: str = Field(alias="sessionId")
    booking_id: str | None = Field(default=None, alias="bookingId")
    sequence: int | None = Field(default=None, description="Session sequence the job was queued at (moves).")
    cause: str | None = Field(default=None, description="Why: stripe event id, 'student', 'mentor', 'refund' …")

    def dedupe_key(self) -> str:
        """Same key for the same fact: the worker's idempotency key for this job."""
        subject = self.booking_id or self.session_id
        suffix = f"#{self.sequence}" if self.sequence is not None else ""
        return f"{self.kind.value}:{subject}{suffix}"

    def body(self) -> str:
        """The SQS message body."""
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)

    def attributes(self) -> dict[str, Any]:
        """SQS message attributes: the job's kind (filtering and metrics without parsing the body)."""
        return {"kind": {"DataType": "String", "StringValue": self.kind.value}}


class JobQueue(Queue[MeetingJob]):
    """The meetings queue (:class:`shared.platform.queue.Queue` of :class:`MeetingJob`)."""

    setting = "MEETINGS_QUEUE_URL"
