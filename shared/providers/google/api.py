"""The one way the Google clients call the Calendar API: a :class:`shared.providers.rest.BearerApi`
that retries 429, 5xx and Google's 403 per-second rate reasons (:func:`.errors.google_retryable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared.providers.google.errors import GOOGLE, google_retryable
from shared.providers.rest import BearerApi


def google_api(
    base: str,
    *,
    timeout_s: float,
    attempts: int,
    budget_s: float = 25.0,
    max_retry_after_s: float | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> BearerApi:
    """Bearer calls under ``base`` with Google's retry test; ``Retry-After`` waits beyond
    ``max_retry_after_s`` are left to the caller."""
    return BearerApi(
        GOOGLE,
        base,
        timeout_s=timeout_s,
        attempts=attempts,
        budget_s=budget_s,
        retry_if=google_retryable,
        max_retry_after_s=max_retry_after_s,
        sleep=sleep,
    )
