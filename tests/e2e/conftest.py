"""E2E tests run with the functions pointed at the local providers (``tests/stack_fixtures.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _functions_use_local_providers(provider_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    return provider_env
