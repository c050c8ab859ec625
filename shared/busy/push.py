"""Google push notifications for busy times (PRODUCT.md §2.7): watch channels, the webhook, renewal.

A connected Google calendar has one ``events.watch`` channel whose address is
``<API_URL>/webhooks/google`` (``GOOGLE_PUSH_ADDRESS`` overrides it). When an event of the watched
calendar changes, Google posts an empty body with ``X-Goog-*`` headers there, and the webhook queues
an immediate busy sync of that connection (:class:`shared.queues.busy.SyncJob`, reason ``push``), so
the change shows in ``GET /mentors/me/busy`` without waiting for the schedule.

**Channels** (:mod:`shared.store.channels` holds the items):

* :func:`watch_calendar` — after a Google connect (replace whatever channel the mentor had: the
  account may have changed) and after ``PUT /connections/google/calendar`` (keep a live channel on
  the chosen calendar, else open one and stop the old). The channel item is written *before* the
  ``events.watch`` call (Google's first ``sync`` message can arrive before its answer) and completed
  with Google's ``resourceId`` and ``expiration`` after it.
* Each channel has its own token: 256 random bits, sent to Google once in ``events.watch`` and
  echoed by Google in ``X-Goog-Channel-Token``; only its SHA-256 is stored.
* :func:`renew_expiring_channels` — called by the scheduled ``calendar_poll``: channels expiring
  within ``GOOGLE_CHANNEL_RENEW_BEFORE_S`` (default 24 h; channels live ``GOOGLE_CHANNEL_TTL_S``,
  default 7 days) get a new channel first and are stopped after, so no change falls in a gap;
  channels whose connection is gone or needs reconnecting are dropped. Watches that failed
  (provider down) are retried with backoff, at most ``GOOGLE_WATCH_RETRY_MAX`` times.
* :func:`stop_calendar_channels` — on disconnect, *before* the credential is deleted (stopping
  needs an access token): ``channels.stop`` for each channel (best effort), then the items go.
  A connection flagged ``needs_reconnect`` has no token: its channels are left to expire and their
  pushes are acknowledged and ignored.

**Webhook** (:func:`process_google_push`, ``POST /webhooks/google``): the channel id names the
channel item (one consistent GetItem); the token's hash must match (constant-time) and so must the
resource id. Unknown channel → 404 ``channel_not_found``; wrong token / resource → 401
``invalid_channel_token`` (both logged); missing header → 400. ``sync`` (the handshake after a
watch) → 200, nothing queued. ``exists`` / ``not_exists`` → 200 and one sync queued — unless the
connection is no longer connected or the channel watches a calendar that is no longer selected
(200, ignored). Bursts are coalesced: a push queues its sync ``GOOGLE_PUSH_COALESCE_S`` (default
3 s) ahead (SQS ``DelaySeconds``) and records that due time on the channel's link item (in no
index, so a push costs no GSI write); a push arriving more than 1 s before that due time queues
nothing, because that sync reads the calendar after the change. No provider call, no KMS, no heavy
import.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.api import ApiError
from shared.platform.observability import logger
from shared.queues.busy import SyncJob, SyncQueue, SyncReason
from shared.store import ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel, WatchRetry

if TYPE_CHECKING:
    from shared.providers.google.channels import GoogleChannelsClient
    from shared.store import Connection

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


class PushSettings(BaseSettings):
    """Google push settings (environment variables are the field names upper-cased)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)

    api_url: str = Field(default="http://localhost:8080", description="This API's public origin.")
    google_push_enabled: bool = Field(default=True, description="Open watch channels at all.")
    google_push_address: str = Field(default="", description="Webhook address; default <API_URL>/webhooks/google.")
    google_channel_ttl_s: int = Field(default=7 * 24 * 3600, ge=3600, le=30 * 24 * 3600)
    google_channel_renew_before_s: int = Field(default=24 * 3600, ge=600)
    google_push_coalesce_s: int = Field(default=3, ge=0, le=900, description="0 queues one sync per push.")
    google_watch_retry_max: int = Field(default=8, ge=0, le=50)

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


@dataclass
class RenewalReport:
    """What one :func:`renew_expiring_channels` run did (for the poll's log line)."""

    renewed: int = 0
    kept: int = 0
    removed: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _now_s() -> float:
    return time.time()


