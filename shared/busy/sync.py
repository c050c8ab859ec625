"""Busy-time sync (PRODUCT.md §2.7): read a calendar connection's busy times and store them.

**Sync** (:class:`BusySync`, the ``busy_sync`` worker). A :class:`~shared.queues.busy.SyncJob` only names a
connection; the worker reads the connection and replaces its busy set (:class:`shared.store.busy.BusyStore`) with
what the provider says now, for the window ``now → now + BUSY_WINDOW_DAYS`` (60 by default):

* **Google** — ``freeBusy.query`` on the selected calendar (:meth:`GoogleClient.free_busy`, split
  into ≤ 60-day requests, rate limits honoured). The access token comes from the credential
  accessor (refreshed ahead of expiry; ``invalid_grant`` marks ``needs_reconnect`` and e-mails).
* **Apple** — the event calendars' events over the window, read over CalDAV
  (:class:`shared.providers.apple.caldav.CalDavReader`; discovery cached on the busy head per Apple ID)
  only where a calendar's sync-token / ctag moved, into per-calendar snapshots
  (:mod:`shared.busy.apple`, :mod:`shared.store.caldav_cache`), expanded client-side
  (:mod:`shared.busy.expand`) at every sync. Skipped: ``TRANSP:TRANSPARENT``,
  ``STATUS:CANCELLED`` and instances the mentor declined (an ``ATTENDEE`` whose address is the
  Apple ID or one of the principal's ``calendar-user-address-set`` with ``PARTSTAT=DECLINED``).
  All-day events block their whole days, and floating times are read, in the mentor's time zone.
* **Microsoft** — ``getSchedule`` in periods under 62 days (:mod:`shared.busy.microsoft`: which statuses block).

Outcomes:

* not connected / ``needs_reconnect`` — recorded on the busy head and acknowledged (the poller
  stops queueing such connections: they leave the sync index). CalDAV 401 marks the Apple
  connection ``needs_reconnect`` (first caller only) and e-mails the mentor once.
* transient trouble (rate limits, 5xx, timeouts, token endpoint down) — :class:`TransientSyncError`: the message comes
  back after a short delay (``Retry-After`` when given), at most ``BUSY_MAX_ATTEMPTS`` receives; then it is acknowledged
  with the error recorded, and the next scheduled poll tries again. The previous blocks stay in every failure case.
* a permanent refusal (Google: the selected calendar is gone, 4xx) — recorded, acknowledged.
* a Google sync that fails keeps the connection on the 5-minute poll until one succeeds, even with a
  live push channel (:mod:`shared.busy.push_first`).
* a scheduled sync (or safety resync) of a connection synced less than ``BUSY_MIN_INTERVAL_S`` ago is skipped
  (a backlog cannot make the same connection sync twice in a row); push and connect syncs always run; a
  Microsoft stray's ``delete`` job runs no sync (a recorded subscription or the poll covers the calendar).
* a safety resync (``RESYNC``) that finds a change no push brought flags the push channel before the
  blocks are stored (``missed_push``, :mod:`shared.busy.push_watchdog`; never fails the sync).

**Read** (``GET /mentors/me/busy``): :mod:`shared.busy.view`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from http import HTTPStatus
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr

from shared.busy.push_first import push_first_outcome
from shared.platform.env import EnvSettings
from shared.platform.observability import logger
from shared.platform.queue import Received, run_record
from shared.queues.busy import SyncJob, SyncReason
from shared.store import Connection, ConnectionStatus, Mentor, Provider, Store
from shared.store.busy import Block, BusyStore, CalDavCache, merge
from shared.store.repository import SYNCED_PROVIDERS

#: CalDAV asks a little more than the window on each side: floating and all-day times are placed in
#: the mentor's zone only after the server filtered on UTC.
CALDAV_PAD = timedelta(days=1)


class BusySettings(EnvSettings):
    """Busy-sync tuning (environment variables of the same names, upper-cased)."""

    busy_window_days: int = Field(default=60, ge=1, le=366, description="How far ahead busy times are read.")
    busy_min_interval_s: float = Field(
        default=60.0, ge=0, description="A scheduled sync this soon after one is skipped."
    )
    busy_max_attempts: int = Field(
        default=3, ge=1, description="Receives of one message before giving up until the next poll."
    )
    busy_retry_delay_s: float = Field(
        default=30.0, ge=0, description="Back-off of a transient failure (Retry-After wins)."
    )
    busy_google_qps: float = Field(
        default=5.0, ge=0, description="freeBusy requests per second per container (0: no limit)."
    )
    busy_caldav_horizon_days: int = Field(
        default=7, ge=1, le=60, description="CalDAV reads this far past the window (a calendar is read whole as often)."
    )


# --- errors ----------------------------------------------------------------------------------------


class TransientSyncError(Exception):
    """Try again later (after ``delay_s`` seconds if known); ``code`` is short, for the head and logs."""

    def __init__(self, code: str, message: str, delay_s: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.delay_s = delay_s


class PermanentSyncError(Exception):
    """The provider refused for good (until the mentor changes something); recorded, not retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class _Unavailable(Exception):
    """The connection cannot sync until the mentor reconnects (status recorded, message acked)."""

    def __init__(self, status: ConnectionStatus) -> None:
        super().__init__(status.value)
        self.status = status


