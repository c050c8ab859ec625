"""Apple iCloud Calendar over CalDAV (read-only): credential checks, discovery and busy-time reads.

iCloud has no OAuth for calendars: the mentor gives an Apple ID and an app-specific password.
We check the password's shape before any network call, then run CalDAV principal discovery
(``current-user-principal`` → ``calendar-home-set`` → calendars) with the caldav library.

The busy-time sync (:class:`CalDavReader`) lists the event calendars with their ``sync-token`` and
``getctag``, and reads only the calendars whose marker moved: RFC 6578 ``sync-collection`` (what
changed since a token; an expired token is :class:`AppleSyncTokenInvalid`) and ``calendar-multiget``
(those objects), or ``calendar-query`` (a time window, whole or etags only). The decisions and the
cache are :mod:`shared.busy.apple`'s; the request bodies and the multistatus parsing are in
:mod:`.dav` (re-exported here). Every request is bounded: at most :data:`MULTIGET_BATCH` objects a
multiget, :data:`MAX_SYNC_PAGES` truncated sync pages, the client's timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from shared.providers.apple.dav import (
    _CALENDARS_BODY,
    _HOME_BODY,
    _PRINCIPAL_BODY,
    CALDAV_NS,
    DAV_NS,
    AppleCalendar,
    CalDavHome,
    CalendarObject,
    DavResource,
    SyncChanges,
    calendar_data,
    calendar_home,
    calendar_objects,
    calendar_query_body,
    event_calendars,
    multiget_body,
    parse_multistatus,
    principal_url,
    sync_changes,
    sync_collection_body,
)

#: Objects asked for in one ``calendar-multiget``.
MULTIGET_BATCH = 100
#: Truncated ``sync-collection`` answers followed (each with the token it gave) before giving up.
MAX_SYNC_PAGES = 10
#: Event calendars read per Apple ID (more are left out, logged).
MAX_CALENDARS = 100

__all__ = [
    "APPLE_ID",
    "APP_SPECIFIC_PASSWORD",
    "AUTH_FAILED_MESSAGE",
    "CALDAV_NS",
    "DAV_NS",
    "AppleAccount",
    "AppleAuthError",
    "AppleCalendar",
    "AppleError",
    "AppleFormatError",
    "AppleNotFound",
    "AppleRateLimited",
    "AppleSyncTokenInvalid",
    "AppleUnavailableError",
    "CalDavHome",
    "CalDavReader",
    "CalendarObject",
    "DavResource",
    "SyncChanges",
    "calendar_data",
    "calendar_home",
    "calendar_objects",
    "calendar_query_body",
    "check_format",
    "discover",
    "event_calendars",
    "parse_multistatus",
    "principal_url",
]

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


class AppleRateLimited(AppleUnavailableError):
    """iCloud answered 429 (or 503 with ``Retry-After``): retry after ``retry_after_s``."""

    code = "apple_rate_limited"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AppleNotFound(AppleError):
    """A collection is gone (404/410): e.g. a cached calendar home; rediscover."""

    code = "apple_not_found"


class AppleSyncTokenInvalid(AppleError):
    """The server no longer knows the sync-token (403/409/412 ``DAV:valid-sync-token``), cannot page
    the changes, or refuses ``sync-collection`` (``DAV:supported-report``): read the calendar anew."""

    code = "apple_sync_token_invalid"

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


_VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"
_SUPPORTED_REPORT = "{DAV:}supported-report"


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

    def _send(self, method: str, url: str, body: str, depth: int | None) -> list[DavResource]:
        return parse_multistatus(self._tree(method, url, body, depth), url)

    def _tree(self, method: str, url: str, body: str, depth: int | None, *, sync: bool = False) -> Any:
        """Send one request; the 207 answer's parsed XML root. Errors become ``AppleError`` subclasses
        (``sync``: a 400 / 501 means the server does not do ``sync-collection`` there)."""
        from caldav.lib import error as caldav_error

        self.requests += 1
        try:
            if method == "PROPFIND":
                response = self._client.propfind(url, body, depth=depth or 0)
            else:
                response = self._client.report(url, body, depth=depth)
        except caldav_error.RateLimitError as exc:
            retry = getattr(exc, "retry_after_seconds", None)
            raise AppleRateLimited("iCloud asked us to slow down.", float(retry) if retry else None) from None
        except caldav_error.AuthorizationError as exc:
            if getattr(exc, "status", None) == 401 or _is_401(exc):
                raise AppleAuthError(AUTH_FAILED_MESSAGE) from None
            _raise_if_sync_refused(exc.preconditions)
            raise AppleUnavailableError("iCloud refused access to a calendar collection.") from None
        except caldav_error.DAVError as exc:
            raise AppleUnavailableError(f"iCloud CalDAV error: {type(exc).__name__}") from None
        except OSError as exc:  # connection refused / reset, DNS, timeouts (niquests errors are OSErrors)
            raise AppleUnavailableError(f"iCloud could not be reached: {type(exc).__name__}") from None
        status = int(getattr(response, "status", 0) or 0)
        if status in (404, 410):
            raise AppleNotFound(f"iCloud has no collection at the {method} URL (HTTP {status}).")
        if status in (409, 412):  # RFC 6578 §3.2 names 403; some servers answer 409 / 412 (Xandikos)
            _raise_if_sync_refused(caldav_error.parse_preconditions(getattr(response, "_raw", None)))
        if sync and status in (400, 501):
            raise AppleSyncTokenInvalid(f"sync-collection answered HTTP {status}", unsupported=True)
        if status != 207 or getattr(response, "tree", None) is None:
            raise AppleUnavailableError(f"iCloud answered {method} with HTTP {status}.")
        return response.tree

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
        """The event calendars under the home (Depth 1), with their sync-tokens and ctags."""
        found = event_calendars(self._send("PROPFIND", home_url, _CALENDARS_BODY, 1))
        if len(found) > MAX_CALENDARS:
            from shared.platform.observability import logger

            logger.warning("apple calendars left out", extra={"calendars": len(found), "kept": MAX_CALENDARS})
        return found[:MAX_CALENDARS]

    def events(self, calendar_url: str, start: datetime, end: datetime) -> list[str]:
        """The calendar objects (iCalendar texts) with a VEVENT overlapping ``[start, end)``."""
        return calendar_data(self._send("REPORT", calendar_url, calendar_query_body(start, end), 1))

    def objects(self, calendar_url: str, start: datetime, end: datetime, *, data: bool = True) -> list[CalendarObject]:
        """The objects with a VEVENT overlapping ``[start, end)``: URL, etag and (``data``) busy fields."""
        body = calendar_query_body(start, end, data=data)
        return calendar_objects(self._send("REPORT", calendar_url, body, 1), calendar_url)

    def multiget(self, calendar_url: str, urls: list[str]) -> list[CalendarObject]:
        """The named objects of the calendar (busy fields), :data:`MULTIGET_BATCH` a request; objects
        gone meanwhile are left out."""
        found: list[CalendarObject] = []
        host = urlsplit(calendar_url).netloc
        for at in range(0, len(urls), MULTIGET_BATCH):
            hrefs = [u if urlsplit(u).netloc != host else urlsplit(u).path for u in urls[at : at + MULTIGET_BATCH]]
            # RFC 4791 §7.9: no Depth header on a multiget
            found.extend(calendar_objects(self._send("REPORT", calendar_url, multiget_body(hrefs), None), calendar_url))
        return found

    def changes(self, calendar_url: str, token: str) -> SyncChanges:
        """What changed in the calendar since ``token`` (RFC 6578 ``sync-collection``, Depth 0), truncated
        answers followed up to :data:`MAX_SYNC_PAGES`. Raises :class:`AppleSyncTokenInvalid`."""
        changed: dict[str, str | None] = {}
        removed: set[str] = set()
        for _ in range(MAX_SYNC_PAGES):
            answer = self._tree("REPORT", calendar_url, sync_collection_body(token), 0, sync=True)
            page = sync_changes(answer, calendar_url)
            for url in page.removed:
                changed.pop(url, None)
                removed.add(url)
            for url, etag in page.changed.items():
                removed.discard(url)
                changed[url] = etag
            if page.token is None:
                raise AppleSyncTokenInvalid("the sync-collection answer carried no sync-token")
            if not page.truncated:
                return SyncChanges(changed, removed, page.token)
            if page.token == token:
                break
            token = page.token
        raise AppleSyncTokenInvalid("the sync-collection answer stayed truncated")


def _raise_if_sync_refused(preconditions: list[str]) -> None:
    if _VALID_SYNC_TOKEN in preconditions:
        raise AppleSyncTokenInvalid("the server no longer knows this sync-token")
    if _SUPPORTED_REPORT in preconditions:
        raise AppleSyncTokenInvalid("the server does not support sync-collection here", unsupported=True)