class GooglePush:
    """Channels, webhook and renewal over injected collaborators (module docstring).

    ``tokens(mentor_id)`` returns a Google access token (raising
    :class:`shared.providers.credentials.ConnectionUnavailable` and the provider / vault errors the
    accessor raises); ``client`` and ``queue`` are built lazily from settings when not given, so
    the webhook never imports the HTTP client.
    """

    def __init__(
        self,
        store: Store,
        *,
        tokens: TokenSource,
        queue: SyncQueue,
        config: PushSettings | None = None,
        client: GoogleChannelsClient | None = None,
        clock: Callable[[], float] = _now_s,
    ) -> None:
        self.store = store
        self.channels = ChannelStore(store.table)
        self.config = config or _settings()
        self._tokens = tokens
        self._client = client
        self.queue = queue
        self.clock = clock

    # -- collaborators ---------------------------------------------------------------------------
    @property
    def client(self) -> GoogleChannelsClient:
        if self._client is None:
            from shared.providers.google.channels import google_channels_client

            self._client = google_channels_client()
        return self._client

    def token(self, mentor_id: str) -> SecretStr:
        return self._tokens(mentor_id)

    # -- watch -----------------------------------------------------------------------------------
    def ensure(
        self, mentor_id: str, *, replace: bool, now_s: float | None = None, horizon_s: float | None = None
    ) -> PushChannel | None:
        """Make the mentor's connected Google calendar have exactly one live channel; stop the others.

        ``replace=False`` keeps a channel on the selected calendar (same account) that lives beyond
        the renewal horizon (``horizon_s``, default ``GOOGLE_CHANNEL_RENEW_BEFORE_S``);
        ``replace=True`` always opens a new one. Channels that existed before this call and are not
        kept are stopped (newer ones, from a concurrent call, are left alone). ``None`` when the
        mentor has no usable Google connection (its leftovers are cleaned up). Raises
        :class:`WatchError`.
        """
        now = self.clock() if now_s is None else now_s
        horizon = self.config.google_channel_renew_before_s if horizon_s is None else horizon_s
        horizon_ms = int((now + horizon) * 1000)
        conn = self.store.get_connection(mentor_id, Provider.GOOGLE)
        if conn is None:
            self._drop(self.channels.for_mentor(mentor_id))
            self.channels.delete_retry(mentor_id)
            return None
        if conn.status is not ConnectionStatus.CONNECTED or conn.credential is None:
            # No token to stop channels with: they expire on their own and their pushes are
            # ignored; those about to expire are forgotten so the renewal stops finding them.
            self._drop(c for c in self.channels.for_mentor(mentor_id) if c.expiration_ms <= horizon_ms)
            self.channels.delete_retry(mentor_id)
            return None
        calendar = conn.selected_calendar or "primary"
        existing = self.channels.for_mentor(mentor_id)
        keep: PushChannel | None = None
        if not replace:
            live = [
                c
                for c in existing
                if c.calendar_id == calendar
                and c.account_id == conn.account_id
                and c.resource_id
                and c.expiration_ms > horizon_ms
            ]
            keep = live[-1] if live else None
        others = [c for c in existing if keep is None or c.channel_id != keep.channel_id]
        if keep is not None and not others:
            self.channels.delete_retry(mentor_id)
            return keep
        token = self._token_or_raise(mentor_id)
        if keep is None:
            keep = self._watch(token, conn, calendar, now)
        self._stop(token, others)
        self.channels.delete_retry(mentor_id)
        return keep

    def _token_or_raise(self, mentor_id: str) -> SecretStr:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.oauth import OAuthError
        from shared.vault import VaultError

        try:
            return self.token(mentor_id)
        except ConnectionUnavailable as exc:
            raise WatchError(f"google connection unavailable ({exc.status.value})", retry=False) from None
        except (OAuthError, VaultError) as exc:
            raise WatchError(f"access token unavailable ({type(exc).__name__})", retry=True) from None

    def _watch(self, token: SecretStr, conn: Connection, calendar: str, now: float) -> PushChannel:
        from shared.providers.google.calendar import GoogleApiError

        secret = secrets.token_urlsafe(32)
        pending = PushChannel(
            channel_id=str(uuid.uuid4()),
            mentor_id=conn.mentor_id,
            calendar_id=calendar,
            resource_id="",
            expiration_ms=int((now + self.config.google_channel_ttl_s) * 1000),
            token_hash=token_hash(secret),
            account_id=conn.account_id,
            created_ms=int(now * 1000),
        )
        # Written first: Google's "sync" message may arrive before events.watch answers.
        self.channels.put(pending)
        try:
            watched = self.client.watch(
                token,
                calendar,
                channel_id=pending.channel_id,
                address=self.config.address,
                channel_token=SecretStr(secret),
                ttl_s=self.config.google_channel_ttl_s,
            )
        except GoogleApiError as exc:
            self.channels.delete(pending)
            status = exc.status
            permanent = status is not None and 400 <= status < 500 and status not in (401, 403, 429)
            raise WatchError(f"events.watch failed: {exc}", retry=not permanent) from None
        channel = PushChannel(
            channel_id=pending.channel_id,
            mentor_id=pending.mentor_id,
            calendar_id=calendar,
            resource_id=watched.resource_id,
            expiration_ms=watched.expiration_ms,
            token_hash=pending.token_hash,
            account_id=pending.account_id,
            created_ms=pending.created_ms,
        )
        try:
            self.channels.activate(channel)
        except Exception:
            # Not recorded → never renewed or stopped: stop it now rather than leave it running.
            try:
                self.client.stop(token, channel_id=channel.channel_id, resource_id=channel.resource_id)
            except GoogleApiError:
                logger.warning("could not stop an unrecorded channel", extra={"channel_id": channel.channel_id})
            self.channels.delete(pending)
            raise
        logger.info(
            "google channel opened",
            extra={
                "mentor_id": conn.mentor_id,
                "channel_id": channel.channel_id,
                "expires_at": channel.expires_at.isoformat(),
            },
        )
        return channel

    def _stop(self, token: SecretStr | None, channels: Iterable[PushChannel]) -> int:
        """``channels.stop`` each (best effort) and delete its items; how many Google confirmed."""
        from shared.providers.google.calendar import GoogleApiError

        stopped = 0
        for channel in channels:
            if token is not None and channel.resource_id:
                try:
                    if self.client.stop(token, channel_id=channel.channel_id, resource_id=channel.resource_id):
                        stopped += 1
                except GoogleApiError as exc:
                    # Its pushes now find no channel item (404) until Google lets it expire.
                    logger.warning(
                        "google channel stop failed; forgetting it anyway",
                        extra={"channel_id": channel.channel_id, "error": str(exc)},
                    )
            self.channels.delete(channel)
            logger.info("google channel stopped", extra={"channel_id": channel.channel_id})
        return stopped

    def _drop(self, channels: Iterable[PushChannel]) -> None:
        for channel in channels:
            self.channels.delete(channel)

    def stop_all(self, mentor_id: str) -> int:
        """Stop and forget every channel of the mentor (disconnect; before the credential goes)."""
        existing = self.channels.for_mentor(mentor_id)
        self.channels.delete_retry(mentor_id)
        if not existing:
            return 0
        token: SecretStr | None = None
        conn = self.store.get_connection(mentor_id, Provider.GOOGLE)
        if conn is not None and conn.status is ConnectionStatus.CONNECTED and conn.credential is not None:
            try:
                token = self._token_or_raise(mentor_id)
            except WatchError as exc:
                logger.warning("no token to stop google channels", extra={"error": str(exc)})
        return self._stop(token, existing)

    def schedule_retry(self, mentor_id: str, error: str, *, now_s: float | None = None) -> WatchRetry | None:
        """Record a failed watch for the renewal to try again (backoff); ``None`` once attempts run out."""
        now = self.clock() if now_s is None else now_s
        previous = self.channels.get_retry(mentor_id)
        attempts = (previous.attempts if previous else 0) + 1
        if attempts > self.config.google_watch_retry_max:
            self.channels.delete_retry(mentor_id)
            logger.error("google watch gave up", extra={"mentor_id": mentor_id, "attempts": attempts - 1})
            return None
        delay = min(RETRY_BASE_S * 2 ** (attempts - 1), RETRY_CAP_S)
        retry = WatchRetry(mentor_id=mentor_id, attempts=attempts, due_ms=int((now + delay) * 1000), last_error=error)
        self.channels.put_retry(retry)
        return retry

    def watch(self, mentor_id: str, *, replace: bool) -> PushChannel | None:
        """:meth:`ensure`, never raising: failures are logged and retried later by the renewal."""
        if not self.config.google_push_enabled:
            return None
        try:
            return self.ensure(mentor_id, replace=replace)
        except WatchError as exc:
            logger.warning("google watch failed", extra={"mentor_id": mentor_id, "error": str(exc), "retry": exc.retry})
            if exc.retry:
                self._safe_retry(mentor_id, str(exc))
        except Exception as exc:  # a push channel is an optimisation: it never fails the caller
            logger.exception("google watch failed", extra={"mentor_id": mentor_id})
            self._safe_retry(mentor_id, type(exc).__name__)
        return None

    def _safe_retry(self, mentor_id: str, error: str) -> None:
        try:
            self.schedule_retry(mentor_id, error)
        except Exception:
            logger.exception("could not record the google watch retry", extra={"mentor_id": mentor_id})

    # -- renewal ---------------------------------------------------------------------------------
    def renew(self, *, now_s: float, horizon_s: float, max_mentors: int = 200) -> RenewalReport:
        """Renew channels expiring before ``now + horizon`` and run due watch retries (module docstring).

        At most ``max_mentors`` mentors per run (the rest are found again by the next run).
        """
        report = RenewalReport()
        if not self.config.google_push_enabled:
            return report
        now_ms = int(now_s * 1000)
        seen: set[str] = set()
        for retry in list(self.channels.retries_due(now_ms)):
            if len(seen) >= max_mentors:
                report.skipped += 1
                continue
            seen.add(retry.mentor_id)
            report.retried += 1
            self._renew_one(retry.mentor_id, None, now_s, horizon_s, report)
        for channel in self.channels.expiring(int(now_ms + horizon_s * 1000)):
            if channel.mentor_id in seen or len(seen) >= max_mentors:
                report.skipped += 1
                continue
            if not self.channels.claim_renewal(channel.channel_id, now_s=now_s, lease_s=RENEW_LEASE_S):
                report.skipped += 1  # gone meanwhile, or another run holds it (or is backing off)
                continue
            seen.add(channel.mentor_id)
            self._renew_one(channel.mentor_id, channel, now_s, horizon_s, report)
        if report.renewed or report.removed or report.failed or report.retried:
            logger.info("google channels renewed", extra={"report": report.__dict__})
        return report

    def _renew_one(
        self, mentor_id: str, channel: PushChannel | None, now_s: float, horizon_s: float, report: RenewalReport
    ) -> None:
        """Renew one mentor's channel (``channel`` expiring) or run its watch retry (``channel=None``)."""
        before = {c.channel_id for c in self.channels.for_mentor(mentor_id)}
        try:
            kept = self.ensure(mentor_id, replace=False, now_s=now_s, horizon_s=horizon_s)
        except Exception as exc:
            retry = exc.retry if isinstance(exc, WatchError) else True
            error = str(exc) if isinstance(exc, WatchError) else type(exc).__name__
            report.failed += 1
            report.errors.append(f"{mentor_id}: {error}")
            logger.warning("google channel renewal failed", extra={"mentor_id": mentor_id, "error": error})
            try:
                self._after_failure(mentor_id, channel, now_s, error, retry=retry)
            except Exception:
                logger.exception("could not record the failed renewal", extra={"mentor_id": mentor_id})
            return
        if kept is None:
            report.removed += len(before - {c.channel_id for c in self.channels.for_mentor(mentor_id)})
        elif kept.channel_id in before:
            report.kept += 1
        else:
            report.renewed += 1

    def _after_failure(
        self, mentor_id: str, channel: PushChannel | None, now_s: float, error: str, *, retry: bool
    ) -> None:
        if channel is None:  # a watch retry failed again
            if retry:
                self.schedule_retry(mentor_id, error, now_s=now_s)
            else:
                self.channels.delete_retry(mentor_id)
            return
        if retry and channel.expiration_ms > now_s * 1000:
            # Still alive: try again later, backing off (the lease keeps other runs away).
            failures = channel.renew_failures + 1
            delay = min(RETRY_BASE_S * 2 ** (failures - 1), RETRY_CAP_S)
            self.channels.hold_renewal(channel.channel_id, until_s=now_s + delay, failures=failures)
            return
        # Expired, or a failure retrying will not fix: forget it (Google stops it at expiry).
        self.channels.delete(channel)
        if retry:
            self.schedule_retry(mentor_id, error, now_s=now_s)

    # -- webhook ---------------------------------------------------------------------------------
    def handle_push(self, headers: PushHeaders) -> dict[str, Any]:
        """Verify one notification and queue a sync for a change (module docstring); raises ApiError."""
        channel_id = (headers.get(CHANNEL_ID_HEADER) or "").strip()
        state = (headers.get(RESOURCE_STATE_HEADER) or "").strip().lower()
        if not channel_id or not state:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_request",
                f"{CHANNEL_ID_HEADER} and {RESOURCE_STATE_HEADER} headers are required.",
            )
        channel = self.channels.get(channel_id) if len(channel_id) <= MAX_CHANNEL_ID else None
        if channel is None:
            logger.warning("google push for an unknown channel", extra={"channel_id": channel_id[:80]})
            raise ApiError(HTTPStatus.NOT_FOUND, "channel_not_found", "No such notification channel.")
        resource = (headers.get(RESOURCE_ID_HEADER) or "").strip()
        if not token_matches(headers.get(CHANNEL_TOKEN_HEADER), channel.token_hash) or (
            channel.resource_id and not hmac.compare_digest(resource.encode(), channel.resource_id.encode())
        ):
            logger.warning("google push with a bad channel token or resource", extra={"channel_id": channel_id})
            raise ApiError(HTTPStatus.UNAUTHORIZED, "invalid_channel_token", "The channel token does not match.")
        extra = {"channel_id": channel_id, "state": state, "message_number": headers.get(MESSAGE_NUMBER_HEADER)}
        if state == "sync":
            logger.info("google push channel handshake", extra=extra)
            return {"received": True, "queued": False}
        if state not in ("exists", "not_exists"):
            logger.info("google push state ignored", extra=extra)
            return {"received": True, "queued": False}
        conn = self.store.get_connection(channel.mentor_id, Provider.GOOGLE)
        if conn is None or conn.status is not ConnectionStatus.CONNECTED or conn.credential is None:
            logger.info("google push for a connection that does not sync", extra=extra)
            return {"received": True, "queued": False}
        if (conn.selected_calendar or "primary") != channel.calendar_id:
            logger.info("google push for a calendar no longer selected", extra=extra)
            return {"received": True, "queued": False}
        return {"received": True, "queued": self._queue_sync(channel, extra)}

    def _queue_sync(self, channel: PushChannel, extra: dict[str, Any]) -> bool:
        window_s = self.config.google_push_coalesce_s
        job = SyncJob(mentor_id=channel.mentor_id, provider=Provider.GOOGLE, reason=SyncReason.PUSH)
        if window_s <= 0:
            self.queue.send(job)
            logger.info("google push queued a sync", extra=extra)
            return True
        now_ms = int(self.clock() * 1000)
        window_ms = window_s * 1000
        if not self.channels.claim_push_sync(channel, now_ms=now_ms, window_ms=window_ms, margin_ms=COALESCE_MARGIN_MS):
            logger.info("google push covered by a queued sync", extra=extra)
            return False
        try:
            self.queue.send(job, delay_s=window_s)
        except Exception:
            self.channels.release_push_sync(channel, due_ms=now_ms + window_ms)
            raise
        logger.info("google push queued a sync", extra={**extra, "delay_s": window_s})
        return True


