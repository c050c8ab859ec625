"""A meeting as its provider has it now (:class:`Observed`) and the :class:`MeetingProbe` protocol.

Imports no adapter (like :mod:`.base`), so the Google and Zoom probes can import it without
knowing each other; the factory that picks one is :func:`shared.providers.meetings.probe.meeting_probe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import SecretStr


@dataclass(frozen=True)
class Observed:
    """One meeting at its provider: ``gone`` (deleted, cancelled) or its current times."""

    meeting_id: str
    gone: bool
    start: datetime | None = None  # aware UTC
    end: datetime | None = None  # aware UTC (Zoom: start + duration)


class MeetingProbe(Protocol):
    def observe(self, token: SecretStr, meeting_id: str, calendar_id: str | None) -> Observed:
        """The meeting as the provider has it now (one GET)."""
        ...
