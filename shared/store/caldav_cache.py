"""Per-calendar CalDAV caches of an Apple connection: what each calendar held when last read, so an
unchanged calendar costs no REPORT and a changed one only its changes (PRODUCT.md §2.7).

One item per event calendar, in the mentor's partition but outside the ``BUSY#`` prefix (a busy
read never loads it), read by key (the calendar URLs listed now; the busy head's discovery cache
names the calendars cached last time, so a removed calendar's item is deleted)::

    calendar cache  PK=MENTOR#<m>  SK=CALDAV#<sha256(url)[:32]>   url, account, sync_token,
                                                                  listed_token, ctag,
                                                                  range_start/end, read_at, objects,
                                                                  data (zlib of JSON), tz, blocks
                                                                  (zlib of UTC second pairs), ttl

**Invariant: one item is one consistent snapshot.** Its change markers (``sync_token``, ``ctag``)
were read *before* its objects, so the objects are at least as new as the markers: a later sync
that asks for the changes since the marker may see some it already has (applied again, harmlessly)
but never misses one. Items are replaced whole (``PutItem``), only by a sync that read the calendar
later (``read_at`` condition), so two racing syncs leave the newer snapshot; an older one surviving
would only cost a re-read of changes, never a wrong answer.

What an object keeps is only what busy times need (:func:`shared.busy.apple.busy_relevant`: times,
recurrence, ``TRANSP``/``STATUS`` and the mentor's own declines — no titles, notes, locations or other
attendees), as iCalendar text. ``range_start``/``range_end`` is the time range the objects were read
for; a calendar whose range no longer covers the sync window is read anew. ``blocks`` are the busy
blocks of those objects over that whole range, expanded in the mentor's zone ``tz``: a sync where
nothing changed only clips them to its window (no parsing, no expansion); a new zone recomputes them
from the objects.

Bounds: at most :data:`MAX_OBJECTS` objects, :data:`MAX_BLOCKS` blocks and :data:`MAX_DATA` compressed
bytes an item (DynamoDB's item limit is 400 KB); a calendar over any is not cached (:func:`encode`
says ``None``) and is read whole at every sync, as without a cache. Items expire :data:`RETENTION`
after their last write (``ttl``); an expired one that DynamoDB has not removed yet is ignored.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from shared.platform.observability import logger
from shared.store.repository import mentor_pk
from shared.store.table import Table, from_item, is_conditional_failure, to_item

CALDAV_PREFIX = "CALDAV#"
#: Objects kept per calendar.
MAX_OBJECTS = 5_000
#: Compressed bytes of one calendar's objects (under DynamoDB's 400 KB item limit with room to spare).
MAX_DATA = 300_000
#: Busy blocks kept per calendar (8 bytes each before compression).
MAX_BLOCKS = 20_000
_PAIR = struct.Struct(">II")
#: A cache item lives this long after its last write (a calendar is read anew well before).
RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class CalendarCache:
    """One calendar's snapshot: markers, the range read, and its objects (URL → (etag, text))."""

    url: str
    account: str
    range_start: datetime
    range_end: datetime
    read_at: datetime
    sync_token: str | None = None  # to ask sync-collection from
    ctag: str | None = None
    me: tuple[str, ...] = ()
    listed_token: str | None = None  # the sync-token the calendar list showed (may be older than sync_token)
    objects: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    tz: str | None = None
    blocks: tuple[tuple[int, int], ...] | None = None  # busy [start, end) in UTC seconds over the range

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether the objects were read for a range that includes ``[start, end)``."""
        return self.range_start <= start and self.range_end >= end


def cache_sk(url: str) -> str:
    """Sort key of a calendar's cache item."""
    return CALDAV_PREFIX + hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def encode(cache: CalendarCache) -> tuple[bytes, bytes] | None:
    """The compressed objects and blocks of ``cache``, or ``None`` if over :data:`MAX_OBJECTS` / :data:`MAX_DATA`."""
    if len(cache.objects) > MAX_OBJECTS or len(cache.blocks or ()) > MAX_BLOCKS:
        return None
    payload = {"me": list(cache.me), "objects": [[url, etag, text] for url, (etag, text) in cache.objects.items()]}
    data = zlib.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), 6)
    blocks = zlib.compress(b"".join(_PAIR.pack(*_clamped(pair)) for pair in cache.blocks or ()), 6)
    return (data, blocks) if len(data) + len(blocks) <= MAX_DATA else None


