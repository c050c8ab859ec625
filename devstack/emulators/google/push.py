"""Push notifications of watch channels: one background thread delivers them in order.

Rules: a delivery is a POST with Google's ``X-Goog-*`` headers and an empty body; every attempt
(status or error) is recorded in ``state.push_deliveries``. The queue and its thread are the common
:class:`~devstack.emulators.common.dispatch.Dispatcher` (the Microsoft emulator's notifier is one too).
"""

from __future__ import annotations

import httpx

from devstack.emulators.common import Dispatcher, JSONDict
from devstack.emulators.google.state import GoogleState


class PushDispatcher:
    """Delivers push notifications in order from one background thread."""

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        self._client = httpx.Client(timeout=5.0)
        self._dispatcher: Dispatcher[tuple[str, dict[str, str]]] = Dispatcher("google-push", self._deliver)

    def start(self) -> None:
        self._dispatcher.start()

    def stop(self) -> None:
        self._dispatcher.stop()
        self._client.close()

    def enqueue(self, address: str, headers: dict[str, str], delay_ms: int) -> None:
        self._dispatcher.enqueue((address, headers), delay_ms)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Whether every queued notification was delivered (or failed) within ``timeout`` seconds."""
        return self._dispatcher.wait_idle(timeout)

    def _deliver(self, item: tuple[str, dict[str, str]]) -> None:
        address, headers = item
        record: JSONDict = {"address": address, "headers": headers, "ts": self.state.now()}
        try:
            resp = self._client.post(address, headers=headers, content=b"")
            record["status"] = resp.status_code
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        with self.state.lock:
            self.state.push_deliveries.append(record)
