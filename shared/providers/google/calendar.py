"""Google account reads: the calendar list and userinfo e-mail (connect flow) and free/busy (busy sync).

Calls go through :class:`shared.providers.rest.BearerApi` (the shared httpx client, retries on
429/5xx with backoff and jitter). Errors never carry the access token.

``freeBusy.query`` (PRODUCT.md §2.7) is asked for one calendar over the sync window, split into
requests of at most :data:`FREEBUSY_MAX_SPAN`: Google refuses longer ranges with 400
``timeRangeTooLong`` (about 90 days; the limit is not in the discovery document, cal.com met it,
calcom/cal.diy#11962), and the split keeps a margin so a DST hour never tips a request over.
Rate limits: 429 and 403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` are retried in-process
with backoff, full jitter and ``Retry-After`` (short waits only); when the retries run out, or for
the longer quotas (403 ``quotaExceeded`` / ``dailyLimitExceeded``), :class:`GoogleRateLimited`
tells the worker to come back later. The per-project rate is bounded by the worker's concurrency
(``busySyncMaxConcurrency``) times :class:`RateLimiter`'s per-container rate
(``BUSY_GOOGLE_QPS``); per user, one sync makes one request per 60 days of window, one at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from shared.platform.http import retry_after_seconds
from shared.providers.google.api import google_api
from shared.providers.google.errors import (
    GOOGLE,
    QUOTA_REASONS,
    QUOTA_WAIT_S,
    RATE_LIMIT_REASONS,
    GoogleApiError,
    GoogleAuthError,
    GoogleRateLimited,
    google_reason,
    google_retryable,
)
from shared.providers.rest import BearerApi, ProviderUnreachable, json_body, parse_instant, redact

__all__ = [
    "FREEBUSY_MAX_SPAN",
    "MAX_INLINE_WAIT_S",
    "QUOTA_WAIT_S",
    "BusySpan",
    "CalendarEntry",
    "GoogleApiError",
    "GoogleAuthError",
    "GoogleClient",
    "GoogleRateLimited",
    "RateLimiter",
    "google_client",
    "google_retryable",
    "split_window",
]

#: Longest range one freeBusy request covers (Google's limit is about 90 days).
FREEBUSY_MAX_SPAN = timedelta(days=60)
#: In-process retries only for waits up to this long; longer ones go back to the queue.
MAX_INLINE_WAIT_S = 5.0


@dataclass
class RateLimiter:
    """A token bucket shared by the threads of one container: at most ``rate`` calls per second
    on average, bursts of ``burst``. ``rate <= 0`` disables it."""

    rate: float
    burst: float = 1.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], Any] = field(default=time.sleep, repr=False)
    _tokens: float | None = field(default=None, init=False, repr=False)
    _at: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def acquire(self) -> float:
        """Wait for a token; returns how long it waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens = self.burst if self._tokens is None else self._tokens
            tokens = min(self.burst, tokens + (now - self._at) * self.rate) - 1.0
            self._tokens, self._at = tokens, now
            wait = -tokens / self.rate if tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait


@dataclass(frozen=True)
class BusySpan:
    """One busy interval Google reported (UTC)."""

    start: datetime
    end: datetime


