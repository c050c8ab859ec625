"""Google's error answers, read in one place: the error types of the Google clients, the reason
parser, the retryable test and the reason sets.

Google's JSON error body (Calendar API v3)::

    {"error": {"code": 403, "message": "…", "errors": [{"reason": "rateLimitExceeded", …}]}}

Reasons: ``rateLimitExceeded`` / ``userRateLimitExceeded`` are per-second rates, worth retrying
in-process; ``quotaExceeded`` / ``dailyLimitExceeded`` (the project's daily quota, the user's
Calendar usage limits) last longer than a request's retries — retryable, but by the caller after a
while. Messages built here never hold a token.
"""

from __future__ import annotations

import httpx

from shared.platform.http import RETRY_STATUSES
from shared.providers.rest import json_body

#: The provider name in messages and :class:`shared.providers.rest.BearerApi`.
GOOGLE = "Google"
#: Per-second rate limits: retried in-process with backoff.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
#: Longer quotas: retryable, but by the caller after a while, never in-process.
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
#: How long to stay away after a quota (not a rate) answer without ``Retry-After``.
QUOTA_WAIT_S = 900.0


class GoogleApiError(Exception):
    """Google answered with an error (``status``) or could not be reached (``status`` is None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GoogleAuthError(GoogleApiError):
    """Google refused the access token (401): expired, revoked or missing scope."""


class GoogleRateLimited(GoogleApiError):
    """Rate or quota limit still hit after the in-process retries: come back after ``retry_after_s``."""

    def __init__(self, message: str, *, status: int, retry_after_s: float | None) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


def google_reason(response: httpx.Response) -> tuple[str | None, str]:
    """The first ``error.errors[].reason`` (or ``None``) and ``error.message`` (or ``""``) of an answer."""
    body = json_body(response)
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, ""
    errors = err.get("errors")
    reason = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        reason = errors[0].get("reason")
    return (str(reason) if reason else None), str(err.get("message") or "")


def google_retryable(response: httpx.Response) -> bool:
    """Worth retrying in-process: 429, 5xx, or 403 with a per-second rate reason."""
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 403 and google_reason(response)[0] in RATE_LIMIT_REASONS
