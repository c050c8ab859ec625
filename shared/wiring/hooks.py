"""The composition root's second half: what one capability asks of another, and the scheduled tasks.

Connect hooks (a reconnect re-queues waiting bookings and syncs the calendar, Google opens its push
channel), drift repair's Zoom hook, the poll's push-first rule and maintenance tasks, and the
availability re-check private sessions take. Re-exported by :mod:`shared.wiring`; every dependency is
looked up there at call time (``wiring.table()`` …), so a test that replaces a factory on
:mod:`shared.wiring` replaces it here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import wiring
from shared.platform.once import once

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from shared.busy.microsoft_push import MicrosoftPush
    from shared.busy.microsoft_webhook import MicrosoftWebhook
    from shared.busy.poll import MaintenanceTask
    from shared.busy.push_first import PushFirst
    from shared.connections.calendars import GoogleHooks
    from shared.schedule.holds import HoldSettings, SweepResult
    from shared.schedule.private import MentorTime, PrivateSessions
    from shared.store import Provider


def zoom_meeting_changed(event: str, payload: Mapping[str, object]) -> bool:
    """Drift repair's hook of the Zoom webhook: queue a check if the meeting is ours."""
    from shared.meetings.signals import zoom_meeting_changed as check

    return check(wiring.table(), wiring.meetings_queue(), event, payload)


def google_hooks() -> GoogleHooks:
    """What connecting, choosing a calendar and disconnecting Google ask of push channels."""
    from shared.busy.push import stop_calendar_channels, watch_calendar
    from shared.connections.calendars import GoogleHooks

    return GoogleHooks(
        watch=lambda mentor_id, replace: watch_calendar(wiring.google_push, mentor_id, replace=replace),
        stop=lambda mentor_id: stop_calendar_channels(wiring.google_push, mentor_id),
    )


def on_google_connected(mentor_id: str) -> None:
    """After a Google connect: open the mentor's push channel (best effort, never raises)."""
    from shared.busy.push import watch_calendar

    watch_calendar(wiring.google_push, mentor_id, replace=True)


def on_connected(mentor_id: str, provider: Provider, reconnected: bool) -> None:
    """After a connect is saved: a reconnected calendar syncs now, waiting bookings re-queue, Microsoft
    subscribes to change notifications. Never raises."""
    from shared.meetings.resume import after_connect
    from shared.store import Provider

    after_connect(mentor_id, provider, reconnected, sync_queue=wiring.sync_queue, resumes=wiring.resumes)
    if provider is Provider.MICROSOFT:
        _microsoft_subscribe(mentor_id, replace=True)


def on_microsoft_calendar(mentor_id: str) -> None:
    """After ``PUT /connections/microsoft/calendar``: a live subscription on the chosen calendar. Never raises."""
    _microsoft_subscribe(mentor_id, replace=False)


def _microsoft_subscribe(mentor_id: str, *, replace: bool) -> None:
    from shared.platform.observability import logger

    try:
        wiring.microsoft_push().subscribe(mentor_id, replace=replace)
    except Exception:  # not configured: the connection stays on the poll
        logger.exception("microsoft push is not configured")


def build_microsoft_push() -> MicrosoftPush:
    """What :func:`shared.wiring.microsoft_push` builds (the Graph client and the tokens on first use)."""
    from shared.busy.microsoft_push import MicrosoftPush, MicrosoftPushSettings
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings
    from shared.providers.microsoft.busy import MicrosoftBusyClient
    from shared.store import Provider

    def client() -> MicrosoftBusyClient:
        timeout_s = settings(BaseFunctionSettings).http_timeout_s
        return MicrosoftBusyClient(api_base=settings(ProviderSettings).microsoft_api_base, timeout_s=timeout_s)

    return MicrosoftPush(
        wiring.store(),
        tokens=lambda mentor_id: wiring.credentials().access_token(mentor_id, Provider.MICROSOFT),
        queue=wiring.sync_queue,
        client=client,
        config=settings(MicrosoftPushSettings),
    )


@once
def microsoft_webhook() -> MicrosoftWebhook:
    """``POST /webhooks/microsoft``: verify notifications, queue syncs (lifecycle events: for the worker)."""
    import time

    from shared.busy.microsoft_push import MicrosoftPushSettings
    from shared.busy.microsoft_webhook import MicrosoftWebhook
    from shared.platform.config import settings

    config = settings(MicrosoftPushSettings)
    return MicrosoftWebhook(
        wiring.store(),
        queue=wiring.sync_queue(),
        coalesce_s=config.microsoft_push_coalesce_s,
        clock=time.time,
        stray_delay_s=config.microsoft_stray_delete_delay_s,
    )


@once
def push_first() -> PushFirst:
    """The poll's push-first rule (``GOOGLE_SAFETY_RESYNC_H``, ``MICROSOFT_SAFETY_RESYNC_H``; off when push is off)."""
    from shared.busy.microsoft_push import MicrosoftPushSettings
    from shared.busy.push_first import PushFirst
    from shared.busy.push_settings import PushSettings
    from shared.platform.config import settings

    config, ms = settings(PushSettings), settings(MicrosoftPushSettings)
    resync_s = config.google_safety_resync_h * 3600 if config.google_push_enabled else 0.0
    ms_resync_s = ms.microsoft_safety_resync_h * 3600 if ms.microsoft_push_enabled else 0.0
    return PushFirst(
        wiring.table(),
        safety_resync_s=resync_s,
        live_margin_s=float(config.google_push_live_margin_s),
        microsoft_resync_s=ms_resync_s,
    )


def maintenance_tasks() -> tuple[MaintenanceTask, ...]:
    """What every scheduled poll runs after its fan-out, in order."""
    from shared.busy.poll import MaintenanceTask
    from shared.busy.push import renew_expiring_channels
    from shared.meetings.preflight import run_preflight

    return (
        MaintenanceTask("renew_google_channels", lambda: renew_expiring_channels(wiring.google_push())),
        MaintenanceTask("expire_seat_holds", wiring.expire_seat_holds),
        MaintenanceTask("preflight_meetings", lambda: run_preflight(wiring.table(), wiring.meetings_queue())),
        MaintenanceTask("renew_microsoft_subscriptions", lambda: wiring.microsoft_push().renew()),
    )


def hold_settings() -> HoldSettings:
    """How long a checkout holds its seat (``BOOKING_HOLD_MINUTES``) and the sweep's look-back."""
    from shared.platform.config import settings
    from shared.schedule.holds import HoldSettings

    return settings(HoldSettings)


def expire_seat_holds() -> SweepResult:
    """The seat-hold sweep (a maintenance task of the scheduled poll): unpaid holds that ended → EXPIRED."""
    from shared.schedule.holds import sweep

    return sweep(wiring.schedule(), lookback_hours=wiring.hold_settings().booking_hold_sweep_lookback_hours)


def mentor_time(mentor_id: str, now: datetime) -> MentorTime | None:
    """A mentor's availability rules and calendar busy blocks (the private-session write's re-check)."""
    from shared.availability.bookable import mentor_time as read

    return read(
        store=wiring.store(),
        busy=wiring.busy_store(),
        rules_store=wiring.availability_store(),
        mentor_id=mentor_id,
        now=now,
    )


@once
def private_sessions() -> PrivateSessions:
    """``POST /private-sessions``: the schedule, the availability re-check and the hold length."""
    from shared.schedule.private import PrivateSessions

    return PrivateSessions(
        store=wiring.store(),
        schedule=wiring.schedule(),
        mentor_time=wiring.mentor_time,
        hold=wiring.hold_settings().hold,
    )
