"""EventBridge schedules, locally: registered functions invoked every ``interval_s`` seconds.

Each :class:`~devstack.routes.Schedule` is fired like an EventBridge ``rate(...)`` rule — first
one interval after the scheduler starts, then every interval — with the "Scheduled Event" that
EventBridge sends::

    {"version": "0", "id": "...", "detail-type": "Scheduled Event", "source": "aws.events",
     "account": "123456789012", "time": "2026-01-01T10:00:00Z", "region": "us-east-1",
     "resources": ["arn:aws:events:us-east-1:123456789012:rule/<name>"], "detail": {}}

(infra gives an EventBridge Scheduler target this same payload as its input). Tests and the demo
call :meth:`Scheduler.tick_now` to fire one at once, synchronously.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from devstack.routes import ACCOUNT_ID, DEFAULT_REGION, FunctionNotFoundError, LambdaContext, Schedule, load_handler

log = logging.getLogger(__name__)


def scheduled_event(
    schedule: Schedule, *, region: str = DEFAULT_REGION, account_id: str = ACCOUNT_ID, now: float | None = None
) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" for one firing of ``schedule``."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{schedule.name}"],
        "detail": dict(schedule.detail),
    }


class Scheduler:
    """Fires registered schedules from one background thread."""

    name = "scheduler"

    def __init__(
        self,
        schedules: Iterable[Schedule] = (),
        *,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        autorun: bool = True,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.autorun = autorun
        self._schedules: dict[str, Schedule] = {}
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired: dict[str, int] = {}
        for schedule in schedules:
            self.register(schedule)

    @property
    def schedules(self) -> dict[str, Schedule]:
        with self._lock:
            return dict(self._schedules)

    def register(self, schedule: Schedule) -> None:
        """Add (or replace) a schedule; its first firing is one interval from now."""
        if schedule.interval_s <= 0:
            raise ValueError("interval_s must be positive")
        with self._lock:
            self._schedules[schedule.name] = schedule
            self._due[schedule.name] = time.monotonic() + schedule.interval_s
        self._wake.set()

    def unregister(self, name: str) -> None:
        with self._lock:
            self._schedules.pop(name, None)
            self._due.pop(name, None)

    def tick_now(self, name: str) -> Any:
        """Fire ``name`` once, now, in the caller's thread; the function's result."""
        with self._lock:
            schedule = self._schedules[name]
        return self._fire(schedule, raise_errors=True)

    def _fire(self, schedule: Schedule, *, raise_errors: bool = False) -> Any:
        event = scheduled_event(schedule, region=self.region, account_id=self.account_id)
        with self._lock:
            self.fired[schedule.name] = self.fired.get(schedule.name, 0) + 1
        try:
            handler = load_handler(schedule.handler_module)
            context = LambdaContext(
                schedule.function, timeout_s=schedule.timeout_s, region=self.region, account_id=self.account_id
            )
            return handler(event, context)
        except FunctionNotFoundError:
            if raise_errors:
                raise
            log.info("schedule %s: %s not written yet", schedule.name, schedule.function)
        except Exception:
            if raise_errors:
                raise
            log.exception("schedule %s: %s raised", schedule.name, schedule.function)
        return None

    def start(self) -> None:
        if not self.autorun or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="devstack-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def endpoints(self) -> dict[str, str]:
        return {}

    def environment(self) -> dict[str, str]:
        return {}

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            due: list[Schedule] = []
            with self._lock:
                for name, at in self._due.items():
                    if at <= now:
                        schedule = self._schedules[name]
                        due.append(schedule)
                        # next firing on the fixed grid; skip missed ones after a long invocation
                        missed = int((now - at) // schedule.interval_s) + 1
                        self._due[name] = at + missed * schedule.interval_s
                wait = min(self._due.values(), default=now + 1.0) - now
            for schedule in due:
                self._fire(schedule)
            self._wake.wait(timeout=max(0.0, min(wait, 1.0)) if not due else 0)
            self._wake.clear()
