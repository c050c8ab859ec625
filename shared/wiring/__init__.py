"""The composition root: the one place that builds every default dependency.

Handlers take their collaborators from here (``wiring.store()``, ``wiring.meetings_worker()`` …)
and pass them to the capability that decides; capabilities never build their own defaults and
never import a sibling capability — what one needs of another (connect → open a push channel)
arrives as a callable built here. Tests build capabilities directly with fakes, moto or the
emulators, or call these factories after pointing the environment at the local stack.

Rules:

* Each factory is :func:`~shared.platform.once.once`: built on first use, kept for the container's
  life, shared by every invocation of a warm container (the vault's key cache, the OAuth clients).
  :func:`reset` forgets all of them together with the settings and the boto3 clients — the one
  reset the local stack and the tests call when the environment changes.
* Imports happen inside the factories: importing this module costs nothing, and a function pays at
  cold start only for what its own routes build (``python -m bench imports`` checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.platform.once import once, reset_all

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.busy.microsoft_push import MicrosoftPush
    from shared.busy.push import GooglePush
    from shared.busy.sync import BusySync
    from shared.connections.attempts import AppleAttemptLimiter
    from shared.meetings.resume import Resumes
    from shared.meetings.worker import MeetingsWorker
    from shared.notify.emails import Mailer
    from shared.platform.auth import JwtVerifier
    from shared.providers.credentials import CredentialAccessor
    from shared.providers.google.calendar import RateLimiter
    from shared.queues.busy import SyncQueue
    from shared.queues.meetings import JobQueue
    from shared.schedule.payments import StripeWebhook
    from shared.store import Provider, ScheduleStore, Store, Table
    from shared.store.availability import AvailabilityStore
    from shared.store.busy import BusyStore
    from shared.store.guards import Guards
    from shared.vault import Vault


def reset() -> None:
    """Forget every built dependency, the settings and the boto3 clients (the environment changed)."""
    reset_all()


# --- data -----------------------------------------------------------------------------------------


@once
def table() -> Table:
    """The single DynamoDB table."""
    from shared.platform.aws import client
    from shared.platform.config import settings
    from shared.store import Table

    return Table(client("dynamodb"), settings().table_name)


@once
def store() -> Store:
    """Mentors and connections over :func:`table`."""
    from shared.store import Store

    return Store(table())


@once
def schedule() -> ScheduleStore:
    """Classes, sessions and bookings over :func:`table`."""
    from shared.store import ScheduleStore

    return ScheduleStore(table())


@once
def busy_store() -> BusyStore:
    """Busy sets over :func:`table`."""
    from shared.store.busy import BusyStore

    return BusyStore(table())


@once
def availability_store() -> AvailabilityStore:
    """Mentors' availability rules over :func:`table`."""
    from shared.store.availability import AvailabilityStore

    return AvailabilityStore(table())


@once
def guards() -> Guards:
    """Attempt counters, breakers and replay markers over :func:`table`."""
    from shared.store.guards import Guards

    return Guards(table())


@once
def vault() -> Vault:
    """The vault over the configured KMS key, with the container's key cache."""
    from typing import cast

    from shared.platform.aws import client
    from shared.platform.config import BaseFunctionSettings, settings
    from shared.vault.branch_store import DynamoBranchStore
    from shared.vault.keys import KeyCache, Period
    from shared.vault.vault import Vault

    cfg: BaseFunctionSettings = settings()
    return Vault(
        kms=client("kms", cfg),
        store=DynamoBranchStore(client("dynamodb", cfg), cfg.table_name),
        kms_key_id=cfg.kms_key_id,
        period=cast(Period, cfg.vault_branch_period),  # validated by its pattern
        cache=KeyCache(max_age_s=cfg.vault_cache_max_age_s, max_uses=cfg.vault_cache_max_uses),
    )


# --- messaging, e-mail, identity ------------------------------------------------------------------


@once
def meetings_queue() -> JobQueue:
    """The meetings queue (``MEETINGS_QUEUE_URL``)."""
    from shared.platform.aws import client
    from shared.platform.config import QueueSettings, settings
    from shared.queues.meetings import JobQueue

    return JobQueue(client("sqs"), settings(QueueSettings).meetings_queue_url)


