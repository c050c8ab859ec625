"""Busy blocks of a mentor's calendar connections: versioned sets behind a per-connection head.

Items (all in the mentor's partition, so one Query reads everything a busy answer needs)::

    head    PK=MENTOR#<m>  SK=BUSY#<provider>                       version, chunks, blocks, digest,
                                                                    chunks_ttl, read_ms, synced_at,
                                                                    window_start/end, attempted_at, error,
                                                                    caldav (Apple discovery cache), ttl
    chunk   PK=MENTOR#<m>  SK=BUSY#<provider>#v<version>#<nnn>      data (zlib of packed UTC second pairs), ttl

A sync **replaces** the connection's whole set without a reader ever seeing it empty or half
written: it writes the new version's chunks first, then flips the head to that version with one
conditional ``UpdateItem`` (``version`` absent or older: a slower sync that read the provider
earlier never overwrites a newer one) and only then deletes the previous version's chunks (named by
the flip's ``ALL_OLD`` answer). A sync that loses the flip deletes its own chunks. Readers take
the head and the chunks of the head's version from one strongly consistent Query; if a chunk is
missing (the head moved on between pages) they read again.

**Nothing changed, one write**: the head keeps a digest of its chunks. A sync whose blocks have the
same digest only moves the head's times (``synced_at``, the window, ``ttl``) with one conditional
``UpdateItem`` — no chunk written or deleted — as long as the chunks have more than
:data:`CHUNK_RENEW_BEFORE` to live (their ``ttl`` is not moved; after that the set is written
again). Any other outcome of that update (different blocks, a newer read, no head) falls through
to the replacement above. Both paths apply only a read newer than the head's (``read_ms``), so
an unchanged refresh can never let an older, different read win afterwards. An idle poll of a
polled calendar costs 1 write instead of 3 (new chunk, head, old chunk).

Sizes: a block is 8 bytes before compression (two unsigned 32-bit UTC seconds), so 60 days of a
very busy calendar (a few thousand blocks) is one chunk of a few kilobytes; a chunk holds at most
:data:`CHUNK_BLOCKS` (320 KB raw, under DynamoDB's 400 KB item limit even uncompressible).

``ttl`` (30 days after the last successful sync) removes the blocks of a connection nobody syncs
any more (disconnected); readers ignore heads older than the connection (reconnected since).
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from shared.store.errors import ConflictError
from shared.store.models import Connection, Mentor, Provider
from shared.store.repository import _connection_from_item, _mentor_from_item, connection_sk, mentor_pk
from shared.store.table import Table, from_item, is_conditional_failure, to_item

BUSY_PREFIX = "BUSY#"
#: Blocks per chunk item (8 bytes each before compression).
CHUNK_BLOCKS = 40_000
#: Blocks and heads live this long after the last successful sync (then DynamoDB's TTL removes them).
RETENTION = timedelta(days=30)
#: An unchanged set's chunks are written again once they have less than this left to live: the
#: one-write refresh moves the head's ``ttl`` but not theirs.
CHUNK_RENEW_BEFORE = timedelta(days=15)
_PAIR = struct.Struct(">II")


@dataclass(frozen=True, order=True)
class Block:
    """A busy interval ``[start, end)`` in UTC (whole seconds)."""

    start: datetime
    end: datetime


class CalDavCache(BaseModel):
    """Apple discovery results kept between syncs (valid for the Apple ID that found them), and the
    calendars whose snapshots :mod:`shared.store.caldav_cache` holds (so a removed one is dropped)."""

    model_config = ConfigDict(frozen=True)

    account: str
    home_url: str
    addresses: tuple[str, ...] = ()
    calendars: tuple[str, ...] = ()


class BusyHead(BaseModel):
    """What the head item of one connection's busy set says."""

    model_config = ConfigDict(frozen=True)

    provider: Provider
    version: str | None = None
    chunks: int = 0
    blocks: int = 0
    synced_at: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    attempted_at: datetime | None = None
    error: str | None = None
    caldav: CalDavCache | None = None


@dataclass(frozen=True)
class SyncContext:
    """What a sync needs to know before calling the provider, read in one round trip."""

    connection: Connection | None
    head: BusyHead | None
    mentor: Mentor | None


@dataclass(frozen=True)
class BusySet:
    """A connection's current busy set: its head and the blocks of the head's version."""

    head: BusyHead
    blocks: tuple[Block, ...]
    complete: bool = True


def head_sk(provider: Provider | str) -> str:
    """Sort key of the head item."""
    return f"{BUSY_PREFIX}{Provider(provider).value}"


def chunk_sk(provider: Provider | str, version: str, index: int) -> str:
    """Sort key of chunk ``index`` of ``version``."""
    return f"{head_sk(provider)}#v{version}#{index:03d}"


