"""CalDAV's XML, read and written without the network: the request bodies (PROPFIND, the
``calendar-query``, ``calendar-multiget`` and RFC 6578 ``sync-collection`` REPORTs) and the parsing
of ``207 Multi-Status`` answers into calendars (with their ``sync-token`` / ``getctag``), calendar
objects and sync changes. :mod:`.caldav` sends them (and re-exports these names).

Bounds: a token or ctag longer than :data:`MAX_TOKEN` characters is ignored (the calendar is then
read as if the server had none), and so is an object without an href.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit
from xml.sax.saxutils import escape

#: Longest sync-token / ctag / etag kept (iCloud's are about 70 characters, Radicale's 92).
MAX_TOKEN = 1024


@dataclass(frozen=True)
class AppleCalendar:
    """One event calendar of the mentor, with its change markers from the Depth 1 PROPFIND:
    ``sync_token`` (RFC 6578 ``DAV:sync-token``) and ``ctag`` (``CS:getctag``), ``None`` when the
    server has none."""

    url: str
    name: str | None
    sync_token: str | None = None
    ctag: str | None = None


# --- busy times: CalDAV reads (PRODUCT.md §2.7) ------------------------------------------------------
#
# A warm sync where nothing changed is one request: the calendar list (PROPFIND Depth 1 on the
# home, every sync, so new and removed calendars are seen) with each calendar's sync-token and
# ctag. Principal discovery (PROPFIND current-user-principal, then calendar-home-set +
# calendar-user-address-set on the principal) runs once and is cached by the caller. A calendar
# whose marker moved is read with a sync-collection REPORT (what changed since the stored token)
# and a calendar-multiget of the changed objects; without sync support, by a calendar-query that
# asks for etags only, then a multiget; one never read (or whose cached range ran out), by a
# calendar-query with a time range (:mod:`shared.busy.apple`). The caldav library is the transport
# (auth, session, error preconditions); the multistatus bodies are parsed here, so iCloud's shapes
# (default DAV: namespace, per-element xmlns, 404 propstats, CDATA calendar-data, a home on another
# host) are handled explicitly and tested against its fixtures.

DAV_NS = "DAV:"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CS_NS = "http://calendarserver.org/ns/"

_PRINCIPAL_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>'
)
_HOME_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
    "<C:calendar-home-set/><C:calendar-user-address-set/>"
    "</D:prop></D:propfind>"
)
_CALENDARS_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/">'
    "<D:prop>"
    "<D:resourcetype/><D:displayname/><C:supported-calendar-component-set/><D:sync-token/><CS:getctag/>"
    "</D:prop></D:propfind>"
)
#: Only what busy times need is asked for (RFC 4791 §9.6 partial retrieval): no titles, no notes.
EVENT_PROPS = (
    "UID",
    "DTSTART",
    "DTEND",
    "DURATION",
    "RRULE",
    "RDATE",
    "EXRULE",
    "EXDATE",
    "RECURRENCE-ID",
    "SEQUENCE",
    "TRANSP",
    "STATUS",
    "ATTENDEE",
)


_FMT = "%Y%m%dT%H%M%SZ"


def _calendar_data() -> str:
    props = "".join(f'<C:prop name="{name}"/>' for name in EVENT_PROPS)
    return (
        "<C:calendar-data>"
        f'<C:comp name="VCALENDAR"><C:prop name="VERSION"/><C:comp name="VEVENT">{props}</C:comp>'
        '<C:comp name="VTIMEZONE"/></C:comp>'
        "</C:calendar-data>"
    )


def calendar_query_body(start: datetime, end: datetime, *, data: bool = True) -> str:
    """A ``calendar-query`` REPORT body: VEVENTs overlapping ``[start, end)`` (UTC), busy fields only
    (``data=False``: their etags only)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/>{_calendar_data() if data else ''}</D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start.astimezone(UTC).strftime(_FMT)}" end="{end.astimezone(UTC).strftime(_FMT)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )


def multiget_body(hrefs: Iterable[str]) -> str:
    """A ``calendar-multiget`` REPORT body for ``hrefs`` (paths or URLs), busy fields only."""
    listed = "".join(f"<D:href>{escape(href)}</D:href>" for href in hrefs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/>{_calendar_data()}</D:prop>{listed}</C:calendar-multiget>"
    )