@once
def sync_queue() -> SyncQueue:
    """The busy-sync queue (``BUSY_SYNC_QUEUE_URL``)."""
    from shared.platform.aws import client
    from shared.platform.config import QueueSettings, settings
    from shared.queues.busy import SyncQueue

    return SyncQueue(client("sqs"), settings(QueueSettings).busy_sync_queue_url)


@once
def mailer() -> Mailer:
    """The SES v2 mailer."""
    from shared.notify.emails import Mailer
    from shared.platform.aws import client

    return Mailer(client("sesv2"))


def reconnect_notifier() -> Callable[[str, Provider], None]:
    """``on_reconnect(mentor_id, provider)``: e-mails the mentor that a connection needs reconnecting."""
    from shared.notify.emails import reconnect_notifier as notifier

    return notifier(store())


def platform_scope() -> str:
    """The scope that makes a JWT the platform's (``JWT_PLATFORM_SCOPE``)."""
    from shared.platform.config import AuthSettings, settings

    return settings(AuthSettings).jwt_platform_scope


@once
def jwt_verifier() -> JwtVerifier:
    """Verifies mentor JWTs on the routes that also accept a booking token."""
    from shared.platform.auth import JwtVerifier
    from shared.platform.config import AuthSettings, settings

    cfg = settings(AuthSettings)
    return JwtVerifier(
        issuer=cfg.jwt_issuer,
        audience=cfg.jwt_audience,
        jwks_url=cfg.jwt_jwks_url,
        ttl_s=cfg.jwt_jwks_ttl_s,
        timeout_s=cfg.jwt_jwks_timeout_s,
        leeway_s=cfg.jwt_leeway_s,
    )


# --- providers ------------------------------------------------------------------------------------


@once
def credentials() -> CredentialAccessor:
    """Fresh access tokens for every capability: one refresh per credential, dead grants flagged."""
    from shared.connections.oauth_flow import oauth_client
    from shared.connections.views import OAUTH_PROVIDERS
    from shared.providers.credentials import CredentialAccessor

    return CredentialAccessor(
        store(), vault(), {p: oauth_client(p) for p in OAUTH_PROVIDERS}, on_reconnect=reconnect_notifier()
    )


@once
def google_limiter() -> RateLimiter:
    """The container's freeBusy rate limiter (``BUSY_GOOGLE_QPS``), shared by every sync it runs."""
    from shared.busy.sync import BusySettings
    from shared.platform.config import settings
    from shared.providers.google.calendar import RateLimiter

    qps = settings(BusySettings).busy_google_qps
    return RateLimiter(rate=qps, burst=max(1.0, qps))


# --- capabilities ---------------------------------------------------------------------------------


@once
def meetings_worker() -> MeetingsWorker:
    """The meetings worker over the table, SES, the credentials and the provider clients."""
    from shared.meetings.worker import MeetingsWorker
    from shared.platform.config import settings
    from shared.providers.meetings import meetings_client
    from shared.store.meeting_index import MeetingIndex
    from shared.store.meetings import MeetingLedger

    return MeetingsWorker(
        index=MeetingIndex(table()),
        schedule=schedule(),
        ledger=MeetingLedger(table(), schedule()),
        store=store(),
        tokens=credentials().access_token,
        clients=meetings_client,
        mailer=mailer(),
        app_url=settings().app_url,
        resumes=resumes(),
    )


@once
def resumes() -> Resumes:
    """Bookings waiting on a reconnect: markers, the re-queue, the mentor's summary."""
    from shared.meetings.resume import Resumes
    from shared.platform.config import settings
    from shared.store.waiting import WaitingStore

    q = meetings_queue
    return Resumes(WaitingStore(table()), schedule(), store(), mailer(), lambda j: q().send_many(j), settings().app_url)


