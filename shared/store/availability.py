"""A mentor's availability rules: one item per mentor, replaced whole, versioned.

Item::

    PK=MENTOR#<m>  SK=AVAILABILITY   doc (the rules as compact JSON), version (1, 2, …), updated_at

The store keeps the document opaque (``shared.availability.rules`` owns its shape and checks it
before every write); JSON keeps DynamoDB's number type out of it. Every write is one conditional
``PutItem``: the new version is the read one + 1, and the condition is that the stored version is
still the read one (``attribute_not_exists`` for the first write), so two writers that read the same
version cannot both win, and a client that names the version it read (optimistic concurrency)
gets :class:`~shared.store.errors.ConflictError` if another write came in between.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from shared.store.repository import mentor_pk
from shared.store.table import Table

AVAILABILITY_SK: Final = "AVAILABILITY"


@dataclass(frozen=True)
class StoredAvailability:
    """The stored rules document, its version and when it was written."""

    doc: dict[str, Any]
    version: int
    updated_at: str


class AvailabilityStore:
    """Availability rules over the single table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, mentor_id: str) -> StoredAvailability | None:
        """The mentor's rules, or ``None`` before the first write (strongly consistent)."""
        item = self.table.get(mentor_pk(mentor_id), AVAILABILITY_SK)
        if item is None:
            return None
        return StoredAvailability(json.loads(item["doc"]), int(item["version"]), str(item.get("updated_at", "")))

    def put(self, mentor_id: str, doc: dict[str, Any], *, expected_version: int, now: datetime) -> int:
        """Write ``doc`` as version ``expected_version + 1`` if the stored version is still
        ``expected_version`` (0: nothing stored); :class:`ConflictError` otherwise. Returns the new version."""
        if expected_version == 0:
            condition, values = "attribute_not_exists(PK)", None
        else:
            condition, values = "version = :v", {":v": expected_version}
        new_version = expected_version + 1
        self.table.put(
            {
                "PK": mentor_pk(mentor_id),
                "SK": AVAILABILITY_SK,
                "doc": json.dumps(doc, separators=(",", ":"), sort_keys=True),
                "version": new_version,
                "updated_at": now.isoformat(),
            },
            condition=condition,
            values_=values,
        )
        return new_version
