"""Graph's error answers, read in one place: the error types of the Microsoft client, the code
parser and the retryable test.

Graph's error body (OData v4, ``../shared/specs/msgraph/NOTES-msgraph.md`` §7)::

    {"error": {"code": "ErrorItemNotFound", "message": "…", "innerError": {"request-id": "…"}}}

Code against ``error.code`` and the status, never ``message``. Throttling is 429 with
``Retry-After`` (fractional seconds allowed, e.g. ``2.128``) whatever the code
(``TooManyRequests``, or ``ApplicationThrottled`` for Outlook's per-mailbox limits); 503 may carry
``Retry-After`` too. Messages built here never hold a token.
"""

from __future__ import annotations

import httpx

from shared.platform.http import RETRY_STATUSES
from shared.providers.rest import json_body

#: The provider name in messages and :class:`shared.providers.rest.BearerApi`.
MICROSOFT = "Microsoft"


class MicrosoftApiError(Exception):
    """Graph answered with an error (``status``, ``code``) or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class MicrosoftAuthError(MicrosoftApiError):
    """Graph refused the access token (401 ``InvalidAuthenticationToken``): expired or revoked."""


class MicrosoftRateLimited(MicrosoftApiError):
    """Still throttled after the in-process retries: come back after ``retry_after_s``."""

    def __init__(self, message: str, *, status: int, code: str | None, retry_after_s: float | None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after_s = retry_after_s


def graph_code(response: httpx.Response) -> tuple[str | None, str]:
    """``error.code`` (or ``None``) and ``error.message`` (or ``""``) of a Graph answer."""
    body = json_body(response)
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, ""
    code = err.get("code")
    return (str(code) if code else None), str(err.get("message") or "")


def graph_retryable(response: httpx.Response) -> bool:
    """Worth retrying in-process: 429 (any code) and 5xx."""
    return response.status_code in RETRY_STATUSES
