"""Apple busy reads that cost nothing when nothing changed (PRODUCT.md §2.7, issue 17).

Every sync lists the event calendars with one Depth 1 PROPFIND that also returns each calendar's
RFC 6578 ``DAV:sync-token`` and ``CS:getctag``. Each calendar then has a cached snapshot
(:mod:`shared.store.caldav_cache`: its markers, the time range read, and its objects reduced to
what busy times need) and is read the cheapest way that keeps the snapshot exact:

* **unchanged** — its sync-token (or, without one, its ctag) equals the snapshot's: no request;
* **sync** — the sync-token moved: one ``sync-collection`` REPORT from the snapshot's token (only the
  changed and removed members, with their etags) and a ``calendar-multiget`` of the members whose
  etag differs from the cached one; removed ones leave. An expired token (403/409
  ``DAV:valid-sync-token``) or a server that refuses the report reads the calendar **whole**;
* **etags** — no sync-token support and the ctag moved (or there is none): a ``calendar-query`` over
  the snapshot's range asking for etags only, then a multiget of the new and changed members;
* **whole** — no usable snapshot (a new calendar, another Apple ID or address set, a range that no
  longer covers the window): a ``calendar-query`` over ``window ± CALDAV_PAD`` plus the **horizon**
  (7 days by default), so the range runs out — and the calendar is read whole — about once a
  horizon, which also drops objects that left the range.

The markers in a snapshot are always the ones read *before* its objects (the PROPFIND's, or the
sync answer's), so no change is missed. Objects a sync brings that have no instance in the
snapshot's range are not kept. Calendars no longer listed lose their snapshot; new ones are read
whole. A snapshot keeps its busy blocks over its whole range (expanded in the mentor's zone); a sync
clips them to its window, so an unchanged calendar costs no parsing or expansion either — they are
expanded again only when the calendar changed or the mentor's zone did. A calendar too big to cache
is read whole at every sync.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from time import thread_time
from typing import Any

from shared.platform.observability import logger
from shared.providers.apple import caldav as apple
from shared.providers.apple.dav import EVENT_PROPS
from shared.store.busy import Block, merge
from shared.store.caldav_cache import MAX_OBJECTS, CalendarCache, CalendarCacheStore

#: Busy blocks of calendar texts over ``[start, end)`` (the caller binds the zone and the addresses).
BlocksOf = Callable[[list[str], datetime, datetime], list[Block]]

_EVENT_PROPS = frozenset(EVENT_PROPS)
#: CPU seconds one calendar's sync may spend checking that changed objects fall in the cached range.
RANGE_CHECK_SECONDS = 0.5
_UNFOLD = re.compile(r"\r?\n[ \t]")
_NAME = re.compile(r"[;:]")


def busy_relevant(text: str, me: Iterable[str]) -> str | None:
    """The calendar object ``text`` reduced to what busy times read: ``VERSION``, every ``VTIMEZONE``,
    and per ``VEVENT`` its times, recurrence, ``SEQUENCE``, ``TRANSP``, ``STATUS`` and only those
    ``ATTENDEE`` lines where one of ``me`` declined. ``None`` if it holds no VEVENT."""
    mine = {a.lower() for a in me}
    out: list[str] = []
    stack: list[str] = []
    events = 0
    for line in _UNFOLD.sub("", text).splitlines():
        upper = line.upper()
        if upper.startswith(("BEGIN:", "END:")):
            name = upper.split(":", 1)[1].strip()
            if upper.startswith("BEGIN:"):
                stack.append(name)
                events += name == "VEVENT" and _kept(stack)
            if _kept(stack):
                out.append(("BEGIN:" if upper.startswith("BEGIN:") else "END:") + stack[-1])
            if upper.startswith("END:") and stack:
                stack.pop()
            continue
        if not line.strip() or not _kept(stack):
            continue
        name = _NAME.split(upper, 1)[0]
        top = stack[-1]
        if top == "VCALENDAR":
            keep = name == "VERSION"
        elif top == "VEVENT":
            keep = name in _EVENT_PROPS and (name != "ATTENDEE" or _declined_by(line, mine))
        else:  # inside a VTIMEZONE
            keep = True
        if keep:
            out.append(line)
    return "\r\n".join(out) + "\r\n" if events else None


def _kept(stack: list[str]) -> bool:
    if not stack or stack[0] != "VCALENDAR":
        return False
    return len(stack) == 1 or (stack[1] == "VEVENT" and len(stack) == 2) or stack[1] == "VTIMEZONE"


def _declined_by(line: str, mine: set[str]) -> bool:
    from icalendar.parser import Contentline

    try:
        _, params, value = Contentline(line).parts()  # type: ignore[no-untyped-call]
    except ValueError:
        return False
    address = str(value).strip().lower().removeprefix("mailto:")
    return address in mine and str(params.get("PARTSTAT", "")).upper() == "DECLINED"


def has_instance(text: str, start: datetime, end: datetime) -> bool:
    """Whether the (reduced) object has an instance overlapping ``[start, end)`` (times without a zone
    read as UTC: the range is padded by a day for that)."""
    import icalendar

    from shared.busy.expand import expand

    try:
        components = icalendar.Calendar.from_ical(text).walk("VEVENT")
    except (ValueError, KeyError, IndexError):
        return False
    return bool(components) and any(True for _ in expand(components, start, end, tz=UTC))


def list_calendars(
    reader: apple.CalDavReader, cached: apple.CalDavHome | None
) -> tuple[apple.CalDavHome, list[apple.AppleCalendar]]:
    """The calendar home (``cached``, else discovered) and its event calendars; a cached home that
    answers 404 is discovered again."""
    home = cached or reader.discover()
    try:
        return home, reader.calendars(home.home_url)
    except apple.AppleNotFound:
        if cached is None:
            raise
        home = reader.discover()  # the cached home moved: look again
        return home, reader.calendars(home.home_url)


@dataclass
class CalendarReads:
    """The snapshots of every listed calendar after this sync, and what to store."""

    snapshots: list[CalendarCache] = field(default_factory=list)
    to_save: list[CalendarCache] = field(default_factory=list)
    to_drop: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def blocks(self, start: datetime, end: datetime) -> list[Block]:
        """The busy blocks of every calendar within ``[start, end)``, merged."""
        lo, hi = int(start.timestamp()), int(end.timestamp())
        return merge(
            Block(datetime.fromtimestamp(max(s, lo), UTC), datetime.fromtimestamp(min(e, hi), UTC))
            for snapshot in self.snapshots
            for s, e in snapshot.blocks or ()
            if s < hi and e > lo
        )

    def store(self, caches: CalendarCacheStore, mentor_id: str, *, now: datetime) -> None:
        """Write the changed snapshots and drop the caches of calendars that are gone."""
        for snapshot in self.to_save:
            caches.save(mentor_id, snapshot, now=now)
        if self.to_drop:
            caches.drop(mentor_id, self.to_drop)


@dataclass
class CalendarReader:
    """Brings each listed calendar's snapshot up to date (see the module docstring)."""

    reader: apple.CalDavReader
    account: str
    me: tuple[str, ...]
    needed: tuple[datetime, datetime]  # the range busy blocks are computed from (window ± pad)
    horizon: timedelta
    now: datetime
    tz: str  # the mentor's zone, whose blocks ``blocks_of`` computes
    blocks_of: BlocksOf
    in_range: Callable[[str, datetime, datetime], bool] = has_instance

    def read(
        self, calendars: list[apple.AppleCalendar], cached: dict[str, CalendarCache], known: Iterable[str] = ()
    ) -> CalendarReads:
        """Read what changed in ``calendars`` given the ``cached`` snapshots (by URL); the snapshots of
        the ``known`` calendars (listed last time) that are no longer listed are dropped."""
        listed = {c.url for c in calendars}
        reads = CalendarReads(to_drop=[url for url in dict.fromkeys([*known, *cached]) if url not in listed])
        for calendar in calendars:
            previous = cached.get(calendar.url)
            usable = previous if previous is not None and self._usable(previous) else None
            kind, snapshot = self._one(calendar, usable)
            if kind != "unchanged" or snapshot.blocks is None or snapshot.tz != self.tz:
                texts = [text for _, text in snapshot.objects.values()]
                found = self.blocks_of(texts, snapshot.range_start, snapshot.range_end)
                blocks = tuple((int(b.start.timestamp()), int(b.end.timestamp())) for b in found)
                snapshot = replace(snapshot, tz=self.tz, blocks=blocks)
                reads.to_save.append(snapshot)
            reads.kinds[kind] += 1
            reads.snapshots.append(snapshot)
        return reads

    def _usable(self, cache: CalendarCache) -> bool:
        return cache.account == self.account and cache.me == self.me and cache.covers(*self.needed)

    def _one(self, calendar: apple.AppleCalendar, cache: CalendarCache | None) -> tuple[str, CalendarCache]:
        if cache is None:
            return "whole", self._whole(calendar)
        if calendar.sync_token and cache.sync_token:
            # the list's token is compared with the one the list showed last time as well as with the
            # sync answer's (the same on Radicale; a server may write them differently)
            if calendar.sync_token in (cache.sync_token, cache.listed_token):
                return "unchanged", cache
            try:
                return "sync", self._sync(calendar, cache, cache.sync_token)
            except apple.AppleSyncTokenInvalid as exc:
                logger.info("calendar read whole", extra={"reason": str(exc)})
                whole = self._whole(calendar)
                return "whole", replace(whole, sync_token=None, listed_token=None) if exc.unsupported else whole
        if calendar.ctag and calendar.ctag == cache.ctag:
            return "unchanged", cache
        return "etags", self._etags(calendar, cache)

    def _whole(self, calendar: apple.AppleCalendar) -> CalendarCache:
        start, end = self.needed[0], self.needed[1] + self.horizon
        objects = self._reduced(self.reader.objects(calendar.url, start, end))
        return CalendarCache(
            url=calendar.url,
            account=self.account,
            range_start=start,
            range_end=end,
            read_at=self.now,
            sync_token=calendar.sync_token,
            listed_token=calendar.sync_token,
            ctag=calendar.ctag,
            me=self.me,
            objects=objects,
        )

    def _sync(self, calendar: apple.AppleCalendar, cache: CalendarCache, token: str) -> CalendarCache:
        changes = self.reader.changes(calendar.url, token)
        if len(changes.changed) > MAX_OBJECTS:
            raise apple.AppleSyncTokenInvalid(f"{len(changes.changed)} changes: cheaper to read whole")
        objects = {url: kept for url, kept in cache.objects.items() if url not in changes.removed}
        wanted = [url for url, etag in changes.changed.items() if _stale(cache.objects.get(url), etag)]
        fetched = self._reduced(self.reader.multiget(calendar.url, wanted)) if wanted else {}
        checks_until = thread_time() + RANGE_CHECK_SECONDS
        for url in wanted:
            kept = fetched.get(url)
            # past the CPU budget, objects are kept unchecked (the next whole read drops the far ones)
            if kept is not None and (
                thread_time() > checks_until or self.in_range(kept[1], cache.range_start, cache.range_end)
            ):
                objects[url] = kept
            else:  # gone since the sync answer, no longer an event, or outside the range read
                objects.pop(url, None)
        return replace(
            cache,
            sync_token=changes.token,
            listed_token=calendar.sync_token,
            ctag=calendar.ctag,
            read_at=self.now,
            objects=objects,
        )

    def _etags(self, calendar: apple.AppleCalendar, cache: CalendarCache) -> CalendarCache:
        listed = {
            o.url: o.etag for o in self.reader.objects(calendar.url, cache.range_start, cache.range_end, data=False)
        }
        objects = {url: kept for url, kept in cache.objects.items() if url in listed}
        wanted = [url for url, etag in listed.items() if _stale(objects.get(url), etag)]
        if len(wanted) > MAX_OBJECTS:
            return self._whole(calendar)
        fetched = self._reduced(self.reader.multiget(calendar.url, wanted)) if wanted else {}
        for url in wanted:
            if url in fetched:
                objects[url] = fetched[url]
            else:
                objects.pop(url, None)
        # no sync-token kept: this path runs without one on either side, or for a server that refused
        # sync-collection (its token would only fail again)
        return replace(cache, sync_token=None, listed_token=None, ctag=calendar.ctag, read_at=self.now, objects=objects)

    def _reduced(self, found: list[Any]) -> dict[str, tuple[str | None, str]]:
        objects: dict[str, tuple[str | None, str]] = {}
        for obj in found:
            text = busy_relevant(obj.text, self.me) if obj.text else None
            if text is not None:
                objects[obj.url] = (obj.etag, text)
        return objects


def _stale(kept: tuple[str | None, str] | None, etag: str | None) -> bool:
    """Whether a member listed with ``etag`` must be fetched (new, changed, or no etag to compare)."""
    return kept is None or etag is None or kept[0] != etag
