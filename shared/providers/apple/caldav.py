"""Apple iCloud Calendar over CalDAV (read-only): credential checks, discovery and busy-time reads.

iCloud has no OAuth for calendars: the mentor gives an Apple ID and an app-specific password.
We check the password's shape before any network call, then run CalDAV principal discovery
(``current-user-principal`` → ``calendar-home-set`` → calendars) with the caldav library.

The busy-time sync (:class:`CalDavReader`) lists the event calendars and asks each for the events
of a time window with a ``calendar-query`` REPORT; :mod:`shared.busy.sync` expands and filters them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from pydantic import SecretStr

#: Apple's app-specific passwords: four groups of four lower-case letters.
APP_SPECIFIC_PASSWORD = re.compile(r"^[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}$")
APPLE_ID = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

AUTH_FAILED_MESSAGE = (
    "Apple rejected these credentials. The three usual causes: (1) your regular Apple ID password "
    "was used instead of an app-specific password (create one at appleid.apple.com → Sign-In and "
    "Security → App-Specific Passwords); (2) two-factor authentication is off for this Apple ID, "
    "and app-specific passwords need it on; (3) the app-specific password was revoked or has "
    "expired (for example after an Apple ID password change) — create a new one."
)


class AppleError(Exception):
    """Base class; ``code`` is the API's machine code."""

    code = "apple_error"


class AppleFormatError(AppleError):
    """The Apple ID or password is malformed; no network call was made."""

    code = "invalid_app_specific_password"


class AppleAuthError(AppleError):
    """CalDAV answered 401."""

    code = "apple_auth_failed"


class AppleUnavailableError(AppleError):
    """iCloud could not be reached or answered with an error other than 401."""

    code = "apple_unavailable"


@dataclass(frozen=True)
class AppleCalendar:
    """One event calendar of the mentor."""

    url: str
    name: str | None


@dataclass(frozen=True)
class AppleAccount:
    """What discovery found: the principal and its calendars."""

    principal_url: str
    calendars: tuple[AppleCalendar, ...]


def check_format(apple_id: str, password: SecretStr) -> None:
    """Reject a malformed Apple ID or app-specific password before any network call."""
    if not APPLE_ID.match(apple_id):
        err = AppleFormatError("appleId must be the e-mail address of the Apple ID.")
        err.code = "invalid_apple_id"
        raise err
    if not APP_SPECIFIC_PASSWORD.match(password.get_secret_value()):
        raise AppleFormatError(
            "appSpecificPassword must be an app-specific password of the form xxxx-xxxx-xxxx-xxxx "
            "(lower-case letters), not your Apple ID password."
        )


def discover(url: str, apple_id: str, password: SecretStr, *, timeout_s: float = 10.0) -> AppleAccount:
    """Sign in to the CalDAV server at ``url`` and list the mentor's calendars.

    Raises :class:`AppleAuthError` on 401 and :class:`AppleUnavailableError` on anything else
    that went wrong; messages never include the password.
    """
    from caldav.davclient import DAVClient  # heavy: imported only by the functions that talk CalDAV
    from caldav.lib import error as caldav_error

    check_format(apple_id, password)
    client = DAVClient(
        url=url,
        username=apple_id,
        password=password.get_secret_value(),
        timeout=int(timeout_s),
        require_tls=url.startswith("https://"),
        enable_rfc6764=False,  # we are given the server URL; no DNS SRV discovery
    )
    try:
        principal = client.principal()  # type: ignore[no-untyped-call]
        calendars = tuple(AppleCalendar(url=str(cal.url), name=_name(cal)) for cal in principal.calendars())
    except caldav_error.AuthorizationError as exc:
        if _is_401(exc):
            raise AppleAuthError(AUTH_FAILED_MESSAGE) from None
        raise AppleUnavailableError("iCloud refused access to the calendars.") from None
    except caldav_error.DAVError as exc:
        raise AppleUnavailableError(f"iCloud CalDAV error: {type(exc).__name__}") from None
    except OSError as exc:
        raise AppleUnavailableError(f"iCloud could not be reached: {type(exc).__name__}") from None
    return AppleAccount(principal_url=str(principal.url), calendars=calendars)


