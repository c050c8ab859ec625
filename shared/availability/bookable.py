"""``GET /mentors/{mentorId}/slots?from=&to=&duration=`` (platform, PRODUCT.md §2.10).

Reads everything that blocks the mentor's time and runs the pure engine
(:func:`shared.availability.slots.bookable_slots`):

* **Rules**: the mentor's availability item (no rules stored → no slots).
* **Calendar busy times**: the connections and the busy sets of every synced source, one Query
  each (:meth:`BusyStore.read` reads every source's chunks in one paged Query), not one read per
  source item. A ``needs_reconnect`` source's last synced set still blocks time (it is the last
  known truth: offering time we know was busy is worse than hiding time that may have freed up);
  blocks older than the connection (a reconnect since) are ignored, as in ``GET /mentors/me/busy``.
* **Taught sessions**: every scheduled session of the classes whose sessions span the window — the
  mentor's timeline head (:mod:`shared.store.timeline`, one GetItem) names them with their spans, then
  **one Query per such class** (8 at a time, at most :data:`MAX_CLASSES`, else 503 rather than an
  answer that could offer taught time). Classes outside the window cost nothing.
* **Held or booked private sessions**: the spans in the timeline's hour buckets over the window (one
  Query); an expired hold's span left with the write that expired it.

``sources`` names each calendar source the mentor has connected, with its status and when it last
synced; ``degradedSources`` lists those that need reconnecting or have not synced for
:data:`STALE_AFTER`, so the platform can say "availability may be out of date".

Reads per request: 1 GetItem (rules) + 1 Query (connections) + 1 Query (busy sets; more pages only
for large sets) + 1 GetItem (timeline head) + 1 Query (private spans) + 1 Query per class teaching in
the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.availability.rules import AvailabilityRules
from shared.availability.slots import MAX_WINDOW, Hours, Interval, bookable_slots
from shared.platform.api import ApiError
from shared.platform.bounds import control_characters, in_range, plausible_year, range_message
from shared.store import ConnectionStatus, Store
from shared.store.availability import AvailabilityStore
from shared.store.busy import BusyStore
from shared.store.repository import SYNCED_PROVIDERS
from shared.store.schedule import ScheduleStore

#: A source that has not synced for this long is degraded.
STALE_AFTER: Final = timedelta(minutes=15)
MIN_DURATION_MINUTES: Final = 5
MAX_DURATION_MINUTES: Final = 480
#: Classes read per request (one Query each); a mentor with more gets 503 (never a wrong answer).
MAX_CLASSES: Final = 500
MAX_MENTOR_ID: Final = 128


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class SlotView(_Camel):
    """One bookable slot, in the mentor's zone."""

    start: str = Field(description="ISO 8601 with the mentor's offset")
    end: str


class SlotSourceView(_Camel):
    """One calendar source consulted."""

    status: ConnectionStatus
    synced_at: datetime | None = Field(default=None, description="When its busy times were last read.")


class SlotsResponse(_Camel):
    """Body of ``GET /mentors/{mentorId}/slots``."""

    slots: list[SlotView]
    sources: dict[str, SlotSourceView]
    degraded_sources: list[str]


def _invalid(field: str, message: str, **extra: str) -> ApiError:
    entry = {"field": field, "message": message, **extra}
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", f"{field}: {message}", fields=[entry])


def _instant(name: str, raw: str | None, now: datetime) -> datetime:
    if raw is None or raw == "":
        raise _invalid(name, "required: an ISO 8601 date-time with an offset, e.g. 2027-05-01T00:00:00Z")
    try:
        parsed = datetime.fromisoformat(raw.strip().replace("z", "Z")) if len(raw) <= 40 else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in raw.upper():
        raise _invalid(name, "expected an ISO 8601 date-time with an offset, e.g. 2027-05-01T00:00:00Z")
    if not plausible_year(parsed, now) or not in_range(parsed.astimezone(UTC), now):
        raise _invalid(name, range_message(now), code="out_of_range")
    return parsed.astimezone(UTC)


def parse_query(
    mentor_id: str, raw_from: str | None, raw_to: str | None, raw_duration: str | None, *, now: datetime
) -> tuple[datetime, datetime, timedelta]:
    """The query → ``(from, to, duration)``; 400 ``invalid_request`` with ``fields`` otherwise."""
    if not mentor_id or len(mentor_id) > MAX_MENTOR_ID or "#" in mentor_id or control_characters(mentor_id):
        raise _invalid("mentorId", "not a mentor id")
    start, end = _instant("from", raw_from, now), _instant("to", raw_to, now)
    if end <= start:
        raise _invalid("to", "must be after from")
    if end - start > MAX_WINDOW:
        raise _invalid("to", f"at most {MAX_WINDOW.days} days after from")
    text = (raw_duration or "").strip()
    if not text.isdecimal() or len(text) > 4 or not MIN_DURATION_MINUTES <= int(text) <= MAX_DURATION_MINUTES:
        raise _invalid("duration", f"minutes, a whole number from {MIN_DURATION_MINUTES} to {MAX_DURATION_MINUTES}")
    return start, end, timedelta(minutes=int(text))


