"""The busy read side (PRODUCT.md §2.7): ``GET /mentors/me/busy?from=&to=`` over the synced busy sets.

:func:`busy_view`: the blocks of every *connected* calendar connection, clipped to the window,
merged across sources (overlapping or touching blocks become one, labelled with every source that
contributed), plus one entry per calendar provider: its connection status, when it last synced
successfully and which window that sync covered, and the last error. A ``needs_reconnect`` or
disconnected source contributes no blocks (its data is stale); blocks older than the connection (a
reconnect since) are ignored. The sync that writes the busy sets is :mod:`shared.busy.sync`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.platform.bounds import in_range, plausible_year, range_message
from shared.store import ConnectionStatus, Provider, Store
from shared.store.busy import Block, BusySet, BusyStore
from shared.store.repository import SYNCED_PROVIDERS

#: Longest window ``GET /mentors/me/busy`` serves.
MAX_QUERY_WINDOW = timedelta(days=90)
#: Window served when ``to`` is omitted.
DEFAULT_QUERY_WINDOW = timedelta(days=7)


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class BusyBlockView(_Camel):
    """One merged busy interval and the calendars it came from."""

    start: datetime
    end: datetime
    sources: list[Provider]


class BusySourceView(_Camel):
    """How one calendar provider's busy times stand."""

    status: ConnectionStatus
    last_synced_at: datetime | None = Field(default=None, description="When its busy times were last read.")
    synced_from: datetime | None = Field(default=None, description="Start of the window that read covered.")
    synced_until: datetime | None = Field(default=None, description="End of the window that read covered.")
    error: str | None = Field(default=None, description="Why the last attempt did not sync (if it failed).")


class BusyResponse(_Camel):
    """Body of ``GET /mentors/me/busy``."""

    from_: datetime = Field(alias="from")
    to: datetime
    busy: list[BusyBlockView]
    sources: dict[str, BusySourceView]


def parse_window(raw_from: str | None, raw_to: str | None, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``from`` / ``to`` query values → an aware window; 400 ``invalid_request`` when malformed.

    Both are ISO 8601 date-times with an offset (``Z`` or ``+02:00``); ``from`` defaults to now,
    ``to`` to ``from`` + 7 days; ``to`` must be after ``from`` and at most 90 days later; both lie
    within a day ago and ten years ahead (``code: out_of_range``, PRODUCT.md §2.4).
    """
    now = now or datetime.now(UTC)
    fields = []
    values: dict[str, datetime] = {}
    for name, raw in (("from", raw_from), ("to", raw_to)):
        if raw is None or raw == "":
            continue
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("z", "Z")) if len(raw) <= 40 else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or "T" not in raw.upper():
            fields.append(
                {"field": name, "message": "expected an ISO 8601 date-time with an offset, e.g. 2026-05-01T00:00:00Z"}
            )
            continue
        if not plausible_year(parsed, now):  # converting 9999-12-31T23:00-05:00 to UTC overflows
            fields.append(_out_of_range(name, now))
            continue
        values[name] = parsed.astimezone(UTC)
    if fields:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_request",
            "; ".join(f"{f['field']}: {f['message']}" for f in fields),
            fields=fields,
        )
    start = values.get("from") or now.replace(microsecond=0)
    end = values.get("to") or start + DEFAULT_QUERY_WINDOW
    if end <= start:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_request",
            "to must be after from.",
            fields=[{"field": "to", "message": "must be after from"}],
        )
    if end - start > MAX_QUERY_WINDOW:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_request",
            f"The window may span at most {MAX_QUERY_WINDOW.days} days.",
            fields=[{"field": "to", "message": f"at most {MAX_QUERY_WINDOW.days} days after from"}],
        )
    outside = [_out_of_range(name, now) for name, value in (("from", start), ("to", end)) if not in_range(value, now)]
    if outside:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_request",
            "; ".join(f"{f['field']}: {f['message']}" for f in outside),
            fields=outside,
        )
    return start, end


def _out_of_range(name: str, now: datetime) -> dict[str, str]:
    return {"field": name, "code": "out_of_range", "message": range_message(now)}


def merge_sources(blocks: dict[Provider, Iterable[Block]], start: datetime, end: datetime) -> list[BusyBlockView]:
    """Blocks of every source clipped to ``[start, end)``, overlapping / touching ones merged and labelled."""
    edges: list[tuple[datetime, datetime, Provider]] = []
    for provider, items in blocks.items():
        for block in items:
            s, e = max(block.start, start), min(block.end, end)
            if s < e:
                edges.append((s, e, provider))
    edges.sort(key=lambda x: (x[0], x[1], x[2].value))
    merged: list[tuple[datetime, datetime, set[Provider]]] = []
    for s, e, provider in edges:
        if merged and s <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], e), last[2] | {provider})
        else:
            merged.append((s, e, {provider}))
    return [BusyBlockView(start=s, end=e, sources=sorted(p, key=lambda x: x.value)) for s, e, p in merged]


def busy_view(store: Store, busy: BusyStore, mentor_id: str, start: datetime, end: datetime) -> BusyResponse:
    """The mentor's merged busy blocks in ``[start, end)`` and the state of each calendar source."""
    connections = {c.provider: c for c in store.list_connections(mentor_id)}
    sets: dict[Provider, BusySet] = busy.read(mentor_id)
    sources: dict[str, BusySourceView] = {}
    contributing: dict[Provider, Iterable[Block]] = {}
    for provider in sorted(SYNCED_PROVIDERS, key=lambda p: p.value):
        conn = connections.get(provider)
        status = conn.status if conn is not None else ConnectionStatus.NOT_CONNECTED
        found = sets.get(provider)
        head = found.head if found is not None else None
        current = (
            head is not None and conn is not None and head.synced_at is not None and head.synced_at >= conn.connected_at
        )
        sources[provider.value] = BusySourceView(
            status=status,
            last_synced_at=head.synced_at if current and head else None,
            synced_from=head.window_start if current and head else None,
            synced_until=head.window_end if current and head else None,
            error=head.error
            if head is not None and conn is not None and head.attempted_at and head.attempted_at >= conn.connected_at
            else None,
        )
        if status is ConnectionStatus.CONNECTED and current and found is not None:
            contributing[provider] = found.blocks
    return BusyResponse.model_validate(
        {"from": start, "to": end, "busy": merge_sources(contributing, start, end), "sources": sources}
    )
