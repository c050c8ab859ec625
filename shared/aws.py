"""boto3 clients, built lazily and once per container.

Every client has explicit timeouts and botocore's ``standard`` retry mode (exponential backoff with
jitter on throttling and 5xx). ``AWS_ENDPOINT_URL`` points them all at the local moto server.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.config import BaseFunctionSettings, boto3_kwargs, settings

_lock = threading.Lock()
_clients: dict[tuple[str, str, str | None], Any] = {}


def client(service: str, cfg: BaseFunctionSettings | None = None) -> Any:
    """A cached boto3 client for ``service`` (``"dynamodb"``, ``"kms"``, ``"sqs"``, ``"sesv2"`` …)."""
    cfg = cfg or settings()
    key = (service, cfg.aws_region, cfg.aws_endpoint_url)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            import boto3  # imported here so that importing this module stays cheap
            from botocore.config import Config

            found = boto3.session.Session().client(
                service,  # type: ignore[call-overload]
                config=Config(
                    connect_timeout=3,
                    read_timeout=10,
                    retries={"mode": "standard", "max_attempts": 5},
                ),
                **boto3_kwargs(cfg),
            )
            _clients[key] = found
    return found


def reset_clients() -> None:
    """Drop cached clients (tests switch endpoints between runs)."""
    with _lock:
        _clients.clear()


#: SQS caps a message's visibility timeout at 12 hours.
MAX_VISIBILITY_S = 12 * 3600


def delay_message(queue_url: str, receipt_handle: str, delay_s: float) -> bool:
    """Make a received SQS message visible again only after ``delay_s`` (a worker's "retry later").

    Best effort: if the call fails, the queue's own visibility timeout still brings the message
    back. Returns whether the delay was set.
    """
    if not queue_url:
        return False
    try:
        client("sqs").change_message_visibility(
            QueueUrl=queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=int(min(max(delay_s, 0), MAX_VISIBILITY_S)),
        )
    except Exception as exc:
        from shared.observability import logger

        logger.warning("could not delay the message", extra={"error": type(exc).__name__})
        return False
    return True
