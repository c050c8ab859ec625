"""Connections domain (PRODUCT.md §2.2, §3): status, OAuth connect, Apple connect, calendars, disconnect.

* ``GET /connections`` — :func:`list_connections`.
* ``POST /connections/{google,zoom}/authorize`` — :func:`start_authorization` stores a single-use
  ``state`` item (``PK=OAUTH#<sha256(state)>``, ``SK=STATE``, TTL 10 minutes) bound to the mentor,
  the provider and the PKCE verifier, and returns the provider's consent URL.
* ``GET /oauth/{provider}/callback`` — :func:`complete_authorization` consumes the state (one
  conditional delete: a replay finds nothing), exchanges the code, reads the account, seals the
  tokens and saves the connection; it returns where to send the browser. Any failure stores nothing
  and answers ``?error=<code>``: ``invalid_state``, ``expired_state``, ``consent_denied``,
  ``authorization_failed``, ``exchange_failed``, ``provider_unavailable``, ``invalid_request``,
  ``unknown_provider``.
* ``POST /connections/apple`` — :func:`connect_apple`: format check, CalDAV discovery, seal, save.
* ``GET /connections/google/calendars`` / ``PUT /connections/google/calendar`` —
  :func:`google_calendars`, :func:`select_google_calendar`.
* ``DELETE /connections/{provider}[?revoke=true]`` — :func:`disconnect`.

Google connections get a push channel (:mod:`shared.push`): opened after the callback and after a
calendar switch, stopped on disconnect before the credential is deleted — all best effort.

Domain errors are :class:`shared.api.ApiError`; no message, log line or response carries a token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from shared.api import ApiError
from shared.observability import logger
from shared.providers import apple
from shared.providers.oauth import (
    InvalidGrantError,
    OAuthClient,
    OAuthError,
    TokenSet,
    new_code_verifier,
    new_state,
    oauth_app,
)
from shared.store import ConflictError, Connection, ConnectionStatus, Provider, Store
from shared.store.table import from_item, is_conditional_failure, to_item
from shared.vault import AppleCredential, OAuthCredential, Vault, VaultError

#: How long an authorize URL's ``state`` stays usable.
STATE_TTL_S = 600
#: Where the mentor app shows connections (the callback redirects there).
CONNECTIONS_PAGE = "/mentor/settings/connections"
OAUTH_PROVIDERS = (Provider.GOOGLE, Provider.ZOOM)


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


# --- request / response bodies ----------------------------------------------------------------


class AuthorizeResponse(BaseModel):
    """Body of ``POST /connections/{google,zoom}/authorize``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    authorize_url: str


class AppleConnectRequest(BaseModel):
    """Body of ``POST /connections/apple``; the password is never echoed or logged."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, hide_input_in_errors=True, extra="forbid"
    )

    apple_id: str = Field(min_length=1, max_length=320, description="The Apple ID's e-mail address")
    app_specific_password: SecretStr = Field(description="xxxx-xxxx-xxxx-xxxx (lower-case letters)")


class ChooseCalendarRequest(BaseModel):
    """Body of ``PUT /connections/google/calendar``."""

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
    """Body of ``GET /connections/google/calendars``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    selected_calendar: str
    calendars: list[CalendarView]


# --- helpers ------------------------------------------------------------------------------------


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


def _now() -> datetime:
    return datetime.now(UTC)


def redirect_uri(provider: Provider) -> str:
    """The OAuth redirect URI registered with ``provider``: ``<API_URL>/oauth/<p>/callback``."""
    from shared.config import BaseFunctionSettings, settings

    return f"{settings(BaseFunctionSettings).api_url.rstrip('/')}/oauth/{provider.value}/callback"


def oauth_client(provider: Provider) -> OAuthClient:
    """The OAuth client of ``provider`` (Google or Zoom) from settings."""
    from shared.config import BaseFunctionSettings, ProviderSettings, settings

    return OAuthClient(
        oauth_app(provider, settings(ProviderSettings)),
        redirect_uri=redirect_uri(provider),
        timeout_s=settings(BaseFunctionSettings).http_timeout_s,
    )


def state_key(state: str) -> str:
    """Partition key of a ``state`` item: only its hash is stored."""
    return "OAUTH#" + hashlib.sha256(state.encode("utf-8")).hexdigest()


def app_redirect(*, connected: Provider | None = None, error: str | None = None) -> str:
    """``<APP_URL>/mentor/settings/connections?connected=<p>`` or ``?error=<code>``."""
    from shared.config import BaseFunctionSettings, settings

    query = {"connected": connected.value} if connected else {"error": error or "unknown_error"}
    return f"{settings(BaseFunctionSettings).app_url.rstrip('/')}{CONNECTIONS_PAGE}?{urlencode(query)}"


