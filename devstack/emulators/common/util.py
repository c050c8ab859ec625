"""Small helpers every emulator uses: an adjustable clock, timestamps, random identifiers, and the
OAuth building blocks (PKCE S256, HTTP Basic / Bearer parsing, token hints).

Rules: nothing here touches Flask or emulator state; every function is pure or holds its own lock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import string
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOOPBACK = "127.0.0.1"
ADMIN_PREFIX = "/_admin"

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------------------------


class Clock:
    """Wall clock (seconds since the epoch) with an offset tests can move forward."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset


def utc_from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def rfc3339_millis(ts: float) -> str:
    """``2024-05-01T10:00:00.000Z`` - the form Google uses for created/updated/timeMin."""
    d = utc_from_ts(ts)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def rfc3339_seconds(ts: float) -> str:
    """``2024-05-01T10:00:00Z`` - the form Zoom uses for start_time/created_at."""
    return utc_from_ts(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def http_date(ts: float) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Tue, 19 Nov 2013 01:13:52 GMT``."""
    return utc_from_ts(ts).strftime("%a, %d %b %Y %H:%M:%S GMT")


def parse_rfc3339(value: str) -> datetime | None:
    """Parse an RFC 3339 timestamp; ``None`` when malformed. Naive results keep no tzinfo."""
    try:
        return datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# random identifiers
# --------------------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


def random_urlsafe(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes)


def random_alnum(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def random_from(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def fake_jwt(claims: JSONDict, header: JSONDict | None = None) -> str:
    """A JWT-shaped string (header.payload.signature). The signature is random bytes:
    it looks like a provider token but cannot be verified - it is an opaque token here."""
    hdr = header or {"alg": "HS512", "typ": "JWT"}
    return ".".join(
        [
            b64url(json.dumps(hdr, separators=(",", ":")).encode()),
            b64url(json.dumps(claims, separators=(",", ":")).encode()),
            b64url(secrets.token_bytes(32)),
        ]
    )


# --------------------------------------------------------------------------------------------
# OAuth helpers
# --------------------------------------------------------------------------------------------


def pkce_s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(verifier.encode("ascii", errors="replace")).digest())


def pkce_matches(challenge: str, method: str, verifier: str) -> bool:
    if method == "S256":
        return secrets.compare_digest(pkce_s256(verifier), challenge)
    if method == "plain":
        return secrets.compare_digest(verifier, challenge)
    return False


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic base64(id:secret)``. RFC 6749 §2.3.1 form-encodes both parts
    before base64; decoding them is harmless for ids/secrets that need no encoding."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ":" not in raw:
        return None
    user, _, pwd = raw.partition(":")
    return unquote_plus(user), unquote_plus(pwd)


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def basic_auth_header(client_id: str, client_secret: str) -> str:
    raw = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def token_hint(token: str) -> str:
    """First characters of a token, enough to correlate in logs without the whole value."""
    return token[:12] + "…" if len(token) > 12 else token


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone called ``name``; ``None`` when empty or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
