"""Test doubles shared by the vault tests (imported as a top-level module: tests are not packages)."""

from __future__ import annotations

from datetime import UTC, datetime

REGION = "us-east-1"
TABLE = "mentor-connections-test"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeNow:
    """A wall clock (UTC datetime) the test sets by hand; decides the branch period."""

    def __init__(self, when: datetime | None = None) -> None:
        self.when = when or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.when