def _save(
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


# --- OAuth: authorize + callback ------------------------------------------------------------------


def start_authorization(store: Store, mentor_id: str, provider: Provider, *, now: datetime | None = None) -> str:
    """Store a single-use ``state`` bound to the mentor and return the provider's consent URL."""
    now = now or _now()
    state, verifier = new_state(), new_code_verifier()
    url = oauth_client(provider).authorization_url(state=state, code_verifier=verifier)
    expires = now + timedelta(seconds=STATE_TTL_S)
    store.table.put(
        {
            "PK": state_key(state),
            "SK": "STATE",
            "type": "oauth_state",
            "mentor_id": mentor_id,
            "provider": provider.value,
            "code_verifier": verifier,
            "created_at": now.isoformat(),
            "expires_at": expires.isoformat(),
            "ttl": int(expires.timestamp()),
        },
        condition="attribute_not_exists(PK)",
    )
    logger.info("oauth authorize started", extra={"provider": provider.value})
    return url


class CallbackError(Exception):
    """The callback fails with ``code`` (it goes into the redirect's ``?error=``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def consume_state(store: Store, state: str) -> dict[str, Any] | None:
    """Delete the ``state`` item and return what it held, or ``None`` if it is not there (any more).

    One conditional delete: of two callbacks racing with the same ``state`` only one gets the item.
    """
    table = store.table
    try:
        resp = table.client.delete_item(
            TableName=table.name,
            Key=to_item({"PK": state_key(state), "SK": "STATE"}),
            ConditionExpression="attribute_exists(PK)",
            ReturnValues="ALL_OLD",
        )
    except ClientError as exc:
        if is_conditional_failure(exc):
            return None
        raise
    attributes = resp.get("Attributes")
    return from_item(attributes) if attributes else None


def complete_authorization(
    store: Store,
    vault: Vault,
    provider_value: str,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime | None = None,
) -> str:
    """Finish the OAuth dance; returns the app URL to redirect the browser to (success or ``?error=``)."""
    try:
        provider = Provider(provider_value)
        if provider not in OAUTH_PROVIDERS:
            raise ValueError(provider_value)
    except ValueError:
        logger.info("oauth callback for an unknown provider")
        return app_redirect(error="unknown_provider")
    try:
        saved = _complete(store, vault, provider, code=code, state=state, error=error, now=now or _now())
    except CallbackError as exc:
        logger.info("oauth callback refused", extra={"provider": provider.value, "code": exc.code})
        return app_redirect(error=exc.code)
    logger.info("oauth connection saved", extra={"provider": provider.value})
    if provider is Provider.GOOGLE:
        # Push notifications for busy times (shared.push): best effort, never fails the connect.
        from shared.push import watch_calendar

        watch_calendar(saved.mentor_id, store=store, vault=vault, replace=True)
    return app_redirect(connected=provider)


def _complete(
    store: Store,
    vault: Vault,
    provider: Provider,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime,
) -> Connection:
    if error:
        if state:
            consume_state(store, state)  # burn it: a denied consent cannot be replayed into a success
        raise CallbackError("consent_denied" if error == "access_denied" else "authorization_failed")
    if not state:
        raise CallbackError("invalid_state", "no state")
    held = consume_state(store, state)
    if held is None:
        raise CallbackError("invalid_state", "missing or already used")
    if held.get("provider") != provider.value:
        raise CallbackError("invalid_state", "state of another provider")
    if datetime.fromisoformat(str(held["expires_at"])) <= now:
        raise CallbackError("expired_state")
    if not code:
        raise CallbackError("invalid_request", "no code")
    mentor_id = str(held["mentor_id"])
    try:
        tokens = oauth_client(provider).exchange_code(code=code, code_verifier=str(held["code_verifier"]))
    except InvalidGrantError as exc:
        raise CallbackError("exchange_failed", exc.code) from None
    except OAuthError as exc:
        raise CallbackError("exchange_failed", exc.code) from None
    account = _read_account(provider, tokens)
    credential = OAuthCredential(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scope=tokens.scope,
        token_type=tokens.token_type,
    )
    try:
        sealed = vault.seal_credential(credential, mentor_id=mentor_id, provider=provider.value)
    except VaultError as exc:
        raise CallbackError("provider_unavailable", type(exc).__name__) from None

    def build(existing: Connection | None) -> Connection:
        selected = None
        if provider is Provider.GOOGLE:
            previous = existing.selected_calendar if existing is not None else None
            selected = previous if previous and previous in account["calendar_ids"] else "primary"
        return Connection(
            mentor_id=mentor_id,
            provider=provider,
            status=ConnectionStatus.CONNECTED,
            account_label=f"Connected as {account['label']}",
            account_id=account["account_id"],
            selected_calendar=selected,
            plan_type=account.get("plan_type"),
            credential=sealed,
            connected_at=now,
        )

    try:
        return _save(store, mentor_id, provider, build)
    except ConflictError:
        raise CallbackError("provider_unavailable", "could not save the connection") from None


def _read_account(provider: Provider, tokens: TokenSet) -> dict[str, Any]:
    """Google: e-mail + calendar ids; Zoom: display name + plan type. Failures stop the callback."""
    if provider is Provider.GOOGLE:
        from shared.providers.google import GoogleApiError, google_client

        client = google_client()
        try:
            calendars = client.calendar_list(tokens.access_token)
            email = client.account_email(tokens.access_token, calendars)
        except GoogleApiError as exc:
            raise CallbackError("provider_unavailable", str(exc)) from None
        ids = {c.id for c in calendars} | {"primary"}
        label = email or "Google account"
        return {"label": label, "account_id": email, "calendar_ids": ids}
    from shared.providers.zoom import ZoomApiError, zoom_client

    try:
        user = zoom_client().me(tokens.access_token)
    except ZoomApiError as exc:
        raise CallbackError("provider_unavailable", str(exc)) from None
    return {"label": user.display_name, "account_id": user.id, "plan_type": user.type}


# --- Apple ----------------------------------------------------------------------------------------


def connect_apple(store: Store, vault: Vault, mentor_id: str, body: AppleConnectRequest) -> ConnectionView:
    """Check the format (no network call on a bad one), verify by CalDAV discovery, seal and save."""
    from shared.config import BaseFunctionSettings, ProviderSettings, settings

    apple_id = body.apple_id.strip()
    try:
        apple.check_format(apple_id, body.app_specific_password)
    except apple.AppleFormatError as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, exc.code, str(exc)) from None
    try:
        apple.discover(
            settings(ProviderSettings).apple_caldav_url,
            apple_id,
            body.app_specific_password,
            timeout_s=settings(BaseFunctionSettings).http_timeout_s,
        )
    except apple.AppleAuthError as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, exc.code, str(exc)) from None
    except apple.AppleError as exc:
        logger.warning("apple discovery failed", extra={"code": exc.code})
        raise ApiError(
            HTTPStatus.BAD_GATEWAY, "apple_unavailable", "iCloud could not be reached; please try again later."
        ) from None
    credential = AppleCredential(apple_id=apple_id, app_specific_password=body.app_specific_password)
    sealed = vault.seal_credential(credential, mentor_id=mentor_id, provider=Provider.APPLE.value)
    now = _now()

    def build(_: Connection | None) -> Connection:
        return Connection(
            mentor_id=mentor_id,
            provider=Provider.APPLE,
            status=ConnectionStatus.CONNECTED,
            account_label=f"Connected as {apple_id}",
            account_id=apple_id,
            credential=sealed,
            connected_at=now,
        )

    try:
        saved = _save(store, mentor_id, Provider.APPLE, build)
    except ConflictError:
        raise ApiError(HTTPStatus.CONFLICT, "conflict", "The connection changed meanwhile; please retry.") from None
    logger.info("apple connection saved")
    return ConnectionView.of(Provider.APPLE, saved)


# --- Google calendars -------------------------------------------------------------------------------


def _connected(store: Store, mentor_id: str, provider: Provider) -> Connection:
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


def access_token(store: Store, vault: Vault, mentor_id: str, provider: Provider) -> SecretStr:
    """A usable access token of the mentor's ``provider`` connection (refreshed ahead of expiry).

    Goes through :class:`shared.providers.tokens.CredentialAccessor` (one refresh per credential
    across processes, Zoom rotation persisted first, ``invalid_grant`` → ``needs_reconnect``).
    """
    from shared.providers.oauth import ProviderUnavailableError
    from shared.providers.tokens import ConnectionUnavailable, CredentialAccessor, default_accessor

    accessor = default_accessor()
    if accessor.store is not store or accessor.vault is not vault:  # an injected store / vault (tests)
        accessor = CredentialAccessor(store, vault, accessor.oauth_clients)
    try:
        return accessor.access_token(mentor_id, provider)
    except ConnectionUnavailable as exc:
        if exc.status is ConnectionStatus.NOT_CONNECTED:
            raise ApiError(HTTPStatus.NOT_FOUND, "not_connected", f"{provider.value} is not connected.") from None
        raise ApiError(
            HTTPStatus.CONFLICT, "needs_reconnect", f"{provider.value} needs to be reconnected.", reason=exc.reason
        ) from None
    except (ProviderUnavailableError, OAuthError, VaultError) as exc:
        logger.warning("access token unavailable", extra={"provider": provider.value, "error": type(exc).__name__})
        raise ApiError(
            HTTPStatus.BAD_GATEWAY, "provider_unavailable", f"{provider.value} is unavailable; try again."
        ) from None


def _calendar_entries(store: Store, vault: Vault, mentor_id: str) -> list[Any]:
    from shared.providers.google import GoogleApiError, GoogleAuthError, google_client

    token = access_token(store, vault, mentor_id, Provider.GOOGLE)
    try:
        return google_client().calendar_list(token)
    except GoogleAuthError:
        raise ApiError(HTTPStatus.CONFLICT, "needs_reconnect", "google needs to be reconnected.") from None
    except GoogleApiError:
        raise ApiError(HTTPStatus.BAD_GATEWAY, "provider_unavailable", "Google is unavailable; try again.") from None


def google_calendars(store: Store, vault: Vault, mentor_id: str) -> CalendarsList:
    """The mentor's Google calendars, with the selected one marked."""
    conn = _connected(store, mentor_id, Provider.GOOGLE)
    selected = conn.selected_calendar or "primary"
    entries = _calendar_entries(store, vault, mentor_id)
    return CalendarsList(
        selected_calendar=selected,
        calendars=[
            CalendarView(
                id=e.id,
                summary=e.summary,
                primary=e.primary,
                access_role=e.access_role,
                selected=e.id == selected or (selected == "primary" and e.primary),
            )
            for e in entries
        ],
    )


def select_google_calendar(store: Store, vault: Vault, mentor_id: str, calendar_id: str) -> ConnectionView:
    """Make ``calendar_id`` (one of the mentor's calendar list, or ``primary``) the selected calendar."""
    conn = _connected(store, mentor_id, Provider.GOOGLE)
    entries = _calendar_entries(store, vault, mentor_id)
    if calendar_id != "primary" and calendar_id not in {e.id for e in entries}:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "unknown_calendar",
            "calendarId is not one of your Google calendars (see GET /connections/google/calendars).",
        )
    # Writable calendars only: events are created on the selected calendar.
    chosen = next((e for e in entries if e.id == calendar_id), None)
    if chosen is not None and chosen.access_role not in ("owner", "writer"):
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "calendar_not_writable",
            "Choose a calendar you can add events to (owner or writer access).",
        )
    # Re-read the version after the provider call; the write is conditional on it.
    current = store.get_connection(mentor_id, Provider.GOOGLE) or conn
    try:
        saved = store.update_connection(
            mentor_id, Provider.GOOGLE, expected_version=current.version, selected_calendar=calendar_id
        )
    except ConflictError:
        raise ApiError(HTTPStatus.CONFLICT, "conflict", "The connection changed meanwhile; please retry.") from None
    logger.info("google calendar selected")
    # Watch the chosen calendar (a new channel if it changed, the old one stopped); best effort.
    from shared.push import watch_calendar

    watch_calendar(mentor_id, store=store, vault=vault, replace=False)
    return ConnectionView.of(Provider.GOOGLE, saved)


