"""Connections: what the API shows and takes (PRODUCT.md §2.2, §3), and the few rules every connect path shares.

* ``GET /connections`` — :func:`list_connections`: google, zoom, apple and microsoft, in a fixed order.
* :func:`parse_provider` — a path's provider, or 404 ``unknown_provider``.
* :func:`save_connection` — create or replace a connection with optimistic locking.

No view ever carries a credential.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from shared.platform.api import ApiError
from shared.store import ConflictError, Connection, ConnectionStatus, Provider, Store

STATE_TTL_S = 600

#: How long a pending OAuth connection (the callback's sealed tokens) waits to be completed.
PENDING_TTL_S = 600


CONNECTIONS_PAGE = "/mentor/settings/connections"


OAUTH_PROVIDERS = (Provider.GOOGLE, Provider.ZOOM, Provider.MICROSOFT)


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
    """Status of google, zoom, apple and microsoft for ``mentor_id``."""
    found = {c.provider: c for c in store.list_connections(mentor_id)}
    return ConnectionsList(connections=[ConnectionView.of(p, found.get(p)) for p in Provider])


class AuthorizeResponse(BaseModel):
    """Body of ``POST /connections/{google,zoom}/authorize``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    authorize_url: str


class CompleteConnectionRequest(BaseModel):
    """Body of ``POST /connections/{google,zoom}/complete``: the callback's single-use handle."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, hide_input_in_errors=True, extra="forbid"
    )

    pending: str = Field(
        min_length=1,
        max_length=256,
        description="The `pending` query parameter of the callback's redirect to the mentor app",
    )


class AppleConnectRequest(BaseModel):
    """Body of ``POST /connections/apple``; the password is never echoed or logged."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, hide_input_in_errors=True, extra="forbid"
    )

    apple_id: str = Field(min_length=1, max_length=320, description="The Apple ID's e-mail address")
    app_specific_password: SecretStr = Field(description="xxxx-xxxx-xxxx-xxxx (lower-case letters)")


class ChooseCalendarRequest(BaseModel):
    """Body of ``PUT /connections/{google,microsoft}/calendar``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    calendar_id: str = Field(min_length=1, max_length=1024)


class CalendarView(BaseModel):
    """One calendar the mentor may choose."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    summary: str
    primary: bool
    access_role: str
    selected: bool


class CalendarsList(BaseModel):
    """Body of ``GET /connections/{google,microsoft}/calendars``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    selected_calendar: str
    calendars: list[CalendarView]


def parse_provider(value: str, allowed: tuple[Provider, ...] = tuple(Provider)) -> Provider:
    """``value`` as a provider among ``allowed``, else 400 ``unknown_provider`` / ``unsupported_provider``."""
    try:
        provider = Provider(value)
    except ValueError:
        names = ", ".join(p.value for p in allowed)
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "unknown_provider", f"Unknown provider {value[:40]!r}; expected one of {names}."
        ) from None
    if provider not in allowed:
        names = ", ".join(p.value for p in allowed)
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "unsupported_provider",
            f"This operation is not available for {provider.value}; expected one of {names}.",
        )
    return provider


def current_time() -> datetime:
    return datetime.now(UTC)


def save_connection(
    store: Store,
    mentor_id: str,
    provider: Provider,
    build: Callable[[Connection | None], Connection],
    attempts: int = 3,
) -> Connection:
    """Create or replace a connection with optimistic locking (re-read and retry on a lost race)."""
    for attempt in range(attempts):
        existing = store.get_connection(mentor_id, provider)
        try:
            return store.save_connection(
                build(existing), expected_version=existing.version if existing is not None else None
            )
        except ConflictError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def require_connected(store: Store, mentor_id: str, provider: Provider) -> Connection:
    conn = store.get_connection(mentor_id, provider)
    if conn is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "not_connected", f"{provider.value} is not connected.")
    if conn.status is not ConnectionStatus.CONNECTED or conn.credential is None:
        raise ApiError(
            HTTPStatus.CONFLICT,
            "needs_reconnect",
            f"{provider.value} needs to be reconnected.",
            reason=conn.status_reason,
        )
    return conn


def save_selected_calendar(store: Store, conn: Connection, provider: Provider, calendar_id: str) -> Connection:
    """Save ``calendar_id`` as ``conn``'s selected calendar; 409 ``conflict`` if the connection changed meanwhile.

    The version is read again here, after the caller's provider call (the calendar list), and the
    write is conditional on it: a reconnect or disconnect that raced the call wins.
    """
    current = store.get_connection(conn.mentor_id, provider) or conn
    try:
        return store.update_connection(
            conn.mentor_id, provider, expected_version=current.version, selected_calendar=calendar_id
        )
    except ConflictError:
        raise ApiError(HTTPStatus.CONFLICT, "conflict", "The connection changed meanwhile; please retry.") from None
