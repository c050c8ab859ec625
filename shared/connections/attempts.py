"""Apple connect is not a password oracle (PRODUCT.md §2.2): attempt limits and a circuit breaker.

``POST /connections/apple`` signs in to iCloud with what the caller posts, so unlimited it would
let anyone test app-specific passwords against any Apple ID from our egress addresses — and a burst
of failed sign-ins from those addresses risks Apple locking victims' Apple IDs or blocking every
mentor's sync. :class:`AppleAttemptLimiter` guards each sign-in:

* **Per mentor and per Apple ID** (the Apple ID is stored as its SHA-256 only): every sign-in that
  reaches iCloud is counted *before* it is sent, so racing requests on many Lambda instances cannot
  slip past the limit. From the ``APPLE_ATTEMPTS_FREE``-th (5th) sign-in on, each one blocks its
  keys for a growing back-off — ``APPLE_ATTEMPTS_BACKOFF_S`` (60 s), doubled for every further
  attempt, capped at ``APPLE_ATTEMPTS_BACKOFF_MAX_S`` (1 h). While blocked, an attempt is refused
  with 429 ``too_many_attempts`` and ``Retry-After`` (the right password too: otherwise the limit
  would still answer "right or wrong"), and it is not counted. A counter idle for
  ``APPLE_ATTEMPTS_WINDOW_S`` (24 h) starts again; a successful connect resets the mentor's and the
  Apple ID's counters.
* **Circuit breaker across mentors**: ``APPLE_BREAKER_THRESHOLD`` (30) iCloud 401s within
  ``APPLE_BREAKER_WINDOW_S`` (60 s), from any mentors, open the breaker for ``APPLE_BREAKER_OPEN_S``
  (300 s): every Apple connect is then refused with 503 ``apple_paused`` and ``Retry-After`` without
  contacting iCloud (and without counting against anyone). Busy-time syncs with stored credentials
  are not affected.

The counters live in the table (:class:`shared.store.guards.Guards`, conditional writes with a TTL),
so the limits hold across Lambda instances. A malformed password is refused before any of this
(it never reaches iCloud, so it is neither counted nor an oracle).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from pydantic import Field

from shared.platform.api import ApiError
from shared.platform.env import EnvSettings
from shared.platform.observability import logger
from shared.store.guards import Guards

MENTOR_KIND = "apple-mentor"
APPLE_ID_KIND = "apple-id"
BREAKER = "apple-icloud-401"


class AppleLimitSettings(EnvSettings):
    """Apple connect limits (environment variables of the same names, upper-cased)."""

    apple_attempts_free: int = Field(
        default=5, ge=1, description="Sign-ins per mentor / per Apple ID before the back-off starts."
    )
    apple_attempts_backoff_s: float = Field(
        default=60.0, gt=0, description="The first back-off; it doubles with every further attempt."
    )
    apple_attempts_backoff_max_s: float = Field(default=3600.0, gt=0, description="The longest back-off.")
    apple_attempts_window_s: int = Field(default=24 * 3600, ge=60, description="A counter idle this long starts again.")
    apple_breaker_threshold: int = Field(
        default=30, ge=1, description="iCloud 401s (all mentors) within the window that open the breaker."
    )
    apple_breaker_window_s: int = Field(default=60, ge=1, description="The breaker's counting window.")
    apple_breaker_open_s: int = Field(default=300, ge=1, description="How long an open breaker refuses.")


def apple_id_key(apple_id: str) -> str:
    """The Apple ID as it is stored in a counter: its SHA-256 (lower-cased, trimmed)."""
    return hashlib.sha256(apple_id.strip().lower().encode("utf-8")).hexdigest()


def _retry_after(until: float, now: float) -> int:
    return max(1, math.ceil(until - now))


def too_many_attempts(retry_after_s: int) -> ApiError:
    return ApiError(
        HTTPStatus.TOO_MANY_REQUESTS,
        "too_many_attempts",
        f"Too many Apple sign-in attempts. Please wait {retry_after_s} seconds, then check the Apple ID "
        "and the app-specific password and try again.",
        headers={"Retry-After": str(retry_after_s)},
        retryAfterSeconds=retry_after_s,
    )


def apple_paused(retry_after_s: int) -> ApiError:
    return ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "apple_paused",
        f"iCloud refused many sign-ins just now, so Apple connections are paused for {retry_after_s} "
        "seconds. Please try again then.",
        headers={"Retry-After": str(retry_after_s)},
        retryAfterSeconds=retry_after_s,
    )


@dataclass
class AppleAttemptLimiter:
    """Admit, then report, each Apple sign-in (see the module docstring for the rules)."""

    guards: Guards
    settings: AppleLimitSettings = field(default_factory=AppleLimitSettings)
    clock: Callable[[], float] = time.time

    def backoff_s(self, count: int) -> float | None:
        """The back-off after the ``count``-th attempt, or ``None`` while still free."""
        cfg = self.settings
        if count < cfg.apple_attempts_free:
            return None
        grown = cfg.apple_attempts_backoff_s * 2 ** (count - cfg.apple_attempts_free)
        return float(min(grown, cfg.apple_attempts_backoff_max_s))

    def admit(self, mentor_id: str, apple_id: str) -> None:
        """Count this sign-in against the mentor and the Apple ID, or raise 429 / 503 (not sent)."""
        now, cfg = self.clock(), self.settings
        open_until = self.guards.open_until(BREAKER, now=now)
        if open_until is not None:
            logger.warning("apple connect refused: breaker open")
            raise apple_paused(_retry_after(open_until, now))
        for kind, key in ((MENTOR_KIND, mentor_id), (APPLE_ID_KIND, apple_id_key(apple_id))):
            charge = self.guards.charge(
                kind, key, now=now, window_s=cfg.apple_attempts_window_s, block_for=self.backoff_s
            )
            if charge.blocked_until is not None:
                logger.info("apple connect refused: too many attempts", extra={"limit": kind})
                raise too_many_attempts(_retry_after(charge.blocked_until, now))
            if self.backoff_s(charge.count) is not None:
                logger.info("apple connect back-off", extra={"limit": kind, "attempt": charge.count})

    def rejected(self) -> None:
        """iCloud answered 401: count it towards the breaker (open it on a burst)."""
        now, cfg = self.clock(), self.settings
        count = self.guards.count_event(BREAKER, now=now, window_s=cfg.apple_breaker_window_s)
        if count >= cfg.apple_breaker_threshold:
            self.guards.trip(BREAKER, until=now + cfg.apple_breaker_open_s)
            if count == cfg.apple_breaker_threshold:
                logger.error(
                    "apple connect breaker opened",
                    extra={"icloud_401s": count, "open_s": cfg.apple_breaker_open_s},
                )

    def succeeded(self, mentor_id: str, apple_id: str) -> None:
        """A connect succeeded: the mentor's and the Apple ID's counters start again."""
        self.guards.reset(MENTOR_KIND, mentor_id)
        self.guards.reset(APPLE_ID_KIND, apple_id_key(apple_id))
