"""The teaching-schedule feed (PRODUCT.md §2.8): its secret URL and the ``.ics`` it serves.

The token (its items, sealing and rotation) is :mod:`shared.feed.tokens`.

**The feed.** Every session of the mentor's classes (online and in person) whose end is at most
:data:`WINDOW_PAST` ago, cancelled ones included (``STATUS:CANCELLED``, the bumped ``SEQUENCE``),
one VEVENT each with the stable UID ``<sessionId>@mentor-connections`` (:mod:`shared.notify.ics`), times
in the class's zone with ``TZID`` and a ``VTIMEZONE`` per zone, ``LOCATION`` = the address of an
in-person class or the session's join URL once its meeting exists (the session's one meeting,
never a booking's). ``DTSTAMP`` is the session's last change, so the same schedule always renders
the same bytes and the ``ETag`` (a strong validator: SHA-256 of the body) only changes when the
feed does; ``If-None-Match`` with it answers ``304``.

**Bounds.** The newest :data:`MAX_CLASSES` classes are read (one paged GSI1 query for the list,
then one query per class, :data:`SESSION_READERS` at a time) and at most :data:`MAX_EVENTS`
events are served, the earliest first; a feed cut short logs a warning. A class holds at most 99
sessions, so a typical mentor's feed is a few hundred events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Final

from icalendar import Event, vDuration

from shared.feed.tokens import mentor_for_token, token_from_path
from shared.notify import ics
from shared.platform.api import ApiError
from shared.platform.observability import logger, register_secret
from shared.store import ClassFormat, ClassItem, MeetingStatus, ScheduleStore, Session, SessionStatus
from shared.store.models import utcnow

#: Sessions that ended longer ago than this are left out of the feed.
WINDOW_PAST: Final = timedelta(days=90)
#: At most this many classes (the newest) are read for one feed ...
MAX_CLASSES: Final = 500
#: ... and at most this many events served (the earliest first), well inside Lambda's 6 MB response.
MAX_EVENTS: Final = 3000
#: Session queries in flight at once for one feed.
SESSION_READERS: Final = 8

CONTENT_TYPE: Final = "text/calendar; charset=utf-8"
#: Private (a shared cache must not keep serving a rotated URL), fresh for 5 minutes, then revalidated.
CACHE_CONTROL: Final = "private, max-age=300"
#: How often calendar apps should refetch (REFRESH-INTERVAL, RFC 7986, and Outlook's X-PUBLISHED-TTL).
REFRESH: Final = timedelta(hours=1)
CALENDAR_NAME: Final = "Teaching schedule"


# -- the calendar -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedDocument:
    """A rendered feed: the body, its strong ETag, how many events it holds, whether it was cut short."""

    body: bytes
    etag: str
    events: int
    truncated: bool = False


def etag_of(body: bytes) -> str:
    """A strong ETag for ``body`` (quoted, 128 bits of its SHA-256)."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (RFC 9110 §13.1.2: weak comparison, lists, ``*``)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = (tag.strip() for tag in if_none_match.split(","))
    return any((tag[2:] if tag.startswith("W/") else tag) == etag for tag in candidates)


def session_event(klass: ClassItem, session: Session) -> Event:
    """The VEVENT of one session in the feed."""
    join_url = None
    meeting = session.meeting
    if klass.format is ClassFormat.ONLINE and meeting is not None and meeting.status is MeetingStatus.CREATED:
        join_url = meeting.url
    stamp = max(session.updated_at, meeting.updated_at) if meeting is not None else session.updated_at
    return ics.session_event(
        session_id=session.session_id,
        title=klass.title,
        start=session.start,
        end=session.end,
        timezone=klass.timezone,
        sequence=session.sequence,
        cancelled=session.status is SessionStatus.CANCELLED,
        url=join_url,
        location=klass.location if klass.format is ClassFormat.IN_PERSON else None,
        description=_description(klass, join_url, cancelled=session.status is SessionStatus.CANCELLED),
        stamp=stamp,
    )