def _clamped(pair: tuple[int, int]) -> tuple[int, int]:
    return (min(max(pair[0], 0), 2**32 - 1), min(max(pair[1], 0), 2**32 - 1))


def _decode(item: dict[str, Any]) -> CalendarCache:
    raw = zlib.decompress(bytes(item["data"]), bufsize=1 << 16)
    payload = json.loads(raw)
    objects = {str(url): (str(etag) if etag is not None else None, str(text)) for url, etag, text in payload["objects"]}
    return CalendarCache(
        url=str(item["url"]),
        account=str(item["account"]),
        range_start=datetime.fromisoformat(str(item["range_start"])),
        range_end=datetime.fromisoformat(str(item["range_end"])),
        read_at=datetime.fromisoformat(str(item["read_at"])),
        sync_token=item.get("sync_token"),
        ctag=item.get("ctag"),
        listed_token=item.get("listed_token"),
        me=tuple(str(a) for a in payload.get("me", ())),
        objects=objects,
        tz=item.get("tz"),
        blocks=tuple(_PAIR.iter_unpack(zlib.decompress(bytes(item["blocks"])))) if "blocks" in item else None,
    )


class CalendarCacheStore:
    """Reads, replaces and drops an Apple connection's calendar caches (see the module docstring)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def read(self, mentor_id: str, urls: Iterable[str], *, now: datetime) -> dict[str, CalendarCache]:
        """The live caches of the calendars ``urls`` (consistent ``BatchGetItem``\\ s of 100 keys; the
        busy-sync worker may not Query), by calendar URL."""
        pk = mentor_pk(mentor_id)
        keys = [to_item({"PK": pk, "SK": sk}) for sk in dict.fromkeys(cache_sk(url) for url in urls)]
        caches: dict[str, CalendarCache] = {}
        for at in range(0, len(keys), 100):
            for item in self._batch(keys[at : at + 100]):
                if int(item.get("ttl", 0)) <= int(now.timestamp()):
                    continue
                try:
                    cache = _decode(item)
                except (KeyError, ValueError, TypeError, zlib.error) as exc:  # unreadable: read the calendar anew
                    logger.warning("calendar cache unreadable", extra={"error": type(exc).__name__})
                    continue
                caches[cache.url] = cache
        return caches

    def _batch(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for attempt in range(5):
            resp = self.table.client.batch_get_item(
                RequestItems={self.table.name: {"Keys": keys, "ConsistentRead": True}}
            )
            found.extend(from_item(raw) for raw in resp.get("Responses", {}).get(self.table.name, []))
            keys = resp.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])
            if not keys:
                return found
            time.sleep(0.05 * 2**attempt * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
        raise RuntimeError("DynamoDB left calendar cache keys unprocessed")

    def save(self, mentor_id: str, cache: CalendarCache, *, now: datetime) -> bool:
        """Replace the calendar's item with ``cache`` unless a later read already did; ``False`` if it
        is too big to keep (the old item is then dropped) or lost to a later read."""
        encoded = encode(cache)
        if encoded is None:
            logger.warning("calendar too big to cache", extra={"objects": len(cache.objects)})
            self.drop(mentor_id, [cache.url])
            return False
        item = {
            "PK": mentor_pk(mentor_id),
            "SK": cache_sk(cache.url),
            "type": "caldav_calendar",
            "url": cache.url,
            "account": cache.account,
            "range_start": cache.range_start.astimezone(UTC).isoformat(),
            "range_end": cache.range_end.astimezone(UTC).isoformat(),
            "read_at": cache.read_at.astimezone(UTC).isoformat(),
            "objects": len(cache.objects),
            "data": encoded[0],
            "ttl": int((now + RETENTION).timestamp()),
        }
        if cache.blocks is not None and cache.tz:
            item |= {"blocks": encoded[1], "tz": cache.tz}
        if cache.sync_token:
            item["sync_token"] = cache.sync_token
        if cache.ctag:
            item["ctag"] = cache.ctag
        if cache.listed_token:
            item["listed_token"] = cache.listed_token
        try:
            self.table.client.put_item(
                TableName=self.table.name,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(#read_at) OR #read_at <= :read_at",
                ExpressionAttributeNames={"#read_at": "read_at"},
                ExpressionAttributeValues=to_item({":read_at": item["read_at"]}),
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise
            return False
        return True

    def drop(self, mentor_id: str, urls: Iterable[str]) -> None:
        """Delete the caches of calendars that are gone (or not cacheable)."""
        pk = mentor_pk(mentor_id)
        for url in urls:
            self.table.delete(pk, cache_sk(url))