def _taught(
    schedule: ScheduleStore, mentor_id: str, lo: datetime, hi: datetime
) -> tuple[list[Interval], list[Interval]]:
    """``(taught, held)``: the scheduled class sessions and the private spans overlapping ``[lo, hi)``.

    The classes come from the mentor's timeline head (:mod:`shared.store.timeline`, one GetItem: only
    classes whose sessions span the window are read, one Query each); the held or booked private
    sessions from the timeline's hour buckets (one Query)."""
    head = schedule.timeline.head(mentor_id, consistent=False)
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    class_ids = head.classes_over(lo_s, hi_s)
    if len(class_ids) > MAX_CLASSES:
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE, "too_many_classes", "Too many classes to compute slots; try again later."
        )
    taught = [
        Interval(s.start, s.end)
        for s in schedule.sessions_over(class_ids, lo, hi, consistent=False)
        if s.mentor_id == mentor_id
    ]
    held = [
        Interval(datetime.fromtimestamp(s.start, UTC), datetime.fromtimestamp(s.end, UTC))
        for s in schedule.timeline.spans_between(mentor_id, lo_s, hi_s)
    ]
    return taught, held


def _sources(
    store: Store, busy: BusyStore, mentor_id: str, now: datetime
) -> tuple[dict[str, SlotSourceView], list[str], list[Interval]]:
    """Each connected calendar source's view, the degraded ones, and the busy blocks that count."""
    connections = {c.provider: c for c in store.list_connections(mentor_id)}
    sets = busy.read(mentor_id)
    sources: dict[str, SlotSourceView] = {}
    degraded: list[str] = []
    blocks: list[Interval] = []
    for provider in sorted(SYNCED_PROVIDERS, key=lambda p: p.value):
        conn = connections.get(provider)
        if conn is None or conn.status is ConnectionStatus.NOT_CONNECTED:
            continue
        found = sets.get(provider)
        head = found.head if found is not None else None
        synced_at = head.synced_at if head is not None and head.synced_at is not None else None
        current = synced_at is not None and synced_at >= conn.connected_at
        sources[provider.value] = SlotSourceView(status=conn.status, synced_at=synced_at if current else None)
        fresh = current and synced_at is not None and now - synced_at <= STALE_AFTER
        if conn.status is ConnectionStatus.NEEDS_RECONNECT or not fresh:
            degraded.append(provider.value)
        if current and found is not None:
            blocks.extend(Interval(b.start, b.end) for b in found.blocks)
    return sources, degraded, blocks


@dataclass(frozen=True)
class MentorTime:
    """A mentor's rules and calendar busy blocks, for the private-session write's re-check
    (``shared.schedule.private`` receives it through the composition root)."""

    hours: Hours
    busy: tuple[Interval, ...]

    @property
    def timezone(self) -> str:
        return self.hours.tz.key

    @property
    def buffer_before(self) -> timedelta:
        return self.hours.buffer_before

    @property
    def buffer_after(self) -> timedelta:
        return self.hours.buffer_after

    def bookable(
        self, start: datetime, duration: timedelta, *, now: datetime, blocks: list[tuple[datetime, datetime]]
    ) -> bool:
        """Whether ``[start, start + duration)`` is a slot the engine offers with ``blocks`` (taught
        and held sessions) blocking too."""
        lo, hi = start - duration - self.buffer_after, start + duration + self.buffer_before
        found = bookable_slots(
            self.hours,
            now=now,
            window_start=start,
            window_end=start + timedelta(seconds=1),
            duration=duration,
            busy=[b for b in self.busy if b.end > lo and b.start < hi],
            taught=[Interval(a, b) for a, b in blocks],
        )
        return any(slot.start == start for slot in found)


def mentor_time(
    *, store: Store, busy: BusyStore, rules_store: AvailabilityStore, mentor_id: str, now: datetime
) -> MentorTime | None:
    """The mentor's rules and busy blocks (``None``: no rules stored, so nothing is bookable)."""
    stored = rules_store.get(mentor_id)
    if stored is None:
        return None
    _, _, blocks = _sources(store, busy, mentor_id, now)
    return MentorTime(hours=AvailabilityRules.model_validate(stored.doc).hours(), busy=tuple(blocks))


def mentor_slots(
    *,
    store: Store,
    busy: BusyStore,
    schedule: ScheduleStore,
    rules_store: AvailabilityStore,
    mentor_id: str,
    start: datetime,
    end: datetime,
    duration: timedelta,
    now: datetime,
) -> SlotsResponse:
    """What ``GET /mentors/{mentorId}/slots`` answers (see the module doc)."""
    stored = rules_store.get(mentor_id)
    sources, degraded, blocks = _sources(store, busy, mentor_id, now)
    if stored is None:
        return SlotsResponse(slots=[], sources=sources, degraded_sources=degraded)
    hours = AvailabilityRules.model_validate(stored.doc).hours()
    margin = duration + hours.buffer_before + hours.buffer_after + timedelta(days=1)
    lo, hi = start - margin, end + margin
    busy_blocks = [b for b in blocks if b.end > lo and b.start < hi]
    taught, held = _taught(schedule, mentor_id, lo, hi)
    found_slots = bookable_slots(
        hours,
        now=now,
        window_start=start,
        window_end=end,
        duration=duration,
        busy=busy_blocks,
        taught=taught,
        held=held,
    )
    tz: ZoneInfo = hours.tz
    return SlotsResponse(
        slots=[
            SlotView(start=s.start.astimezone(tz).isoformat(), end=s.end.astimezone(tz).isoformat())
            for s in found_slots
        ],
        sources=sources,
        degraded_sources=degraded,
    )
