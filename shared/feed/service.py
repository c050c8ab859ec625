"""The teaching-schedule feed (PRODUCT.md §2.8): its secret URL and the ``.ics`` it serves.

**The token.** ``secrets.token_urlsafe(32)``: 256 random bits, 43 URL-safe characters. Two items
hold it::

    item                 PK                      SK     attributes
    feed lookup          FEED#<sha256(token)>    FEED   mentor_id          (GET /feeds/{token}.ics:
                                                                            one GetItem by hash)
    the mentor's feed    MENTOR#<mentorId>       FEED   token_hash, sealed_token (the vault's blob,
                                                        bound to (mentor, "feed")), created_at,
                                                        rotated_at

The lookup item holds only the token's SHA-256, like a booking token. The mentor item must give the
URL back on every ``GET /mentors/me/feed``, so it keeps the token itself — sealed with the vault
(AES-256-GCM, context ``(mentorId, "feed")``), never as plaintext: a table export or backup does
not hand out anyone's schedule. Both items are written in one transaction: the first
``GET /mentors/me/feed`` creates them (conditional puts: racing first calls end with one feed),
``POST /mentors/me/feed/rotate`` deletes the old lookup, puts the new one and swaps the sealed
token conditional on the old hash, so the old URL answers 404 the moment the call returns.

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
import re
import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, Final

from icalendar import Event, vDuration
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.notify import ics
from shared.platform.api import ApiError
from shared.platform.config import settings
from shared.platform.observability import logger, register_secret
from shared.store import ClassFormat, ClassItem, MeetingStatus, ScheduleStore, Session, SessionStatus
from shared.store.models import utcnow
from shared.store.table import Table, TransactionConflict, tx_put, tx_update
from shared.vault import Vault, VaultIntegrityError, VaultUnavailableError

#: Random bytes of a feed token (256 bits; PRODUCT.md asks for at least 128).
TOKEN_BYTES: Final = 32
_TOKEN_SHAPE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32): 43 characters, no padding
#: The vault context's "provider": the sealed token opens only for (mentor, "feed").
SEAL_LABEL: Final = "feed"
FEED_SK: Final = "FEED"
SUFFIX: Final = ".ics"

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


# -- the token ----------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh feed token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 (hex) of a token: the only form of it the lookup item holds."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_from_path(segment: str) -> str | None:
    """The token in ``<token>.ics`` (API Gateway's ``pathParameters.token``), or ``None`` if malformed."""
    if not segment.endswith(SUFFIX):
        return None
    token = segment[: -len(SUFFIX)]
    return token if _TOKEN_SHAPE.fullmatch(token) else None


def lookup_pk(hashed: str) -> str:
    """Partition of the lookup item of a token hash."""
    return f"FEED#{hashed}"


def _mentor_pk(mentor_id: str) -> str:
    return f"MENTOR#{mentor_id}"


class FeedUrls(BaseModel):
    """``GET /mentors/me/feed`` and ``POST /mentors/me/feed/rotate``: where calendar apps subscribe."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    url: str
    webcal_url: str


def feed_urls(token: str, api_url: str) -> FeedUrls:
    """The https (or http, locally) URL of the feed and its ``webcal://`` twin."""
    url = f"{api_url.rstrip('/')}/feeds/{token}{SUFFIX}"
    _, sep, rest = url.partition("://")
    return FeedUrls(url=url, webcal_url=f"webcal://{rest}" if sep else url)


class FeedTokens:
    """The mentor's feed token: create on first use, read back (sealed), rotate."""

    def __init__(self, table: Table, vault: Vault) -> None:
        self.table = table
        self.vault = vault

    def ensure(self, mentor_id: str) -> str:
        """The mentor's current token, created on the first call (idempotent, race-safe)."""
        item = self.table.get(_mentor_pk(mentor_id), FEED_SK)
        if item is not None:
            return self._open(mentor_id, item)
        token = new_token()
        hashed, now = token_hash(token), utcnow().isoformat()
        ops = [
            tx_put(_lookup_item(hashed, mentor_id, now), condition="attribute_not_exists(PK)"),
            tx_put(
                {
                    "PK": _mentor_pk(mentor_id),
                    "SK": FEED_SK,
                    "type": "feed",
                    "token_hash": hashed,
                    "sealed_token": self._seal(mentor_id, token),
                    "created_at": now,
                    "rotated_at": now,
                },
                condition="attribute_not_exists(PK)",
            ),
        ]
        try:
            self.table.transact(ops)
        except TransactionConflict:
            item = self.table.get(_mentor_pk(mentor_id), FEED_SK)
            if item is None:
                raise
            return self._open(mentor_id, item)  # a concurrent first call created it: use that one
        logger.info("feed created")
        return token

    def rotate(self, mentor_id: str, *, attempts: int = 3) -> str:
        """Replace the token: the old URL stops working at once. Returns the new token.

        A concurrent rotation that wins the race has done what was asked (the old URL is dead):
        its token is returned rather than rotating a second time.
        """
        foreign_lookup = False
        for _ in range(attempts + 1):
            item = self.table.get(_mentor_pk(mentor_id), FEED_SK)
            if item is None:
                return self.ensure(mentor_id)
            old_hash = str(item["token_hash"])
            token = new_token()
            hashed, now = token_hash(token), utcnow().isoformat()
            # The old lookup goes, unless it is another mentor's (a damaged item must not kill their URL).
            drop_old = [] if foreign_lookup else [_delete_own_lookup(old_hash, mentor_id)]
            ops = [
                *drop_old,
                tx_put(_lookup_item(hashed, mentor_id, now), condition="attribute_not_exists(PK)"),
                tx_update(
                    _mentor_pk(mentor_id),
                    FEED_SK,
                    expression="SET #h = :h, #s = :s, #r = :now",
                    condition="#h = :old",
                    names={"#h": "token_hash", "#s": "sealed_token", "#r": "rotated_at"},
                    values={":h": hashed, ":s": self._seal(mentor_id, token), ":now": now, ":old": old_hash},
                ),
            ]
            try:
                self.table.transact(ops)
            except TransactionConflict as exc:
                if drop_old and 0 in exc.failed:
                    foreign_lookup = True
                    continue
                current = self.table.get(_mentor_pk(mentor_id), FEED_SK)
                if current is not None and current.get("token_hash") != old_hash:
                    return self._open(mentor_id, current)
                continue
            logger.info("feed rotated")
            return token
        raise ApiError(HTTPStatus.CONFLICT, "feed_conflict", "The feed changed meanwhile; try again.")

    def _seal(self, mentor_id: str, token: str) -> bytes:
        register_secret(token)
        try:
            return self.vault.seal(token.encode("ascii"), mentor_id=mentor_id, provider=SEAL_LABEL)
        except VaultUnavailableError:
            raise _unavailable() from None

    def _open(self, mentor_id: str, item: Mapping[str, Any]) -> str:
        try:
            token = self.vault.open(bytes(item["sealed_token"]), mentor_id=mentor_id, provider=SEAL_LABEL).decode(
                "ascii"
            )
            if token_hash(token) != item.get("token_hash"):
                raise VaultIntegrityError("sealed feed token does not match its hash")
        except VaultUnavailableError:
            raise _unavailable() from None
        except (VaultIntegrityError, KeyError, UnicodeDecodeError) as exc:
            # Unreadable (damaged, or sealed for another row): the URL cannot be shown again, so the
            # only way forward is a new one; the unreadable token's lookup goes with the rotation.
            logger.error("feed token unreadable; rotating", extra={"error": type(exc).__name__})
            return self.rotate(mentor_id)
        register_secret(token)
        return token


def _delete_own_lookup(hashed: str, mentor_id: str) -> dict[str, Any]:
    """A transaction part deleting the lookup of ``hashed`` if it is absent or ``mentor_id``'s."""
    return {
        "Delete": {
            "Key": {"PK": lookup_pk(hashed), "SK": FEED_SK},
            "ConditionExpression": "attribute_not_exists(PK) OR #m = :m",
            "ExpressionAttributeNames": {"#m": "mentor_id"},
            "ExpressionAttributeValues": {":m": mentor_id},
        }
    }


def _lookup_item(hashed: str, mentor_id: str, now: str) -> dict[str, Any]:
    return {"PK": lookup_pk(hashed), "SK": FEED_SK, "type": "feed_token", "mentor_id": mentor_id, "created_at": now}


def _unavailable() -> ApiError:
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "feed_unavailable", "The feed is unavailable; try again shortly.")


