"""Abuse guards in the table, shared by every Lambda instance: attempt counters with a back-off,
a circuit breaker, and single-use markers (replay memory).

Items (see :mod:`shared.store.schema`)::

    attempt counter      ATTEMPTS#<kind>#<key>    COUNTER           count, last_at, blocked_until, ttl
    breaker window       BREAKER#<name>           WINDOW#<bucket>   count, ttl
    breaker open         BREAKER#<name>           OPEN              open_until, ttl
    seen marker          SEEN#<kind>#<key>        SEEN              ttl

Every write is conditional (on what was read, or on the item's absence), so concurrent requests on
different instances count correctly. ``ttl`` only cleans up (DynamoDB deletes expired items within days, not at once):
correctness never depends on it — a counter whose ``last_at`` is older than its window counts as
fresh, an open breaker is judged by ``open_until``, a seen marker outlives the window it guards.
The rules (limits, back-off, what trips the breaker) belong to the capability that uses them
(:mod:`shared.connections.attempts`, :mod:`shared.connections.zoom_webhook`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.store.errors import ConflictError
from shared.store.table import Table

COUNTER_SK = "COUNTER"
OPEN_SK = "OPEN"
SEEN_SK = "SEEN"


def counter_pk(kind: str, key: str) -> str:
    return f"ATTEMPTS#{kind}#{key}"


def breaker_pk(name: str) -> str:
    return f"BREAKER#{name}"


def seen_pk(kind: str, key: str) -> str:
    return f"SEEN#{kind}#{key}"


@dataclass(frozen=True)
class Charge:
    """The outcome of :meth:`Guards.charge`: the attempt was counted (``count`` = this one's number),
    or refused because the key is blocked until ``blocked_until`` (epoch seconds)."""

    count: int = 0
    blocked_until: float | None = None

    @property
    def blocked(self) -> bool:
        return self.blocked_until is not None


class Guards:
    """Attempt counters, breakers and seen markers over the single table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # --- attempt counters ------------------------------------------------------------------------

    def charge(
        self,
        kind: str,
        key: str,
        *,
        now: float,
        window_s: int,
        block_for: Callable[[int], float | None] = lambda _: None,
        tries: int = 10,
    ) -> Charge:
        """Count one attempt on ``(kind, key)`` unless it is blocked; ``block_for(n)`` is how long the
        ``n``-th attempt blocks the key (``None``: not at all), written in the same conditional update.

        Read, then write conditional on what was read (count and ``last_at``): of racing attempts each
        gets its own number, and none passes a block another one set. A counter idle for ``window_s``
        starts again at 1. Contention beyond ``tries`` rounds fails closed (blocked for a second).
        """
        pk = counter_pk(kind, key)
        ttl = int(now) + window_s
        for _ in range(tries):
            held = self.table.get(pk, COUNTER_SK)
            fresh = held is not None and float(held["last_at"]) >= now - window_s
            if held is not None and fresh:
                blocked = held.get("blocked_until")
                if blocked is not None and float(blocked) > now:
                    return Charge(blocked_until=float(blocked))
                number = int(held["count"]) + 1
            else:
                number = 1
            delay = block_for(number)
            item: dict[str, Any] = {"count": number, "last_at": _num(now), "ttl": ttl}
            if delay is not None:
                item["blocked_until"] = _num(now + delay)
                item["ttl"] = max(ttl, math.ceil(now + delay) + window_s)
            try:
                if held is not None and fresh:
                    self.table.put(
                        {"PK": pk, "SK": COUNTER_SK, **item},
                        condition="#n = :seen_n AND #last = :seen_last",
                        names={"#n": "count", "#last": "last_at"},
                        values_={":seen_n": held["count"], ":seen_last": held["last_at"]},
                    )
                else:  # no counter, or one idle for a whole window: start again
                    self.table.put(
                        {"PK": pk, "SK": COUNTER_SK, **item},
                        condition="attribute_not_exists(PK) OR #last < :cutoff",
                        names={"#last": "last_at"},
                        values_={":cutoff": _num(now - window_s)},
                    )
            except ConflictError:
                continue  # another attempt counted first: read again
            return Charge(count=number)
        return Charge(blocked_until=now + 1)

    def reset(self, kind: str, key: str) -> None:
        """Forget ``(kind, key)``'s counter and block."""
        self.table.delete(counter_pk(kind, key), COUNTER_SK)

    def counter(self, kind: str, key: str) -> dict[str, Any] | None:
        """The raw counter item (tests, diagnostics)."""
        return self.table.get(counter_pk(kind, key), COUNTER_SK)

    # --- circuit breaker ---------------------------------------------------------------------------

    def count_event(self, name: str, *, now: float, window_s: int) -> int:
        """Count one event in ``name``'s current fixed window; the window's count so far."""
        bucket = int(now // window_s)
        item = self.table.update(
            breaker_pk(name),
            f"WINDOW#{bucket}",
            expression="ADD #n :one SET #ttl = :ttl",
            names={"#n": "count", "#ttl": "ttl"},
            values={":one": 1, ":ttl": (bucket + 2) * window_s},
        )
        return int(item["count"])

    def trip(self, name: str, *, until: float) -> None:
        """Open breaker ``name`` until ``until`` (never shortens an opening already there)."""
        with contextlib.suppress(ConflictError):  # it is open for longer already
            self.table.update(
                breaker_pk(name),
                OPEN_SK,
                expression="SET #until = :until, #ttl = :ttl",
                condition="attribute_not_exists(#until) OR #until < :until",
                names={"#until": "open_until", "#ttl": "ttl"},
                values={":until": _num(until), ":ttl": math.ceil(until) + 3600},
            )

    def open_until(self, name: str, *, now: float) -> float | None:
        """Until when breaker ``name`` is open, or ``None`` if it is closed at ``now``."""
        item = self.table.get(breaker_pk(name), OPEN_SK, consistent=False)
        if item is None:
            return None
        until = float(item["open_until"])
        return until if until > now else None

    def close(self, name: str) -> None:
        """Close breaker ``name`` and forget its windows (operators, tests)."""
        for item in list(self.table.query(breaker_pk(name))):
            self.table.delete(str(item["PK"]), str(item["SK"]))

    # --- seen markers ------------------------------------------------------------------------------

    def first_time(self, kind: str, key: str, *, keep_until: float) -> bool:
        """Remember ``(kind, key)`` until ``keep_until``; ``False`` if it was already remembered."""
        try:
            self.table.put(
                {"PK": seen_pk(kind, key), "SK": SEEN_SK, "ttl": math.ceil(keep_until)},
                condition="attribute_not_exists(PK)",
            )
        except ConflictError:
            return False
        return True

    def forget(self, kind: str, key: str) -> None:
        """Drop a seen marker (the work it guarded failed and may be retried as is)."""
        self.table.delete(seen_pk(kind, key), SEEN_SK)


def _num(value: float) -> Decimal:
    """Epoch seconds as DynamoDB numbers (millisecond precision)."""
    return Decimal(str(round(value, 3)))
