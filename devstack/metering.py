"""Count AWS API calls a boto3 client makes, with botocore's event hooks (no patching)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class CallCounter:
    """Counts operations sent by one boto3 client, by operation name (``Decrypt``, ``GenerateDataKey`` …)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def _hook(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    @property
    def total(self) -> int:
        """All calls counted so far."""
        return sum(self.calls.values())


@contextmanager
def count_calls(client: Any) -> Iterator[CallCounter]:
    """Count the calls ``client`` makes inside the ``with`` block."""
    counter = CallCounter()
    service = client.meta.service_model.service_name
    event = f"before-call.{service}"
    client.meta.events.register(event, counter._hook)
    try:
        yield counter
    finally:
        client.meta.events.unregister(event, counter._hook)
