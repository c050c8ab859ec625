"""A mentor's timeline: what makes a private session's time exclusive (PRODUCT.md §2.10).

Two kinds of items in the mentor's partition::

    item              PK                 SK                        attributes
    timeline head     MENTOR#<mentorId>  TIMELINE                  version, classes {classId: [first start, last end]}
    hour bucket       MENTOR#<mentorId>  TIMELINE#<UTC hour>       version, spans {bookingId: {s, e, sid}}, ttl
                                         (``TIMELINE#2027-03-01T09``)

* The **head** lists every (non-private) class of the mentor with the UTC epoch seconds its sessions
  span, and a ``version`` that every write changing *when* the mentor teaches bumps in the same
  transaction: a class created (:meth:`Timeline.class_created_op`) or a session moved
  (:meth:`Timeline.class_moved_op`). Reading the head consistently therefore names, without an index
  that could lag, every class that can overlap a time — one created a millisecond ago included.
* An **hour bucket** holds the *spans* of the held or booked private sessions that touch that UTC
  hour (a span is stored in every hour it touches). A private session's write claims its time by
  updating each bucket its span touches (conditional on the version it read) and checks each bucket
  its buffers touch (the same condition) and the head's version, all in **one transaction** with the
  session, its booking and the hold (:meth:`Timeline.claim_ops`). Two requests for overlapping times
  share at least one bucket, so at most one of the two transactions commits; the other re-reads and
  finds the time taken. A class created or moved between a request's read and its write bumps the
  head, so that write fails and re-reads too: a private session is never written over a class
  session. (A class may be created over a private session: the mentor decides, with a warning.)
* A span leaves its buckets in the transaction that ends its booking's claim on the time (hold
  expired, booking cancelled) — :meth:`Timeline.release_ops` — so an expired hold frees the time in
  the same write that expires it. Hours already past are not touched (nothing can be booked there),
  and buckets expire (``ttl``) a day after their hour.

Cost: a 60-minute session with 15-minute buffers touches 2-3 buckets; the widest allowed request
(8 hours, 12-hour buffers) 34, so a claim is at most 39 operations (DynamoDB allows 100). Reads are
one consistent ``BatchGetItem`` (head + buckets) per attempt; ``GET /slots`` reads the buckets of a
window with one ``Query``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from shared.store.models import Booking, utcnow
from shared.store.table import Table, from_item, to_item, tx_check, tx_update

HOUR: Final = 3600
#: A class whose sessions all ended this long ago leaves the head when the next class is created.
STALE_CLASS_SECONDS: Final = 86_400
#: Stale classes dropped from the head per class creation (keeps that write small).
PRUNE_PER_WRITE: Final = 20
_BATCH: Final = 100
_HEAD: Final = "TIMELINE"


def mentor_pk(mentor_id: str) -> str:
    return f"MENTOR#{mentor_id}"


def bucket_sk(hour: int) -> str:
    """``TIMELINE#<UTC hour>`` of the bucket starting at epoch second ``hour``."""
    return "TIMELINE#" + datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H")


def hours_of(start: int, end: int) -> list[int]:
    """The epoch seconds of the UTC hours ``[start, end)`` touches (``end > start``)."""
    first = start - start % HOUR
    return list(range(first, end, HOUR))


@dataclass(frozen=True)
class Span:
    """A private session's time: ``[start, end)``, epoch seconds, with its booking and session."""

    booking_id: str
    session_id: str
    start: int
    end: int


@dataclass
class Snapshot:
    """The head and the buckets of a time range, read consistently (versions are 0 for absent items)."""

    head_version: int = 0
    head_exists: bool = False
    classes: dict[str, tuple[int, int]] = field(default_factory=dict)
    buckets: dict[int, int] = field(default_factory=dict)  # hour -> version (0: absent)
    spans: dict[str, Span] = field(default_factory=dict)

    def classes_over(self, lo: int, hi: int) -> list[str]:
        """Ids of the classes whose sessions' span overlaps ``[lo, hi)``."""
        return sorted(c for c, (first, last) in self.classes.items() if first < hi and last > lo)


def _spans(item: Mapping[str, Any]) -> Iterable[Span]:
    for booking_id, raw in (item.get("spans") or {}).items():
        yield Span(str(booking_id), str(raw["sid"]), int(raw["s"]), int(raw["e"]))