def mentor_for_token(table: Table, token: str) -> str | None:
    """The mentor whose current feed ``token`` is, or ``None`` (unknown or rotated away)."""
    item = table.get(lookup_pk(token_hash(token)), FEED_SK)
    return str(item["mentor_id"]) if item else None


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


def render(pairs: Iterable[tuple[ClassItem, Session]]) -> bytes:
    """The VCALENDAR (METHOD:PUBLISH, a VTIMEZONE per zone) of ``pairs``, in the given order."""
    cal = ics.calendar([session_event(k, s) for k, s in pairs], method="PUBLISH", name=CALENDAR_NAME)
    cal.add("refresh-interval", vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))
    return bytes(cal.to_ical())


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
        if session.mentor_id == mentor_id and session.end >= since
    ]
    pairs.sort(key=lambda pair: (pair[1].start, pair[1].session_id))
    if len(pairs) > MAX_EVENTS:
        cut, pairs = True, pairs[:MAX_EVENTS]
    if cut:
        logger.warning("feed cut short", extra={"classes": len(classes), "events": len(pairs)})
    body = render(pairs)
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


def mentor_feed(table: Table, vault: Vault, mentor_id: str, *, rotate: bool = False) -> FeedUrls:
    """``GET /mentors/me/feed`` (the current URL, created on the first call) or, with ``rotate``,
    ``POST /mentors/me/feed/rotate`` (a new URL; the old one is dead when this returns)."""
    tokens = FeedTokens(table, vault)
    token = tokens.rotate(mentor_id) if rotate else tokens.ensure(mentor_id)
    return feed_urls(token, settings().api_url)
