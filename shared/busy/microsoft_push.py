"""Microsoft Graph change notifications for busy times (PRODUCT.md §2.7): subscriptions and renewal.

A connected Outlook calendar has one subscription on the selected calendar's events
(``me/events`` for the default one) whose ``notificationUrl`` and ``lifecycleNotificationUrl``
are ``<API_URL>/webhooks/microsoft`` (``MICROSOFT_PUSH_ADDRESS`` overrides it; HTTPS in AWS).
Its items follow :mod:`shared.store.channels`: a :class:`PushChannel` of provider ``microsoft``
whose ``channel_id`` is Graph's subscription id, ``resource_id`` the subscribed resource,
``token_hash`` the SHA-256 of the ``clientState`` (256 random bits, sent to Graph once, echoed in
every notification; never stored itself).

* :meth:`MicrosoftPush.ensure` — after a connect (``replace``: a new subscription, the old ones
  deleted) and after ``PUT /connections/microsoft/calendar`` (keep a live one on the chosen
  calendar, else subscribe and delete the old). Graph answers the create only after our webhook
  passed its ``validationToken`` handshake, so a stored subscription is a confirmed one
  (``confirmed_ms``: the poll may skip it, :mod:`.push_first`). A notification racing the create's
  answer finds no item and is ignored; the first poll after a new subscription resyncs anyway.
* :meth:`MicrosoftPush.renew` — the scheduled ``calendar_poll``'s maintenance task: subscriptions
  expiring within ``MICROSOFT_SUBSCRIPTION_RENEW_BEFORE_S`` (default 24 h; they are made for
  ``MICROSOFT_SUBSCRIPTION_TTL_S``, default 70 h, under Graph's 4,230-minute cap) get a ``PATCH``
  with a new expiration; one Graph no longer knows (404) is made again; failures back off under the
  channel's renewal lease; failed subscribes are retried (``WatchRetry`` of provider ``microsoft``).
  One flagged for a missed change (``suspect_ms``, :mod:`.push_watchdog`) is replaced by a new one.
* lifecycle events (:mod:`.microsoft_webhook`): ``reauthorizationRequired`` → :meth:`renew_now`;
  ``subscriptionRemoved`` → :meth:`ensure` with ``replace``.
* **strays** — a create whose answer is lost (Graph made it; we see a 5xx / timeout, then retry with
  a new ``clientState``, or the Graph client re-POSTs the same body) leaves a subscription we never
  recorded. So the ``clientState``'s hash is first stored as a *pending state* for the mentor
  (:mod:`shared.store.subscription_states`, kept until its TTL); the webhook recognises a stray by it
  and queues a ``delete`` job, and :meth:`delete_stray` (the worker) deletes it at Graph — never a
  subscription recorded as a channel (checked first), 404 counting as done, no sync after it.

Deleting on disconnect is :func:`shared.connections.microsoft.stop_subscriptions`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field, SecretStr, model_validator

from shared.busy.push_settings import RENEW_LEASE_S, RETRY_BASE_S, RETRY_CAP_S, WatchError, access_token, token_hash
from shared.platform.env import EnvSettings
from shared.platform.observability import logger
from shared.store import ConnectionStatus, Provider, Store
from shared.store.channels import ChannelStore, PushChannel, WatchRetry
from shared.store.subscription_states import PendingState, SubscriptionStateStore

if TYPE_CHECKING:
    from shared.providers.microsoft.busy import MicrosoftBusyClient
    from shared.queues.busy import SyncJob, SyncQueue
    from shared.store import Connection

MICROSOFT: Final = Provider.MICROSOFT.value
#: Graph's cap on an Outlook event subscription's life (NOTES-msgraph §6).
GRAPH_CAP_S: Final = 4230 * 60


class MicrosoftPushSettings(EnvSettings):
    """Microsoft change-notification tuning (environment variables of the same names, upper-cased)."""

    api_url: str = Field(default="http://localhost:8080", description="This API's public origin.")
    microsoft_push_enabled: bool = Field(default=True, description="Subscribe to change notifications at all.")
    microsoft_push_address: str = Field(default="", description="Webhook; default <API_URL>/webhooks/microsoft.")
    microsoft_subscription_ttl_s: int = Field(default=70 * 3600, ge=3600, le=GRAPH_CAP_S)
    microsoft_subscription_renew_before_s: int = Field(default=24 * 3600, ge=600)
    microsoft_push_coalesce_s: int = Field(default=2, ge=0, le=900, description="0 queues one sync per change.")
    microsoft_watch_retry_max: int = Field(default=8, ge=0, le=50)
    microsoft_safety_resync_h: float = Field(
        default=24.0, ge=0, le=24 * 30, description="A covered connection still syncs this often (0: always poll)."
    )
    microsoft_stray_delete_delay_s: int = Field(
        default=180, ge=0, le=900, description="A stray's delete waits out any create still in flight."
    )

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> MicrosoftPushSettings:
        if self.microsoft_subscription_renew_before_s >= self.microsoft_subscription_ttl_s:
            raise ValueError("MICROSOFT_SUBSCRIPTION_RENEW_BEFORE_S must be less than MICROSOFT_SUBSCRIPTION_TTL_S")
        return self

    @property
    def address(self) -> str:
        return self.microsoft_push_address or f"{self.api_url.rstrip('/')}/webhooks/microsoft"


@dataclass
class MicrosoftRenewal:
    """What one :meth:`MicrosoftPush.renew` run did (for the poll's log line)."""

    renewed: int = 0
    recreated: int = 0
    removed: int = 0
    failed: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class MicrosoftPush:
    """Subscriptions and their renewal over injected collaborators (module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        tokens: Callable[[str], SecretStr],
        queue: Callable[[], SyncQueue],
        client: Callable[[], MicrosoftBusyClient],
        config: MicrosoftPushSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channels = ChannelStore(store.table)
        self.states = SubscriptionStateStore(store.table)
        self.config = config
        self._tokens = tokens
        self.queue = queue
        self._client = client
        self.clock = clock

    # -- subscribe -------------------------------------------------------------------------------
    def ensure(self, mentor_id: str, *, replace: bool, horizon_s: float | None = None) -> PushChannel | None:
        """Make the mentor's connected Outlook calendar have exactly one live subscription.

        ``replace=False`` keeps one on the selected calendar (same account) that lives beyond
        ``horizon_s`` (default: the renewal horizon). Subscriptions not kept are deleted at Graph
        (best effort) and forgotten. ``None`` without a usable connection. Raises :class:`WatchError`.
        """
        now = self.clock()
        horizon = self.config.microsoft_subscription_renew_before_s if horizon_s is None else horizon_s
        existing = self.channels.for_mentor(mentor_id, MICROSOFT)
        conn = self.store.get_connection(mentor_id, Provider.MICROSOFT)
        if conn is None or conn.status is not ConnectionStatus.CONNECTED or conn.credential is None:
            self._forget(None, existing)
            self.channels.delete_retry(mentor_id, MICROSOFT)
            return None
        calendar = conn.selected_calendar or "primary"
        keep: PushChannel | None = None
        if not replace:
            live = [
                c
                for c in existing
                if c.calendar_id == calendar
                and c.account_id == conn.account_id
                and c.expiration_ms > (now + horizon) * 1000
            ]
            keep = live[-1] if live else None
        others = [c for c in existing if keep is None or c.channel_id != keep.channel_id]
        if keep is not None and not others:
            self.channels.delete_retry(mentor_id, MICROSOFT)
            return keep
        token = self.token(mentor_id)
        if keep is None:
            keep = self._subscribe(token, conn, calendar, now)
        self._forget(token, others)
        self.channels.delete_retry(mentor_id, MICROSOFT)
        return keep

    def token(self, mentor_id: str) -> SecretStr:
        return access_token(self._tokens, mentor_id, MICROSOFT)

    def _subscribe(self, token: SecretStr, conn: Connection, calendar: str, now: float) -> PushChannel:
        from shared.providers.microsoft.errors import MicrosoftApiError

        client_state = secrets.token_urlsafe(32)
        expiration = datetime.fromtimestamp(now + self.config.microsoft_subscription_ttl_s, UTC)
        # Before the POST: a subscription whose answer is lost is still known as ours (module docstring).
        pending = PendingState(token_hash(client_state), conn.mentor_id, MICROSOFT, created_ms=int(now * 1000))
        self.states.put(pending, expires_s=expiration.timestamp())
        client = self._client()
        try:
            sub = client.subscribe(
                token, calendar, url=self.config.address, client_state=SecretStr(client_state), expiration=expiration
            )
        except MicrosoftApiError as exc:
            status = exc.status
            permanent = status is not None and 400 <= status < 500 and status not in (401, 403, 404, 429)
            raise WatchError(f"subscription refused: {exc}", retry=not permanent) from None
        channel = PushChannel(
            channel_id=sub.id,
            mentor_id=conn.mentor_id,
            calendar_id=calendar,
            resource_id=sub.resource,
            expiration_ms=_ms(sub.expiration),
            token_hash=token_hash(client_state),
            account_id=conn.account_id,
            provider=MICROSOFT,
            created_ms=int(now * 1000),
        )
        try:
            self.channels.put(channel)
            # Graph made it only after our webhook answered its handshake: deliveries do arrive.
            self.channels.confirm(channel.channel_id, now_ms=int(now * 1000))
        except Exception:
            self._delete_at_graph(token, channel.channel_id)  # not recorded → never renewed: delete it now
            self.channels.delete(channel)
            raise
        logger.info(
            "microsoft subscription created",
            extra={"mentor_id": conn.mentor_id, "subscription_id": sub.id, "expires_at": sub.expiration.isoformat()},
        )
        return channel

    def _delete_at_graph(self, token: SecretStr | None, subscription_id: str) -> None:
        from shared.providers.microsoft.errors import MicrosoftApiError

        if token is None:
            return
        try:
            self._client().delete_subscription(token, subscription_id)
        except MicrosoftApiError as exc:
            logger.warning("microsoft subscription delete failed", extra={"status": exc.status, "code": exc.code})

    def _forget(self, token: SecretStr | None, channels: Iterable[PushChannel]) -> None:
        for channel in channels:
            self._delete_at_graph(token, channel.channel_id)
            self.channels.delete(channel)

    def subscribe(self, mentor_id: str, *, replace: bool) -> PushChannel | None:
        """:meth:`ensure`, never raising: failures are logged and retried by the renewal."""
        if not self.config.microsoft_push_enabled:
            return None
        try:
            return self.ensure(mentor_id, replace=replace)
        except Exception as exc:  # a subscription is an optimisation: it never fails the caller
            retry = exc.retry if isinstance(exc, WatchError) else True
            error = str(exc) if isinstance(exc, WatchError) else type(exc).__name__
            logger.warning("microsoft subscribe failed", extra={"mentor_id": mentor_id, "error": error})
            if retry:
                self.schedule_retry(mentor_id, error)
        return None

    def schedule_retry(self, mentor_id: str, error: str) -> WatchRetry | None:
        """Record a failed subscribe for the renewal to try again (backoff); ``None`` once attempts run out."""
        try:
            previous = self.channels.get_retry(mentor_id, MICROSOFT)
            attempts = (previous.attempts if previous else 0) + 1
            if attempts > self.config.microsoft_watch_retry_max:
                self.channels.delete_retry(mentor_id, MICROSOFT)
                logger.error("microsoft subscribe gave up", extra={"mentor_id": mentor_id, "attempts": attempts - 1})
                return None
            delay = min(RETRY_BASE_S * 2 ** (attempts - 1), RETRY_CAP_S)
            due = int((self.clock() + delay) * 1000)
            retry = WatchRetry(mentor_id, attempts, due, last_error=error[:200], provider=MICROSOFT)
            self.channels.put_retry(retry)
        except Exception:
            logger.exception("could not record the microsoft subscribe retry", extra={"mentor_id": mentor_id})
            return None
        return retry

    def on_lifecycle(self, job: SyncJob) -> None:
        """The ``busy_sync`` worker's step for a lifecycle event (:mod:`.microsoft_webhook`). Never raises.

        ``renew``: every subscription of the mentor gets a new expiration; ``recreate``: a live
        subscription on the selected calendar is made if none is left. A failure records a
        subscribe retry for the scheduled renewal (the connection is polled meanwhile).
        ``delete``: :meth:`delete_stray` of ``job.channel``.
        """
        mentor_id = job.mentor_id
        if job.subscription == "delete":
            self.delete_stray(mentor_id, job.channel or "")
            return
        try:
            if job.subscription == "renew":
                for channel in self.channels.for_mentor(mentor_id, MICROSOFT):
                    self.renew_now(channel)
            else:
                self.ensure(mentor_id, replace=False)
        except Exception as exc:
            retry = exc.retry if isinstance(exc, WatchError) else True
            error = str(exc) if isinstance(exc, WatchError) else type(exc).__name__
            logger.warning("microsoft lifecycle step failed", extra={"mentor_id": mentor_id, "error": error})
            if retry:
                self.schedule_retry(mentor_id, f"{job.subscription}: {error}")

    def delete_stray(self, mentor_id: str, subscription_id: str) -> bool:
        """Delete a stray subscription of the mentor at Graph (module docstring); never raises.

        Never one recorded as a channel (one consistent GetItem first). ``True`` when the DELETE was
        answered (404 included: already gone); a failure is only logged (the stray expires anyway,
        and its next notification asks again).
        """
        from shared.providers.microsoft.errors import MicrosoftApiError

        extra = {"mentor_id": mentor_id, "subscription_id": subscription_id[:8]}
        try:
            if not subscription_id or self.channels.get(subscription_id) is not None:
                logger.info("microsoft subscription recorded: not deleted as a stray", extra=extra)
                return False
            existed = self._client().delete_subscription(self.token(mentor_id), subscription_id)
        except (WatchError, MicrosoftApiError) as exc:
            logger.warning("microsoft stray subscription not deleted", extra={**extra, "error": str(exc)})
            return False
        except Exception as exc:
            logger.warning("microsoft stray subscription not deleted", extra={**extra, "error": type(exc).__name__})
            return False
        logger.info("microsoft stray subscription deleted", extra={**extra, "existed": existed})
        return True

    # -- renewal ---------------------------------------------------------------------------------
    def renew_now(self, channel: PushChannel) -> datetime | None:
        """PATCH the subscription's expiration (one Graph no longer knows is made again); the new expiry."""
        token = self.token(channel.mentor_id)
        expiration = datetime.fromtimestamp(self.clock() + self.config.microsoft_subscription_ttl_s, UTC)
        renewed = self._client().renew(token, channel.channel_id, expiration)
        if renewed is None:
            self.channels.delete(channel)
            made = self.ensure(channel.mentor_id, replace=True)
            return made.expires_at if made else None
        self.channels.activate(
            PushChannel(**{**channel.__dict__, "expiration_ms": _ms(renewed)})  # new expiry on channel + link
        )
        if channel.renew_failures:  # healthy again: the poll may skip the connection
            self.channels.hold_renewal(channel.channel_id, until_s=0, failures=0)
        logger.info("microsoft subscription renewed", extra={"subscription_id": channel.channel_id})
        return renewed

    def renew(self, *, max_mentors: int = 200) -> MicrosoftRenewal:
        """Renew subscriptions expiring within the horizon and run due subscribe retries (module docstring)."""
        report = MicrosoftRenewal()
        if not self.config.microsoft_push_enabled:
            return report
        now = self.clock()
        now_ms = int(now * 1000)
        seen: set[str] = set()
        for retry in list(self.channels.retries_due(now_ms)):
            if retry.provider != MICROSOFT or len(seen) >= max_mentors:
                continue
            seen.add(retry.mentor_id)
            report.retried += 1
            self._run(report, retry.mentor_id, partial(self.ensure, retry.mentor_id, replace=False))
        horizon_ms = now_ms + self.config.microsoft_subscription_renew_before_s * 1000
        for channel in list(self.channels.expiring(horizon_ms)):
            if channel.provider != MICROSOFT or channel.mentor_id in seen or len(seen) >= max_mentors:
                continue
            if not self.channels.claim_renewal(channel.channel_id, now_s=now, lease_s=RENEW_LEASE_S):
                continue
            seen.add(channel.mentor_id)
            self._renew_one(report, channel, now)
        if report.renewed or report.recreated or report.removed or report.failed or report.retried:
            logger.info("microsoft subscriptions renewed", extra={"report": report.__dict__})
        return report

    def _renew_one(self, report: MicrosoftRenewal, channel: PushChannel, now: float) -> None:
        conn = self.store.get_connection(channel.mentor_id, Provider.MICROSOFT)
        usable = conn is not None and conn.status is ConnectionStatus.CONNECTED and conn.credential is not None
        current = usable and conn is not None and (conn.selected_calendar or "primary") == channel.calendar_id
        if current and channel.suspect_ms:  # missed a change (push_watchdog): a new subscription
            before = report.failed
            step = partial(self.ensure, channel.mentor_id, replace=True)
            self._run(report, channel.mentor_id, step, channel=channel, now=now)
            report.recreated += int(report.failed == before)
            return
        if not current:  # gone, needs reconnecting or another calendar: ensure sorts it out
            before = report.failed
            self._run(report, channel.mentor_id, lambda: self.ensure(channel.mentor_id, replace=False))
            if report.failed == before:
                report.removed += 1
            return
        failures_before = report.failed
        self._run(report, channel.mentor_id, lambda: self.renew_now(channel), channel=channel, now=now)
        if report.failed == failures_before:
            report.renewed += 1

    def _run(
        self,
        report: MicrosoftRenewal,
        mentor_id: str,
        step: Callable[[], Any],
        *,
        channel: PushChannel | None = None,
        now: float = 0.0,
    ) -> None:
        try:
            step()
        except Exception as exc:
            retry = exc.retry if isinstance(exc, WatchError) else True
            error = str(exc) if isinstance(exc, WatchError) else type(exc).__name__
            report.failed += 1
            report.errors.append(f"{mentor_id}: {error}"[:300])
            logger.warning("microsoft subscription renewal failed", extra={"mentor_id": mentor_id, "error": error})
            if channel is not None and retry and channel.expiration_ms > now * 1000:
                failures = channel.renew_failures + 1
                delay = min(RETRY_BASE_S * 2 ** (failures - 1), RETRY_CAP_S)
                self.channels.hold_renewal(channel.channel_id, until_s=now + delay, failures=failures)
            elif retry:
                self.schedule_retry(mentor_id, error)