# --- module-level entry points ---------------------------------------------------------------------


def _settings() -> PushSettings:
    from shared.platform.config import settings

    return settings(PushSettings)


def watch_calendar(push: Callable[[], GooglePush], mentor_id: str, *, replace: bool = True) -> PushChannel | None:
    """Open (``replace``) or make sure of the mentor's Google watch channel. Never raises."""
    try:
        service = push()
    except Exception:
        logger.exception("google push is not configured")
        return None
    return service.watch(mentor_id, replace=replace)


def stop_calendar_channels(push: Callable[[], GooglePush], mentor_id: str) -> int:
    """Stop and forget the mentor's Google channels (disconnect). Never raises; how many Google stopped."""
    try:
        return push().stop_all(mentor_id)
    except Exception:
        logger.exception("google channels could not be stopped", extra={"mentor_id": mentor_id})
        return 0


def renew_expiring_channels(
    service: GooglePush, now: datetime | None = None, horizon: timedelta | None = None
) -> RenewalReport:
    """The scheduled renewal (``calendar_poll``'s maintenance task; defaults from settings)."""
    now_s = now.timestamp() if now is not None else service.clock()
    horizon_s = horizon.total_seconds() if horizon is not None else float(service.config.google_channel_renew_before_s)
    return service.renew(now_s=now_s, horizon_s=horizon_s)


def process_google_push(service: GooglePush, headers: PushHeaders) -> dict[str, Any]:
    """``POST /webhooks/google``: verify the notification and queue a sync (raises :class:`ApiError`)."""
    return service.handle_push(headers)