def merge(blocks: Iterable[Block]) -> list[Block]:
    """Sorted, with overlapping and touching blocks joined."""
    merged: list[Block] = []
    for block in sorted(b for b in blocks if b.end > b.start):
        if merged and block.start <= merged[-1].end:
            if block.end > merged[-1].end:
                merged[-1] = Block(merged[-1].start, block.end)
        else:
            merged.append(block)
    return merged


def encode_blocks(blocks: Iterable[Block]) -> list[bytes]:
    """Merged blocks as compressed chunks (``[]`` for none)."""
    pairs = [(_second(b.start), _second(b.end)) for b in merge(blocks)]
    out = []
    for start in range(0, len(pairs), CHUNK_BLOCKS):
        part = pairs[start : start + CHUNK_BLOCKS]
        raw = b"".join(_PAIR.pack(s, e) for s, e in part)
        out.append(zlib.compress(raw, 6))
    return out


def decode_blocks(chunks: Iterable[bytes]) -> list[Block]:
    """The blocks of :func:`encode_blocks`' chunks, in order."""
    blocks = []
    for data in chunks:
        raw = zlib.decompress(data)
        for s, e in _PAIR.iter_unpack(raw):
            blocks.append(Block(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)))
    return blocks


def _second(value: datetime) -> int:
    seconds = int(value.astimezone(UTC).timestamp())
    return min(max(seconds, 0), 2**32 - 1)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _head_from_item(item: dict[str, Any]) -> BusyHead:
    caldav = item.get("caldav")
    return BusyHead(
        provider=item["provider"],
        version=item.get("version"),
        chunks=int(item.get("chunks", 0)),
        blocks=int(item.get("blocks", 0)),
        synced_at=_when(item.get("synced_at")),
        window_start=_when(item.get("window_start")),
        window_end=_when(item.get("window_end")),
        attempted_at=_when(item.get("attempted_at")),
        error=item.get("error"),
        caldav=CalDavCache.model_validate(caldav) if isinstance(caldav, dict) else None,
    )


