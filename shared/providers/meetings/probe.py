"""What a provider says about one of our meetings *now*: the drift check's eyes (PRODUCT.md §2.6).

:class:`Observed` is a meeting as the provider has it (gone, or its start / end); a
:class:`MeetingProbe` reads one meeting with one GET (:meth:`MeetingProbe.observe`), and the Google
probe also lists the events of a calendar changed since a time (:meth:`GoogleProbe.changed`, one
``events.list`` with ``updatedMin`` and ``showDeleted``: what a push notification leads to).
:func:`meeting_probe` picks the adapter. Calls have the adapters' timeouts and in-process retries;
errors are :class:`~shared.providers.meetings.base.MeetingError` and never hold the token.
"""

from __future__ import annotations

from shared.platform.once import once_per
from shared.providers.meetings.observed import MeetingProbe, Observed
from shared.store.models import MeetingProvider

__all__ = ["MeetingProbe", "Observed", "meeting_probe"]


def meeting_probe(provider: MeetingProvider) -> MeetingProbe | None:
    """The probe for ``provider`` over the configured API base (built once per container); ``None``
    for a provider drift repair does not read yet (its meetings are not checked)."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    which = MeetingProvider(provider)
    if which not in (MeetingProvider.GOOGLE_MEET, MeetingProvider.ZOOM, MeetingProvider.TEAMS):
        return None
    cfg = settings(ProviderSettings)
    from shared.providers.meetings import api_base

    return _probe((which, api_base(which, cfg), settings(BaseFunctionSettings).http_timeout_s))


@once_per
def _probe(key: tuple[MeetingProvider, str, float]) -> MeetingProbe:
    which, base, timeout_s = key
    if which is MeetingProvider.GOOGLE_MEET:
        from shared.providers.google.probe import GoogleProbe

        return GoogleProbe(api_base=base, timeout_s=timeout_s)
    if which is MeetingProvider.TEAMS:
        from shared.providers.microsoft.teams import TeamsProbe

        return TeamsProbe(api_base=base, timeout_s=timeout_s)
    from shared.providers.zoom.probe import ZoomProbe

    return ZoomProbe(api_base=base, timeout_s=timeout_s)
