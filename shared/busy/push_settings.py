"""Google push settings and the pieces the channel service, webhook and renewal share (:mod:`.push`).

The ``X-Goog-*`` headers of a notification, the limits and backoff of watches and renewals, the
channel token's hash (only the SHA-256 of a channel token is stored), the watch error and the access
token of a watch (:func:`access_token`, Google's and Microsoft's).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Final

from pydantic import Field, SecretStr, model_validator

from shared.platform.env import EnvSettings

#: Headers Google sends with every notification (lower-case; the body is empty).
CHANNEL_ID_HEADER: Final = "x-goog-channel-id"
CHANNEL_TOKEN_HEADER: Final = "x-goog-channel-token"
RESOURCE_ID_HEADER: Final = "x-goog-resource-id"
RESOURCE_STATE_HEADER: Final = "x-goog-resource-state"
MESSAGE_NUMBER_HEADER: Final = "x-goog-message-number"
CHANNEL_EXPIRATION_HEADER: Final = "x-goog-channel-expiration"
PUSH_HEADERS: Final = (
    CHANNEL_ID_HEADER,
    CHANNEL_TOKEN_HEADER,
    RESOURCE_ID_HEADER,
    RESOURCE_STATE_HEADER,
    MESSAGE_NUMBER_HEADER,
    CHANNEL_EXPIRATION_HEADER,
)
#: Google's channel ids are at most 64 characters; anything much longer is not worth a lookup.
MAX_CHANNEL_ID = 256
#: A sync queued by an earlier push covers a new push only if it is due at least this much later.
COALESCE_MARGIN_MS: Final = 1000
#: How long one renewal holds a channel (another poll run leaves it alone meanwhile).
RENEW_LEASE_S: Final = 120.0
#: Retry backoff after a failed watch: 5 min, doubling, at most 6 h apart.
RETRY_BASE_S: Final = 300.0
RETRY_CAP_S: Final = 6 * 3600.0

PushHeaders = Mapping[str, str | None]
TokenSource = Callable[[str], SecretStr]


class PushSettings(EnvSettings):
    """Google push settings (environment variables are the field names upper-cased)."""

    api_url: str = Field(default="http://localhost:8080", description="This API's public origin.")
    google_push_enabled: bool = Field(default=True, description="Open watch channels at all.")
    google_push_address: str = Field(default="", description="Webhook address; default <API_URL>/webhooks/google.")
    google_channel_ttl_s: int = Field(default=7 * 24 * 3600, ge=3600, le=30 * 24 * 3600)
    google_channel_renew_before_s: int = Field(default=24 * 3600, ge=600)
    google_push_coalesce_s: int = Field(default=2, ge=0, le=900, description="0 queues one sync per push.")
    google_watch_retry_max: int = Field(default=8, ge=0, le=50)
    google_safety_resync_h: float = Field(
        default=6.0, ge=0, le=168, description="Push-covered Google connections resync this often; 0 polls them all."
    )
    google_push_live_margin_s: int = Field(
        default=900, ge=0, le=24 * 3600, description="A channel expiring sooner than this no longer covers."
    )

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> PushSettings:
        if self.google_channel_renew_before_s * 2 > self.google_channel_ttl_s:
            raise ValueError("GOOGLE_CHANNEL_RENEW_BEFORE_S must be at most half of GOOGLE_CHANNEL_TTL_S")
        return self

    @property
    def address(self) -> str:
        return self.google_push_address or f"{self.api_url.rstrip('/')}/webhooks/google"


def token_hash(token: str) -> str:
    """What is stored of a channel token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str | None, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with the stored hash."""
    if not token or not stored_hash:
        return False
    return hmac.compare_digest(token_hash(token).encode("ascii"), stored_hash.encode("ascii"))


class WatchError(Exception):
    """A watch could not be made. ``retry``: worth trying again later (the provider, not the request)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def access_token(tokens: TokenSource, mentor_id: str, provider: str) -> SecretStr:
    """``tokens(mentor_id)``, its errors as :class:`WatchError`: a connection that cannot be used
    (``<provider> connection unavailable (<status>)``) is not retried; a token endpoint or vault
    failure (``access token unavailable (<error type>)``) is."""
    from shared.providers.credentials import ConnectionUnavailable
    from shared.providers.oauth import OAuthError
    from shared.vault import VaultError

    try:
        return tokens(mentor_id)
    except ConnectionUnavailable as exc:
        raise WatchError(f"{provider} connection unavailable ({exc.status.value})", retry=False) from None
    except (OAuthError, VaultError) as exc:
        raise WatchError(f"access token unavailable ({type(exc).__name__})", retry=True) from None
