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