def sync_collection_body(token: str) -> str:
    """An RFC 6578 ``sync-collection`` REPORT body: members changed since ``token``, etags only."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{escape(token)}</D:sync-token>'
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
    )


@dataclass(frozen=True)
class DavResource:
    """One ``DAV:response`` of a multistatus: its absolute URL, its found (200) properties and the
    response's own status (``None`` when it has propstats instead, e.g. 404 for a removed member)."""

    url: str
    props: dict[str, Any]  # Clark name ("{DAV:}displayname") -> lxml element
    status: int | None = None


@dataclass(frozen=True)
class CalDavHome:
    """Where the mentor's calendars live and the addresses that are the mentor (cached by callers)."""

    home_url: str
    addresses: tuple[str, ...] = ()


def _clark(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def parse_multistatus(body: bytes | Any, base_url: str) -> list[DavResource]:
    """The responses of a 207 body (bytes, or an lxml element already parsed), hrefs made absolute.

    Only properties inside a ``200`` propstat count (iCloud lists missing ones in a separate 404
    propstat). Whitespace-only text, single-quoted attributes, default namespaces: all fine for lxml.
    """
    from lxml import etree  # type: ignore[import-untyped]  # caldav's XML library (no stubs)

    if isinstance(body, bytes | str):
        parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
        root = etree.fromstring(body.encode("utf-8") if isinstance(body, str) else body, parser=parser)
    else:
        root = body
    found: list[DavResource] = []
    for response in root.iter(_clark(DAV_NS, "response")):
        href = response.findtext(_clark(DAV_NS, "href"))
        if not href:
            continue
        props: dict[str, Any] = {}
        for propstat in response.iter(_clark(DAV_NS, "propstat")):
            status = (propstat.findtext(_clark(DAV_NS, "status")) or "").split()
            if len(status) < 2 or status[1] != "200":
                continue
            prop = propstat.find(_clark(DAV_NS, "prop"))
            for child in prop if prop is not None else ():
                if isinstance(child.tag, str):
                    props[child.tag] = child
        found.append(DavResource(url=canonical(urljoin(base_url, href.strip())), props=props, status=_status(response)))
    return found


def canonical(url: str) -> str:
    """``url`` with its path percent-encoded one way (servers write ``@`` as ``%40`` in one answer and
    plain in the next), so the same member has the same key in every answer."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=quote(unquote(parts.path), safe="/:@!$&'()*+,;=~")))


def _status(response: Any) -> int | None:
    """The status of a ``DAV:response`` itself (its direct ``DAV:status`` child), if it has one."""
    parts = (response.findtext(_clark(DAV_NS, "status")) or "").split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def sync_token(root: Any) -> str | None:
    """The multistatus's top-level ``DAV:sync-token`` (a ``sync-collection`` answer), if sane."""
    return _bounded(root.findtext(_clark(DAV_NS, "sync-token")))


def _bounded(text: str | None) -> str | None:
    text = (text or "").strip()
    return text if text and len(text) <= MAX_TOKEN else None


def _hrefs(element: Any, base_url: str) -> list[str]:
    return [
        urljoin(base_url, h.text.strip()) for h in element.iter(_clark(DAV_NS, "href")) if h.text and h.text.strip()
    ]


def principal_url(resources: list[DavResource], base_url: str) -> str | None:
    """``current-user-principal`` of a PROPFIND answer, absolute."""
    for res in resources:
        element = res.props.get(_clark(DAV_NS, "current-user-principal"))
        if element is not None and (hrefs := _hrefs(element, base_url)):
            return hrefs[0]
    return None


def calendar_home(resources: list[DavResource], base_url: str) -> CalDavHome | None:
    """``calendar-home-set`` (may be on another host, as iCloud's) and ``calendar-user-address-set``."""
    for res in resources:
        element = res.props.get(_clark(CALDAV_NS, "calendar-home-set"))
        if element is None or not (hrefs := _hrefs(element, base_url)):
            continue
        addresses: list[str] = []
        address_set = res.props.get(_clark(CALDAV_NS, "calendar-user-address-set"))
        if address_set is not None:
            for h in address_set.iter(_clark(DAV_NS, "href")):
                text = (h.text or "").strip()
                if text.lower().startswith("mailto:"):
                    addresses.append(text[7:].lower())
        return CalDavHome(home_url=hrefs[0], addresses=tuple(dict.fromkeys(addresses)))
    return None


def event_calendars(resources: list[DavResource]) -> list[AppleCalendar]:
    """The calendar collections that hold events: ``resourcetype`` has ``C:calendar`` and the
    ``supported-calendar-component-set`` (absent = every component) includes VEVENT. Inboxes,
    outboxes, notification collections and Reminders (VTODO-only) lists are left out."""
    calendars: list[AppleCalendar] = []
    for res in resources:
        kind = res.props.get(_clark(DAV_NS, "resourcetype"))
        if kind is None or kind.find(_clark(CALDAV_NS, "calendar")) is None:
            continue
        supported = res.props.get(_clark(CALDAV_NS, "supported-calendar-component-set"))
        if supported is not None:
            names = {str(c.get("name", "")).upper() for c in supported.iter(_clark(CALDAV_NS, "comp"))}
            if "VEVENT" not in names:
                continue
        name = res.props.get(_clark(DAV_NS, "displayname"))
        calendars.append(
            AppleCalendar(
                url=res.url,
                name=(name.text or None) if name is not None else None,
                sync_token=_prop_text(res, _clark(DAV_NS, "sync-token")),
                ctag=_prop_text(res, _clark(CS_NS, "getctag")),
            )
        )
    return calendars


def _prop_text(res: DavResource, name: str) -> str | None:
    element = res.props.get(name)
    return _bounded(element.text) if element is not None else None


def calendar_data(resources: list[DavResource]) -> list[str]:
    """The ``calendar-data`` texts (CDATA or escaped, as servers send them) of a REPORT answer."""
    texts = []
    for res in resources:
        element = res.props.get(_clark(CALDAV_NS, "calendar-data"))
        if element is not None and element.text and element.text.strip():
            texts.append(element.text)
    return texts


@dataclass(frozen=True)
class CalendarObject:
    """One calendar object resource: its absolute URL, etag and (when asked for) iCalendar text."""

    url: str
    etag: str | None
    text: str | None = None


def calendar_objects(resources: list[DavResource], collection_url: str) -> list[CalendarObject]:
    """The members of a calendar-query / multiget answer that were found (not the collection itself)."""
    out = []
    for res in resources:
        if _same(res.url, collection_url) or res.status not in (None, 200):
            continue
        data = res.props.get(_clark(CALDAV_NS, "calendar-data"))
        text = data.text if data is not None and data.text and data.text.strip() else None
        if text is None and not res.props:
            continue  # a propstat that found nothing (e.g. 404 only)
        out.append(CalendarObject(url=res.url, etag=_prop_text(res, _clark(DAV_NS, "getetag")), text=text))
    return out


@dataclass(frozen=True)
class SyncChanges:
    """What a ``sync-collection`` answer says: members changed (URL → etag) or removed since the
    token, the new token, and whether the server truncated the answer (RFC 6578 §3.6, a 507 for
    the collection itself: ask again with the new token)."""

    changed: dict[str, str | None] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    token: str | None = None
    truncated: bool = False


def sync_changes(root: Any, collection_url: str) -> SyncChanges:
    """Read a ``sync-collection`` 207 answer (an lxml element) for ``collection_url``."""
    changes = SyncChanges(token=sync_token(root))
    truncated = False
    for res in parse_multistatus(root, collection_url):
        if _same(res.url, collection_url):
            truncated = truncated or res.status == 507
            continue
        if res.status in (None, 200):
            changes.removed.discard(res.url)
            changes.changed[res.url] = _prop_text(res, _clark(DAV_NS, "getetag"))
        else:  # 404 removed; 403 / 405 no longer readable (Apple's server): it no longer counts either way
            changes.changed.pop(res.url, None)
            changes.removed.add(res.url)
    return SyncChanges(changes.changed, changes.removed, changes.token, truncated)


def _same(url: str, other: str) -> bool:
    return url.rstrip("/") == other.rstrip("/")
