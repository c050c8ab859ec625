"""E2E tests run with the functions pointed at the local providers (``tests/stack_fixtures.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack


@pytest.fixture(autouse=True)
def _functions_use_local_providers(provider_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    return provider_env


POLL = "calendar-poll"


@pytest.fixture
def no_scheduled_poll(local_stack: LocalStack) -> Iterator[None]:
    """Hold the calendar-poll schedule off (and prove it did not fire) while the test runs."""
    scheduler = local_stack.scheduler
    saved = scheduler.schedules.get(POLL)
    scheduler.unregister(POLL)
    fired = scheduler.fired.get(POLL, 0)
    try:
        yield
        assert scheduler.fired.get(POLL, 0) == fired
    finally:
        if saved is not None:
            scheduler.register(saved)
