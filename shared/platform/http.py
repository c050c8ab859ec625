"""Outbound HTTP for provider calls: one httpx client per container, timeouts, and retries.

Retries use tenacity: exponential backoff with full jitter on connection errors, 429 and 5xx,
honouring ``Retry-After`` (seconds or HTTP date) when the provider sends it, capped so a Lambda
never sleeps past its budget. Callers make retries harmless (idempotency keys, request ids, or
checks), as DEVELOPERS.md requires.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from shared.platform.observability import trace_httpx

RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})

_lock = threading.Lock()
_clients: dict[float, httpx.Client] = {}


def http_client(timeout_s: float = 10.0) -> httpx.Client:
    """A shared httpx client (connection pooling across invocations of a warm container)."""
    found = _clients.get(timeout_s)
    if found is None:
        with _lock:
            found = _clients.get(timeout_s)
            if found is None:
                trace_httpx()
                found = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(3.0, timeout_s)))
                _clients[timeout_s] = found
    return found


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The delay a ``Retry-After`` header asks for, or ``None`` (absent or unreadable).

    Accepts delta-seconds and an HTTP date (RFC 9110), and the ISO 8601 instant Zoom sends with
    its daily-limit 429 (``2024-05-02T00:00:00Z``).
    """
    value = (response.headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed: datetime | None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return max(0.0, parsed.timestamp() - time.time())


class _Wait:
    """Full-jitter exponential backoff, or the provider's Retry-After when it is larger."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        self._backoff = wait_random_exponential(multiplier=base_s, max=cap_s)
        self._cap_s = cap_s

    def __call__(self, state: RetryCallState) -> float:
        delay = float(self._backoff(state))
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            asked = retry_after_seconds(outcome.result())
            if asked is not None:
                delay = max(delay, min(asked, self._cap_s))
        return delay


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError)


def send(
    request: Callable[[], httpx.Response],
    *,
    attempts: int = 4,
    base_s: float = 0.2,
    cap_s: float = 8.0,
    budget_s: float = 25.0,
    retry_statuses: Collection[int] = RETRY_STATUSES,
    retry_if: Callable[[httpx.Response], bool] | None = None,
    max_retry_after_s: float | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> httpx.Response:
    """Call ``request`` until it answers with a non-retryable status or the attempts run out.

    ``retry_if`` replaces the status check (``retry_statuses``) when a provider signals
    retryable errors differently (Google's 403 ``rateLimitExceeded``). With ``max_retry_after_s``
    an answer whose ``Retry-After`` asks for a longer wait is returned at once instead of being
    retried: such waits (a daily quota) belong to the caller's queue, not to a sleeping Lambda.

    Returns the last response (the caller maps its status); re-raises the last transport error.
    """

    def retryable(response: httpx.Response) -> bool:
        wanted = retry_if(response) if retry_if is not None else response.status_code in retry_statuses
        if not wanted or max_retry_after_s is None:
            return wanted
        asked = retry_after_seconds(response)
        return asked is None or asked <= max_retry_after_s

    retrying = Retrying(
        retry=retry_if_exception(_transient) | retry_if_result(retryable),
        wait=_Wait(base_s, cap_s),
        stop=stop_after_attempt(attempts) | stop_after_delay(budget_s),
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        reraise=True,
    )
    response: httpx.Response = retrying(request)
    return response