@once
def busy_sync() -> BusySync:
    """The busy-sync worker over the store, the vault, the credentials and the configured endpoints."""
    from datetime import timedelta

    from shared.busy.push_watchdog import MissedPushCheck
    from shared.busy.sync import BusySettings, BusySync
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings
    from shared.providers.google.calendar import GoogleClient
    from shared.providers.microsoft.busy import MicrosoftBusyClient
    from shared.store import Provider
    from shared.store.channels import ChannelStore

    base, providers, tuning = settings(BaseFunctionSettings), settings(ProviderSettings), settings(BusySettings)
    the_vault = vault()

    def google() -> GoogleClient:
        return GoogleClient(
            api_base=providers.google_api_base,
            userinfo_url=providers.google_userinfo_url,
            timeout_s=base.http_timeout_s,
            limiter=google_limiter(),
        )

    return BusySync(
        store=store(),
        busy=busy_store(),
        tokens=credentials().access_token,
        google=google,
        microsoft=lambda: MicrosoftBusyClient(api_base=providers.microsoft_api_base, timeout_s=base.http_timeout_s),
        lifecycle=lambda job: microsoft_push().on_lifecycle(job),
        missed_push=MissedPushCheck(busy_store(), ChannelStore(store().table)),
        open_credential=lambda blob, mentor_id: the_vault.open_credential(
            blob, mentor_id=mentor_id, provider=Provider.APPLE.value
        ),
        apple_url=providers.apple_caldav_url,
        on_reconnect=reconnect_notifier(),
        window=timedelta(days=tuning.busy_window_days),
        min_interval=timedelta(seconds=tuning.busy_min_interval_s),
        http_timeout_s=base.http_timeout_s,
        caldav_horizon=timedelta(days=tuning.busy_caldav_horizon_days),
    )


@once
def google_push() -> GooglePush:
    """Google push channels: watch, renew, stop, and the push webhook.

    The Google client and the credentials are built on first use: the webhook only queues syncs.
    """
    from shared.busy.push import GooglePush
    from shared.meetings.signals import calendar_changed
    from shared.store import Provider

    push = GooglePush(
        store(),
        tokens=lambda mentor_id: credentials().access_token(mentor_id, Provider.GOOGLE),
        queue=sync_queue(),
    )
    push.on_calendar_change = lambda mentor_id, delay_s: calendar_changed(meetings_queue(), mentor_id, delay_s)
    return push


@once
def apple_limiter() -> AppleAttemptLimiter:
    """Apple connect's attempt limits and iCloud circuit breaker (``APPLE_ATTEMPTS_*``, ``APPLE_BREAKER_*``)."""
    from shared.connections.attempts import AppleAttemptLimiter, AppleLimitSettings
    from shared.platform.config import settings

    return AppleAttemptLimiter(guards(), settings(AppleLimitSettings))


@once
def stripe_webhook() -> StripeWebhook:
    """The Stripe webhook over the table, the meetings queue and the signing secret."""
    from shared.platform.aws import client
    from shared.platform.config import StripeSettings, settings
    from shared.schedule.payments import StripeWebhook, persistence_layer

    cfg = settings(StripeSettings)
    return StripeWebhook(
        secret=cfg.stripe_webhook_secret.get_secret_value(),
        schedule=schedule(),
        store=store(),
        queue=meetings_queue(),
        persistence=persistence_layer(client("dynamodb"), settings().table_name),
        tolerance_s=cfg.stripe_signature_tolerance_s,
        ttl_s=cfg.stripe_event_ttl_s,
    )


@once
def microsoft_push() -> MicrosoftPush:
    """Microsoft change-notification subscriptions: subscribe, renew (Graph client and tokens on first use)."""
    return _hooks.build_microsoft_push()


# The second half (connect hooks, scheduled tasks, the private-session re-check) lives in
# shared/wiring/hooks.py and is imported last: it looks the factories above up at call time.
from shared.wiring import hooks as _hooks  # noqa: E402

expire_seat_holds = _hooks.expire_seat_holds
google_hooks = _hooks.google_hooks
hold_settings = _hooks.hold_settings
maintenance_tasks = _hooks.maintenance_tasks
mentor_time = _hooks.mentor_time
microsoft_webhook = _hooks.microsoft_webhook
on_microsoft_calendar = _hooks.on_microsoft_calendar
on_connected = _hooks.on_connected
on_google_connected = _hooks.on_google_connected
private_sessions = _hooks.private_sessions
push_first = _hooks.push_first
zoom_meeting_changed = _hooks.zoom_meeting_changed
