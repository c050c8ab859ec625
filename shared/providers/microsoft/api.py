"""The one way the Microsoft clients call Graph: a :class:`shared.providers.rest.BearerApi` that
retries 429 and 5xx with backoff, full jitter and ``Retry-After`` (:func:`.errors.graph_retryable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shared.providers.microsoft.errors import MICROSOFT, graph_retryable
from shared.providers.rest import BearerApi


def graph_api(
    base: str,
    *,
    timeout_s: float,
    attempts: int,
    budget_s: float = 25.0,
    max_retry_after_s: float | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> BearerApi:
    """Bearer calls under ``base`` (``https://graph.microsoft.com/v1.0``) with Graph's retry test;
    ``Retry-After`` waits beyond ``max_retry_after_s`` are left to the caller."""
    return BearerApi(
        MICROSOFT,
        base.rstrip("/"),
        timeout_s=timeout_s,
        attempts=attempts,
        budget_s=budget_s,
        retry_if=graph_retryable,
        max_retry_after_s=max_retry_after_s,
        sleep=sleep,
    )