# --- iCalendar → busy blocks -------------------------------------------------------------------------


def _addresses(component: Any, name: str) -> list[tuple[str, str]]:
    prop = component.get(name)
    out = []
    for value in prop if isinstance(prop, list) else ([prop] if prop is not None else []):
        address = str(value).strip()
        if address.lower().startswith("mailto:"):
            address = address[7:]
        params = getattr(value, "params", {}) or {}
        out.append((address.lower(), str(params.get("PARTSTAT", "")).upper()))
    return out


def blocks_busy(component: Any, me: frozenset[str]) -> bool:
    """Whether an event instance (its VEVENT) makes the mentor busy."""
    if str(component.get("TRANSP", "")).upper() == "TRANSPARENT":
        return False
    if str(component.get("STATUS", "")).upper() == "CANCELLED":
        return False
    return not any(address in me and partstat == "DECLINED" for address, partstat in _addresses(component, "ATTENDEE"))


def ical_busy_blocks(
    texts: Iterable[str], start: datetime, end: datetime, *, tz: tzinfo, me: Iterable[str]
) -> list[Block]:
    """The busy blocks within ``[start, end)`` of the calendar objects ``texts`` (merged)."""
    import icalendar

    from shared.busy.expand import expand

    components = []
    for text in texts:
        try:
            calendar = icalendar.Calendar.from_ical(text)
        except (ValueError, KeyError, IndexError) as exc:  # one broken object must not hide the others
            logger.warning("unreadable calendar object skipped", extra={"error": type(exc).__name__})
            continue
        components.extend(calendar.walk("VEVENT"))
    mine = frozenset(a.lower() for a in me if a)
    blocks = []
    for occurrence in expand(components, start, end, tz=tz):
        if occurrence.end <= occurrence.start or not blocks_busy(occurrence.component, mine):
            continue
        blocks.append(Block(max(occurrence.start, start), min(occurrence.end, end)))
    return merge(blocks)


# --- the sync ---------------------------------------------------------------------------------------


class TokenSource(Protocol):
    """The credential accessor's ``access_token`` (``reject=``: force one refresh of a refused token)."""

    def __call__(self, mentor_id: str, provider: Provider, /, *, reject: SecretStr | None = None) -> SecretStr: ...


ReconnectCallback = Callable[[str, Provider], None]


