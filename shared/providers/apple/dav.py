"""CalDAV's XML, read and written without the network: the request bodies (PROPFIND, the
``calendar-query`` REPORT) and the parsing of ``207 Multi-Status`` answers into calendars and
calendar data. :mod:`.caldav` sends them (and re-exports these names).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin


@dataclass(frozen=True)
class AppleCalendar:
    """One event calendar of the mentor."""

    url: str
    name: str | None


# --- busy times: CalDAV reads (PRODUCT.md §2.7) ------------------------------------------------------
#
# Three requests on a warm sync, five on the first: principal discovery (PROPFIND
# current-user-principal, then PROPFIND calendar-home-set + calendar-user-address-set on the
# principal; both cached by the caller), the calendar list (PROPFIND Depth 1 on the home, every
# sync, so new calendars are seen), and one REPORT calendar-query with a time range per event
# calendar. The caldav library is the transport (auth, session); the multistatus bodies are parsed
# here, so iCloud's shapes (default DAV: namespace, per-element xmlns, 404 propstats, CDATA
# calendar-data, a home on another host) are handled explicitly and tested against its fixtures.

DAV_NS = "DAV:"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"

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
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
    "<D:resourcetype/><D:displayname/><C:supported-calendar-component-set/>"
    "</D:prop></D:propfind>"
)
#: Only what busy times need is asked for (RFC 4791 §9.6 partial retrieval): no titles, no notes.
_EVENT_PROPS = (
    "UID",
    "DTSTART",
    "DTEND",
    "DURATION",
    "RRULE",
    "RDATE",
    "EXRULE",
    "EXDATE",
    "RECURRENCE-ID",
    "TRANSP",
    "STATUS",
    "ATTENDEE",
)


def calendar_query_body(start: datetime, end: datetime) -> str:
    """A ``calendar-query`` REPORT body: VEVENTs overlapping ``[start, end)`` (UTC), busy fields only."""
    fmt = "%Y%m%dT%H%M%SZ"
    props = "".join(f'<C:prop name="{name}"/>' for name in _EVENT_PROPS)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data>"
        f'<C:comp name="VCALENDAR"><C:prop name="VERSION"/><C:comp name="VEVENT">{props}</C:comp>'
        '<C:comp name="VTIMEZONE"/></C:comp>'
        "</C:calendar-data></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start.astimezone(UTC).strftime(fmt)}" end="{end.astimezone(UTC).strftime(fmt)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )


@dataclass(frozen=True)
class DavResource:
    """One ``DAV:response`` of a multistatus: its absolute URL and its found (200) properties."""

    url: str
    props: dict[str, Any]  # Clark name ("{DAV:}displayname") -> lxml element


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
        found.append(DavResource(url=urljoin(base_url, href.strip()), props=props))
    return found


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
        calendars.append(AppleCalendar(url=res.url, name=(name.text or None) if name is not None else None))
    return calendars


def calendar_data(resources: list[DavResource]) -> list[str]:
    """The ``calendar-data`` texts (CDATA or escaped, as servers send them) of a REPORT answer."""
    texts = []
    for res in resources:
        element = res.props.get(_clark(CALDAV_NS, "calendar-data"))
        if element is not None and element.text and element.text.strip():
            texts.append(element.text)
    return texts
