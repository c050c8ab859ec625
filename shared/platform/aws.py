"""boto3 clients, built lazily and once per container.

Every client has explicit timeouts and botocore's ``standard`` retry mode (exponential backoff with
jitter on throttling and 5xx). ``AWS_ENDPOINT_URL`` points them all at the local moto server.
"""

from __future__ import annotations

from typing import Any

from shared.platform.config import BaseFunctionSettings, settings
from shared.platform.once import once_per


def client(service: str, cfg: BaseFunctionSettings | None = None) -> Any:
    """A cached boto3 client for ``service`` (``"dynamodb"``, ``"kms"``, ``"sqs"``, ``"sesv2"`` …)."""
    cfg = cfg or settings()
    return _client((service, cfg.aws_region, cfg.aws_endpoint_url))


@once_per
def _client(key: tuple[str, str, str | None]) -> Any:
    service, region, endpoint = key
    import boto3  # imported here so that importing this module stays cheap
    from botocore.config import Config

    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        config=Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 5}),
        region_name=region,
        **({"endpoint_url": endpoint} if endpoint else {}),
    )


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
        from shared.platform.observability import logger

        logger.warning("could not delay the message", extra={"error": type(exc).__name__})
        return False
    return True
