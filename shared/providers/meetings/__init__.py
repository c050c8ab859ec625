"""Create, find, move and delete the one video meeting of a class session (PRODUCT.md §2.6).

This package is the provider-neutral part: :class:`MeetingSpec`, :class:`MintedMeeting`, the
:class:`MeetingsClient` protocol and the :class:`MeetingError` family (defined in :mod:`.base`,
with the one mapping of an HTTP error answer to it), and the :func:`meetings_client` factory.
Three adapters implement :class:`MeetingsClient`:

* :class:`shared.providers.google.meet.GoogleMeetings` — an event on the mentor's selected
  calendar with a Google Meet link (``conferenceData.createRequest``, ``conferenceDataVersion=1``,
  ``sendUpdates=none``). Idempotent through a client-supplied event id derived from the session
  key: a second insert answers 409 and the existing event is read back (and restored if it was
  deleted).
* :class:`shared.providers.zoom.meetings.ZoomMeetings` — a scheduled meeting (type 2) of the
  mentor's Zoom user. Zoom has no idempotency key, so the agenda's last line carries a marker
  (``ref:<key>``); :meth:`find` lists the user's scheduled meetings and matches it, and
  :meth:`create` looks before it creates — and again before it re-posts after an answer that got
  lost (5xx, timeout), since the first POST may have made the meeting.
* :class:`shared.providers.microsoft.teams.TeamsMeetings` — an event on the mentor's selected Outlook
  calendar with a Teams link (``isOnlineMeeting``, ``teamsForBusiness``). Idempotent through a
  ``transactionId`` derived from the session key: Graph answers a repeated create with the same event.

Every call has a timeout and retries 429/5xx/transport errors in-process with backoff, full
jitter and ``Retry-After`` (Zoom's create POST only as described above) — but only short waits:
a ``Retry-After`` longer than a few seconds (Zoom's daily create cap) is raised at once as a
retryable :class:`MeetingError` with ``retry_after_s`` so the worker re-queues with a delay
instead of sleeping. Messages never hold the access token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.platform.once import once_per
from shared.providers.meetings.base import (
    MAX_INLINE_WAIT_S,
    MeetingAuthError,
    MeetingError,
    MeetingsClient,
    MeetingSpec,
    MintedMeeting,
)
from shared.store.models import MeetingProvider

if TYPE_CHECKING:
    from shared.platform.config import ProviderSettings

__all__ = [
    "MAX_INLINE_WAIT_S",
    "MeetingAuthError",
    "MeetingError",
    "MeetingSpec",
    "MeetingsClient",
    "MintedMeeting",
    "meetings_client",
    "reset_meetings_clients",
]


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------


def meetings_client(provider: MeetingProvider) -> MeetingsClient:
    """The adapter for ``provider`` over the configured API base, built once per container."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    which = MeetingProvider(provider)
    cfg = settings(ProviderSettings)
    timeout_s = settings(BaseFunctionSettings).http_timeout_s
    return _adapter((which, api_base(which, cfg), timeout_s))


def api_base(which: MeetingProvider, cfg: ProviderSettings) -> str:
    """The configured API base of ``which``'s provider."""
    if which is MeetingProvider.GOOGLE_MEET:
        return cfg.google_api_base
    return cfg.microsoft_api_base if which is MeetingProvider.TEAMS else cfg.zoom_api_base


@once_per
def _adapter(key: tuple[MeetingProvider, str, float]) -> MeetingsClient:
    """One adapter per (provider, API base, timeout): settings changed by a test build a new one."""
    which, base, timeout_s = key
    if which is MeetingProvider.GOOGLE_MEET:
        from shared.providers.google.meet import GoogleMeetings

        return GoogleMeetings(api_base=base, timeout_s=timeout_s)
    if which is MeetingProvider.TEAMS:
        from shared.providers.microsoft.teams import TeamsMeetings

        return TeamsMeetings(api_base=base, timeout_s=timeout_s)
    from shared.providers.zoom.meetings import ZoomMeetings

    return ZoomMeetings(api_base=base, timeout_s=timeout_s)


def reset_meetings_clients() -> None:
    """Forget the cached adapters (tests that change settings)."""
    _adapter.reset()
