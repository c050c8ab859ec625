"""Connections domain: what ``GET /connections`` shows, and the status rules of PRODUCT.md §2.2."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.store import Connection, ConnectionStatus, Provider, Store


class ConnectionView(BaseModel):
    """The public view of one provider connection (no credential, ever)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    provider: Provider
    status: ConnectionStatus
    account_label: str | None = Field(default=None, description='"Connected as <name>" label')
    selected_calendar: str | None = None
    plan_type: int | None = Field(default=None, description="Zoom user type; 1 = Basic (free)")
    reason: str | None = Field(default=None, description="Why the connection needs attention")

    @classmethod
    def of(cls, provider: Provider, conn: Connection | None) -> ConnectionView:
        """The view of ``conn`` (``None`` = never connected or disconnected)."""
        if conn is None:
            return cls(provider=provider, status=ConnectionStatus.NOT_CONNECTED)
        return cls(
            provider=provider,
            status=conn.status,
            account_label=conn.account_label,
            selected_calendar=conn.selected_calendar,
            plan_type=conn.plan_type,
            reason=conn.status_reason if conn.status is not ConnectionStatus.CONNECTED else None,
        )


class ConnectionsList(BaseModel):
    """Body of ``GET /connections``: every provider, in a fixed order."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    connections: list[ConnectionView]


def list_connections(store: Store, mentor_id: str) -> ConnectionsList:
    """Status of google, zoom and apple for ``mentor_id``."""
    found = {c.provider: c for c in store.list_connections(mentor_id)}
    return ConnectionsList(connections=[ConnectionView.of(p, found.get(p)) for p in Provider])
