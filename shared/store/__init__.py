"""DynamoDB single-table store: schema, item models and repositories."""

from __future__ import annotations

from functools import lru_cache

from shared.store.errors import ConflictError, NotFoundError, StoreError
from shared.store.models import Connection, ConnectionStatus, Mentor, Plan, Provider
from shared.store.repository import Store
from shared.store.table import Table

__all__ = [
    "ConflictError",
    "Connection",
    "ConnectionStatus",
    "Mentor",
    "NotFoundError",
    "Plan",
    "Provider",
    "Store",
    "StoreError",
    "Table",
    "default_store",
]


@lru_cache(maxsize=1)
def default_store() -> Store:
    """The store over the configured table, built once per container."""
    from shared.aws import client
    from shared.config import settings

    return Store(Table(client("dynamodb"), settings().table_name))