def _description(klass: ClassItem, join_url: str | None, *, cancelled: bool) -> str:
    if cancelled:
        return "This session was cancelled."
    if klass.format is ClassFormat.IN_PERSON:
        return f"In-person class at {klass.location}." if klass.location else "In-person class."
    where = {"google_meet": "Google Meet", "zoom": "Zoom"}.get(str(klass.meeting_provider), "video")
    if join_url:
        return f"Online class on {where}. Join: {join_url}"
    return f"Online class on {where}. The join link appears here once the first booking is confirmed."


def render(pairs: Iterable[tuple[ClassItem, Session]], *, now: datetime | None = None) -> bytes:
    """The VCALENDAR (METHOD:PUBLISH, a VTIMEZONE per zone) of ``pairs``, in the given order.

    The VTIMEZONEs cover the sessions' years within :data:`shared.notify.ics.SPAN_YEARS` of ``now``,
    so sessions stored in year 9996 cannot make the feed megabytes long (or one in 9998 a 500).
    """
    events = [session_event(k, s) for k, s in pairs]
    cal = ics.calendar(events, method="PUBLISH", name=CALENDAR_NAME, now=now)
    cal.add("refresh-interval", vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))
    return bytes(cal.to_ical())


def _lapsed_private(klass: ClassItem, session: Session) -> bool:
    """A private session whose hold ran out unpaid (no seat taken): it never happened, so it is not
    listed (a calendar drops it on its next refresh). A held or booked one is listed like any session."""
    return klass.private and session.status is SessionStatus.SCHEDULED and session.seats_taken == 0


def build_feed(schedule: ScheduleStore, mentor_id: str, *, now: datetime | None = None) -> FeedDocument:
    """Read the mentor's classes and sessions (bounded, see the module doc) and render the feed."""
    since = (now or utcnow()) - WINDOW_PAST
    classes = sorted(schedule.list_classes(mentor_id), key=lambda c: (c.created_at, c.class_id), reverse=True)
    cut = len(classes) > MAX_CLASSES
    classes = [c for c in classes[:MAX_CLASSES] if c.mentor_id == mentor_id]
    with ThreadPoolExecutor(max_workers=max(1, min(SESSION_READERS, len(classes)))) as pool:
        sessions = list(pool.map(lambda c: schedule.list_sessions(c.class_id), classes))
    pairs = [
        (klass, session)
        for klass, found in zip(classes, sessions, strict=True)
        for session in found
        if session.mentor_id == mentor_id and session.end >= since and not _lapsed_private(klass, session)
    ]
    pairs.sort(key=lambda pair: (pair[1].start, pair[1].session_id))
    if len(pairs) > MAX_EVENTS:
        cut, pairs = True, pairs[:MAX_EVENTS]
    if cut:
        logger.warning("feed cut short", extra={"classes": len(classes), "events": len(pairs)})
    body = render(pairs, now=now)
    return FeedDocument(body=body, etag=etag_of(body), events=len(pairs), truncated=cut)


@dataclass(frozen=True)
class FeedResponse:
    """What ``GET /feeds/{token}.ics`` answers: 200 with the calendar or 304 without a body."""

    status: int
    headers: dict[str, str]
    body: str


def serve(schedule: ScheduleStore, path_token: str, *, if_none_match: str | None) -> FeedResponse:
    """``GET /feeds/<token>.ics``. A malformed, unknown or rotated token → 404 ``not_found``, all alike."""
    token = token_from_path(path_token)
    mentor = mentor_for_token(schedule.table, token) if token is not None else None
    if token is None or mentor is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "No such feed.")
    register_secret(token)  # a live token is a secret: masked in any log line from here on
    document = build_feed(schedule, mentor)
    headers = {"ETag": document.etag, "Cache-Control": CACHE_CONTROL}
    if not_modified(if_none_match, document.etag):
        logger.info("feed not modified", extra={"events": document.events})
        return FeedResponse(HTTPStatus.NOT_MODIFIED, headers, "")
    logger.info("feed served", extra={"events": document.events, "bytes": len(document.body)})
    headers["X-Content-Type-Options"] = "nosniff"
    return FeedResponse(HTTPStatus.OK, headers, document.body.decode("utf-8"))
