"""Cheap DynamoDB transactions for moto's server (:mod:`devstack.motoserver` applies this patch).

moto's ``TransactWriteItems`` deep-copies every table a transaction names (once per operation) so
it can roll back, which makes a transaction cost O(items in the table): on the local stack's
single table, ~6 ms when empty, ~110 ms at 1,000 items, ~160 ms at 2,000. Every booking
transition is a transaction, so the local stack got slower the longer it ran and latency figures
measured against it (``make bench``) were moto's, not ours.

:func:`patch_transactions` keeps moto's logic and changes only the snapshot: before the
transaction runs, the items it names (and whether they existed) are copied; moto's own table
copy is skipped; if the transaction fails, those items — and only those — are put back. A
transaction can change nothing but the items it names, so the rollback is the same, in O(items
in the transaction). The server runs DynamoDB actions one at a time (:mod:`devstack.motoserver`),
so no other request can interleave with a transaction and its rollback.
"""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Sequence
from typing import Any

_SKIP_TABLE_COPY: contextvars.ContextVar[bool] = contextvars.ContextVar("skip_table_copy", default=False)


class _CopyModule:
    """Stands in for ``copy`` inside moto's DynamoDB backend: a table is not copied during a patched
    transaction (items are, by :func:`_snapshot`); every other copy is real."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        if _SKIP_TABLE_COPY.get() and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


Snapshot = list[tuple[str, dict[str, Any], dict[str, Any] | None]]


def _snapshot(backend: Any, transact_items: Sequence[dict[str, Any]]) -> Snapshot:
    """(table, key, the item's attributes or ``None`` if absent) for every item the transaction names."""
    taken: Snapshot = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table_name = op["TableName"]
        if "Key" in op:
            key = dict(op["Key"])
        else:
            table = backend.get_table(table_name)
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        current = backend.get_item(table_name, key)
        taken.append((table_name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    return taken


def _restore(backend: Any, taken: Snapshot) -> None:
    for table_name, key, attributes in reversed(taken):  # reversed: the first snapshot of a key wins
        if attributes is not None:
            backend.put_item(table_name, attributes)
        elif backend.get_item(table_name, key) is not None:
            backend.delete_item(table_name, key)


def patch_transactions() -> None:
    """Make moto's ``transact_write_items`` snapshot the items it touches instead of whole tables."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "_item_snapshots", False):
        return
    original = DynamoDBBackend.transact_write_items
    models.copy = _CopyModule()  # type: ignore[attr-defined,assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            taken = _snapshot(self, transact_items)
        except Exception:  # malformed request or unknown table: moto's own path raises the right error
            return original(self, transact_items)
        token = _SKIP_TABLE_COPY.set(True)
        try:
            original(self, transact_items)
        except Exception:
            _restore(self, taken)
            raise
        finally:
            _SKIP_TABLE_COPY.reset(token)

    transact_write_items._item_snapshots = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
