"""Apple iCloud Calendar over CalDAV (read-only): credential checks and principal discovery.

iCloud has no OAuth for calendars: the mentor gives an Apple ID and an app-specific password.
We check the password's shape before any network call, then run CalDAV principal discovery
(``current-user-principal`` → ``calendar-home-set`` → calendars) with the caldav library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
