"""Renewal of Google push channels (PRODUCT.md §2.7; the scheduled ``calendar_poll`` maintenance task).

Channels expiring within ``GOOGLE_CHANNEL_RENEW_BEFORE_S`` (default 24 h; channels live
``GOOGLE_CHANNEL_TTL_S``, default 7 days) get a new channel first and are stopped after, so no
change falls in a gap; channels whose connection is gone or needs reconnecting are dropped. Watches
that failed (provider down) are retried with backoff, at most ``GOOGLE_WATCH_RETRY_MAX`` times.
A channel flagged as having missed a change (``suspect_ms``, :mod:`.push_watchdog`) is found by the
very next run (its index key says "due now") and replaced by a new channel whatever its expiration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.busy.push_settings import RENEW_LEASE_S, RETRY_BASE_S, RETRY_CAP_S, PushSettings, WatchError
from shared.platform.observability import logger
from shared.store.channels import ChannelStore, PushChannel, WatchRetry


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


class ChannelRenewal:
    """The renewal half of :class:`shared.busy.push.GooglePush` (which provides these attributes)."""

    channels: ChannelStore
    config: PushSettings
    clock: Callable[[], float]

    if TYPE_CHECKING:

        def ensure(
            self, mentor_id: str, *, replace: bool, now_s: float | None = None, horizon_s: float | None = None
        ) -> PushChannel | None: ...

        def schedule_retry(self, mentor_id: str, error: str, *, now_s: float | None = None) -> WatchRetry | None: ...

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
            if retry.provider != "google":  # Microsoft's are shared.busy.microsoft_push's
                continue
            if len(seen) >= max_mentors:
                report.skipped += 1
                continue
            seen.add(retry.mentor_id)
            report.retried += 1
            self._renew_one(retry.mentor_id, None, now_s, horizon_s, report)
        for channel in self.channels.expiring(int(now_ms + horizon_s * 1000)):
            if channel.provider != "google":
                continue
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
        replace = channel is not None and channel.suspect_ms > 0  # presumed dead: never kept
        try:
            kept = self.ensure(mentor_id, replace=replace, now_s=now_s, horizon_s=horizon_s)
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


def renew_expiring_channels(
    service: ChannelRenewal, now: datetime | None = None, horizon: timedelta | None = None
) -> RenewalReport:
    """The scheduled renewal (``calendar_poll``'s maintenance task; defaults from settings)."""
    now_s = now.timestamp() if now is not None else service.clock()
    horizon_s = horizon.total_seconds() if horizon is not None else float(service.config.google_channel_renew_before_s)
    return service.renew(now_s=now_s, horizon_s=horizon_s)
