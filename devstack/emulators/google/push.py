"""Push notifications of watch channels: one background thread delivers them in order.

Rules: a delivery is a POST with Google's ``X-Goog-*`` headers and an empty body; every attempt
(status or error) is recorded in ``state.push_deliveries``.
"""

from __future__ import annotations

import queue
import threading
import time

import httpx

from devstack.emulators.common import JSONDict
from devstack.emulators.google.state import GoogleState


class PushDispatcher:
    """Delivers push notifications in order from one background thread."""

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        self._q: queue.Queue[tuple[str, dict[str, str], int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="google-push", daemon=True)
        self._client = httpx.Client(timeout=5.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=5)
        self._client.close()

    def enqueue(self, address: str, headers: dict[str, str], delay_ms: int) -> None:
        self._q.put((address, headers, delay_ms))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._q.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                address, headers, delay_ms = item
                if delay_ms > 0:
                    time.sleep(delay_ms / 1000)
                record: JSONDict = {"address": address, "headers": headers, "ts": self.state.now()}
                try:
                    resp = self._client.post(address, headers=headers, content=b"")
                    record["status"] = resp.status_code
                except httpx.HTTPError as exc:
                    record["error"] = f"{type(exc).__name__}: {exc}"
                with self.state.lock:
                    self.state.push_deliveries.append(record)
            finally:
                self._q.task_done()
