"""GET /mentors/me/busy's domain (shared.busy.sync): window validation, merging across sources with labels,
and which sources contribute (connected and synced since connecting) and how each is reported."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.busy.view import busy_view, merge_sources, parse_window
from shared.platform.api import ApiError
from shared.store import Connection, ConnectionStatus, Provider, Store
from shared.store.busy import Block, BusyStore

T0 = datetime(2026, 6, 1, tzinfo=UTC)
MENTOR = "mentor-view-1"


def _b(start_h: float, end_h: float) -> Block:
    return Block(T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h))


# --- window ---------------------------------------------------------------------------------------


def test_window_defaults_and_offsets() -> None:
    # Given no window / Then now .. now + 7 days
    now = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
    assert parse_window(None, None, now=now) == (now, now + timedelta(days=7))
    # Given offsets / Then read as instants, in UTC
    start, end = parse_window("2026-06-01T12:00:00+02:00", "2026-06-02T00:00:00Z", now=now)
    assert (start, end) == (datetime(2026, 6, 1, 10, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "field"),
    [
        ("2026-06-01T00:00:00", "2026-06-02T00:00:00Z", "from"),  # no offset
        ("2026-06-01", "2026-06-02T00:00:00Z", "from"),  # a date, not a date-time
        ("yesterday", None, "from"),
        ("2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z", "to"),  # empty window
        ("2026-06-02T00:00:00Z", "2026-06-01T00:00:00Z", "to"),  # backwards
        ("2026-06-01T00:00:00Z", "2026-09-01T00:00:00Z", "to"),  # 92 days
    ],
)
def test_a_bad_window_is_400_invalid_request(raw_from: str, raw_to: str | None, field: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_window(raw_from, raw_to)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert caught.value.extra["fields"][0]["field"] == field


# --- merging --------------------------------------------------------------------------------------

source_blocks = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(1, 300)).map(
        lambda t: Block(T0 + timedelta(minutes=t[0]), T0 + timedelta(minutes=t[0] + t[1]))
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(source_blocks, source_blocks, st.integers(0, 1000), st.integers(1, 2400))
def test_merged_blocks_cover_the_union_and_carry_every_contributing_source(
    google: list[Block], apple: list[Block], from_min: int, length: int
) -> None:
    # Given blocks from two sources and a window
    start = T0 + timedelta(minutes=from_min)
    end = start + timedelta(minutes=length)
    # When merged
    merged = merge_sources({Provider.GOOGLE: google, Provider.APPLE: apple}, start, end)
    # Then they are inside the window, sorted, separated by free time (touching blocks are joined)
    assert all(start <= m.start < m.end <= end for m in merged)
    assert all(a.end < b.start for a, b in itertools.pairwise(merged))

    def minutes(blocks: list[Block] | list[object]) -> set[int]:
        out: set[int] = set()
        for b in blocks:
            s, e = max(b.start, start), min(b.end, end)  # type: ignore[attr-defined]
            out |= set(range(int((s - T0).total_seconds() // 60), int((e - T0).total_seconds() // 60)))
        return out

    # And they cover exactly the union of the sources within the window
    assert minutes(merged) == minutes(google) | minutes(apple)  # type: ignore[arg-type]
    # And each is labelled with exactly the sources that have a block inside it
    for m in merged:
        expected = {
            p
            for p, blocks in ((Provider.GOOGLE, google), (Provider.APPLE, apple))
            if any(max(b.start, start) < min(b.end, end) and b.start < m.end and b.end > m.start for b in blocks)
        }
        assert set(m.sources) == expected
        assert m.sources == sorted(m.sources, key=lambda p: p.value)


# --- the view -------------------------------------------------------------------------------------


def _connect(
    store: Store, provider: Provider, *, at: datetime, status: ConnectionStatus = ConnectionStatus.CONNECTED
) -> None:
    store.save_connection(
        Connection(mentor_id=MENTOR, provider=provider, status=status, credential=b"sealed", connected_at=at),
        expected_version=None,
    )


def test_view_merges_connected_sources_and_reports_each(store: Store) -> None:
    # Given Google and Apple connected and synced, with overlapping blocks
    busy = BusyStore(store.table)
    _connect(store, Provider.GOOGLE, at=T0 - timedelta(days=1))
    _connect(store, Provider.APPLE, at=T0 - timedelta(days=1))
    window = (T0, T0 + timedelta(days=60))
    busy.replace(MENTOR, Provider.GOOGLE, [_b(9, 10), _b(14, 15)], window=window, read_at=T0)
    busy.replace(MENTOR, Provider.APPLE, [_b(9.5, 11)], window=window, read_at=T0)
    # When the mentor asks for the first day
    view = busy_view(store, busy, MENTOR, T0, T0 + timedelta(days=1))
    body = view.model_dump(by_alias=True, mode="json")
    # Then overlapping blocks are one, labelled with both sources; each source says where it stands
    assert body["busy"] == [
        {"start": "2026-06-01T09:00:00Z", "end": "2026-06-01T11:00:00Z", "sources": ["apple", "google"]},
        {"start": "2026-06-01T14:00:00Z", "end": "2026-06-01T15:00:00Z", "sources": ["google"]},
    ]
    assert body["from"] == "2026-06-01T00:00:00Z"
    assert body["sources"]["google"] == {
        "status": "connected",
        "lastSyncedAt": "2026-06-01T00:00:00Z",
        "syncedFrom": "2026-06-01T00:00:00Z",
        "syncedUntil": "2026-07-31T00:00:00Z",
        "error": None,
    }


def test_needs_reconnect_is_skipped_and_reported(store: Store) -> None:
    # Given Apple synced once, then flagged needs_reconnect
    busy = BusyStore(store.table)
    _connect(store, Provider.GOOGLE, at=T0 - timedelta(days=1))
    _connect(store, Provider.APPLE, at=T0 - timedelta(days=1))
    window = (T0, T0 + timedelta(days=60))
    busy.replace(MENTOR, Provider.GOOGLE, [_b(9, 10)], window=window, read_at=T0)
    busy.replace(MENTOR, Provider.APPLE, [_b(12, 13)], window=window, read_at=T0)
    store.mark_needs_reconnect(MENTOR, Provider.APPLE, "apple_auth_failed")
    busy.record_attempt(MENTOR, Provider.APPLE, error="needs_reconnect")
    # When read
    body = busy_view(store, busy, MENTOR, T0, T0 + timedelta(days=1)).model_dump(by_alias=True, mode="json")
    # Then Apple's (stale) blocks are left out and its status, last sync and error are reported
    assert [b["sources"] for b in body["busy"]] == [["google"]]
    apple = body["sources"]["apple"]
    assert (apple["status"], apple["lastSyncedAt"], apple["error"]) == (
        "needs_reconnect",
        "2026-06-01T00:00:00Z",
        "needs_reconnect",
    )


def test_blocks_from_before_a_reconnect_and_of_disconnected_sources_are_ignored(store: Store) -> None:
    # Given Google synced, then reconnected later (new connection, not yet synced); Apple never connected
    busy = BusyStore(store.table)
    busy.replace(MENTOR, Provider.GOOGLE, [_b(9, 10)], window=(T0, T0 + timedelta(days=60)), read_at=T0)
    _connect(store, Provider.GOOGLE, at=T0 + timedelta(hours=1))
    busy.replace(MENTOR, Provider.APPLE, [_b(9, 10)], window=(T0, T0 + timedelta(days=60)), read_at=T0)
    # When read / Then nothing is busy, Google has not synced yet, Apple is not connected
    body = busy_view(store, busy, MENTOR, T0, T0 + timedelta(days=1)).model_dump(by_alias=True, mode="json")
    assert body["busy"] == []
    assert body["sources"]["google"]["status"] == "connected"
    assert body["sources"]["google"]["lastSyncedAt"] is None
    assert body["sources"]["apple"] == {
        "status": "not_connected",
        "lastSyncedAt": None,
        "syncedFrom": None,
        "syncedUntil": None,
        "error": None,
    }


# --- bounds (issue 14): every window lies within a day ago and ten years ahead ---------------------


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "field"),
    [
        ("9999-12-31T23:00:00-05:00", None, "from"),  # was a 500: OverflowError converting to UTC
        ("0001-01-01T00:00:00+02:00", None, "from"),
        ("9999-12-01T00:00:00Z", "9999-12-31T23:59:59Z", "from"),
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "from"),
        (None, "9999-12-31T23:00:00-05:00", "to"),
        ("2026-05-30T00:00:00Z", "2026-06-02T00:00:00Z", "from"),  # two days before now
        ("2036-05-30T00:00:00Z", "2036-06-02T00:00:00Z", "to"),  # past now + 10 years
    ],
)
def test_a_window_out_of_range_is_400_out_of_range(raw_from: str | None, raw_to: str | None, field: str) -> None:
    now = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
    with pytest.raises(ApiError) as caught:
        parse_window(raw_from, raw_to, now=now)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    found = caught.value.extra["fields"][0]
    assert (found["field"], found["code"]) == (field, "out_of_range")


def test_the_edges_of_the_range_are_accepted() -> None:
    now = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
    assert parse_window("2026-05-31T10:30:00Z", None, now=now)[0] == now - timedelta(days=1)
    assert parse_window("2036-05-31T10:30:00Z", "2036-06-01T10:30:00Z", now=now)[1] == datetime(
        2036, 6, 1, 10, 30, tzinfo=UTC
    )