def split_window(
    start: datetime, end: datetime, max_span: timedelta = FREEBUSY_MAX_SPAN
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive pieces of at most ``max_span``."""
    if max_span <= timedelta(0):
        raise ValueError("max_span must be positive")
    pieces = []
    cursor = start
    while cursor < end:
        nxt = min(end, cursor + max_span)
        pieces.append((cursor, nxt))
        cursor = nxt
    return pieces


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CalendarEntry:
    """One entry of the mentor's calendar list."""

    id: str
    summary: str
    primary: bool
    access_role: str
    time_zone: str | None = None


class GoogleClient:
    """Calendar list and userinfo over the configured endpoints (the emulator in dev)."""

    def __init__(
        self,
        *,
        api_base: str,
        userinfo_url: str,
        timeout_s: float = 10.0,
        attempts: int = 4,
        limiter: RateLimiter | None = None,
        max_span: timedelta = FREEBUSY_MAX_SPAN,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.userinfo_url = userinfo_url
        self._api = BearerApi(GOOGLE, self.api_base, timeout_s=timeout_s, attempts=attempts)
        self._busy_api = google_api(
            self.api_base, timeout_s=timeout_s, attempts=attempts, max_retry_after_s=MAX_INLINE_WAIT_S, sleep=sleep
        )
        self.limiter = limiter or RateLimiter(rate=0)
        self.max_span = max_span
        self.requests = 0

    def _get(self, url: str, token: SecretStr, params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self._api.call("GET", url, token, params=params)
        except ProviderUnreachable as exc:
            raise GoogleApiError(str(exc)) from None
        if response.status_code == 401:
            raise GoogleAuthError("Google refused the access token.", status=401)
        if response.status_code >= 400:
            raise GoogleApiError(f"Google answered HTTP {response.status_code}.", status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise GoogleApiError("Google answered with a body that is not JSON.") from None
        if not isinstance(body, dict):
            raise GoogleApiError("Google answered with an unexpected body.")
        return body

    def calendar_list(self, token: SecretStr) -> list[CalendarEntry]:
        """Every calendar of the calendar list (all pages), primary first."""
        entries: list[CalendarEntry] = []
        page: str | None = None
        for _ in range(50):  # at most 50 pages of 250: far more than any mentor has
            params = {"maxResults": "250"}
            if page:
                params["pageToken"] = page
            body = self._get(f"{self.api_base}/users/me/calendarList", token, params)
            for item in body.get("items", []):
                if not isinstance(item, dict) or not item.get("id"):
                    continue
                entries.append(
                    CalendarEntry(
                        id=str(item["id"]),
                        summary=str(item.get("summaryOverride") or item.get("summary") or item["id"]),
                        primary=bool(item.get("primary", False)),
                        access_role=str(item.get("accessRole", "reader")),
                        time_zone=str(item["timeZone"]) if item.get("timeZone") else None,
                    )
                )
            page = body.get("nextPageToken")
            if not page:
                break
        entries.sort(key=lambda e: not e.primary)
        return entries

    def userinfo_email(self, token: SecretStr) -> str | None:
        """The account e-mail from OpenID userinfo, if the granted scopes include it."""
        body = self._get(self.userinfo_url, token)
        email = body.get("email")
        return str(email) if email else None

    def account_email(self, token: SecretStr, calendars: list[CalendarEntry] | None = None) -> str | None:
        """The account e-mail: the primary calendar's id (our scopes carry no ``email``), else userinfo."""
        calendars = self.calendar_list(token) if calendars is None else calendars
        primary = next((c for c in calendars if c.primary), None)
        if primary is not None and "@" in primary.id:
            return primary.id
        try:
            return self.userinfo_email(token)
        except GoogleApiError:
            return None

    def free_busy(self, token: SecretStr, calendar_id: str, start: datetime, end: datetime) -> list[BusySpan]:
        """Busy intervals of ``calendar_id`` within ``[start, end)`` (one request per :attr:`max_span`).

        Raises :class:`GoogleAuthError` (401), :class:`GoogleRateLimited` (rate / quota limits
        after the retries), :class:`GoogleApiError` with ``status`` 404 when the calendar is gone
        (or not shared with this account), and :class:`GoogleApiError` otherwise (``status`` None:
        unreachable).
        """
        spans: list[BusySpan] = []
        for piece_start, piece_end in split_window(start, end, self.max_span):
            spans.extend(self._free_busy_piece(token, calendar_id, piece_start, piece_end))
        spans.sort(key=lambda s: (s.start, s.end))
        return spans

    def _free_busy_piece(self, token: SecretStr, calendar_id: str, start: datetime, end: datetime) -> list[BusySpan]:
        self.limiter.acquire()
        self.requests += 1
        body = {"timeMin": _rfc3339(start), "timeMax": _rfc3339(end), "timeZone": "UTC", "items": [{"id": calendar_id}]}
        try:
            response = self._busy_api.call("POST", f"{self.api_base}/freeBusy", token, json=body)
        except ProviderUnreachable as exc:
            raise GoogleApiError(str(exc)) from None
        status = response.status_code
        if status == 401:
            raise GoogleAuthError("Google refused the access token.", status=401)
        reason = google_reason(response)[0] if status >= 400 else None
        if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS | QUOTA_REASONS):
            wait = retry_after_seconds(response)
            if wait is None and reason in QUOTA_REASONS:
                wait = QUOTA_WAIT_S
            raise GoogleRateLimited(
                redact(f"Google rate limit ({reason or status}).", token), status=status, retry_after_s=wait
            )
        if status >= 400:
            raise GoogleApiError(
                f"Google answered freeBusy with HTTP {status} ({reason or 'no reason'}).", status=status
            )
        payload = json_body(response)
        calendars = payload.get("calendars") if isinstance(payload, dict) else None
        if not isinstance(calendars, dict):
            raise GoogleApiError("Google answered freeBusy with an unexpected body.")
        entry = calendars.get(calendar_id)
        if entry is None and len(calendars) == 1:  # e.g. "primary" answered under the account's e-mail
            entry = next(iter(calendars.values()))
        if not isinstance(entry, dict):
            raise GoogleApiError("Google answered freeBusy without the calendar asked for.")
        errors = [e.get("reason") for e in entry.get("errors") or [] if isinstance(e, dict)]
        if errors:
            code = 404 if "notFound" in errors else None
            raise GoogleApiError(
                f"Google could not read the calendar's busy times ({', '.join(map(str, errors))}).", status=code
            )
        spans = []
        for item in entry.get("busy") or []:
            s, e = (
                (parse_instant(item.get("start")), parse_instant(item.get("end")))
                if isinstance(item, dict)
                else (None, None)
            )
            if s is None or e is None:
                continue
            s, e = max(s, start), min(e, end)
            if s < e:
                spans.append(BusySpan(s, e))
        return spans


def google_client() -> GoogleClient:
    """A client over the configured Google endpoints."""
    from shared.platform.config import BaseFunctionSettings, ProviderSettings, settings

    cfg = settings(ProviderSettings)
    return GoogleClient(
        api_base=cfg.google_api_base,
        userinfo_url=cfg.google_userinfo_url,
        timeout_s=settings(BaseFunctionSettings).http_timeout_s,
    )
