"""Apple connect (PRODUCT.md §2.2): ``POST /connections/apple`` — :func:`connect_apple`.

Format check first (no network call on a bad one), then the attempt limits and the circuit breaker
(:mod:`shared.connections.attempts`: 429 ``too_many_attempts`` / 503 ``apple_paused`` with
``Retry-After``, nothing sent to iCloud), then CalDAV discovery with the app-specific password, then
the credential is sealed and saved. The password never appears in a log or error.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from shared.connections.attempts import AppleAttemptLimiter
from shared.connections.views import AppleConnectRequest, ConnectionView, current_time, save_connection
from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.providers.apple import caldav as apple
from shared.store import ConflictError, Connection, ConnectionStatus, Provider, Store
from shared.vault import AppleCredential, Vault


def connect_apple(
    store: Store,
    vault: Vault,
    mentor_id: str,
    body: AppleConnectRequest,
    *,
    limiter: AppleAttemptLimiter,
    on_connected: Callable[[str, Provider, bool], object] | None = None,
) -> ConnectionView:
    """Check the format (no network call on a bad one), the limits, verify by CalDAV discovery, seal and save.

    ``on_connected(mentor_id, apple, reconnected)`` runs after the save (a reconnect syncs busy times
    at once; it never raises).
    """
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    apple_id = body.apple_id.strip()
    try:
        apple.check_format(apple_id, body.app_specific_password)
    except apple.AppleFormatError as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, exc.code, str(exc)) from None
    limiter.admit(mentor_id, apple_id)  # counts this sign-in, or 429 / 503 without contacting iCloud
    try:
        apple.discover(
            settings(ProviderSettings).apple_caldav_url,
            apple_id,
            body.app_specific_password,
            timeout_s=settings(BaseFunctionSettings).http_timeout_s,
        )
    except apple.AppleAuthError as exc:
        limiter.rejected()
        raise ApiError(HTTPStatus.BAD_REQUEST, exc.code, str(exc)) from None
    except apple.AppleError as exc:
        logger.warning("apple discovery failed", extra={"code": exc.code})
        raise ApiError(
            HTTPStatus.BAD_GATEWAY, "apple_unavailable", "iCloud could not be reached; please try again later."
        ) from None
    credential = AppleCredential(apple_id=apple_id, app_specific_password=body.app_specific_password)
    sealed = vault.seal_credential(credential, mentor_id=mentor_id, provider=Provider.APPLE.value)
    now = current_time()

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

    before = store.get_connection(mentor_id, Provider.APPLE)
    try:
        saved = save_connection(store, mentor_id, Provider.APPLE, build)
    except ConflictError:
        raise ApiError(HTTPStatus.CONFLICT, "conflict", "The connection changed meanwhile; please retry.") from None
    limiter.succeeded(mentor_id, apple_id)
    logger.info("apple connection saved")
    if on_connected is not None:
        on_connected(mentor_id, Provider.APPLE, before is not None)
    return ConnectionView.of(Provider.APPLE, saved)