def _version_condition(version: int) -> tuple[str, dict[str, str], dict[str, Any]]:
    if version == 0:
        return "attribute_not_exists(PK)", {}, {}
    return "#v = :v", {"#v": "version"}, {":v": version}


class Timeline:
    """Reads and transaction pieces of a mentor's timeline (see the module doc)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # -- reads ------------------------------------------------------------------------------------
    def snapshot(self, mentor_id: str, lo: int, hi: int) -> Snapshot:
        """The head and the buckets of ``[lo, hi)``, one consistent ``BatchGetItem`` (≤ 100 keys)."""
        hours = hours_of(lo, hi)
        if len(hours) + 1 > _BATCH:
            raise ValueError(f"a snapshot covers at most {_BATCH - 1} hours")
        pk = mentor_pk(mentor_id)
        keys = [{"PK": pk, "SK": _HEAD}] + [{"PK": pk, "SK": bucket_sk(h)} for h in hours]
        found: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {self.table.name: {"Keys": [to_item(k) for k in keys], "ConsistentRead": True}}
        for _ in range(8):
            resp = self.table.client.batch_get_item(RequestItems=request)
            for raw in resp.get("Responses", {}).get(self.table.name, []):
                item = from_item(raw)
                found[str(item["SK"])] = item
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError("DynamoDB left keys unprocessed eight times; try again")
        snap = Snapshot()
        head = found.get(_HEAD)
        if head is not None:
            snap.head_exists = True
            snap.head_version = int(head.get("version", 0))
            snap.classes = {str(c): (int(v[0]), int(v[1])) for c, v in (head.get("classes") or {}).items()}
        for hour in hours:
            bucket = found.get(bucket_sk(hour))
            snap.buckets[hour] = int(bucket.get("version", 0)) if bucket else 0
            if bucket:
                snap.spans.update((s.booking_id, s) for s in _spans(bucket))
        return snap

    def head(self, mentor_id: str, *, consistent: bool = True) -> Snapshot:
        """Only the head (one GetItem)."""
        item = self.table.get(mentor_pk(mentor_id), _HEAD, consistent=consistent)
        snap = Snapshot()
        if item is not None:
            snap.head_exists = True
            snap.head_version = int(item.get("version", 0))
            snap.classes = {str(c): (int(v[0]), int(v[1])) for c, v in (item.get("classes") or {}).items()}
        return snap

    def spans_between(self, mentor_id: str, lo: int, hi: int, *, consistent: bool = False) -> list[Span]:
        """The private spans touching ``[lo, hi)``: one Query over the buckets (paged)."""
        items = self.table.query_between(
            mentor_pk(mentor_id), bucket_sk(lo - lo % HOUR), bucket_sk(hi - 1), consistent=consistent
        )
        unique = {s.booking_id: s for item in items for s in _spans(item)}
        return sorted((s for s in unique.values() if s.start < hi and s.end > lo), key=lambda s: (s.start, s.end))

    # -- transaction pieces -----------------------------------------------------------------------
    def ensure_head(self, mentor_id: str) -> None:
        """Create the head if it is missing (so class writes can set a key of its ``classes`` map)."""
        from shared.store.errors import ConflictError

        try:
            self.table.put(
                {"PK": mentor_pk(mentor_id), "SK": _HEAD, "type": "timeline", "version": 0, "classes": {}},
                condition="attribute_not_exists(PK)",
            )
        except ConflictError:
            return

    def claim_ops(self, snap: Snapshot, mentor_id: str, span: Span, lo: int, hi: int) -> list[dict[str, Any]]:
        """Claim ``span`` (its buckets updated) with its buffers ``[lo, hi)`` checked, against ``snap``.

        Index 0 is the head check; a failed condition anywhere means something changed since the read.
        """
        pk = mentor_pk(mentor_id)
        cond, names, values = _version_condition(snap.head_version)
        ops = [tx_check(pk, _HEAD, condition=cond, names=names, values=values)]
        ttl_after = HOUR + 86_400
        own = set(hours_of(span.start, span.end))
        entry = {"s": span.start, "e": span.end, "sid": span.session_id}
        for hour in hours_of(min(lo, span.start), max(hi, span.end)):
            version = snap.buckets.get(hour)
            if version is None:
                raise ValueError("the snapshot does not cover the span and its buffers")
            cond, names, values = _version_condition(version)
            if hour not in own:
                ops.append(tx_check(pk, bucket_sk(hour), condition=cond, names=names, values=values))
                continue
            names = {**names, "#v": "version", "#sp": "spans", "#ttl": "ttl", "#t": "type"}
            values = {**values, ":next": version + 1, ":ttl": hour + ttl_after, ":t": "timeline-hour"}
            if version == 0:
                expression = "SET #sp = :map, #v = :next, #ttl = :ttl, #t = :t"
                values[":map"] = {span.booking_id: entry}
            else:
                expression = "SET #sp.#b = :span, #v = :next, #ttl = :ttl, #t = :t"
                names["#b"] = span.booking_id
                values[":span"] = entry
            ops.append(
                tx_update(pk, bucket_sk(hour), expression=expression, condition=cond, names=names, values=values)
            )
        return ops

    @staticmethod
    def release_ops(mentor_id: str, booking_id: str, start: int, end: int, *, now: int) -> list[dict[str, Any]]:
        """Take the booking's span out of its buckets (hours already over are left to expire)."""
        return [
            tx_update(
                mentor_pk(mentor_id),
                bucket_sk(hour),
                expression="REMOVE #sp.#b ADD #v :one",
                condition="attribute_exists(#sp)",
                names={"#sp": "spans", "#b": booking_id, "#v": "version"},
                values={":one": 1},
            )
            for hour in hours_of(start, end)
            if hour + HOUR > now
        ]

    @staticmethod
    def class_created_op(
        mentor_id: str, class_id: str, first: int, last: int, *, stale: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Add a class to the head (bumping its version); ``stale`` classes leave it. Needs the head
        (:meth:`ensure_head`)."""
        names = {"#cl": "classes", "#c": class_id, "#v": "version"}
        expression = "SET #cl.#c = :span"
        removes = [f"#cl.#o{i}" for i, _ in enumerate(stale)]
        names.update({f"#o{i}": old for i, old in enumerate(stale)})
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        return tx_update(
            mentor_pk(mentor_id),
            _HEAD,
            expression=expression + " ADD #v :one",
            condition="attribute_exists(#cl)",
            names=names,
            values={":span": [first, last], ":one": 1},
        )

    @staticmethod
    def class_moved_op(mentor_id: str, class_id: str, first: int, last: int, *, version: int) -> dict[str, Any]:
        """Widen a class's span for a moved session (bumping the version), conditional on the version read."""
        cond, names, values = _version_condition(version)
        if version == 0:
            raise ValueError("a class move needs the head (created with the class)")
        return tx_update(
            mentor_pk(mentor_id),
            _HEAD,
            expression="SET #cl.#c = :span ADD #v :one",
            condition=cond,
            names={**names, "#cl": "classes", "#c": class_id},
            values={**values, ":span": [first, last], ":one": 1},
        )

    @staticmethod
    def stale_classes(snap: Snapshot, now: int) -> list[str]:
        """Classes of the head whose sessions all ended :data:`STALE_CLASS_SECONDS` ago (a few at a time)."""
        old = [c for c, (_, last) in sorted(snap.classes.items()) if last < now - STALE_CLASS_SECONDS]
        return old[:PRUNE_PER_WRITE]


def release_time(booking: Booking) -> list[dict[str, Any]]:
    """The ops that take a booking's private-session span out of the timeline — if it holds one (PENDING,
    or CONFIRMED within its time; an over-capacity late payment never took it)."""
    if booking.claim is None or booking.over_capacity:
        return []
    start, end = booking.claim[0], booking.claim[1]
    return Timeline.release_ops(booking.mentor_id, booking.booking_id, start, end, now=int(utcnow().timestamp()))


def reclaim_time(timeline: Timeline, booking: Booking) -> list[dict[str, Any]] | None:
    """The ops that re-take a late-paid private session's time, or ``None`` if another took it meanwhile.

    The head is not checked: money was paid, so a class created over the time since does not refuse the
    payment (the session is confirmed; the class got its warning when it was created).
    """
    if booking.claim is None:
        return None
    start, end, lo, hi = booking.claim
    snap = timeline.snapshot(booking.mentor_id, min(lo, start), max(hi, end))
    if any(s.booking_id != booking.booking_id and s.start < hi and s.end > lo for s in snap.spans.values()):
        return None
    span = Span(booking.booking_id, booking.session_id, start, end)
    return timeline.claim_ops(snap, booking.mentor_id, span, lo, hi)[1:]