def _is_401(exc: Exception) -> bool:
    return "401" in str(getattr(exc, "reason", "")) or "Unauthorized" in str(exc)


def _name(calendar: Any) -> str | None:
    try:
        name = calendar.get_display_name()
    except Exception:  # a calendar without a display name is still a calendar
        return None
    return str(name) if name else None


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


class AppleRateLimited(AppleUnavailableError):
    """iCloud answered 429 (or 503 with ``Retry-After``): retry after ``retry_after_s``."""

    code = "apple_rate_limited"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AppleNotFound(AppleError):
    """A collection is gone (404/410): e.g. a cached calendar home; rediscover."""

    code = "apple_not_found"


class CalDavReader:
    """Read-only CalDAV session of one Apple ID (use as a context manager; closes the HTTP session)."""

    def __init__(self, url: str, apple_id: str, password: SecretStr, *, timeout_s: float = 10.0) -> None:
        from caldav.davclient import DAVClient  # heavy: only the sync worker and connect import it

        self.url = url
        self._client = DAVClient(
            url=url,
            username=apple_id,
            password=password.get_secret_value(),
            auth_type="basic",  # iCloud's scheme; saves the 401 round trip of negotiating it
            timeout=max(1, int(timeout_s)),
            require_tls=url.startswith("https://"),
            enable_rfc6764=False,
            rate_limit_handle=False,  # 429 is raised: the worker decides when to come back
        )
        self.requests = 0

    def __enter__(self) -> CalDavReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session."""
        try:
            self._client.close()
        except Exception:  # closing is best effort
            return

    def _send(self, method: str, url: str, body: str, depth: int) -> list[DavResource]:
        from caldav.lib import error as caldav_error

        self.requests += 1
        try:
            if method == "PROPFIND":
                response = self._client.propfind(url, body, depth=depth)
            else:
                response = self._client.report(url, body, depth=depth)
        except caldav_error.RateLimitError as exc:
            retry = getattr(exc, "retry_after_seconds", None)
            raise AppleRateLimited("iCloud asked us to slow down.", float(retry) if retry else None) from None
        except caldav_error.AuthorizationError as exc:
            if getattr(exc, "status", None) == 401 or _is_401(exc):
                raise AppleAuthError(AUTH_FAILED_MESSAGE) from None
            raise AppleUnavailableError("iCloud refused access to a calendar collection.") from None
        except caldav_error.DAVError as exc:
            raise AppleUnavailableError(f"iCloud CalDAV error: {type(exc).__name__}") from None
        except OSError as exc:  # connection refused / reset, DNS, timeouts (niquests errors are OSErrors)
            raise AppleUnavailableError(f"iCloud could not be reached: {type(exc).__name__}") from None
        status = int(getattr(response, "status", 0) or 0)
        if status in (404, 410):
            raise AppleNotFound(f"iCloud has no collection at the {method} URL (HTTP {status}).")
        if status != 207 or getattr(response, "tree", None) is None:
            raise AppleUnavailableError(f"iCloud answered {method} with HTTP {status}.")
        return parse_multistatus(response.tree, url)

    def discover(self) -> CalDavHome:
        """Principal discovery: ``current-user-principal``, then its calendar home and addresses."""
        principal = principal_url(self._send("PROPFIND", self.url, _PRINCIPAL_BODY, 0), self.url)
        if principal is None:
            raise AppleUnavailableError("iCloud did not name the current user principal.")
        home = calendar_home(self._send("PROPFIND", principal, _HOME_BODY, 0), principal)
        if home is None:
            raise AppleUnavailableError("iCloud did not name the calendar home.")
        return home

    def calendars(self, home_url: str) -> list[AppleCalendar]:
        """The event calendars under the home (Depth 1)."""
        return event_calendars(self._send("PROPFIND", home_url, _CALENDARS_BODY, 1))

    def events(self, calendar_url: str, start: datetime, end: datetime) -> list[str]:
        """The calendar objects (iCalendar texts) with a VEVENT overlapping ``[start, end)``."""
        return calendar_data(self._send("REPORT", calendar_url, calendar_query_body(start, end), 1))
