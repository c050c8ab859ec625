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

**Webhook** (:func:`process_google_push`, ``POST /webhooks/google``) — :mod:`.push_webhook`;
**renewal** (:func:`renew_expiring_channels`) — :mod:`.push_renewal`; settings, headers and the
channel token's hash — :mod:`.push_settings`. Their entry points are importable from here too.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pydantic import SecretStr

from shared.busy.push_renewal import ChannelRenewal, renew_expiring_channels
from shared.busy.push_settings import (
    PUSH_HEADERS,
    RETRY_BASE_S,
    RETRY_CAP_S,
    PushSettings,
    TokenSource,
    WatchError,
    access_token,
    token_hash,
)
from shared.busy.push_webhook import PushWebhook, process_google_push
from shared.platform.observability import logger
from shared.queues.busy import SyncQueue
from shared.store import ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel, WatchRetry

if TYPE_CHECKING:
    from shared.providers.google.channels import GoogleChannelsClient
    from shared.store import Connection

__all__ = [
    "PUSH_HEADERS",
    "GooglePush",
    "PushSettings",
    "WatchError",
    "process_google_push",
    "renew_expiring_channels",
    "stop_calendar_channels",
    "token_hash",
    "watch_calendar",
]


def _now_s() -> float:
    return time.time()


class GooglePush(ChannelRenewal, PushWebhook):
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
        return access_token(self.token, mentor_id, "google")

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
        self._activate(token, channel, pending)
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

    def _activate(self, token: SecretStr, channel: PushChannel, pending: PushChannel) -> None:
        """Complete the channel item; if that fails, stop the channel and forget it (then re-raise)."""
        from shared.providers.google.calendar import GoogleApiError

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