@dataclass
class BusySync:
    """Syncs one connection per :meth:`handle` call; every dependency is passed in (tests plug fakes)."""

    store: Store
    busy: BusyStore
    tokens: TokenSource
    google: Callable[[], Any]  # -> shared.providers.google.calendar.GoogleClient
    open_credential: Callable[[bytes, str], Any]  # (blob, mentor_id) -> AppleCredential
    apple_url: str
    on_reconnect: ReconnectCallback
    microsoft: Callable[[], Any] | None = None  # -> shared.providers.microsoft.busy.MicrosoftBusyClient
    lifecycle: Callable[[SyncJob], object] | None = None  # Microsoft lifecycle events (never raises)
    missed_push: Callable[[SyncJob, list[Block], tuple[datetime, datetime], datetime], object] | None = None
    window: timedelta = timedelta(days=60)
    min_interval: timedelta = timedelta(seconds=60)
    http_timeout_s: float = 10.0
    caldav_horizon: timedelta = timedelta(days=7)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def handle(self, job: SyncJob) -> str:
        """Sync ``job``'s connection; a short outcome label. Raises :class:`TransientSyncError`."""
        mentor_id, provider = job.mentor_id, job.provider
        if provider not in SYNCED_PROVIDERS:
            return "skipped:not_a_calendar"
        if job.subscription is not None and self.lifecycle is not None:
            self.lifecycle(job)  # renew / recreate the Microsoft subscription, then sync (the gap)
        if job.subscription == "delete":  # a stray subscription: its calendar's changes reach a recorded one
            return "subscription:delete"
        context = self.busy.context(mentor_id, provider, profile=provider is Provider.APPLE)
        conn, head = context.connection, context.head
        if conn is None:
            return "skipped:not_connected"
        if conn.status is not ConnectionStatus.CONNECTED or conn.credential is None:
            self.busy.record_attempt(mentor_id, provider, error=ConnectionStatus.NEEDS_RECONNECT.value)
            return f"skipped:{ConnectionStatus.NEEDS_RECONNECT.value}"
        now = self.clock()
        if (
            job.reason in (SyncReason.SCHEDULE, SyncReason.RESYNC)
            and head is not None
            and head.synced_at is not None
            and head.synced_at >= conn.connected_at
            and now - head.synced_at < self.min_interval
        ):
            return "skipped:fresh"
        window = (now.replace(microsecond=0), now.replace(microsecond=0) + self.window)
        caldav: CalDavCache | None = None
        try:
            if provider is Provider.GOOGLE:
                blocks = self._google(conn, window)
            elif provider is Provider.MICROSOFT:  # shared.busy.microsoft: getSchedule
                from shared.busy.microsoft import read_microsoft

                blocks = read_microsoft(self, conn, window)
            else:
                blocks, caldav = self._apple(conn, head, window, context.mentor)
        except _Unavailable as exc:
            self.busy.record_attempt(mentor_id, provider, error=exc.status.value)
            return f"skipped:{exc.status.value}"
        except PermanentSyncError as exc:
            self.busy.record_attempt(mentor_id, provider, error=exc.code)
            logger.warning("busy sync refused", extra={"provider": provider.value, "code": exc.code})
            push_first_outcome(self.store.table, conn, failed=True, was_failing=False, now=now)
            return f"failed:{exc.code}"
        except TransientSyncError as exc:
            self.busy.record_attempt(mentor_id, provider, error=exc.code)
            push_first_outcome(self.store.table, conn, failed=True, was_failing=False, now=now)
            raise
        if job.reason is SyncReason.RESYNC and self.missed_push is not None:  # never raises (push_watchdog)
            self.missed_push(job, blocks, window, now)
        current = self.busy.replace(mentor_id, provider, blocks, window=window, read_at=now, caldav=caldav)
        push_first_outcome(self.store.table, conn, failed=False, was_failing=bool(head and head.error), now=now)
        return f"synced:{len(blocks)}" if current else "superseded"

    # -- Google --------------------------------------------------------------------------------
    def _google(self, conn: Connection, window: tuple[datetime, datetime]) -> list[Block]:
        from shared.providers.fresh_token import with_fresh_token
        from shared.providers.google.calendar import GoogleApiError, GoogleAuthError, GoogleRateLimited

        token = self._token(conn)
        calendar_id = conn.selected_calendar or "primary"
        client = self.google()
        try:
            spans = with_fresh_token(
                token,
                lambda bearer: client.free_busy(bearer, calendar_id, window[0], window[1]),
                lambda rejected: self._token(conn, reject=rejected),
                auth_error=GoogleAuthError,
            )
        except GoogleRateLimited as exc:
            raise TransientSyncError("rate_limited", str(exc), exc.retry_after_s) from None
        except GoogleAuthError:
            # Refused again right after one forced refresh (a dead grant became needs_reconnect in
            # the refresh): retry later, as before.
            raise TransientSyncError("unauthorized", "Google refused the access token.") from None
        except GoogleApiError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                raise PermanentSyncError("calendar_not_found", str(exc)) from None
            if exc.status is None or exc.status >= 500:
                raise TransientSyncError("unavailable", str(exc)) from None
            raise PermanentSyncError("refused", str(exc)) from None
        return [Block(s.start, s.end) for s in spans]

    def _token(self, conn: Connection, *, reject: SecretStr | None = None) -> SecretStr:
        from shared.providers.credentials import ConnectionUnavailable
        from shared.providers.oauth import OAuthError
        from shared.vault import VaultError

        try:
            if reject is not None:
                return self.tokens(conn.mentor_id, Provider.GOOGLE, reject=reject)
            return self.tokens(conn.mentor_id, Provider.GOOGLE)
        except ConnectionUnavailable as exc:
            raise _Unavailable(exc.status) from None
        except (OAuthError, VaultError) as exc:  # ProviderUnavailableError is an OAuthError
            raise TransientSyncError("token_unavailable", type(exc).__name__) from None

    # -- Apple ---------------------------------------------------------------------------------
    def _apple(
        self, conn: Connection, head: Any, window: tuple[datetime, datetime], mentor: Mentor | None
    ) -> tuple[list[Block], CalDavCache]:
        from shared.busy.apple import CalendarReader, list_calendars
        from shared.providers.apple import caldav as apple
        from shared.store.caldav_cache import CalendarCacheStore
        from shared.vault import AppleCredential, VaultError

        assert conn.credential is not None
        try:
            credential = self.open_credential(conn.credential, conn.mentor_id)
        except VaultError as exc:
            raise TransientSyncError("credential_unavailable", type(exc).__name__) from None
        if not isinstance(credential, AppleCredential):
            raise PermanentSyncError("bad_credential", "the Apple connection holds another kind of credential")
        apple_id = credential.apple_id
        cached = head.caldav if head is not None and head.caldav and head.caldav.account == apple_id else None
        tz, now, caches = _zone_of(mentor), window[0], CalendarCacheStore(self.busy.table)
        known = cached.calendars if cached else ()
        try:
            with apple.CalDavReader(
                self.apple_url, apple_id, credential.app_specific_password, timeout_s=self.http_timeout_s
            ) as reader:
                home, calendars = list_calendars(
                    reader, apple.CalDavHome(cached.home_url, cached.addresses) if cached else None
                )
                me = tuple(sorted({apple_id.lower(), *home.addresses}))
                needed = (window[0] - CALDAV_PAD, window[1] + CALDAV_PAD)
                reads = CalendarReader(
                    reader, apple_id, me, needed, self.caldav_horizon, now, tz=getattr(tz, "key", "UTC"),
                    blocks_of=lambda texts, start, end: ical_busy_blocks(texts, start, end, tz=tz, me=me),
                ).read(calendars, caches.read(conn.mentor_id, [c.url for c in calendars], now=now), known)  # fmt: skip
        except apple.AppleAuthError:
            self._apple_needs_reconnect(conn)
            raise _Unavailable(ConnectionStatus.NEEDS_RECONNECT) from None
        except apple.AppleRateLimited as exc:
            raise TransientSyncError("rate_limited", str(exc), exc.retry_after_s) from None
        except apple.AppleError as exc:
            raise TransientSyncError("unavailable", str(exc)) from None
        reads.store(caches, conn.mentor_id, now=now)
        blocks = reads.blocks(*window)
        logger.info("apple calendars read", extra=dict(reads.kinds) | {"requests": reader.requests})
        listed = tuple(c.url for c in calendars)
        return blocks, CalDavCache(account=apple_id, home_url=home.home_url, addresses=home.addresses, calendars=listed)

    def _apple_needs_reconnect(self, conn: Connection) -> None:
        """Flag the connection whose password was refused — unless the mentor reconnected meanwhile."""
        mentor_id = conn.mentor_id
        current = self.store.get_connection(mentor_id, Provider.APPLE)
        if current is None or current.credential != conn.credential:
            raise TransientSyncError("credential_changed", "the Apple connection changed during the sync")
        first = self.store.mark_needs_reconnect(mentor_id, Provider.APPLE, "apple_auth_failed")
        logger.warning("apple connection needs reconnect", extra={"mentor_id": mentor_id, "first": first})
        if first:
            try:
                self.on_reconnect(mentor_id, Provider.APPLE)
            except Exception:  # the status stands; a failed e-mail must not hide it
                logger.exception("reconnect notification failed", extra={"mentor_id": mentor_id})


