"""Local wall-clock times in IANA zones, shared by the capabilities that place them (RFC 5545 §3.3.5).

:func:`localize` is the rule every capability uses to turn a naive local time into an instant:

* a time in a spring-forward **gap** moves *forward* by the gap's length (02:30 on the day Berlin
  jumps from 02:00 to 03:00 is 03:30 local, the same instant as 01:30 UTC);
* a time in a fall-back **overlap** is its *first* occurrence (still on summer time).

It is the same rule as ``shared.schedule.recurrence.localize`` (class recurrences); it lives here so
that other capabilities (availability) use it without importing a sibling capability.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONE_KEY: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
_NOT_IANA: Final = frozenset({"localtime", "posixrules", "Factory"})


def iana_zone(key: object) -> ZoneInfo | None:
    """The IANA zone ``key`` (``Europe/Berlin``), or ``None`` for anything that is not one."""
    if not isinstance(key, str) or len(key) > 64 or not _ZONE_KEY.match(key) or key in _NOT_IANA:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def localize(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant of local wall time ``wall`` (naive) in ``tz``, as an aware datetime in ``tz``.

    RFC 5545: a nonexistent time (spring-forward gap) moves forward by the gap's length; an
    ambiguous one (fall-back overlap) is its first occurrence.
    """
    if wall.tzinfo is not None:
        raise ValueError("localize() takes a naive wall-clock time")
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)
