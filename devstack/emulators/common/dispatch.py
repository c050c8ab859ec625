"""A background delivery thread: items queued by request handlers are handled in order, each
after its own delay, by one daemon thread (an emulator's push or webhook deliveries).

Rules: :meth:`Dispatcher.enqueue` never blocks a request; :meth:`Dispatcher.wait_idle` lets tests
and resets wait until everything queued was handled; the handler runs outside any emulator lock
and takes it itself when it records what happened.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Dispatcher(Generic[T]):
    """Handles queued items in order from one background thread."""

    def __init__(self, name: str, handle: Callable[[T], None]) -> None:
        self._handle = handle
        self._q: queue.Queue[tuple[T, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=5)

    def enqueue(self, item: T, delay_ms: int = 0) -> None:
        self._q.put((item, delay_ms))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Whether everything queued was handled within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._q.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            entry = self._q.get()
            try:
                if entry is None:
                    return
                item, delay_ms = entry
                if delay_ms > 0:
                    time.sleep(delay_ms / 1000)
                self._handle(item)
            finally:
                self._q.task_done()