class BusyStore:
    """Reads and replaces busy sets (see the module docstring for the protocol)."""

    def __init__(self, table: Table, *, clock: Any = time.time) -> None:
        self.table = table
        self._clock = clock

    # -- writes ------------------------------------------------------------------------------
    def replace(
        self,
        mentor_id: str,
        provider: Provider,
        blocks: Iterable[Block],
        *,
        window: tuple[datetime, datetime],
        read_at: datetime,
        caldav: CalDavCache | None = None,
    ) -> bool:
        """Make ``blocks`` the connection's busy set; ``False`` if a newer sync already won.

        ``read_at`` is when the provider was read (it orders concurrent syncs).
        """
        read_ms = int(read_at.timestamp() * 1000)
        version = f"{read_ms:013d}{uuid.uuid4().hex[:8]}"
        merged = merge(blocks)
        chunks = encode_blocks(merged)
        now = datetime.fromtimestamp(self._clock(), UTC)
        expires = int((now + RETENTION).timestamp())
        pk = mentor_pk(mentor_id)
        sets: dict[str, Any] = {
            "read_ms": read_ms,
            "synced_at": _iso(read_at),
            "window_start": _iso(window[0]),
            "window_end": _iso(window[1]),
            "attempted_at": _iso(now),
            "provider": provider.value,
            "type": "busy_head",
            "ttl": expires,
        } | ({"caldav": caldav.model_dump(mode="json")} if caldav is not None else {})
        digest = hashlib.sha256(b"\0".join(chunks)).hexdigest()[:32]
        renew_after = int((now + CHUNK_RENEW_BEFORE).timestamp())
        with contextlib.suppress(ConflictError):  # the same blocks: one write (module docstring)
            self._flip(
                pk, provider, sets, "#digest = :digest AND #chunks_ttl > :renew", digest=digest, renew=renew_after
            )
            return True
        for index, data in enumerate(chunks):
            self.table.put(
                {"PK": pk, "SK": chunk_sk(provider, version, index), "type": "busy_chunk", "data": data, "ttl": expires}
            )
        sets |= {"version": version, "chunks": len(chunks), "blocks": len(merged), "digest": digest}
        try:
            old = self._flip(
                pk, provider, sets | {"chunks_ttl": expires}, "(attribute_not_exists(#version) OR #version < :version)"
            )
        except ConflictError:
            self._delete_chunks(pk, provider, version, len(chunks))
            return False
        if old.get("version"):
            self._delete_chunks(pk, provider, str(old["version"]), int(old.get("chunks", 0)))
        return True

    def _flip(self, pk: str, provider: Provider, sets: dict[str, Any], condition: str, **extra: Any) -> dict[str, Any]:
        """Set ``sets`` on the head on ``condition`` and a read no older (``read_ms``); the old item.

        :class:`ConflictError` when the condition fails. ``extra``: more ``:name`` values it uses.
        """
        names = {f"#{k}": k for k in sets} | {"#error": "error", "#digest": "digest", "#chunks_ttl": "chunks_ttl"}
        values = {f":{k}": v for k, v in (sets | extra).items()}
        try:
            resp = self.table.client.update_item(
                TableName=self.table.name,
                Key=to_item({"PK": pk, "SK": head_sk(provider)}),
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in sets) + " REMOVE #error",
                ConditionExpression=f"{condition} AND (attribute_not_exists(#read_ms) OR #read_ms < :read_ms)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise ConflictError(f"busy head of {pk} moved on") from None
            raise
        return from_item(resp.get("Attributes", {}))

    def record_attempt(self, mentor_id: str, provider: Provider, *, error: str | None) -> None:
        """Note a sync attempt that changed no blocks (skipped or failed), with its reason."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        sets: dict[str, Any] = {"attempted_at": _iso(now), "provider": provider.value, "type": "busy_head"}
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets) + ", #ttl = if_not_exists(#ttl, :ttl)"
        if error:
            sets["error"] = error[:300]
            expression += ", #error = :error"
        else:
            expression += " REMOVE #error"
        self.table.update(
            mentor_pk(mentor_id),
            head_sk(provider),
            expression=expression,
            names={f"#{k}": k for k in sets} | {"#error": "error", "#ttl": "ttl"},
            values={f":{k}": v for k, v in sets.items()} | {":ttl": int((now + RETENTION).timestamp())},
        )

    def _delete_chunks(self, pk: str, provider: Provider, version: str, count: int) -> None:
        for index in range(count):
            self.table.delete(pk, chunk_sk(provider, version, index))

    # -- reads -------------------------------------------------------------------------------
    def context(self, mentor_id: str, provider: Provider, *, profile: bool = False) -> SyncContext:
        """The connection, its busy head and (``profile``) the mentor's profile: one consistent
        ``BatchGetItem`` instead of two or three ``GetItem`` round trips."""
        pk = mentor_pk(mentor_id)
        wanted = [connection_sk(provider), head_sk(provider)] + (["PROFILE"] if profile else [])
        keys: list[dict[str, Any]] = [to_item({"PK": pk, "SK": sk}) for sk in wanted]
        found: dict[str, dict[str, Any]] = {}
        for attempt in range(5):
            resp = self.table.client.batch_get_item(
                RequestItems={self.table.name: {"Keys": keys, "ConsistentRead": True}}
            )
            for raw in resp.get("Responses", {}).get(self.table.name, []):
                item = from_item(raw)
                found[str(item["SK"])] = item
            keys = resp.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])
            if not keys:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError("DynamoDB left keys unprocessed")
        conn = found.get(connection_sk(provider))
        head = found.get(head_sk(provider))
        profile_item = found.get("PROFILE")
        return SyncContext(
            connection=_connection_from_item(conn) if conn else None,
            head=_head_from_item(head) if head else None,
            mentor=_mentor_from_item(mentor_id, profile_item) if profile_item else None,
        )

    def head(self, mentor_id: str, provider: Provider) -> BusyHead | None:
        """The head item, read consistently, or ``None``."""
        item = self.table.get(mentor_pk(mentor_id), head_sk(provider))
        return _head_from_item(item) if item else None

    def read(self, mentor_id: str, *, provider: Provider | None = None, attempts: int = 3) -> dict[Provider, BusySet]:
        """Every connection's current busy set, or ``provider``'s only (consistent; read again if a flip raced it)."""
        sets: dict[Provider, BusySet] = {}
        prefix = head_sk(provider) if provider is not None else BUSY_PREFIX
        for attempt in range(attempts):
            items = self._items(mentor_id, prefix)
            sets = _assemble(items)
            if all(s.complete for s in sets.values()):
                return sets
            if attempt < attempts - 1:
                time.sleep(0.02 * (attempt + 1))
        return sets

    def _items(self, mentor_id: str, prefix: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
            "ExpressionAttributeValues": to_item({":pk": mentor_pk(mentor_id), ":prefix": prefix}),
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            resp = self.table.client.query(**kwargs)
            items.extend(from_item(i) for i in resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last


def _assemble(items: list[dict[str, Any]]) -> dict[Provider, BusySet]:
    heads: dict[Provider, BusyHead] = {}
    chunks: dict[str, bytes] = {}
    for item in items:
        if item.get("type") == "busy_head":
            head = _head_from_item(item)
            heads[head.provider] = head
        elif item.get("type") == "busy_chunk":
            chunks[str(item["SK"])] = bytes(item["data"])
    sets = {}
    for provider, head in heads.items():
        if not head.version:
            sets[provider] = BusySet(head=head, blocks=())
            continue
        wanted = [chunk_sk(provider, head.version, i) for i in range(head.chunks)]
        present = [chunks[sk] for sk in wanted if sk in chunks]
        sets[provider] = BusySet(head=head, blocks=tuple(decode_blocks(present)), complete=len(present) == len(wanted))
    return sets
