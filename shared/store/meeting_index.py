"""Where a provider meeting of ours is found again: by its id (webhooks) and by its start day (pre-flight).

One item per live meeting the meetings worker created (PRODUCT.md §2.6, self-healing)::

    item         PK                               SK       GSI1PK / GSI1SK
    meeting ref  MEETREF#<provider>#<meeting id>  MEETREF  PREFLIGHT#<UTC start day> / <start ms:013d>#<sessionId>

attributes: ``session_id``, ``mentor_id``, ``start`` / ``end`` (ISO), ``preflight_at`` (epoch s of
the pre-flight check that claimed it, absent until then), ``ttl`` = the session's end + 1 day.

* **By id** (:meth:`MeetingIndex.session_of`): a Zoom ``meeting.deleted`` / ``meeting.updated`` names
  a meeting id, a Google push leads to event ids; one GetItem says whether it is ours and of which
  session. A meeting id with no item is not ours (or no longer live): the webhook changes nothing.
* **By start day** (:meth:`MeetingIndex.starting_between`): the pre-flight check reads the meetings
  of sessions starting in the next 24 hours with one Query per UTC day on GSI1 (two per run), only
  the due ones, however many meetings exist. :meth:`claim_preflight` marks an item checked
  (conditional on ``preflight_at`` being absent), so each meeting is verified once however often the
  schedule runs; rewriting the item (a move) clears the mark, so a moved meeting is verified again.

The item is *derived* data: every reader re-reads the session (the truth) before acting, so an item
left behind by a crash is harmless, and it expires a day after the session ends. The meetings
worker writes it after recording a created meeting and after a move (:meth:`put`), and removes it
after deleting one (:meth:`drop`).

Per-session notes (:meth:`claim_note`) de-duplicate the e-mails a repair sends the mentor: a string
set ``repair_notes`` on the session item, claimed with ``ADD`` conditional on ``NOT contains``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.store.errors import ConflictError
from shared.store.models import MeetingProvider
from shared.store.schedule_keys import class_id_of, class_pk, epoch_ms, session_sk
from shared.store.schema import GSI1
from shared.store.table import Table, from_item, to_item

PREFIX: Final = "MEETREF#"
SK_VALUE: Final = "MEETREF"
PREFLIGHT_PREFIX: Final = "PREFLIGHT#"
#: Index items outlive their session by this long (then DynamoDB's TTL removes them).
KEEP_AFTER_END: Final = timedelta(days=1)


def meeting_ref_pk(provider: MeetingProvider, meeting_id: str) -> str:
    return f"{PREFIX}{MeetingProvider(provider).value}#{meeting_id}"


def preflight_pk(day: datetime) -> str:
    """The GSI1 partition of meetings starting on ``day``'s UTC date (``PREFLIGHT#2027-03-01``)."""
    return PREFLIGHT_PREFIX + day.astimezone(UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class IndexedMeeting:
    """One meeting ref item."""

    provider: MeetingProvider
    meeting_id: str
    session_id: str
    mentor_id: str
    start: datetime  # the times we last wrote to the provider
    end: datetime
    checked: bool


def _parse(item: dict[str, Any]) -> IndexedMeeting | None:
    try:
        return IndexedMeeting(
            provider=MeetingProvider(str(item["provider"])),
            meeting_id=str(item["meeting_id"]),
            session_id=str(item["session_id"]),
            mentor_id=str(item["mentor_id"]),
            start=datetime.fromisoformat(str(item["start"])),
            end=datetime.fromisoformat(str(item["end"])),
            checked="preflight_at" in item,
        )
    except (KeyError, ValueError):
        return None


class MeetingIndex:
    """Meeting ref items (module docstring) and the sessions' repair notes."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def put(
        self,
        provider: MeetingProvider,
        meeting_id: str,
        *,
        session_id: str,
        mentor_id: str,
        start: datetime,
        end: datetime,
    ) -> None:
        """Write (or rewrite, after a move) the item of a live meeting; the pre-flight mark is cleared."""
        self.table.put(
            {
                "PK": meeting_ref_pk(provider, meeting_id),
                "SK": SK_VALUE,
                "GSI1PK": preflight_pk(start),
                "GSI1SK": f"{epoch_ms(start):013d}#{session_id}",
                "provider": MeetingProvider(provider).value,
                "meeting_id": meeting_id,
                "session_id": session_id,
                "mentor_id": mentor_id,
                "start": start.astimezone(UTC).isoformat(),
                "end": end.astimezone(UTC).isoformat(),
                "ttl": int((end + KEEP_AFTER_END).timestamp()),
            }
        )

    def drop(self, provider: MeetingProvider, meeting_id: str) -> None:
        """The meeting is no longer ours to watch (deleted by us, or gone and replaced)."""
        self.table.delete(meeting_ref_pk(provider, meeting_id), SK_VALUE)

    def lookup(self, provider: MeetingProvider, meeting_id: str) -> IndexedMeeting | None:
        """The item of ``meeting_id`` (consistent GetItem), or ``None`` if it is not a live meeting of ours."""
        if not meeting_id or len(meeting_id) > 1024:
            return None
        item = self.table.get(meeting_ref_pk(provider, meeting_id), SK_VALUE)
        return _parse(item) if item else None

    def session_of(self, provider: MeetingProvider, meeting_id: str) -> str | None:
        found = self.lookup(provider, meeting_id)
        return found.session_id if found else None

    def starting_between(self, start: datetime, end: datetime, *, limit: int) -> Iterator[IndexedMeeting]:
        """Items of meetings starting in ``[start, end)`` (at most ``limit``), oldest start first."""
        yielded = 0
        day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end and yielded < limit:
            kwargs: dict[str, Any] = {
                "TableName": self.table.name,
                "IndexName": GSI1,
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": {"#pk": "GSI1PK", "#sk": "GSI1SK"},
                "ExpressionAttributeValues": to_item(
                    {
                        ":pk": preflight_pk(day),
                        ":lo": f"{epoch_ms(start):013d}#",
                        ":hi": f"{epoch_ms(end) - 1:013d}#~",
                    }
                ),
                "Limit": min(100, limit),
            }
            while yielded < limit:
                resp = self.table.client.query(**kwargs)
                for raw in resp.get("Items", []):
                    parsed = _parse(from_item(raw))
                    if parsed is not None and yielded < limit:
                        yielded += 1
                        yield parsed
                last = resp.get("LastEvaluatedKey")
                if not last:
                    break
                kwargs["ExclusiveStartKey"] = last
            day += timedelta(days=1)

    def claim_preflight(self, found: IndexedMeeting, now: float) -> bool:
        """Mark the item checked; ``True`` only for the first claim since it was (re)written."""
        try:
            self.table.update(
                meeting_ref_pk(found.provider, found.meeting_id),
                SK_VALUE,
                expression="SET #p = :now",
                condition="attribute_exists(PK) AND attribute_not_exists(#p) AND #s = :start",
                names={"#p": "preflight_at", "#s": "start"},
                values={":now": int(now), ":start": found.start.astimezone(UTC).isoformat()},
            )
        except ConflictError:
            return False
        return True

    def release_preflight(self, found: IndexedMeeting) -> None:
        """Give a claim back (queueing the check failed), so the next run checks it."""
        try:
            self.table.update(
                meeting_ref_pk(found.provider, found.meeting_id),
                SK_VALUE,
                expression="REMOVE #p",
                condition="attribute_exists(PK)",
                names={"#p": "preflight_at"},
            )
        except ConflictError:
            return

    # -- the session's repair notes ----------------------------------------------------------------
    def claim_note(self, session_id: str, key: str) -> bool:
        """Claim sending the repair e-mail ``key`` of a session; ``True`` once per key."""
        class_id = class_id_of(session_id)
        if class_id is None:
            return False
        try:
            self.table.update(
                class_pk(class_id),
                session_sk(session_id),
                expression="ADD #n :k",
                condition="attribute_exists(PK) AND NOT contains(#n, :key)",
                names={"#n": "repair_notes"},
                values={":k": {key}, ":key": key},
            )
        except ConflictError:
            return False
        return True

    def release_note(self, session_id: str, key: str) -> None:
        """Give a note claim back (sending failed), so a retry sends it."""
        class_id = class_id_of(session_id)
        if class_id is None:
            return
        self.table.update(
            class_pk(class_id),
            session_sk(session_id),
            expression="DELETE #n :k",
            names={"#n": "repair_notes"},
            values={":k": {key}},
        )