# --- disconnect -------------------------------------------------------------------------------------


def disconnect(store: Store, vault: Vault, mentor_id: str, provider: Provider, *, revoke: bool = False) -> None:
    """Delete the connection and its sealed credential now; optionally revoke at Google / Zoom (best effort)."""
    conn = store.get_connection(mentor_id, provider)
    if conn is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "not_connected", f"{provider.value} is not connected.")
    token: SecretStr | None = None
    if revoke and provider in OAUTH_PROVIDERS and conn.credential is not None:
        try:
            cred = vault.open_credential(conn.credential, mentor_id=mentor_id, provider=provider.value)
        except VaultError as exc:
            logger.warning("credential could not be opened for revoke", extra={"error": type(exc).__name__})
        else:
            if isinstance(cred, OAuthCredential):
                # Google: the refresh token revokes the whole grant; Zoom revokes by access token.
                token = cred.refresh_token if provider is Provider.GOOGLE and cred.refresh_token else cred.access_token
    if provider is Provider.GOOGLE:
        # Stop the push channels while a token still exists (shared.push); best effort.
        from shared.push import stop_calendar_channels

        stop_calendar_channels(mentor_id, store=store, vault=vault)
    store.delete_connection(mentor_id, provider)
    logger.info("connection deleted", extra={"provider": provider.value, "revoke": revoke})
    if token is not None:
        try:
            oauth_client(provider).revoke(token)
        except OAuthError as exc:
            logger.warning(
                "revoke failed; connection deleted anyway", extra={"provider": provider.value, "code": exc.code}
            )