def _zone_of(mentor: Mentor | None) -> tzinfo:
    """The mentor's time zone (all-day and floating times); UTC without a profile."""
    try:
        return ZoneInfo(mentor.timezone if mentor else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def process_message(body: str, receipt_handle: str | None = None, *, receive_count: int = 1, worker: BusySync) -> str:
    """Handle one busy-sync message body; what the ``busy_sync`` handler calls for each record.

    A :class:`TransientSyncError` shortens the message's visibility to the delay it asks for and
    propagates (the batch reports the record as failed, SQS redelivers it then) — unless this was
    the ``BUSY_MAX_ATTEMPTS``-th receive: then it is acknowledged (``gave_up:<code>``), the error
    stays recorded and the next scheduled poll tries again. A malformed body propagates (DLQ).
    """
    from shared.platform.config import QueueSettings, settings

    job = SyncJob.model_validate_json(body)
    tuning = settings(BusySettings)
    received = Received(
        queue_url=settings(QueueSettings).busy_sync_queue_url,
        receipt_handle=receipt_handle,
        receive_count=receive_count,
        max_receives=tuning.busy_max_attempts,
    )

    def retry_delay(exc: Exception) -> float | None:
        if not isinstance(exc, TransientSyncError):
            return None
        delay = exc.delay_s if exc.delay_s is not None else tuning.busy_retry_delay_s * (0.5 + random.random())  # noqa: S311
        extra = {"provider": job.provider.value, "code": exc.code, "receive": receive_count}
        logger.info("busy sync retried later", extra={**extra, "delay_s": round(delay, 1)})
        return delay

    def on_last(exc: Exception) -> str | None:
        if not isinstance(exc, TransientSyncError):
            return None
        extra = {"provider": job.provider.value, "code": exc.code, "receive": receive_count}
        logger.warning("busy sync gave up until the next poll", extra=extra)
        return f"gave_up:{exc.code}"

    outcome = run_record(received, lambda: worker.handle(job), retry_delay=retry_delay, on_last=on_last)
    logger.info(
        "busy sync done", extra={"provider": job.provider.value, "reason": job.reason.value, "outcome": outcome}
    )
    return outcome
