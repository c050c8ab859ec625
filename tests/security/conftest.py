"""Security tests (issue 14): each replays an attack through the local gateway, as an outside user
would, and asserts the outcome (status, stored items, calls that reached a provider).

The functions are pointed at the local providers (``tests/stack_fixtures.py``) for every test here.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _functions_use_local_providers(provider_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    return provider_env
