"""Busy sets in the table (shared.store.busy): versioned replace, the pointer flip, chunking, and a
reader that never sees an empty or half-written set."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.metering import count_calls
from shared.store import Provider, Store
from shared.store.busy import (
    CHUNK_BLOCKS,
    RETENTION,
    Block,
    BusyStore,
    CalDavCache,
    chunk_sk,
    decode_blocks,
    encode_blocks,
    head_sk,
    merge,
)

MENTOR = "mentor-busy-1"
T0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
WINDOW = (T0, T0 + timedelta(days=60))


def _b(start_h: float, end_h: float) -> Block:
    return Block(T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h))


def _items(store: Store) -> list[dict[str, Any]]:
    return list(store.table.query(f"MENTOR#{MENTOR}", sk_prefix="BUSY#"))


@pytest.fixture
def busy(store: Store) -> BusyStore:
    return BusyStore(store.table)


blocks_strategy = st.lists(
    st.tuples(st.integers(0, 60 * 24 * 60), st.integers(1, 600)).map(
        lambda t: Block(T0 + timedelta(minutes=t[0]), T0 + timedelta(minutes=t[0] + t[1]))
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(blocks_strategy)
def test_encoding_round_trips_the_merged_union(blocks: list[Block]) -> None:
    # Given any blocks / When encoded and decoded / Then the merged union comes back, sorted and disjoint
    decoded = decode_blocks(encode_blocks(blocks))
    assert decoded == merge(blocks)
    assert all(a.end < b.start for a, b in itertools.pairwise(decoded))
    covered = {
        m
        for b in blocks
        for m in range(int((b.start - T0).total_seconds() // 60), int((b.end - T0).total_seconds() // 60))
    }
    assert covered == {
        m
        for b in decoded
        for m in range(int((b.start - T0).total_seconds() // 60), int((b.end - T0).total_seconds() // 60))
    }


def test_replace_then_read_gives_the_blocks_and_the_sync_facts(busy: BusyStore) -> None:
    # Given a first sync of Google with two blocks and of Apple with one (and its discovery cache)
    cache = CalDavCache(account="ada@icloud.com", home_url="https://p1-caldav.icloud.com/1/calendars/")
    assert busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2), _b(5, 6)], window=WINDOW, read_at=T0)
    assert busy.replace(MENTOR, Provider.APPLE, [_b(3, 4)], window=WINDOW, read_at=T0, caldav=cache)
    # When the mentor's busy sets are read
    sets = busy.read(MENTOR)
    # Then each provider has its blocks, the window it covered and when it was read
    assert sets[Provider.GOOGLE].blocks == (_b(1, 2), _b(5, 6))
    assert sets[Provider.APPLE].blocks == (_b(3, 4),)
    head = sets[Provider.GOOGLE].head
    assert (head.synced_at, head.window_start, head.window_end, head.blocks) == (T0, *WINDOW, 2)
    assert busy.head(MENTOR, Provider.APPLE).caldav == cache  # type: ignore[union-attr]


def test_a_second_sync_replaces_the_set_and_removes_the_old_version(busy: BusyStore, store: Store) -> None:
    # Given a synced set
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    # When a later sync finds something else
    later = T0 + timedelta(minutes=5)
    assert busy.replace(MENTOR, Provider.GOOGLE, [_b(7, 8)], window=WINDOW, read_at=later)
    # Then only the new blocks are read, and only the new version's chunk is stored
    assert busy.read(MENTOR)[Provider.GOOGLE].blocks == (_b(7, 8),)
    chunks = [i for i in _items(store) if i["type"] == "busy_chunk"]
    assert len(chunks) == 1
    # And an empty answer is a legitimate empty set (no chunk at all)
    assert busy.replace(MENTOR, Provider.GOOGLE, [], window=WINDOW, read_at=later + timedelta(minutes=5))
    assert busy.read(MENTOR)[Provider.GOOGLE].blocks == ()
    assert [i for i in _items(store) if i["type"] == "busy_chunk"] == []


def test_an_older_read_never_overwrites_a_newer_one(busy: BusyStore, store: Store) -> None:
    # Given a sync that read the provider at 10:05 and already stored its set
    busy.replace(MENTOR, Provider.GOOGLE, [_b(7, 8)], window=WINDOW, read_at=T0 + timedelta(minutes=5))
    # When a slower sync that read at 10:00 finishes afterwards
    won = busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    # Then it loses the flip, and cleans up its own chunk
    assert won is False
    assert busy.read(MENTOR)[Provider.GOOGLE].blocks == (_b(7, 8),)
    assert len([i for i in _items(store) if i["type"] == "busy_chunk"]) == 1


def test_a_reader_sees_the_old_set_until_the_flip_and_the_new_one_after(
    busy: BusyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stored set
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    seen: dict[str, tuple[Block, ...]] = {}
    client = busy.table.client
    original_update = client.update_item
    original_delete = busy.table.delete

    def update_item(**kwargs: Any) -> Any:  # the flip: the new chunk is written, not yet pointed at
        seen["before_flip"] = busy.read(MENTOR)[Provider.GOOGLE].blocks
        return original_update(**kwargs)

    def delete(pk: str, sk: str, **kwargs: Any) -> None:  # flipped, old chunk not yet deleted
        seen.setdefault("before_delete", busy.read(MENTOR)[Provider.GOOGLE].blocks)
        original_delete(pk, sk, **kwargs)

    monkeypatch.setattr(client, "update_item", update_item)
    monkeypatch.setattr(busy.table, "delete", delete)
    # When a new set replaces it
    busy.replace(MENTOR, Provider.GOOGLE, [_b(3, 4)], window=WINDOW, read_at=T0 + timedelta(minutes=5))
    # Then at every step in between a reader saw a whole set: the old one, then the new one
    assert seen == {"before_flip": (_b(1, 2),), "before_delete": (_b(3, 4),)}


def test_a_read_racing_a_flip_reads_again(busy: BusyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a stored set, and a first read that catches the head of the old version after its chunk went
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    real = busy._items
    calls = {"n": 0}

    def racing(mentor_id: str, prefix: str) -> list[dict[str, Any]]:
        calls["n"] += 1
        items = real(mentor_id, prefix)
        return [i for i in items if i["type"] != "busy_chunk"] if calls["n"] == 1 else items

    monkeypatch.setattr(busy, "_items", racing)
    # When read / Then the reader noticed the missing chunk and read again
    found = busy.read(MENTOR)[Provider.GOOGLE]
    assert (found.blocks, found.complete, calls["n"]) == ((_b(1, 2),), True, 2)


def test_a_large_set_is_chunked_under_the_item_limit(busy: BusyStore, store: Store) -> None:
    # Given more blocks than one chunk holds (a pathological calendar: a block every 2 minutes)
    many = [Block(T0 + timedelta(minutes=2 * i), T0 + timedelta(minutes=2 * i + 1)) for i in range(CHUNK_BLOCKS + 5)]
    # When stored
    busy.replace(MENTOR, Provider.APPLE, many, window=WINDOW, read_at=T0)
    # Then it is two chunks, each far below 400 KB, and reads back whole
    chunks = [i for i in _items(store) if i["type"] == "busy_chunk"]
    assert len(chunks) == 2
    assert max(len(c["data"]) for c in chunks) < 400_000
    assert len(busy.read(MENTOR)[Provider.APPLE].blocks) == CHUNK_BLOCKS + 5


def test_record_attempt_keeps_the_blocks_and_notes_the_error(busy: BusyStore, store: Store) -> None:
    # Given a synced set
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    # When a later attempt fails
    busy.record_attempt(MENTOR, Provider.GOOGLE, error="rate_limited")
    # Then the blocks are still there and the error is noted (until the next successful sync)
    found = busy.read(MENTOR)[Provider.GOOGLE]
    assert found.blocks == (_b(1, 2),)
    assert found.head.error == "rate_limited"
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0 + timedelta(minutes=5))
    assert busy.head(MENTOR, Provider.GOOGLE).error is None  # type: ignore[union-attr]


def test_keys_are_the_documented_ones() -> None:
    assert head_sk(Provider.GOOGLE) == "BUSY#google"
    assert chunk_sk(Provider.APPLE, "0001", 2) == "BUSY#apple#v0001#002"


def test_an_unchanged_set_costs_one_write_and_moves_only_the_head(busy: BusyStore, store: Store) -> None:
    # Given a synced set
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2), _b(5, 6)], window=WINDOW, read_at=T0)
    version = busy.head(MENTOR, Provider.GOOGLE).version  # type: ignore[union-attr]
    # When the next poll reads the same blocks (the window slid five minutes)
    later = T0 + timedelta(minutes=5)
    slid = (WINDOW[0] + timedelta(minutes=5), WINDOW[1] + timedelta(minutes=5))
    with count_calls(store.table.client) as calls:
        assert busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2), _b(5, 6)], window=slid, read_at=later)
    # Then one UpdateItem: the head's times moved, its chunks were neither written nor deleted
    assert dict(calls.calls) == {"UpdateItem": 1}
    head = busy.head(MENTOR, Provider.GOOGLE)
    assert head is not None
    assert (head.version, head.synced_at, head.window_start, head.window_end) == (version, later, *slid)
    assert busy.read(MENTOR)[Provider.GOOGLE].blocks == (_b(1, 2), _b(5, 6))
    assert len([i for i in _items(store) if i["type"] == "busy_chunk"]) == 1
    # And a changed set goes the whole way again (the failed refresh, the chunk, the flip, the old chunk)
    with count_calls(store.table.client) as calls:
        assert busy.replace(MENTOR, Provider.GOOGLE, [_b(7, 8)], window=slid, read_at=later + timedelta(minutes=5))
    assert dict(calls.calls) == {"UpdateItem": 2, "PutItem": 1, "DeleteItem": 1}
    assert busy.read(MENTOR)[Provider.GOOGLE].blocks == (_b(7, 8),)


def test_an_older_read_cannot_win_after_an_unchanged_refresh(busy: BusyStore) -> None:
    # Given a set stored from a 10:00 read and refreshed unchanged by a 10:10 read
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    assert busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0 + timedelta(minutes=10))
    # When a slower sync that read something else at 10:05 finishes
    won = busy.replace(MENTOR, Provider.GOOGLE, [_b(3, 4)], window=WINDOW, read_at=T0 + timedelta(minutes=5))
    # Then it loses: the newest read stands
    assert won is False
    assert busy.read(MENTOR)[Provider.GOOGLE].blocks == (_b(1, 2),)
    # And an older unchanged read does not move the head's time back
    assert busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0 + timedelta(minutes=1)) is False
    assert busy.head(MENTOR, Provider.GOOGLE).synced_at == T0 + timedelta(minutes=10)  # type: ignore[union-attr]


def test_chunks_near_their_expiry_are_written_again_even_when_unchanged(store: Store) -> None:
    # Given a set written at day 0 (its chunk lives 30 days) and a store whose clock says day 16
    now = [T0.timestamp()]
    busy = BusyStore(store.table, clock=lambda: now[0])
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    first = busy.head(MENTOR, Provider.GOOGLE).version  # type: ignore[union-attr]
    now[0] = (T0 + timedelta(days=16)).timestamp()
    # When an unchanged sync comes, with less than CHUNK_RENEW_BEFORE (15 days) left to the chunk
    assert busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0 + timedelta(days=16))
    # Then the set is written again: a new version whose chunk lives 30 days from now
    head = busy.head(MENTOR, Provider.GOOGLE)
    assert head is not None
    assert head.version != first
    (chunk,) = [i for i in _items(store) if i["type"] == "busy_chunk"]
    assert int(chunk["ttl"]) == int((T0 + timedelta(days=16) + RETENTION).timestamp())


def test_one_connection_s_set_can_be_read_alone(busy: BusyStore, store: Store) -> None:
    # Given a Google and an Apple set
    busy.replace(MENTOR, Provider.GOOGLE, [_b(1, 2)], window=WINDOW, read_at=T0)
    busy.replace(MENTOR, Provider.APPLE, [_b(3, 4)], window=WINDOW, read_at=T0)
    # When only Google's is read (the missed-push check): one Query that returns Google's items only
    with count_calls(store.table.client) as calls:
        sets = busy.read(MENTOR, provider=Provider.GOOGLE)
    assert dict(calls.calls) == {"Query": 1}
    assert set(sets) == {Provider.GOOGLE}
    assert sets[Provider.GOOGLE].blocks == (_b(1, 2),)
